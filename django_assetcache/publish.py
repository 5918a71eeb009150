"""Import a directory or a zip into a site: diff, dedup, one transaction.

Nothing in the database changes until every file has been read, hashed and
stored; then assets, the site's generation and one Change row commit
together. A failure before the commit leaves, at most, blobs nothing refers
to (``assetcache_gc`` removes them).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable
from datetime import datetime

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from . import conf
from .deployments import DeploymentInfo, copy_manifest, deployment_info, move_alias, switch, tally
from .mediatypes import content_type_for
from .models import Asset, Blob, Change, Deployment, DeployTally, Site, lock_blobs, record_change
from .progress import Progress, Stream
from .publishrules import compile_rules, refuse_problems, take_rule_files
from .publishsummary import PublishSummary
from .sources import PublishError, SourceFile, SourceRules, read_source
from .store import BlobChanged, BlobStore, BlobTooLarge, hash_stream
from .validators import validate_subdomain

#: PublishError is defined with the source readers, which raise it too.
__all__ = ["DeploymentInfo", "PublishError", "PublishSummary", "SourceRules", "publish", "publish_stored"]


def _hash_files(files: list[SourceFile], progress: Progress) -> None:
    max_file = conf.get().MAX_FILE_SIZE
    for source_file in files:
        try:
            with source_file.open() as stream:
                source_file.sha256, source_file.size = hash_stream(stream, max_file)
        except BlobTooLarge as exc:
            raise PublishError(f"{source_file.path}: over ASSETCACHE_MAX_FILE_SIZE") from exc
        except OSError as exc:
            # A zip member's damage is a PublishError of its own (sources._ZipMember).
            reason = exc.strerror or str(exc)
            raise PublishError(f"{source_file.path}: cannot be read ({reason})") from exc
        source_file.content_type = content_type_for(source_file.path)
        progress.advance(source_file.size)


def _resolve_site(site: Site | str) -> tuple[Site | None, str]:
    if isinstance(site, Site):
        return site, site.subdomain
    subdomain = site.strip()
    try:
        validate_subdomain(subdomain)
    except ValidationError as exc:
        raise PublishError(" ".join(exc.messages)) from exc
    return Site.objects.filter(subdomain=subdomain).first(), subdomain


def _diff(
    files: list[SourceFile], current: dict[str, tuple[str, str]], delete: bool, summary: PublishSummary
) -> list[SourceFile]:
    """Fill the summary's counts; return the files to write."""
    summary.added, summary.changed, summary.removed, summary.unchanged = [], [], [], 0
    writes = []
    for source_file in files:
        existing = current.get(source_file.path)
        if existing is None:
            summary.added.append(source_file.path)
            writes.append(source_file)
        elif existing != (source_file.sha256, source_file.content_type):
            summary.changed.append(source_file.path)
            writes.append(source_file)
        else:
            summary.unchanged += 1
    if delete:
        wanted = {source_file.path for source_file in files}
        summary.removed = sorted(path for path in current if path not in wanted)
    return writes


def _live_rules(site: Site | None) -> str:
    """The compiled rules of the deployment ``site`` serves ("" for none)."""
    live = site.live_deployment if site is not None else None
    return live.rules if live is not None else ""


def _current_assets(site: Site | None) -> dict[str, tuple[str, str]]:
    """The live manifest of ``site``: path → (blob, content type)."""
    if site is None or site.live_deployment_id is None:
        return {}
    rows = Asset.objects.filter(deployment_id=site.live_deployment_id).values_list("path", "blob_id", "content_type")
    return {path: (blob_id, content_type) for path, blob_id, content_type in rows}


def publish(
    site: Site | str,
    source: str | os.PathLike[str],
    *,
    delete: bool = False,
    dry_run: bool = False,
    allow_empty: bool = False,
    exclude: Iterable[str] = (),
    include: Iterable[str] = (),
    keep_top_folder: bool = False,
    progress_stream: Stream | None = None,
    deployment: DeploymentInfo | None = None,
    strict: bool = False,
) -> PublishSummary:
    """Make ``site`` serve the files of ``source`` (a directory or a zip).

    ``site`` is a Site or a subdomain; a missing site is created. With
    ``delete``, assets not in ``source`` are removed; a source with no file
    to publish is then refused unless ``allow_empty``. With ``dry_run`` the
    diff is computed and nothing is stored or changed. ``exclude`` and
    ``include`` are globs added to the default exclusions (see
    ``sources.SourceRules``); a zip's one top folder is stripped unless
    ``keep_top_folder``. ``_redirects`` and ``_headers`` are compiled into
    the new deployment's rules (their invalid lines skipped and listed in
    the summary, or, with ``strict``, refused), never served; a file absent
    keeps the live deployment's rules of it, unless ``delete``. The files
    become a new deployment (``summary.deployment``), live unless
    ``deployment.draft``; see ``DeploymentInfo``. Raises PublishError for
    bad input, having changed nothing.
    """
    started = time.monotonic()
    rules = SourceRules.of(exclude, include)
    site_obj, subdomain = _resolve_site(site)
    info = deployment_info(deployment or DeploymentInfo(), source, subdomain)
    summary = PublishSummary(subdomain=subdomain, dry_run=dry_run, created=site_obj is None, draft=info.draft)
    store = BlobStore()
    with read_source(source, rules, keep_top_folder=keep_top_folder) as listing:
        files = listing.files
        summary.skipped, summary.top_folder = listing.skipped, listing.top_folder
        rule_files = take_rule_files(files)
        problems = compile_rules(rule_files, _live_rules(site_obj), delete)[1]
        summary.rule_problems = [str(problem) for problem in problems]
        if strict:
            refuse_problems(problems)
        if delete and not files and not rule_files and not allow_empty:
            raise PublishError(_empty_source_message(source, subdomain, listing.skipped))
        summary.files = len(files)
        total = sum(source_file.size for source_file in files)
        with Progress(f"hashing {subdomain}", total, stream=progress_stream, unit_bytes=True) as progress:
            _hash_files(files, progress)

        writes = _diff(files, _current_assets(site_obj), delete, summary)
        _store_blobs(store, files, writes, summary, dry_run, progress_stream)
        if not dry_run:
            _commit(store, site_obj, subdomain, files, delete, summary, info, rule_files, started)
    summary.seconds = time.monotonic() - started
    return summary


def publish_stored(
    site: Site | str, files: list[SourceFile], *, delete: bool, info: DeploymentInfo, bytes_uploaded: int = 0
) -> PublishSummary:
    """Publish ``files`` whose blobs the storage holds already: each has its
    sha256, size and content type, and opens its blob (the deploy API's
    ``finish``). The same rules, diff and one transaction as ``publish``;
    PublishError for bad input, having changed nothing."""
    started = time.monotonic()
    site_obj, subdomain = _resolve_site(site)
    info = deployment_info(info, info.source, subdomain)
    summary = PublishSummary(subdomain=subdomain, created=site_obj is None, draft=info.draft)
    rule_files = take_rule_files(files)
    problems = compile_rules(rule_files, _live_rules(site_obj), delete)[1]
    summary.rule_problems = [str(problem) for problem in problems]
    summary.files, summary.bytes_stored = len(files), bytes_uploaded
    _commit(BlobStore(), site_obj, subdomain, files, delete, summary, info, rule_files, started)
    summary.seconds = time.monotonic() - started
    return summary


def _empty_source_message(source: str | os.PathLike[str], subdomain: str, skipped: list[str]) -> str:
    reason = f"no files to publish ({len(skipped)} skipped by the exclusion rules)" if skipped else "no files"
    return f"{source}: {reason}; with --delete that would remove every file of {subdomain}: give --allow-empty to do it"


def _store_blobs(
    store: BlobStore,
    files: list[SourceFile],
    writes: list[SourceFile],
    summary: PublishSummary,
    dry_run: bool,
    progress_stream: Stream | None,
) -> None:
    """Upload the bytes of every file the storage lacks.

    Every file counts, not only the ones written: a blob whose row exists
    but whose file is gone (damage, or a publish before gc was safe) is
    stored again, and the paths serving it heal.
    """
    referenced = {source_file.sha256: source_file for source_file in files}
    missing = store.missing({sha: f.size for sha, f in referenced.items()})
    upload_total = sum(referenced[sha].size for sha in missing)
    stored: set[str] = set()
    shown = progress_stream if missing and not dry_run else None
    with Progress(f"storing {summary.subdomain}", upload_total, stream=shown, unit_bytes=True) as progress:
        for sha in sorted(missing):
            if dry_run or _save_file(store, referenced[sha]):
                stored.add(sha)
            progress.advance(referenced[sha].size)
    for source_file in writes:
        if source_file.sha256 in stored:
            summary.bytes_stored += source_file.size
            stored.discard(source_file.sha256)
        else:
            summary.bytes_deduplicated += source_file.size
    # What is left was stored for unchanged paths.
    summary.bytes_stored += sum(referenced[sha].size for sha in stored)


def _save_file(store: BlobStore, source_file: SourceFile) -> bool:
    try:
        stream = source_file.open()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PublishError(f"{source_file.path}: cannot be read ({reason})") from exc
    with stream:
        try:
            return store.save(source_file.sha256, source_file.size, stream, missing=True)
        except BlobChanged as exc:
            raise PublishError(f"{source_file.path}: changed while being published; try again") from exc


def _hold_blobs(store: BlobStore, writes: list[SourceFile], summary: PublishSummary) -> None:
    """Make sure the blobs ``writes`` refer to have rows and files until the
    transaction commits.

    A row that exists is locked: gc deletes a file only while no row of its
    hash exists, so the file is there and stays. A row this transaction has
    to create may name a file gc deleted after it was stored (or found
    present): it is checked under the lock and stored again if missing.
    """
    needed = {source_file.sha256: source_file for source_file in writes}
    held = lock_blobs(needed)
    # In use again: gc's grace period starts over when it is next unused.
    Blob.objects.filter(pk__in=held, unused_since__isnull=False).update(unused_since=None)
    fresh = sorted(set(needed) - held)
    Blob.objects.bulk_create(
        [Blob(sha256=sha, size=needed[sha].size) for sha in fresh], ignore_conflicts=True, batch_size=500
    )
    lock_blobs(fresh)
    for sha in sorted(store.missing({sha: needed[sha].size for sha in fresh})):
        if _save_file(store, needed[sha]):
            summary.bytes_stored += needed[sha].size


def _commit(
    store: BlobStore,
    site: Site | None,
    subdomain: str,
    files: list[SourceFile],
    delete: bool,
    summary: PublishSummary,
    info: DeploymentInfo,
    rule_files: dict[str, bytes],
    started: float,
) -> None:
    now = timezone.now().replace(microsecond=0)
    with transaction.atomic():
        if site is None:
            site, summary.created = Site.objects.get_or_create(subdomain=subdomain)
        site = Site.objects.select_for_update().get(pk=site.pk)
        # Re-read under the lock: another publish (or a rollback) may have
        # committed since the preview diff, and the result must be exactly
        # ``files`` on top of what is live now.
        writes = _diff(files, _current_assets(site), delete, summary)
        _hold_blobs(store, writes, summary)
        live = site.live_deployment
        before = live.rules if live is not None else ""
        rules = compile_rules(rule_files, before, delete)[0] if rule_files or delete else before
        summary.rules_changed = rules != before
        unchanged = not (summary.added or summary.changed or summary.removed or summary.rules_changed)
        if live is not None and not info.draft and not info.record_unchanged and unchanged:
            # Nothing changed: the live deployment is this publish.
            summary.deployment = live
            if info.alias:
                move_alias(site, info.alias, live)
                record_change(site.pk, Change.Kind.DEPLOY)
        else:
            summary.deployment = _deploy(site, live, writes, summary, info, rules, now)
        # Counted in this transaction: exactly the publishes that commit.
        seconds = time.monotonic() - started
        if summary.deployment is not live:
            Deployment.objects.filter(pk=summary.deployment.pk).update(publish_seconds=seconds)
            summary.deployment.publish_seconds = seconds
        tally(site.subdomain, DeployTally.Kind.DRAFT if info.draft else DeployTally.Kind.PUBLISH, seconds)


def _deploy(
    site: Site,
    live: Deployment | None,
    writes: list[SourceFile],
    summary: PublishSummary,
    info: DeploymentInfo,
    rules: str,
    now: datetime,
) -> Deployment:
    """The new deployment, with its compiled ``rules``: its rows, its alias,
    and (unless a draft) live."""
    made = Deployment.objects.create(
        site=site,
        created_at=timezone.now(),
        created_by=info.created_by,
        source=info.source[:1024],
        message=info.message,
        git_commit=info.git_commit or "",
        git_branch=info.git_branch or "",
        summary=summary.as_json(),
        rules=rules,
    )
    _write_manifest(site, made, live, writes, summary, now)
    if info.alias:
        move_alias(site, info.alias, made)
    if info.draft:
        if info.alias:
            record_change(site.pk, Change.Kind.DEPLOY)
    else:
        # Entries carry their header rules: with other rules, no entry of
        # the deployment before is this one's (None: processes move none).
        paths = [*summary.added, *summary.changed, *summary.removed]
        switch(site, made, None if summary.rules_changed else paths)
    return made


def _write_manifest(
    site: Site,
    made: Deployment,
    live: Deployment | None,
    writes: list[SourceFile],
    summary: PublishSummary,
    now: datetime,
) -> None:
    """The new deployment's rows: the live one's (copied in the database,
    unchanged rows keeping their Last-Modified) less what changed or went,
    plus the files written."""
    if live is not None:
        copy_manifest(live.pk, made.pk)
        gone = [*summary.changed, *summary.removed]
        for start in range(0, len(gone), 500):
            Asset.objects.filter(deployment=made, path__in=gone[start : start + 500]).delete()
    Asset.objects.bulk_create(
        [
            Asset(
                site=site,
                deployment=made,
                path=f.path,
                blob_id=f.sha256,
                content_type=f.content_type,
                last_modified=now,
            )
            for f in writes
        ],
        batch_size=500,
    )
