"""Deployments: which one a site serves (the switch a publish, a rollback
and a promote share), aliases, history and retention.

A deployment's Asset rows never change once it is committed: making another
one live is one UPDATE of ``Site.live_deployment``, the states, and one
``Change`` of kind ``deploy``, in one transaction, with no row copied and no
byte stored.
"""

from __future__ import annotations

import os
import subprocess
import time
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

from django.core.exceptions import ValidationError
from django.db import connections, router, transaction
from django.db.models import Exists, F, Field, OuterRef
from django.utils import timezone

from . import conf
from .models import Asset, Change, Deployment, DeploymentAlias, DeployTally, Site, record_change
from .sources import PublishError
from .validators import DEPLOYMENT_KEY_RE, validate_alias

__all__ = [
    "DeploymentError",
    "DeploymentInfo",
    "GitInfo",
    "ManifestDifference",
    "check_target",
    "compare",
    "copy_manifest",
    "deployment_info",
    "describe",
    "expire_deployments",
    "expired_deployment_ids",
    "git_info",
    "history",
    "move_alias",
    "promote",
    "rollback",
    "switch",
    "tallies",
    "tally",
]

LIVE = Deployment.State.LIVE
DRAFT = Deployment.State.DRAFT
SUPERSEDED = Deployment.State.SUPERSEDED
EXPIRED = Deployment.State.EXPIRED


class DeploymentError(Exception):
    """Bad input to a rollback, promote or alias: nothing was changed."""


@dataclass
class DeploymentInfo:
    """What a publish records about itself on the deployment it makes."""

    #: Store the deployment without making it live.
    draft: bool = False
    #: An alias to point at the new deployment.
    alias: str = ""
    created_by: str = ""
    #: Where the files came from; "" for the path given to publish().
    source: str = ""
    message: str = ""
    #: None: read from the source's git work tree, if any.
    git_commit: str | None = None
    git_branch: str | None = None
    #: Record a deployment even when no file changed (the live one is
    #: otherwise the publish): each deploy from CI is a line of history.
    record_unchanged: bool = False


def deployment_info(info: DeploymentInfo, source: str | os.PathLike[str], subdomain: str) -> DeploymentInfo:
    """``info`` checked (PublishError for a bad alias), with the source and
    the git commit and branch of ``source`` filled in."""
    if info.alias:
        try:
            check_alias(subdomain, info.alias)
        except DeploymentError as exc:
            raise PublishError(str(exc)) from exc
    if not info.source:
        info = replace(info, source=os.fspath(source))
    if info.git_commit is None or info.git_branch is None:
        found = git_info(source)
        info = replace(
            info,
            git_commit=found.commit if info.git_commit is None else info.git_commit,
            git_branch=found.branch if info.git_branch is None else info.git_branch,
        )
    return info


def switch(site: Site, deployment: Deployment, paths: list[str] | None = None) -> Change:
    """Make ``deployment`` the live one of ``site``: call it inside the
    transaction that locked the site's row. ``paths``: the paths that differ
    from the deployment live before (None: unknown), so processes keep the
    other entries, which the two deployments share."""
    now = timezone.now()
    previous = site.live_deployment_id
    Deployment.objects.filter(site=site, state=LIVE).exclude(pk=deployment.pk).update(state=SUPERSEDED)
    Deployment.objects.filter(pk=deployment.pk).update(state=LIVE, live_at=now)
    deployment.state, deployment.live_at = LIVE, now
    Site.objects.filter(pk=site.pk).update(live_deployment=deployment)
    site.live_deployment = deployment
    return record_change(site.pk, Change.Kind.DEPLOY, paths, deployment_id=deployment.pk, previous_id=previous)


def tally(subdomain: str, kind: str, seconds: float) -> None:
    """Count one ``kind`` of ``subdomain`` that took ``seconds``, inside the
    transaction that did it (so it counts only if that commits), which
    holds the site's row locked: no other one adds to the same row meanwhile."""
    added = DeployTally.objects.filter(site=subdomain, kind=kind).update(
        count=F("count") + 1, seconds=F("seconds") + seconds
    )
    if not added:
        DeployTally.objects.create(site=subdomain, kind=kind, count=1, seconds=seconds)


def tallies() -> list[tuple[str, str, int, float]]:
    """Every (site, kind, count, seconds) of the tally: what the metrics
    view exports."""
    return list(DeployTally.objects.values_list("site", "kind", "count", "seconds"))


def move_alias(site: Site, name: str, deployment: Deployment) -> None:
    """Point the alias ``name`` of ``site`` at ``deployment`` (inside the
    caller's transaction; the caller records the Change)."""
    check_alias(site.subdomain, name)
    DeploymentAlias.objects.update_or_create(site=site, name=name, defaults={"deployment": deployment})


def check_alias(subdomain: str, name: str) -> None:
    """Raise DeploymentError unless ``name`` can be an alias of ``subdomain``."""
    try:
        validate_alias(name)
    except ValidationError as exc:
        raise DeploymentError(" ".join(exc.messages)) from exc
    if DEPLOYMENT_KEY_RE.fullmatch(name):
        raise DeploymentError(f"{name!r} looks like a deployment id; choose another alias")
    if len(name) + 2 + len(subdomain) > 63:
        raise DeploymentError(f"{name}--{subdomain} is longer than the 63 characters of a DNS label")


def _locked_site(site: Site | str) -> Site:
    subdomain = site.subdomain if isinstance(site, Site) else site.strip().lower()
    found = Site.objects.select_for_update().filter(subdomain=subdomain).first()
    if found is None:
        raise DeploymentError(f"no such site: {subdomain}")
    return found


def _named(site: Site, deployment: Deployment | str, *, rolling_back: bool = False) -> Deployment:
    key = deployment.key if isinstance(deployment, Deployment) else deployment.strip().lower()
    return check_target(
        site, key, Deployment.objects.select_for_update().filter(site=site, key=key).first(), rolling_back
    )


def check_target(site: Site, key: str, found: Deployment | None, rolling_back: bool = False) -> Deployment:
    """``found`` (the deployment ``key`` of ``site``, or None) if it can be
    made live, by a rollback if ``rolling_back``; else DeploymentError.
    The admin asks it before its confirmation page, rollback and promote
    again under the site's lock."""
    if found is None:
        raise DeploymentError(f"{site.subdomain} has no deployment {key}")
    if found.state == EXPIRED:
        raise DeploymentError(
            f"deployment {key} of {site.subdomain} expired: assetcache_gc collected its files; publish them again"
        )
    if found.pk == site.live_deployment_id:
        raise DeploymentError(f"deployment {key} is already live on {site.subdomain}")
    if rolling_back and found.state == DRAFT:
        raise DeploymentError(f"deployment {key} is a draft, never live: promote it instead")
    return found


def rollback(site: Site | str, deployment: Deployment | str | None = None) -> Deployment:
    """Make the deployment live before the current one (or ``deployment``,
    a Deployment or its key) live again; return it."""
    started = time.monotonic()
    with transaction.atomic():
        locked = _locked_site(site)
        target = _previous(locked) if deployment is None else _named(locked, deployment, rolling_back=True)
        switch(locked, target)
        tally(locked.subdomain, DeployTally.Kind.ROLLBACK, time.monotonic() - started)
    return target


def _previous(site: Site) -> Deployment:
    """Of the deployments older than the live one that have been live, the
    one live most recently: what was live before it."""
    earlier = Deployment.objects.select_for_update().filter(site=site, state=SUPERSEDED)
    current = site.live_deployment
    if current is not None:
        earlier = earlier.filter(created_at__lte=current.created_at).exclude(
            created_at=current.created_at, pk__gt=current.pk
        )
    target = earlier.order_by("-live_at", "-created_at", "-pk").first()
    if target is None:
        raise DeploymentError(f"{site.subdomain} has no earlier deployment to roll back to")
    return target


def promote(site: Site | str, deployment: Deployment | str) -> Deployment:
    """Make ``deployment`` (a draft, or any retained deployment) live."""
    started = time.monotonic()
    with transaction.atomic():
        locked = _locked_site(site)
        target = _named(locked, deployment)
        switch(locked, target)
        tally(locked.subdomain, DeployTally.Kind.PROMOTE, time.monotonic() - started)
    return target


def history(site: Site | str) -> list[Deployment]:
    """A site's deployments, newest first, with their aliases."""
    subdomain = site.subdomain if isinstance(site, Site) else site.strip().lower()
    found = Site.objects.filter(subdomain=subdomain).first()
    if found is None:
        raise DeploymentError(f"no such site: {subdomain}")
    return list(found.deployments.select_related("site").prefetch_related("aliases").order_by("-created_at", "-pk"))


def describe(deployment: Deployment) -> dict[str, Any]:
    """A deployment as ``assetcache_deployments --json`` lists it."""
    return {
        "id": deployment.key,
        "state": deployment.state,
        "created_at": deployment.created_at.isoformat(),
        "live_at": deployment.live_at.isoformat() if deployment.live_at else None,
        "created_by": deployment.created_by,
        "source": deployment.source,
        "message": deployment.message,
        "git_commit": deployment.git_commit,
        "git_branch": deployment.git_branch,
        "summary": deployment.summary,
        "publish_seconds": deployment.publish_seconds,
        "aliases": sorted(alias.name for alias in deployment.aliases.all()),
        "preview_url": deployment.preview_url() if deployment.state != EXPIRED else None,
    }


@dataclass(frozen=True)
class ManifestDifference:
    """How the files of one deployment differ from another's, in counts."""

    added: int
    changed: int
    unchanged: int
    removed: int


def compare(current: Deployment | None, target: Deployment) -> ManifestDifference:
    """What making ``target`` live changes, from ``current`` (None: no
    deployment live): counted in the database, four queries whatever the
    size of the site."""
    target_files = Asset.objects.filter(deployment=target)
    current_files = Asset.objects.filter(deployment=current)
    same_path = current_files.filter(path=OuterRef("path"))
    return ManifestDifference(
        added=target_files.exclude(Exists(same_path)).count(),
        changed=target_files.filter(Exists(same_path.exclude(blob=OuterRef("blob")))).count(),
        unchanged=target_files.filter(Exists(same_path.filter(blob=OuterRef("blob")))).count(),
        removed=current_files.exclude(Exists(target_files.filter(path=OuterRef("path")))).count(),
    )


def copy_manifest(source_id: int, target_id: int) -> None:
    """INSERT … SELECT the Asset rows of one deployment into another."""
    meta = Asset._meta
    database = router.db_for_write(Asset)
    quote = connections[database].ops.quote_name
    names = ("site", "path", "blob", "content_type", "last_modified")
    columns = ", ".join(quote(_column(name)) for name in names)
    deployment = quote(_column("deployment"))
    table = quote(meta.db_table)
    sql = f"INSERT INTO {table} ({deployment}, {columns}) SELECT %s, {columns} FROM {table} WHERE {deployment} = %s"
    with connections[database].cursor() as cursor:
        cursor.execute(sql, [target_id, source_id])


def _column(name: str) -> str:
    field = Asset._meta.get_field(name)
    assert isinstance(field, Field) and field.column is not None
    return field.column


# --- retention -------------------------------------------------------------------


def expired_deployment_ids() -> dict[int, list[int]]:
    """Per site id, the deployments retention lets go: not live, not
    aliased, not among the ASSETCACHE_DEPLOYMENT_RETENTION newest, older
    than ASSETCACHE_DEPLOYMENT_RETENTION_DAYS."""
    settings = conf.get()
    cutoff = timezone.now() - timedelta(days=settings.DEPLOYMENT_RETENTION_DAYS)
    aliased = set(DeploymentAlias.objects.values_list("deployment_id", flat=True))
    rows = (
        Deployment.objects.exclude(state=EXPIRED)
        .order_by("site_id", "-created_at", "-pk")
        .values_list("site_id", "pk", "state", "created_at")
    )
    seen: dict[int, int] = {}
    doomed: dict[int, list[int]] = {}
    for site_id, pk, state, created_at in rows:
        rank = seen[site_id] = seen.get(site_id, 0) + 1
        if rank > settings.DEPLOYMENT_RETENTION and created_at < cutoff and state != LIVE and pk not in aliased:
            doomed.setdefault(site_id, []).append(pk)
    return doomed


def expire_deployments(doomed: dict[int, list[int]]) -> int:
    """Remove the rows of ``doomed`` (from ``expired_deployment_ids``),
    keeping their record, as expired; return how many. Their blobs become
    unused, and gc collects them next."""
    count = 0
    for site_id, ids in doomed.items():
        with transaction.atomic():
            # The site's row first, as a rollback or publish takes it: one
            # that made one of these live (or aliased it) meanwhile is seen here.
            if not Site.objects.select_for_update().filter(pk=site_id).exists():
                continue
            still = list(
                Deployment.objects.select_for_update()
                .filter(pk__in=ids)
                .exclude(pk__in=DeploymentAlias.objects.values("deployment_id"))
                .exclude(state__in=[LIVE, EXPIRED])
                .values_list("pk", flat=True)
            )
            if not still:
                continue
            Asset.objects.filter(deployment_id__in=still).delete()
            Deployment.objects.filter(pk__in=still).update(state=EXPIRED)
            record_change(site_id, Change.Kind.DEPLOY)
            count += len(still)
    return count


# --- where a source came from ----------------------------------------------------


@dataclass(frozen=True)
class GitInfo:
    commit: str = ""
    branch: str = ""


def git_info(source: str | os.PathLike[str]) -> GitInfo:
    """The commit and branch of the git work tree ``source`` is in; empty
    when it is not in one, or git is missing."""
    directory = Path(source)
    if not directory.is_dir():
        return GitInfo()
    return GitInfo(_git(directory, "HEAD"), _git(directory, "--abbrev-ref", "HEAD"))


def _git(directory: Path, *args: str) -> str:
    try:
        done = subprocess.run(
            ["git", "-C", str(directory), "rev-parse", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    value = done.stdout.strip() if done.returncode == 0 else ""
    return "" if value == "HEAD" else value
