"""Deploy-time preparation: local blobs, compressed variants, the snapshot.

With a remote storage, every referenced blob is first downloaded into the
local disk tier (in parallel), so the first request for any of them does not
wait for the network. The snapshot can be uploaded to the storage
(``upload_snapshot``) and fetched from it on another machine
(``warm_up_from_storage``), which then needs no database to start hot.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path

from django.core.files import File

from . import conf
from .atomic import atomic_write
from .compression import compress_blobs
from .models import Blob, Site, sites_named
from .progress import Progress, Stream, human_bytes, plural
from .snapshot import Snapshot, SnapshotError
from .snapshotbuild import build_snapshot
from .snapshotwriter import SnapshotSummary
from .store import SNAPSHOT_NAME, BlobStore, stream_object

logger = logging.getLogger("django_assetcache")

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


def warm_up(
    subdomains: list[str] | None = None,
    *,
    compress: bool = True,
    progress_stream: Stream | None = None,
    upload: bool = False,
    store: BlobStore | None = None,
) -> WarmupSummary:
    """Prepare ``subdomains`` (every site when None) for serving: their blobs
    in the local tier, their compressed variants, and the snapshot."""
    started = time.monotonic()
    store = store or BlobStore()
    summary = WarmupSummary()
    sites = Site.objects.all()
    if subdomains:
        sites, missing = sites_named(subdomains)
        if missing:
            raise WarmupError(f"no such site: {', '.join(missing)}")

    if store.remote:
        # Before compressing: compression reads every compressible source.
        referenced = dict(Blob.objects.filter(assets__site__in=sites).values_list("sha256", "size").distinct())
        referenced.update(Blob.objects.filter(source__assets__site__in=sites).values_list("sha256", "size").distinct())
        fill_tier(store, referenced, summary, progress_stream)

    if compress:
        compressed = compress_blobs(store, sites, progress_stream)
        summary.variants_built, summary.bytes_saved = compressed.variants_built, compressed.bytes_saved

    built = build_snapshot(sites, keep_others=bool(subdomains), store=store, progress_stream=progress_stream)
    summary.snapshot = built.snapshot
    summary.sites, summary.assets, summary.kept_sites = built.sites, built.assets, built.kept_sites
    summary.missing |= built.missing
    if upload:
        summary.uploaded_snapshot = upload_snapshot(store, conf.get().SNAPSHOT_PATH)
    summary.missing_blobs = len(summary.missing)
    summary.seconds = time.monotonic() - started
    return summary


def fill_tier(
    store: BlobStore,
    blobs: dict[str, int],
    summary: WarmupSummary,
    progress_stream: Stream | None,
    workers: int = DOWNLOAD_WORKERS,
) -> None:
    """Make every blob of ``blobs`` ({sha256: size}) present in the local
    tier, downloading (and verifying) those that are not, in parallel."""
    tier = store.tier
    if tier is None or not blobs:
        return
    downloads, download_bytes, evictions = tier.downloads, tier.download_bytes, tier.evictions
    # The pool only downloads; the progress bar is drawn from this thread.
    with (
        Progress("downloading", sum(blobs.values()), stream=progress_stream, unit_bytes=True) as progress,
        ThreadPoolExecutor(
            max_workers=max(1, min(workers, len(blobs))), thread_name_prefix="assetcache-download"
        ) as pool,
    ):
        futures = {pool.submit(store.local_path, sha, size): (sha, size) for sha, size in blobs.items()}
        for future in as_completed(futures):
            sha, size = futures[future]
            try:
                future.result()
            except OSError as exc:
                summary.missing.add(sha)
                logger.warning("assetcache: warmup could not fetch blob %s: %s", sha, exc)
            progress.advance(size)
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


def warm_up_from_storage(*, progress_stream: Stream | None = None, store: BlobStore | None = None) -> WarmupSummary:
    """Fetch the snapshot another machine uploaded, then fill the local tier
    with the blobs it references: no database query.

    Blobs whose bodies the snapshot holds are not downloaded: they are served
    from the snapshot (and fetched on demand should a body be damaged).
    """
    started = time.monotonic()
    store = store or BlobStore()
    summary = WarmupSummary()
    target = Path(conf.get().SNAPSHOT_PATH)
    snapshot = fetch_snapshot(store, target)
    held = snapshot.bodies
    referenced = {blob.sha256: blob.size for blob in snapshot.blobs() if blob.sha256 not in held}
    summary.sites = len(snapshot.sites)
    summary.assets = assets = snapshot.record_count
    summary.snapshot = SnapshotSummary(
        path=str(target),
        sites=summary.sites,
        assets=assets,
        bodies=len(snapshot.bodies),
        body_bytes=sum(blob.size for blob in snapshot.bodies.values()),
        file_bytes=target.stat().st_size,
        change_id=snapshot.change_id,
    )
    fill_tier(store, referenced, summary, progress_stream)
    summary.seconds = time.monotonic() - started
    return summary


def fetch_snapshot(store: BlobStore, target: Path) -> Snapshot:
    """Download the stored snapshot to ``target``, checked before it replaces
    the one there: a cut or damaged download is refused here, not by every
    server process."""
    domain = conf.get().DOMAIN
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
            snapshot = Snapshot(out.name)
            if snapshot.domain != domain:
                raise WarmupError(f"the stored snapshot was made for domain {snapshot.domain!r}, not {domain!r}")
    except FileNotFoundError as exc:
        raise WarmupError(
            f"no snapshot in the storage at {SNAPSHOT_NAME!r} (run assetcache_warmup --upload-snapshot)"
        ) from exc
    except SnapshotError as exc:
        raise WarmupError(f"the stored snapshot is unusable: {exc}") from exc
    return snapshot
