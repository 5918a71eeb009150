"""Writing the snapshot at deploy time: the sites' records read from the
database, their small bodies read from the blob store (or from the snapshot
in place), and, for a warmup of some sites, the other sites kept from the
snapshot in place."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

from django.db.models import Max, QuerySet

from . import conf
from .access import password_tag
from .hosts import SITE_FIELDS
from .models import Asset, Blob, Change, Deployment, DeploymentAlias, Domain, Site
from .progress import Progress, Stream
from .records import AssetRecord, BlobRecord, DeploymentRecord, LocatedBlob, SiteRecord
from .snapshot import Snapshot, SnapshotError
from .snapshotwriter import SnapshotSummary, write_snapshot
from .store import BlobStore

logger = logging.getLogger("django_assetcache")


@dataclass
class BuiltSnapshot:
    snapshot: SnapshotSummary
    #: Sites and assets read from the database.
    sites: int = 0
    assets: int = 0
    #: Sites kept from the snapshot in place.
    kept_sites: int = 0
    #: Blobs whose bodies could not be read.
    missing: set[str] = field(default_factory=set)


def build_snapshot(
    sites: QuerySet[Site], *, keep_others: bool, store: BlobStore, progress_stream: Stream | None
) -> BuiltSnapshot:
    """Write the snapshot of ``sites``; with ``keep_others``, the other sites
    of the snapshot in place are kept in it as they are."""
    settings = conf.get()
    # The stamp is read before the index: whatever commits after it is
    # replayed by every process that loads the snapshot.
    change_id = Change.objects.aggregate(latest=Max("id"))["latest"] or 0
    site_records, assets = read_sites(sites)
    # The sites' own files: what their live deployments hold (the others
    # are in the snapshot too, sharing most of those records).
    sites_read = len(site_records)
    assets_read = sum(len(assets.get(site.live_deployment, ())) for site in site_records if site.live_deployment)
    previous = _previous_snapshot(settings) if keep_others else None
    kept = _keep_other_sites(previous, site_records, assets) if previous is not None else 0
    small: dict[str, int] = {}
    for site_assets in assets.values():
        for asset in site_assets:
            for blob in asset.blobs():
                if blob.size <= settings.MEMORY_FILE_LIMIT:
                    small[blob.sha256] = blob.size
    missing: set[str] = set()
    summary = write_snapshot(
        settings.SNAPSHOT_PATH,
        change_id=change_id,
        sites=site_records,
        assets=assets,
        bodies=_bodies(store, small, previous, missing, progress_stream),
    )
    return BuiltSnapshot(summary, sites=sites_read, assets=assets_read, kept_sites=kept, missing=missing)


def _bodies(
    store: BlobStore,
    small: dict[str, int],
    previous: Snapshot | None,
    missing: set[str],
    progress_stream: Stream | None,
) -> Iterator[LocatedBlob]:
    """The bodies of ``small`` ({sha256: size}) that can be read; the hashes
    of the others go to ``missing``."""
    held = previous.bodies if previous is not None else {}
    with Progress("snapshot", sum(small.values()), stream=progress_stream, unit_bytes=True) as progress:
        for sha, size in small.items():
            data = None
            if previous is not None and sha in held:  # no need to read the store
                data = previous.body_at(held[sha].snapshot_offset, size, sha)
            if data is None:
                data = store.read_local(sha, size)
            progress.advance(size)
            if data is None:
                missing.add(sha)
                continue
            yield LocatedBlob(BlobRecord(sha, size), body=data)


def read_sites(sites: QuerySet[Site]) -> tuple[list[SiteRecord], dict[int, list[AssetRecord]]]:
    """The records of ``sites`` (with their live and retained deployments)
    and, per deployment id, of its assets, from the database."""
    rows = {row["id"]: row for row in sites.values(*SITE_FIELDS, "password", "live_deployment_id")}
    for row in rows.values():
        row["access_tag"] = password_tag(row.pop("password"))
    domains: dict[int, list[str]] = {site_id: [] for site_id in rows}
    verified = Domain.objects.filter(site__in=rows, state=Domain.State.VERIFIED)
    for site_id, hostname in verified.values_list("site_id", "hostname"):
        if hostname:
            domains[site_id].append(hostname)
    deployments = _read_deployments(list(rows))
    site_records = [
        SiteRecord(
            **{name: value for name, value in row.items() if name != "live_deployment_id"},
            domains=tuple(domains[site_id]),
            live_deployment=row["live_deployment_id"],
            deployments=tuple(deployments.get(site_id, ())),
        )
        for site_id, row in rows.items()
    ]
    kept = [deployment.id for records in deployments.values() for deployment in records]

    variants: dict[str, list[BlobRecord]] = {}
    for source_id, encoding, sha, size in (
        Blob.objects.filter(source__assets__deployment__in=kept)
        .distinct()
        .values_list("source_id", "encoding", "sha256", "size")
    ):
        variants.setdefault(source_id, []).append(BlobRecord(sha, size, encoding))

    assets: dict[int, list[AssetRecord]] = {deployment_id: [] for deployment_id in kept}
    asset_rows = (
        Asset.objects.filter(deployment__in=kept)
        .order_by("deployment_id", "path")
        .values_list("deployment_id", "path", "content_type", "last_modified", "blob_id", "blob__size")
    )
    for deployment_id, path, content_type, modified, sha, size in asset_rows.iterator(chunk_size=5000):
        assets[deployment_id].append(
            AssetRecord(
                path, content_type, int(modified.timestamp()), BlobRecord(sha, size), tuple(variants.get(sha, ()))
            )
        )
    return site_records, assets


def _read_deployments(site_ids: list[int]) -> dict[int, list[DeploymentRecord]]:
    """Per site, its deployments that have rows (live, draft, superseded),
    newest first, with their aliases and rules."""
    aliases: dict[int, list[str]] = {}
    for deployment_id, name in DeploymentAlias.objects.filter(site__in=site_ids).values_list("deployment_id", "name"):
        aliases.setdefault(deployment_id, []).append(name)
    found: dict[int, list[DeploymentRecord]] = {}
    for site_id, deployment_id, key, rules in (
        Deployment.objects.filter(site__in=site_ids)
        .exclude(state=Deployment.State.EXPIRED)
        .order_by("site_id", "-created_at", "-pk")
        .values_list("site_id", "id", "key", "rules")
    ):
        found.setdefault(site_id, []).append(
            DeploymentRecord(deployment_id, key, tuple(sorted(aliases.get(deployment_id, []))), rules)
        )
    return found


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


def _keep_other_sites(previous: Snapshot, sites: list[SiteRecord], assets: dict[int, list[AssetRecord]]) -> int:
    """Add to ``sites`` and ``assets`` the sites of ``previous`` that this
    warmup did not read and that still exist, as ``previous`` has them.

    Each keeps the feed position it was read at, so processes replay the
    changes made to it since; host names a fresh site now holds are taken
    from the kept ones. Returns how many sites were kept.
    """
    fresh_hosts = {hostname for site in sites for hostname in site.domains}
    wanted = set(previous.sites) - {site.id for site in sites}
    existing = set(Site.objects.filter(pk__in=wanted).values_list("pk", flat=True))
    for site_id in sorted(existing):
        site = previous.sites[site_id]
        sites.append(replace(site, domains=tuple(name for name in site.domains if name not in fresh_hosts)))
        for deployment in site.deployments:
            assets[deployment.id] = list(previous.deployment_assets(deployment.id))
    return len(existing)
