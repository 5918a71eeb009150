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
from .models import Asset, Blob, Change, PendingDeploy, Site, lock_blobs, record_change, sites_named
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
        sites, unknown = sites_named(subdomains)
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
    #: Deploys started through the API and left unfinished past ASSETCACHE_DEPLOY_TTL.
    pending_deploys_expired: int = 0
    #: Unused blobs kept because they became unused within the grace period.
    blobs_kept: int = 0
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
            f"{plural(self.deployments_expired, 'expired deployment')}, "
            f"{plural(self.pending_deploys_expired, 'expired API deploy')}; "
            f"{self.seconds:.2f} s"
            + (f"; kept {plural(self.blobs_kept, 'unused blob')} within the grace period" if self.blobs_kept else "")
        )


def _unused(ignoring: list[int] | None = None) -> Q:
    """Blobs no asset uses, directly or as a variant of what it uses; the
    assets of the deployments ``ignoring`` (a dry run's expired ones) aside."""
    assets = Asset.objects.exclude(deployment_id__in=ignoring) if ignoring else Asset.objects.all()
    return ~Q(Exists(assets.filter(blob_id=OuterRef("pk")))) & ~Q(Exists(assets.filter(blob_id=OuterRef("source_id"))))


def _unused_since(cutoff: datetime) -> Q:
    """Blobs no asset has used since ``cutoff`` (as far as gc has seen)."""
    return _unused() & Q(unused_since__lte=cutoff)


def _mark_unused(now: datetime) -> None:
    """Stamp blobs that became unused since the last run; clear the stamp of
    blobs in use again (a publish clears it too, when it locks the row)."""
    Blob.objects.filter(~_unused(), unused_since__isnull=False).update(unused_since=None)
    Blob.objects.filter(_unused(), unused_since__isnull=True).update(unused_since=now)


def _delete_unused_rows(candidates: list[str], cutoff: datetime) -> set[str]:
    """Delete the rows of ``candidates`` still unused since ``cutoff``; return them.

    The rows are locked before they are checked again: a publish that
    locked one first (to refer to it) has committed its assets by then and
    the check sees them; one that comes later finds the row gone and makes
    it again, storing the file if gc took it.
    """
    deleted: set[str] = set()
    with transaction.atomic():
        locked = sorted(lock_blobs(candidates))
        for start in range(0, len(locked), 500):
            batch = locked[start : start + 500]
            doomed = list(Blob.objects.filter(_unused_since(cutoff), pk__in=batch).values_list("pk", flat=True))
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


def collect_garbage(
    *, dry_run: bool = False, store: BlobStore | None = None, keep_younger_than: float | None = None
) -> GarbageSummary:
    """Expire the deployments retention lets go, then delete unused blobs,
    orphan files and old feed rows.

    Safe against publishes running meanwhile: a file is only deleted while
    no row of its hash exists and none can be committed (see
    ``_delete_file``), and every committed row's file is present. Safe
    against restoring a database backup younger than ``keep_younger_than``
    seconds (default ``ASSETCACHE_GC_GRACE``): a blob goes only once it has
    been unused that long, and a file without a row only once it is that old.
    """
    started = time.monotonic()
    store = store or BlobStore()
    summary = GarbageSummary(dry_run=dry_run)
    grace = timedelta(seconds=conf.get().GC_GRACE if keep_younger_than is None else keep_younger_than)
    now = timezone.now()
    # Deployments first: the blobs only they used are unused next.
    doomed = expired_deployment_ids()
    if dry_run:
        summary.deployments_expired = sum(len(ids) for ids in doomed.values())
    else:
        summary.deployments_expired = expire_deployments(doomed)
    gone = [pk for ids in doomed.values() for pk in ids] if dry_run else []
    needed = _collect_pending_deploys(summary, now)
    deleted = _collect_unused_blobs(store, summary, now, grace, gone, needed)
    _collect_orphan_files(store, summary, deleted, now, grace, needed)
    _collect_tier_files(store, summary, deleted, now)
    _prune_changes(summary)
    summary.seconds = time.monotonic() - started
    return summary


def _collect_pending_deploys(summary: GarbageSummary, now: datetime) -> set[str]:
    """Delete the API deploys past ASSETCACHE_DEPLOY_TTL; return the hashes
    the unfinished others name, which gc keeps (rows and files) until they
    finish or expire. What only an expired one uploaded is a file without a
    row, collected as orphan files are."""
    expired = PendingDeploy.objects.filter(expires_at__lte=now)
    summary.pending_deploys_expired = expired.filter(deployment__isnull=True).count()
    if not summary.dry_run:
        expired.delete()
    manifests = PendingDeploy.objects.filter(expires_at__gt=now, deployment__isnull=True).values_list("manifest")
    return {entry[0] for (manifest,) in manifests for entry in manifest.values()}


def _collect_unused_blobs(
    store: BlobStore,
    summary: GarbageSummary,
    now: datetime,
    grace: timedelta,
    ignoring: list[int],
    needed: set[str],
) -> set[str]:
    """Blob rows no asset has used for the grace period (variants go with
    their source), then their files; return the hashes deleted. A dry run
    counts the rows of the deployments it would expire (``ignoring``) as gone;
    ``needed`` (by unfinished API deploys) are kept."""
    if not summary.dry_run:
        _mark_unused(now)
    due = _unused_since(now - grace)
    if summary.dry_run and not grace:
        due |= _unused(ignoring) & Q(unused_since__isnull=True)
    unused = {sha: size for sha, size in Blob.objects.filter(due).values_list("sha256", "size") if sha not in needed}
    summary.blobs_kept = Blob.objects.filter(_unused()).count() - len(unused)
    if not summary.dry_run and unused:
        gone = _delete_unused_rows(sorted(unused), now - grace)
        unused = {sha: size for sha, size in unused.items() if sha in gone and _delete_file(store, sha)}
    summary.blobs_deleted = len(unused)
    summary.bytes_freed = sum(unused.values())
    return set(unused)


def _collect_orphan_files(
    store: BlobStore, summary: GarbageSummary, deleted: set[str], now: datetime, grace: timedelta, needed: set[str]
) -> None:
    """Files without a row. Those younger than an hour probably belong to a
    publish that has not committed yet: deleting them would only make it
    store them again. Those younger than the grace period may be what a
    restored database refers to."""
    known = set(Blob.objects.values_list("sha256", flat=True))
    orphan_cutoff = now - max(UNCOMMITTED_GRACE, grace)
    for sha in store.walk():
        if sha in known or sha in deleted or sha in needed or store.modified(sha) > orphan_cutoff:
            continue
        if summary.dry_run or _delete_file(store, sha):
            summary.orphan_files_deleted += 1
            deleted.add(sha)
    for name in store.walk_partial():
        if not summary.dry_run and store.storage.get_modified_time(name) < now - UNCOMMITTED_GRACE:
            store.storage.delete(name)


def _collect_tier_files(store: BlobStore, summary: GarbageSummary, deleted: set[str], now: datetime) -> None:
    """The local disk tier follows the storage: the copies of what went,
    and copies without a row past an hour (a server may have fetched a blob
    a publish uploaded and has not committed yet). Rows are read again: a
    publish may have committed since."""
    tier = store.tier
    if tier is None:
        return
    known = set(Blob.objects.values_list("sha256", flat=True))
    tier_cutoff = (now - UNCOMMITTED_GRACE).timestamp()
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
