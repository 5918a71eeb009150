"""Purging caches and collecting garbage: blobs nothing uses, old feed rows."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Exists, Max, OuterRef, Q
from django.utils import timezone

from . import conf
from .deployments import expire_deployments, expired_deployment_ids
from .models import Asset, Blob, Change, Site, record_change
from .progress import human_bytes, plural
from .store import BlobStore

#: Stored files without a Blob row younger than this may belong to a publish
#: that has not committed yet.
UNCOMMITTED_GRACE = timedelta(hours=1)


class MaintenanceError(Exception):
    pass


def purge(subdomains: list[str] | None, paths: list[str] | None = None) -> list[Change]:
    """Make every process drop what it cached for these sites (or paths).

    ``subdomains`` None means every site. Nothing is written when a
    subdomain is unknown or a path is not absolute.
    """
    for path in paths or []:
        if not path.startswith("/"):
            raise MaintenanceError(f"{path!r}: paths start with /")
    sites = Site.objects.all()
    if subdomains is not None:
        sites = sites.filter(subdomain__in=subdomains)
        unknown = sorted(set(subdomains) - set(sites.values_list("subdomain", flat=True)))
        if unknown:
            raise MaintenanceError(f"no such site: {', '.join(unknown)}")
    with transaction.atomic():
        return [record_change(site_id, Change.Kind.PURGE, paths) for site_id in sites.values_list("id", flat=True)]


@dataclass
class GarbageSummary:
    blobs_deleted: int = 0
    bytes_freed: int = 0
    orphan_files_deleted: int = 0
    tier_files_deleted: int = 0
    changes_pruned: int = 0
    deployments_expired: int = 0
    dry_run: bool = False
    seconds: float = 0.0
    details: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        verb = "would delete" if self.dry_run else "deleted"
        return (
            f"{verb} {plural(self.blobs_deleted, 'unused blob')} ({human_bytes(self.bytes_freed)}), "
            f"{plural(self.orphan_files_deleted, 'orphan file')}, "
            f"{plural(self.tier_files_deleted, 'local tier file')}, "
            f"{plural(self.changes_pruned, 'old change row')}, "
            f"{plural(self.deployments_expired, 'expired deployment')}; "
            f"{self.seconds:.2f} s"
        )


def _unused(ignoring: list[int] | None = None) -> Q:
    """Blobs no asset uses, directly or as a variant of what it uses; the
    assets of the deployments ``ignoring`` (a dry run's expired ones) aside."""
    assets = Asset.objects.exclude(deployment_id__in=ignoring) if ignoring else Asset.objects.all()
    return ~Q(Exists(assets.filter(blob_id=OuterRef("pk")))) & ~Q(Exists(assets.filter(blob_id=OuterRef("source_id"))))


def _delete_unused_rows(candidates: list[str]) -> set[str]:
    """Delete the rows of ``candidates`` that are still unused; return them.

    The rows are locked before they are checked again: a publish that
    locked one first (to refer to it) has committed its assets by then and
    the check sees them; one that comes later finds the row gone and makes
    it again, storing the file if gc took it.
    """
    deleted: set[str] = set()
    with transaction.atomic():
        for start in range(0, len(candidates), 500):
            batch = candidates[start : start + 500]
            locked = list(
                Blob.objects.select_for_update().filter(pk__in=batch).order_by("pk").values_list("pk", flat=True)
            )
            doomed = list(Blob.objects.filter(_unused(), pk__in=locked).values_list("pk", flat=True))
            Blob.objects.filter(pk__in=doomed).delete()
            deleted.update(doomed)
    return deleted


def _delete_file(store: BlobStore, sha256: str) -> bool:
    """Delete a stored blob that has no row, unless a publish makes one.

    The file goes while this transaction holds an uncommitted row of that
    hash: a publish inserting the row waits for it and then, having created
    the row itself, checks the file and stores it again. If a row exists
    (a publish committed one since), nothing is deleted.
    """
    try:
        with transaction.atomic():
            Blob.objects.create(sha256=sha256, size=0)
            store.delete(sha256)
            Blob.objects.filter(pk=sha256).delete()
    except IntegrityError:
        return False
    return True


def collect_garbage(*, dry_run: bool = False, store: BlobStore | None = None) -> GarbageSummary:
    """Expire the deployments retention lets go, then delete unused blobs,
    orphan files and old feed rows.

    Safe against publishes running meanwhile: a file is only deleted while
    no row of its hash exists and none can be committed (see
    ``_delete_file``), and every committed row's file is present.
    """
    started = time.monotonic()
    store = store or BlobStore()
    summary = GarbageSummary(dry_run=dry_run)
    # Deployments first: the blobs only they used are unused next.
    doomed = expired_deployment_ids()
    if dry_run:
        summary.deployments_expired = sum(len(ids) for ids in doomed.values())
    else:
        summary.deployments_expired = expire_deployments(doomed)
    gone = [pk for ids in doomed.values() for pk in ids] if dry_run else []
    deleted = _collect_unused_blobs(store, summary, gone)
    cutoff = timezone.now() - UNCOMMITTED_GRACE
    _collect_orphan_files(store, summary, deleted, cutoff)
    _collect_tier_files(store, summary, deleted, cutoff)
    _prune_changes(summary)
    summary.seconds = time.monotonic() - started
    return summary


def _collect_unused_blobs(store: BlobStore, summary: GarbageSummary, ignoring: list[int]) -> set[str]:
    """Blob rows no asset uses (variants go with their source), then their
    files; the hashes deleted."""
    unused = dict(Blob.objects.filter(_unused(ignoring)).values_list("sha256", "size"))
    if not summary.dry_run and unused:
        gone = _delete_unused_rows(sorted(unused))
        unused = {sha: size for sha, size in unused.items() if sha in gone and _delete_file(store, sha)}
    summary.blobs_deleted = len(unused)
    summary.bytes_freed = sum(unused.values())
    return set(unused)


def _collect_orphan_files(store: BlobStore, summary: GarbageSummary, deleted: set[str], cutoff: datetime) -> None:
    """Files without a row, added to ``deleted``. Those younger than
    ``cutoff`` probably belong to a publish that has not committed yet:
    deleting them would only make it store them again."""
    known = set(Blob.objects.values_list("sha256", flat=True))
    for sha in store.walk():
        if sha in known or sha in deleted or store.modified(sha) > cutoff:
            continue
        if summary.dry_run or _delete_file(store, sha):
            summary.orphan_files_deleted += 1
            deleted.add(sha)
    for name in store.walk_partial():
        if not summary.dry_run and store.storage.get_modified_time(name) < cutoff:
            store.storage.delete(name)


def _collect_tier_files(store: BlobStore, summary: GarbageSummary, deleted: set[str], cutoff: datetime) -> None:
    """The local disk tier follows the storage: the copies of what went,
    and copies without a row past the same grace (a server may have fetched
    a blob a publish uploaded and has not committed yet). Rows are read
    again: a publish may have committed since."""
    tier = store.tier
    if tier is None:
        return
    known = set(Blob.objects.values_list("sha256", flat=True))
    tier_cutoff = cutoff.timestamp()
    for sha, st in list(tier.walk()):
        if sha in deleted or (sha not in known and st.st_mtime < tier_cutoff):
            summary.tier_files_deleted += 1
            if not summary.dry_run:
                # At once, not after ASSETCACHE_DELETE_DELAY: no asset
                # refers to it, and on POSIX a response still sending it
                # keeps reading from its open descriptor.
                tier.remove(sha)


def _prune_changes(summary: GarbageSummary) -> None:
    """Old feed rows, leaving a marker so a process that was away longer
    than the retention knows it missed some and starts over."""
    retention = timedelta(seconds=conf.get().CHANGE_RETENTION)
    old = Change.objects.filter(created_at__lt=timezone.now() - retention)
    newest_old = old.aggregate(newest=Max("id"))["newest"]
    if newest_old is not None:
        summary.changes_pruned = old.count()
        if not summary.dry_run:
            with transaction.atomic():
                old.delete()
                record_change(None, Change.Kind.PRUNE, [str(newest_old)])
