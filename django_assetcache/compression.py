"""Compressed variants: built at deploy time, once per content hash.

A variant is a blob of its own (gzip, and brotli when the optional package
is installed), recorded as a ``Blob`` whose ``source`` is the original; the
responses of every file using the original then change (Content-Encoding,
Vary), so building one records a change for them.
"""

from __future__ import annotations

import gzip
import io
from collections.abc import Callable
from dataclasses import dataclass

from django.db import transaction
from django.db.models import Exists, OuterRef, QuerySet

from .mediatypes import is_compressible
from .models import Asset, Blob, Change, Site, lock_blobs, record_change
from .progress import Progress, Stream
from .store import BlobStore, hash_stream

try:
    import brotli  # optional extra (brotli): without it, gzip only
except ImportError:  # an optional extra: gzip alone then
    brotli = None

#: Files smaller than this gain nothing worth a variant.
MIN_COMPRESS_SIZE = 256
#: Files larger than this are not compressed (it is done in memory).
MAX_COMPRESS_SIZE = 32 * 1024 * 1024
#: A variant is kept only when it is at most this fraction of the original.
MAX_RATIO = 0.9

Encoder = Callable[[bytes], bytes]


@dataclass
class CompressionSummary:
    variants_built: int = 0
    #: Bytes the variants built are smaller than their originals, together.
    bytes_saved: int = 0


def _gzip(data: bytes) -> bytes:
    # mtime=0: the same input always gives the same bytes, so the same hash.
    return gzip.compress(data, compresslevel=9, mtime=0)


def _brotli(data: bytes) -> bytes:
    quality = 11 if len(data) <= 1024 * 1024 else 6
    compressed: bytes = brotli.compress(data, quality=quality)
    return compressed


def encoders() -> dict[str, Encoder]:
    """Content coding → encoder, the preferred first."""
    if brotli is None:
        return {"gzip": _gzip}
    return {"br": _brotli, "gzip": _gzip}


def compress_blobs(store: BlobStore, sites: QuerySet[Site], progress_stream: Stream | None) -> CompressionSummary:
    """Build the missing variants of the compressible blobs ``sites`` use."""
    summary = CompressionSummary()
    coders = encoders()
    sizes = _candidates(sites)
    if not sizes:
        return summary
    done, lost = _existing_variants(store, list(sizes))
    todo = {sha: size for sha, size in sizes.items() if any(name not in done[sha] for name in coders)}
    if not todo:
        return summary
    new_variants: list[Blob] = []
    with Progress("compressing", sum(todo.values()), stream=progress_stream, unit_bytes=True) as progress:
        for sha, size in todo.items():
            data = store.read_local(sha, size)
            if data is not None:
                wanted = {name: encode for name, encode in coders.items() if name not in done[sha]}
                built = _encode(store, sha, data, wanted)
                new_variants += built
                summary.bytes_saved += sum(size - variant.size for variant in built)
            progress.advance(size)
    if new_variants:
        summary.variants_built = len(_record_variants(store, new_variants, lost))
    return summary


def _candidates(sites: QuerySet[Site]) -> dict[str, int]:
    """sha256 → size of the compressible blobs of ``sites`` worth compressing."""
    rows = (
        Asset.objects.filter(site__in=sites, blob__size__gte=MIN_COMPRESS_SIZE, blob__size__lte=MAX_COMPRESS_SIZE)
        .values_list("blob_id", "blob__size", "content_type")
        .distinct()
    )
    candidates: dict[str, int] = {}
    for sha, size, content_type in rows:
        if is_compressible(content_type):
            candidates.setdefault(sha, size)
    return candidates


def _existing_variants(store: BlobStore, sources: list[str]) -> tuple[dict[str, set[str]], set[str]]:
    """Per source hash, the encodings it has a variant in; and the hashes of
    variants whose file is gone (those are built and stored again)."""
    variants = Blob.objects.filter(source_id__in=sources).values_list("source_id", "encoding", "sha256", "size")
    existing = {sha: (source_id, encoding, size) for source_id, encoding, sha, size in variants}
    lost = store.missing({sha: size for sha, (_, _, size) in existing.items()})
    done: dict[str, set[str]] = {sha: set() for sha in sources}
    for sha, (source_id, encoding, _) in existing.items():
        if sha not in lost:
            done[source_id].add(encoding)
    return done, lost


def _encode(store: BlobStore, source: str, data: bytes, wanted: dict[str, Encoder]) -> list[Blob]:
    """Store the variants of ``data`` worth keeping; their unsaved rows."""
    built: list[Blob] = []
    for encoding, encode in wanted.items():
        compressed = encode(data)
        if len(compressed) > len(data) * MAX_RATIO:
            continue
        variant_sha, variant_size = hash_stream(io.BytesIO(compressed))
        store.save(variant_sha, variant_size, io.BytesIO(compressed))
        if store.tier is not None:
            # The bytes are here already: spare the tier a download.
            store.tier.add_bytes(variant_sha, compressed)
        built.append(Blob(sha256=variant_sha, size=variant_size, source_id=source, encoding=encoding))
    return built


def _record_variants(store: BlobStore, variants: list[Blob], lost: set[str]) -> list[Blob]:
    """Record ``variants`` and tell every process that the responses of the
    files using their sources changed; the variants recorded."""
    with transaction.atomic():
        variants = _hold_variants(store, variants, lost)
        sources = {variant.source_id for variant in variants}
        touched: dict[int, list[str]] = {}
        for site_id, path in Asset.objects.filter(blob_id__in=sources).values_list("site_id", "path"):
            touched.setdefault(site_id, []).append(path)
        for site_id, paths in touched.items():
            record_change(site_id, Change.Kind.PUBLISH, paths)
    return variants


def _hold_variants(store: BlobStore, variants: list[Blob], lost: set[str]) -> list[Blob]:
    """Record ``variants``, as a publish records blobs (see publish._hold_blobs).

    Sources gc deleted meanwhile lose their variants; a row this transaction
    creates is checked under its lock, and left out if gc took its file (the
    next warmup builds it again). A row of a lost file that the rebuild
    replaced under another hash goes. Returns the variants recorded.
    """
    live = lock_blobs(variant.source_id for variant in variants if variant.source_id)
    variants = [variant for variant in variants if variant.source_id in live]
    rebuilt = {(variant.source_id, variant.encoding): variant.sha256 for variant in variants}
    lost_rows = Blob.objects.filter(pk__in=list(lost)).values_list("pk", "source_id", "encoding")
    replaced = [sha for sha, source_id, encoding in lost_rows if rebuilt.get((source_id, encoding), sha) != sha]
    Blob.objects.filter(pk__in=replaced).exclude(Exists(Asset.objects.filter(blob_id=OuterRef("pk")))).delete()
    held = lock_blobs(variant.sha256 for variant in variants)
    fresh = [variant for variant in variants if variant.sha256 not in held]
    Blob.objects.bulk_create(fresh, ignore_conflicts=True)
    gone = store.missing({variant.sha256: variant.size for variant in fresh})
    Blob.objects.filter(pk__in=list(gone)).delete()
    return [variant for variant in variants if variant.sha256 not in gone]
