"""Deploy-time preparation: local blobs, compressed variants, the snapshot.

With a remote storage, every referenced blob is first downloaded into the
local disk tier (in parallel), so the first request for any of them does not
wait for the network. The snapshot can be uploaded to the storage
(``upload_snapshot``) and fetched from it on another machine
(``warm_up_from_storage``), which then needs no database to start hot.
"""

from __future__ import annotations

import gzip
import io
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from django.core.files import File
from django.db import transaction
from django.db.models import Max

from . import conf
from .atomic import atomic_write
from .mediatypes import is_compressible
from .models import Asset, Blob, Change, Site, record_change
from .progress import Progress, human_bytes, plural
from .snapshot import Snapshot, SnapshotError, SnapshotSummary, write_snapshot
from .store import SNAPSHOT_NAME, BlobStore, hash_stream, stream_object

logger = logging.getLogger("django_assetcache")

#: Files smaller than this gain nothing worth a variant.
MIN_COMPRESS_SIZE = 256
#: Files larger than this are not compressed (it is done in memory).
MAX_COMPRESS_SIZE = 32 * 1024 * 1024
#: A variant is kept only when it is at most this fraction of the original.
MAX_RATIO = 0.9
#: Parallel downloads into the local tier: enough to hide per-request
#: latency of an object store, few enough not to saturate a small machine.
DOWNLOAD_WORKERS = 8


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
    #: Blobs and bytes downloaded into the local tier.
    downloaded: int = 0
    downloaded_bytes: int = 0
    #: Blobs the tier evicted while warming: it is smaller than the sites.
    tier_evictions: int = 0
    #: Storage name of the uploaded snapshot, if it was uploaded.
    uploaded_snapshot: str | None = None
    #: Sites a warmup of some sites kept from the snapshot in place.
    kept_sites: int = 0
    missing: set[str] = field(default_factory=set, repr=False)

    def __str__(self) -> str:
        snap = self.snapshot
        memory = human_bytes(snap.body_bytes) if snap else "0 B"
        text = (
            f"warmed {plural(self.sites, 'site')}, {plural(self.assets, 'asset')}; {memory} of bodies in the snapshot; "
            f"{plural(self.variants_built, 'compressed variant')} built"
        )
        if self.downloaded:
            downloaded = f"{plural(self.downloaded, 'blob')} ({human_bytes(self.downloaded_bytes)})"
            text += f"; {downloaded} downloaded to the local tier"
        if self.tier_evictions:
            text += (
                f"; the local tier evicted {plural(self.tier_evictions, 'blob')} while warming "
                "(ASSETCACHE_DISK_LIMIT is smaller than the sites)"
            )
        if self.missing_blobs:
            text += f"; {plural(self.missing_blobs, 'blob')} missing from storage"
        if self.kept_sites:
            text += f"; {plural(self.kept_sites, 'other site')} kept from the snapshot in place"
        if self.uploaded_snapshot:
            text += f"; snapshot uploaded to {self.uploaded_snapshot}"
        return text + f"; {self.seconds:.2f} s"


def _encoders() -> list[tuple[str, Any]]:
    encoders: list[tuple[str, Any]] = [("gzip", _gzip)]
    try:
        import brotli  # optional extra (brotli): without it, gzip only
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
    upload: bool = False,
    store: BlobStore | None = None,
) -> WarmupSummary:
    started = time.monotonic()
    settings = conf.get()
    store = store or BlobStore()
    summary = WarmupSummary()
    sites = Site.objects.all()
    if subdomains:
        sites = sites.filter(subdomain__in=subdomains)
        missing = sorted(set(subdomains) - set(sites.values_list("subdomain", flat=True)))
        if missing:
            raise WarmupError(f"no such site: {', '.join(missing)}")

    if store.remote:
        # Before compressing: compression reads every compressible source.
        referenced = dict(Blob.objects.filter(assets__site__in=sites).values_list("sha256", "size").distinct())
        referenced.update(Blob.objects.filter(source__assets__site__in=sites).values_list("sha256", "size").distinct())
        fill_tier(store, referenced, summary, progress_stream)

    if compress:
        _compress(store, sites, summary, progress_stream)

    # The stamp is read before the index: whatever commits after it is
    # replayed by every process that loads the snapshot.
    change_id = Change.objects.aggregate(latest=Max("id"))["latest"] or 0
    site_rows, assets = _read_sites(sites)
    summary.sites = len(site_rows)
    summary.assets = sum(len(site_assets) for site_assets in assets.values())
    previous = _previous_snapshot(settings) if subdomains else None
    if previous is not None:
        summary.kept_sites = _keep_other_sites(previous, site_rows, assets)
    small: dict[str, int] = {}
    for site_assets in assets.values():
        for _path, _type, _modified, sha, size, blob_variants in site_assets:
            for blob_sha, blob_size in [(sha, size), *((v[1], v[2]) for v in blob_variants)]:
                if blob_size <= settings.MEMORY_FILE_LIMIT:
                    small[blob_sha] = blob_size

    progress = (
        Progress("snapshot", sum(small.values()), stream=progress_stream, unit_bytes=True)
        if progress_stream is not None
        else None
    )
    held = previous.bodies if previous is not None else {}

    def bodies() -> Any:
        for sha, size in small.items():
            data = None
            if previous is not None and sha in held:  # no need to read the store
                data = previous.body_at(held[sha][0], size, sha)
            if data is None:
                data = _read_local(store, sha, size)
            if progress is not None:
                progress.advance(size)
            if data is None:
                summary.missing.add(sha)
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
    if upload:
        summary.uploaded_snapshot = upload_snapshot(store, settings.SNAPSHOT_PATH)
    summary.missing_blobs = len(summary.missing)
    summary.seconds = time.monotonic() - started
    return summary


def _read_sites(sites: Any) -> tuple[list[dict[str, Any]], dict[int, list[list[Any]]]]:
    """The snapshot's site dicts and asset rows for ``sites``, from the database."""
    site_rows = list(sites.values("id", "subdomain", "is_active", "index_document", "error_document", "cache_control"))
    for site in site_rows:
        site["domains"] = []
    by_id = {site["id"]: site for site in site_rows}
    for site_id, hostname in Site.objects.filter(pk__in=by_id).values_list("id", "domains__hostname"):
        if hostname:
            by_id[site_id]["domains"].append(hostname)

    variants: dict[str, list[list[Any]]] = {}
    for source_id, encoding, sha, size in (
        Blob.objects.filter(source__assets__site__in=by_id)
        .distinct()
        .values_list("source_id", "encoding", "sha256", "size")
    ):
        variants.setdefault(source_id, []).append([encoding, sha, size])

    assets: dict[int, list[list[Any]]] = {site_id: [] for site_id in by_id}
    rows = Asset.objects.filter(site__in=by_id).values_list(
        "site_id", "path", "content_type", "last_modified", "blob_id", "blob__size"
    )
    for site_id, path, content_type, modified, sha, size in rows.iterator(chunk_size=5000):
        assets[site_id].append([path, content_type, int(modified.timestamp()), sha, size, variants.get(sha, [])])
    return site_rows, assets


def _previous_snapshot(settings: conf.Settings) -> Snapshot | None:
    """The snapshot in place, when it can give the sites a partial warmup keeps."""
    if not os.path.exists(settings.SNAPSHOT_PATH):
        return None
    try:
        previous = Snapshot(settings.SNAPSHOT_PATH)
    except SnapshotError as exc:
        logger.warning("assetcache: the snapshot in place is unusable (%s); writing one with these sites only", exc)
        return None
    if previous.domain != settings.DOMAIN:
        logger.warning(
            "assetcache: the snapshot in place is for domain %r; writing one with these sites only", previous.domain
        )
        return None
    return previous


def _keep_other_sites(previous: Snapshot, site_rows: list[dict[str, Any]], assets: dict[int, list[list[Any]]]) -> int:
    """Add to ``site_rows`` and ``assets`` the sites of ``previous`` that this
    warmup did not read and that still exist, as ``previous`` has them.

    Each keeps the feed position it was read at, so processes replay the
    changes made to it since; host names a fresh site now holds are taken
    from the kept ones. Returns how many sites were kept.
    """
    fresh_hosts = {hostname for site in site_rows for hostname in site["domains"]}
    wanted = set(previous.sites) - {site["id"] for site in site_rows}
    existing = set(Site.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    for site_id in sorted(existing):
        site = previous.sites[site_id]
        site_rows.append({**site, "domains": [name for name in site["domains"] if name not in fresh_hosts]})
        assets[site_id] = [
            [path, content_type, modified, sha, size, [[v[0], v[1], v[2]] for v in variants]]
            for path, (content_type, modified, sha, size, _offset, variants) in previous.site_rows(site_id)
        ]
    return len(existing)


def fill_tier(
    store: BlobStore,
    blobs: dict[str, int],
    summary: WarmupSummary,
    progress_stream: TextIO | None,
    workers: int = DOWNLOAD_WORKERS,
) -> None:
    """Make every blob of ``blobs`` ({sha256: size}) present in the local
    tier, downloading (and verifying) those that are not, in parallel."""
    tier = store.tier
    if tier is None or not blobs:
        return
    downloads, download_bytes, evictions = tier.downloads, tier.download_bytes, tier.evictions
    progress = (
        Progress("downloading", sum(blobs.values()), stream=progress_stream, unit_bytes=True)
        if progress_stream is not None
        else None
    )
    # The pool only downloads; the progress bar is drawn from this thread.
    with ThreadPoolExecutor(
        max_workers=max(1, min(workers, len(blobs))), thread_name_prefix="assetcache-download"
    ) as pool:
        futures = {pool.submit(store.local_path, sha, size): (sha, size) for sha, size in blobs.items()}
        for future in as_completed(futures):
            sha, size = futures[future]
            try:
                future.result()
            except OSError as exc:
                summary.missing.add(sha)
                logger.warning("assetcache: warmup could not fetch blob %s: %s", sha, exc)
            if progress is not None:
                progress.advance(size)
    if progress is not None:
        progress.close()
    summary.downloaded += tier.downloads - downloads
    summary.downloaded_bytes += tier.download_bytes - download_bytes
    summary.tier_evictions += tier.evictions - evictions
    summary.missing_blobs = len(summary.missing)


def upload_snapshot(store: BlobStore, path: str | os.PathLike[str]) -> str:
    """Upload the snapshot file to the storage as ``SNAPSHOT_NAME``."""
    storage = store.storage
    if storage.exists(SNAPSHOT_NAME) and storage.get_available_name(SNAPSHOT_NAME) != SNAPSHOT_NAME:
        # This storage does not overwrite (S3 does, in one PUT): make room.
        storage.delete(SNAPSHOT_NAME)
    with open(path, "rb") as f:
        saved = storage.save(SNAPSHOT_NAME, File(f, name=SNAPSHOT_NAME))
    if saved != SNAPSHOT_NAME:
        storage.delete(saved)
        raise WarmupError(f"the storage saved the snapshot as {saved!r}, not {SNAPSHOT_NAME!r}")
    return saved


def warm_up_from_storage(*, progress_stream: TextIO | None = None, store: BlobStore | None = None) -> WarmupSummary:
    """Fetch the snapshot another machine uploaded, then fill the local tier
    with the blobs it references: no database query.

    Blobs whose bodies the snapshot holds are not downloaded: they are served
    from the snapshot (and fetched on demand should a body be damaged).
    """
    started = time.monotonic()
    settings = conf.get()
    store = store or BlobStore()
    summary = WarmupSummary()
    target = Path(settings.SNAPSHOT_PATH)
    try:
        with atomic_write(target, prefix=".snapshot-") as out:
            try:
                for chunk in stream_object(store.storage, SNAPSHOT_NAME):
                    out.write(chunk)
            except OSError:
                raise
            except Exception as exc:  # the storage's own errors (botocore, …)
                raise WarmupError(f"cannot fetch the snapshot from the storage: {exc}") from exc
            out.flush()
            # Checked before it replaces a good snapshot: a cut or damaged
            # download is refused here, not by every server process.
            snapshot = Snapshot(out.name)
            if snapshot.domain != settings.DOMAIN:
                raise WarmupError(
                    f"the stored snapshot was made for domain {snapshot.domain!r}, not {settings.DOMAIN!r}"
                )
    except FileNotFoundError as exc:
        raise WarmupError(
            f"no snapshot in the storage at {SNAPSHOT_NAME!r} (run assetcache_warmup --upload-snapshot)"
        ) from exc
    except SnapshotError as exc:
        raise WarmupError(f"the stored snapshot is unusable: {exc}") from exc
    referenced: dict[str, int] = {}
    assets = 0
    held = snapshot.bodies
    for _, _, sha, size, _, variants in snapshot.rows():
        assets += 1
        for blob_sha, blob_size in [(sha, size), *((v[1], v[2]) for v in variants)]:
            if blob_sha not in held:
                referenced[blob_sha] = blob_size
    summary.sites = len(snapshot.sites)
    summary.assets = assets
    summary.snapshot = SnapshotSummary(
        path=str(target),
        sites=summary.sites,
        assets=assets,
        bodies=len(snapshot.bodies),
        body_bytes=sum(length for _, length in snapshot.bodies.values()),
        file_bytes=target.stat().st_size,
        change_id=snapshot.change_id,
    )
    fill_tier(store, referenced, summary, progress_stream)
    summary.seconds = time.monotonic() - started
    return summary


def _read_local(store: BlobStore, sha: str, size: int | None = None) -> bytes | None:
    try:
        path = store.local_path(sha, size)
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def _hold_variants(store: BlobStore, variants: list[Blob], lost: set[str]) -> list[Blob]:
    """Record ``variants``, as a publish records blobs (see publish._hold_blobs).

    Sources gc deleted meanwhile lose their variants; a row this transaction
    creates is checked under its lock, and left out if gc took its file (the
    next warmup builds it again). A row of a lost file that the rebuild
    replaced under another hash goes. Returns the variants recorded.
    """
    sources = sorted({variant.source_id for variant in variants if variant.source_id})
    live = set(Blob.objects.select_for_update().filter(pk__in=sources).order_by("pk").values_list("pk", flat=True))
    variants = [variant for variant in variants if variant.source_id in live]
    rebuilt = {(variant.source_id, variant.encoding): variant.sha256 for variant in variants}
    for sha, source_id, encoding in Blob.objects.filter(pk__in=list(lost)).values_list("pk", "source_id", "encoding"):
        if rebuilt.get((source_id, encoding), sha) != sha and not Asset.objects.filter(blob_id=sha).exists():
            Blob.objects.filter(pk=sha).delete()
    shas = sorted(variant.sha256 for variant in variants)
    held = set(Blob.objects.select_for_update().filter(pk__in=shas).order_by("pk").values_list("pk", flat=True))
    fresh = [variant for variant in variants if variant.sha256 not in held]
    Blob.objects.bulk_create(fresh, ignore_conflicts=True)
    gone = store.missing({variant.sha256: variant.size for variant in fresh})
    Blob.objects.filter(pk__in=list(gone)).delete()
    return [variant for variant in variants if variant.sha256 not in gone]


def _compress(store: BlobStore, sites: Any, summary: WarmupSummary, progress_stream: TextIO | None) -> None:
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
    variants = Blob.objects.filter(source_id__in=list(candidates)).values_list(
        "source_id", "encoding", "sha256", "size"
    )
    existing = {sha: (source_id, encoding, size) for source_id, encoding, sha, size in variants}
    # A variant whose file is gone is built and stored again.
    lost = store.missing({sha: size for sha, (_, _, size) in existing.items()})
    for sha, (source_id, encoding, _) in existing.items():
        if sha not in lost:
            candidates[source_id][1].add(encoding)
    todo = {sha: size for sha, (size, done) in candidates.items() if any(name not in done for name, _ in encoders)}
    if not todo:
        return
    progress = (
        Progress("compressing", sum(todo.values()), stream=progress_stream, unit_bytes=True)
        if progress_stream is not None
        else None
    )
    new_variants: list[Blob] = []
    for sha, size in todo.items():
        data = _read_local(store, sha, size)
        if data is not None:
            for encoding, encode in encoders:
                if encoding in candidates[sha][1]:
                    continue
                compressed = encode(data)
                if len(compressed) > len(data) * MAX_RATIO:
                    continue
                variant_sha, variant_size = hash_stream(io.BytesIO(compressed))
                store.save(variant_sha, variant_size, io.BytesIO(compressed))
                if store.tier is not None:
                    # The bytes are here already: spare the tier a download.
                    store.tier.add_bytes(variant_sha, compressed)
                new_variants.append(Blob(sha256=variant_sha, size=variant_size, source_id=sha, encoding=encoding))
                summary.bytes_saved += size - variant_size
        if progress is not None:
            progress.advance(size)
    if progress is not None:
        progress.close()
    if not new_variants:
        return
    with transaction.atomic():
        new_variants = _hold_variants(store, new_variants, lost)
        # Responses for these files change (Content-Encoding, Vary): tell
        # every process.
        sources = {variant.source_id for variant in new_variants}
        touched: dict[int, list[str]] = {}
        for site_id, path in Asset.objects.filter(blob_id__in=sources).values_list("site_id", "path"):
            touched.setdefault(site_id, []).append(path)
        for site_id, paths in touched.items():
            record_change(site_id, Change.Kind.PUBLISH, paths)
    summary.variants_built = len(new_variants)
