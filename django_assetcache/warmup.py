"""Deploy-time preparation: local blobs, compressed variants, the snapshot."""

from __future__ import annotations

import gzip
import io
import time
from dataclasses import dataclass
from typing import Any, TextIO

from django.db import transaction
from django.db.models import Max

from . import conf
from .mediatypes import is_compressible
from .models import Asset, Blob, Change, Site, record_change
from .progress import Progress, human_bytes
from .snapshot import SnapshotSummary, write_snapshot
from .store import BlobStore, hash_stream

#: Files smaller than this gain nothing worth a variant.
MIN_COMPRESS_SIZE = 256
#: Files larger than this are not compressed (it is done in memory).
MAX_COMPRESS_SIZE = 32 * 1024 * 1024
#: A variant is kept only when it is at most this fraction of the original.
MAX_RATIO = 0.9


class WarmupError(Exception):
    pass


@dataclass
class WarmupSummary:
    sites: int = 0
    assets: int = 0
    variants_built: int = 0
    bytes_saved: int = 0
    missing_blobs: int = 0
    snapshot: SnapshotSummary | None = None
    seconds: float = 0.0

    def __str__(self) -> str:
        snap = self.snapshot
        memory = human_bytes(snap.body_bytes) if snap else "0 B"
        text = (
            f"warmed {self.sites} sites, {self.assets} assets; {memory} of bodies in the snapshot; "
            f"{self.variants_built} compressed variants built"
        )
        if self.missing_blobs:
            text += f"; {self.missing_blobs} blobs missing from storage"
        return text + f"; {self.seconds:.2f} s"


def _encoders() -> list[tuple[str, Any]]:
    encoders: list[tuple[str, Any]] = [("gzip", _gzip)]
    try:
        import brotli
    except ImportError:
        return encoders

    def _brotli(data: bytes) -> bytes:
        quality = 11 if len(data) <= 1024 * 1024 else 6
        return brotli.compress(data, quality=quality)

    return [("br", _brotli), *encoders]


def _gzip(data: bytes) -> bytes:
    # mtime=0: the same input always gives the same bytes, so the same hash.
    return gzip.compress(data, compresslevel=9, mtime=0)


def warm_up(
    subdomains: list[str] | None = None,
    *,
    compress: bool = True,
    progress_stream: TextIO | None = None,
) -> WarmupSummary:
    started = time.monotonic()
    settings = conf.get()
    store = BlobStore()
    summary = WarmupSummary()
    sites = Site.objects.all()
    if subdomains:
        sites = sites.filter(subdomain__in=subdomains)
        missing = sorted(set(subdomains) - set(sites.values_list("subdomain", flat=True)))
        if missing:
            raise WarmupError(f"no such site: {', '.join(missing)}")

    if compress:
        _compress(store, sites, summary, progress_stream)

    # The stamp is read before the index: whatever commits after it is
    # replayed by every process that loads the snapshot.
    change_id = Change.objects.aggregate(latest=Max("id"))["latest"] or 0
    site_rows = list(
        sites.values(
            "id", "subdomain", "is_active", "index_document", "error_document", "cache_control"
        )
    )
    for site in site_rows:
        site["domains"] = []
    by_id = {site["id"]: site for site in site_rows}
    for site_id, hostname in Site.objects.filter(pk__in=by_id).values_list("id", "domains__hostname"):
        if hostname:
            by_id[site_id]["domains"].append(hostname)

    variants: dict[str, list[list[Any]]] = {}
    for source_id, encoding, sha, size in Blob.objects.filter(
        source__assets__site__in=by_id
    ).distinct().values_list("source_id", "encoding", "sha256", "size"):
        variants.setdefault(source_id, []).append([encoding, sha, size])

    assets: dict[int, list[list[Any]]] = {site_id: [] for site_id in by_id}
    small: dict[str, int] = {}
    rows = Asset.objects.filter(site__in=by_id).values_list(
        "site_id", "path", "content_type", "last_modified", "blob_id", "blob__size"
    )
    for site_id, path, content_type, modified, sha, size in rows.iterator(chunk_size=5000):
        blob_variants = variants.get(sha, [])
        assets[site_id].append([path, content_type, int(modified.timestamp()), sha, size, blob_variants])
        for blob_sha, blob_size in [(sha, size), *((v[1], v[2]) for v in blob_variants)]:
            if blob_size <= settings.MEMORY_FILE_LIMIT:
                small[blob_sha] = blob_size
    summary.sites = len(site_rows)
    summary.assets = sum(len(site_assets) for site_assets in assets.values())

    progress = (
        Progress("snapshot", sum(small.values()), stream=progress_stream, unit_bytes=True)
        if progress_stream is not None
        else None
    )

    def bodies() -> Any:
        for sha, size in small.items():
            data = _read_local(store, sha)
            if progress is not None:
                progress.advance(size)
            if data is None:
                summary.missing_blobs += 1
                continue
            yield sha, data

    summary.snapshot = write_snapshot(
        settings.SNAPSHOT_PATH,
        change_id=change_id,
        sites=site_rows,
        assets=assets,
        bodies=bodies(),
    )
    if progress is not None:
        progress.close()
    summary.seconds = time.monotonic() - started
    return summary


def _read_local(store: BlobStore, sha: str) -> bytes | None:
    path = store.local_path(sha)
    if path is None:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _compress(
    store: BlobStore, sites: Any, summary: WarmupSummary, progress_stream: TextIO | None
) -> None:
    """Build missing variants for compressible blobs, once per content hash."""
    encoders = _encoders()
    candidates: dict[str, tuple[int, set[str]]] = {}
    rows = (
        Asset.objects.filter(site__in=sites, blob__size__gte=MIN_COMPRESS_SIZE, blob__size__lte=MAX_COMPRESS_SIZE)
        .values_list("blob_id", "blob__size", "content_type")
        .distinct()
    )
    for sha, size, content_type in rows:
        if is_compressible(content_type):
            candidates.setdefault(sha, (size, set()))
    if not candidates:
        return
    for source_id, encoding in Blob.objects.filter(source_id__in=list(candidates)).values_list(
        "source_id", "encoding"
    ):
        candidates[source_id][1].add(encoding)
    todo = {
        sha: size
        for sha, (size, done) in candidates.items()
        if any(name not in done for name, _ in encoders)
    }
    if not todo:
        return
    progress = (
        Progress("compressing", sum(todo.values()), stream=progress_stream, unit_bytes=True)
        if progress_stream is not None
        else None
    )
    new_variants: list[Blob] = []
    for sha, size in todo.items():
        data = _read_local(store, sha)
        if data is not None:
            for encoding, encode in encoders:
                if encoding in candidates[sha][1]:
                    continue
                compressed = encode(data)
                if len(compressed) > len(data) * MAX_RATIO:
                    continue
                variant_sha, variant_size = hash_stream(io.BytesIO(compressed))
                store.save(variant_sha, variant_size, io.BytesIO(compressed))
                new_variants.append(
                    Blob(sha256=variant_sha, size=variant_size, source_id=sha, encoding=encoding)
                )
                summary.bytes_saved += size - variant_size
        if progress is not None:
            progress.advance(size)
    if progress is not None:
        progress.close()
    if not new_variants:
        return
    with transaction.atomic():
        Blob.objects.bulk_create(new_variants, ignore_conflicts=True)
        # Responses for these files change (Content-Encoding, Vary): tell
        # every process.
        sources = {variant.source_id for variant in new_variants}
        touched: dict[int, list[str]] = {}
        for site_id, path in Asset.objects.filter(blob_id__in=sources).values_list("site_id", "path"):
            touched.setdefault(site_id, []).append(path)
        for site_id, paths in touched.items():
            record_change(site_id, Change.Kind.PUBLISH, paths)
    summary.variants_built = len(new_variants)
