"""The deploy API's work, apart from HTTP: a manifest in, the hashes the
storage lacks out; blobs verified into the storage; ``finish`` through the
publish pipeline (``publish.publish_stored``), in one transaction.

Every refusal is an ApiError carrying its HTTP status, raised before
anything changed.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from datetime import timedelta
from functools import partial
from typing import IO, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from . import conf
from .deployments import DeploymentError, DeploymentInfo, check_alias
from .deploytokens import may_deploy
from .mediatypes import content_type_for
from .models import Blob, DeployToken, PendingDeploy, Site
from .progress import human_bytes
from .publish import PublishError, PublishSummary, publish, publish_stored
from .sources import SourceFile, SourceRules, normalize_path
from .store import BlobChanged, BlobStore, BlobTooLarge, hash_stream, iter_chunks
from .validators import validate_header_value, validate_subdomain

SHA256_RE = re.compile(r"[0-9a-f]{64}")
#: A media type as a Content-Type header carries it: type/subtype, then
#: parameters (printable ASCII, which ``validate_header_value`` checks).
MEDIA_TYPE_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*;.*)?")


class ApiError(Exception):
    """A refused request: ``status`` and a one-line message (and, for a
    finish with blobs missing, which)."""

    def __init__(self, status: int, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.extra = extra


def deployable_site(token: DeployToken, subdomain: str) -> Site | None:
    """The site ``token`` may deploy under ``subdomain``; None for one the
    token may create (it does not exist)."""
    subdomain = subdomain.strip().lower()
    try:
        validate_subdomain(subdomain)
    except ValidationError as exc:
        raise ApiError(400, " ".join(exc.messages)) from exc
    site = Site.objects.filter(subdomain=subdomain).first()
    if site is None:
        if token.may_create_sites:
            return None
        raise ApiError(404, f"no such site: {subdomain}")
    if not may_deploy(token, site):
        raise ApiError(403, f"this token may not deploy {subdomain}")
    return site


def _entry(path: str, value: Any) -> tuple[str, int | None, str]:
    """(sha256, size or None, content type or "") of one manifest entry:
    a hash, or {"sha256", "size", "content_type"}."""
    if isinstance(value, str):
        value = {"sha256": value}
    if not isinstance(value, dict):
        raise ApiError(400, f"{path}: give a sha256 or an object with one")
    sha, size, content_type = value.get("sha256"), value.get("size"), value.get("content_type", "")
    if not isinstance(sha, str) or not SHA256_RE.fullmatch(sha):
        raise ApiError(400, f"{path}: not a sha256 in lower-case hex")
    if size is not None and (not isinstance(size, int) or isinstance(size, bool) or size < 0):
        raise ApiError(400, f"{path}: size must be a whole number of bytes")
    if not isinstance(content_type, str) or not _is_media_type(content_type):
        raise ApiError(400, f"{path}: content_type must be a media type such as text/html")
    return sha, size, content_type


def _is_media_type(content_type: str) -> bool:
    """ "" (guess from the name) or a media type that is safe to send as a header."""
    if not content_type:
        return True
    try:
        validate_header_value(content_type)
    except ValidationError:
        return False
    return len(content_type) <= 255 and MEDIA_TYPE_RE.fullmatch(content_type) is not None


def _manifest(files: Any, rules: SourceRules) -> tuple[dict[str, list[str]], dict[str, int | None], list[str]]:
    """The checked manifest (path → [sha256, content type]), the size of
    each hash (None: not given) and the paths the exclusion rules skip."""
    if not isinstance(files, dict) or not files:
        raise ApiError(400, 'give "files": {"/path": "<sha256>", …}, at least one')
    manifest: dict[str, list[str]] = {}
    sizes: dict[str, int | None] = {}
    skipped: list[str] = []
    seen: set[str] = set()
    for name, value in files.items():
        try:
            path = normalize_path(name)
        except PublishError as exc:
            raise ApiError(400, str(exc)) from exc
        if path in seen:
            # "a" and "/a" are one path: the second would silently win.
            raise ApiError(400, f"{name!r}: the path {path} appears twice")
        seen.add(path)
        sha, size, content_type = _entry(path, value)
        if rules.skips(path[1:].split("/")):
            skipped.append(path)
            continue
        manifest[path] = [sha, content_type]
        if sizes.get(sha) is None:
            sizes[sha] = size
    return manifest, sizes, skipped


def check_sizes(manifest: dict[str, list[str]], sizes: dict[str, Any]) -> None:
    """413 for a file over ASSETCACHE_MAX_FILE_SIZE or a deploy over
    ASSETCACHE_MAX_SITE_SIZE (counting the files whose size is known)."""
    settings = conf.get()
    largest = max((size for size in sizes.values() if size is not None), default=0)
    if largest > settings.MAX_FILE_SIZE:
        raise ApiError(413, f"a file of {human_bytes(largest)} is over ASSETCACHE_MAX_FILE_SIZE")
    total = sum(sizes.get(sha) or 0 for sha, _ in manifest.values())
    if total > settings.MAX_SITE_SIZE:
        limit = human_bytes(settings.MAX_SITE_SIZE)
        raise ApiError(413, f"the deploy ({human_bytes(total)}) is over ASSETCACHE_MAX_SITE_SIZE ({limit})")


def _required(store: BlobStore, sizes: dict[str, int | None]) -> tuple[list[str], dict[str, int]]:
    """The hashes the storage lacks, and every size now known (a blob with
    a row has its size there; one of unknown size is required)."""
    unknown = [sha for sha, size in sizes.items() if size is None]
    known = {sha: size for sha, size in sizes.items() if size is not None}
    for start in range(0, len(unknown), 500):
        known.update(Blob.objects.filter(pk__in=unknown[start : start + 500]).values_list("sha256", "size"))
    lacking = store.missing(known) | {sha for sha in sizes if sha not in known}
    return sorted(lacking), known


def _keep_blobs(hashes: list[str]) -> None:
    """Start gc's grace period over for the blobs a manifest names, before
    they are counted as present: gc deletes a row only while it is unused
    since the cutoff, so one it has not locked yet stays until ``finish``."""
    for start in range(0, len(hashes), 500):
        Blob.objects.filter(pk__in=hashes[start : start + 500], unused_since__isnull=False).update(unused_since=None)


def _options(body: dict[str, Any], subdomain: str) -> dict[str, Any]:
    options = {
        "draft": body.get("draft", False),
        "alias": body.get("alias") or "",
        "message": body.get("message") or "",
        "delete": body.get("delete", True),
        "git_commit": body.get("git_commit") or "",
        "git_branch": body.get("git_branch") or "",
    }
    if not isinstance(options["draft"], bool) or not isinstance(options["delete"], bool):
        raise ApiError(400, '"draft" and "delete" are true or false')
    if not all(isinstance(options[name], str) for name in ("alias", "message", "git_commit", "git_branch")):
        raise ApiError(400, '"alias", "message", "git_commit" and "git_branch" are strings')
    if options["alias"]:
        try:
            check_alias(subdomain, options["alias"])
        except DeploymentError as exc:
            raise ApiError(400, str(exc)) from exc
    return options


def _rules(body: dict[str, Any]) -> SourceRules:
    patterns = [body.get("exclude") or [], body.get("include") or []]
    # A string is iterable too: "*.map" would be the patterns "*", ".", …
    if not all(isinstance(given, list) and all(isinstance(p, str) for p in given) for given in patterns):
        raise ApiError(400, '"exclude" and "include" are lists of patterns')
    try:
        return SourceRules.of(*patterns)
    except PublishError as exc:
        raise ApiError(400, str(exc)) from exc


def start_deploy(token: DeployToken, subdomain: str, body: Any) -> tuple[PendingDeploy, list[str]]:
    """Accept a manifest; return the pending deploy and the skipped paths."""
    site = deployable_site(token, subdomain)
    subdomain = site.subdomain if site else subdomain.strip().lower()
    if not isinstance(body, dict):
        raise ApiError(400, "the body is a JSON object")
    manifest, sizes, skipped = _manifest(body.get("files"), _rules(body))
    options = _options(body, subdomain)
    if not manifest and options["delete"]:
        raise ApiError(
            400,
            f'every file is skipped by the exclusion rules; with "delete" that would remove every file of {subdomain}',
        )
    check_sizes(manifest, sizes)
    _keep_blobs(list(sizes))
    required, known = _required(BlobStore(), sizes)
    check_sizes(manifest, known)
    pending = PendingDeploy.objects.create(
        subdomain=subdomain,
        token=token,
        manifest=manifest,
        sizes=known,
        required=required,
        options=options,
        expires_at=timezone.now() + timedelta(seconds=conf.get().DEPLOY_TTL),
    )
    return pending, skipped


def pending_deploy(token: DeployToken, key: str, *, with_manifest: bool = True) -> PendingDeploy:
    """The unexpired pending deploy ``key`` that ``token`` started, of a
    site it may still deploy. Another token's is not found: two tokens that
    may create sites must not finish (and so be given) each other's.
    Without ``with_manifest`` its manifest is read only if asked for (a blob
    upload needs the sizes and the required hashes, not every path)."""
    query = PendingDeploy.objects.filter(key=key, token=token, expires_at__gt=timezone.now())
    if not with_manifest:
        query = query.defer("manifest")
    pending = query.first()
    if pending is None:
        raise ApiError(404, f"no deploy {key} (or it expired)")
    deployable_site(token, pending.subdomain)
    return pending


def receive_blob(token: DeployToken, key: str, sha: str, stream: IO[bytes], length: int | None) -> bool:
    """Store the bytes of one blob of deploy ``key``, verified against its
    hash; return whether they were stored (False: present already)."""
    pending = pending_deploy(token, key, with_manifest=False)
    if pending.deployment_id is not None:
        raise ApiError(409, f"deploy {key} is finished")
    # Every hash of the manifest has its size in ``sizes`` or, unknown, is
    # required: no need to read the whole manifest for each upload.
    if not SHA256_RE.fullmatch(sha) or (sha not in pending.sizes and sha not in pending.required):
        raise ApiError(404, f"{sha} is not a file of deploy {key}")
    if length is None:
        raise ApiError(400, "give the blob's Content-Length")
    declared = pending.sizes.get(sha)
    if declared is not None and declared != length:
        raise ApiError(422, f"{sha}: {length} bytes sent, the manifest said {declared}")
    if declared is None:
        # Sizes given in the manifest were checked against the limits when
        # it came; this one is new.
        check_sizes(pending.manifest, {**pending.sizes, sha: length})
    store = BlobStore()
    try:
        if store.has(sha, length):
            # Read and checked all the same: a wrong upload is refused the same way.
            stored, (got, size) = False, hash_stream(stream, length)
            if (got, size) != (sha, length):
                raise BlobChanged(sha)
        else:
            stored = store.save(sha, length, stream, missing=True)
    except (BlobChanged, BlobTooLarge) as exc:
        raise ApiError(422, f"the bytes sent do not have the sha256 {sha} and {length} bytes") from exc
    if declared is None:
        with transaction.atomic():
            locked = PendingDeploy.objects.select_for_update().get(pk=pending.pk)
            locked.sizes[sha] = length
            locked.save(update_fields=["sizes"])
    return stored


def finish_deploy(token: DeployToken, key: str) -> tuple[PendingDeploy, dict[str, Any]]:
    """Publish deploy ``key``: 409 while a required blob is missing."""
    pending = pending_deploy(token, key)
    site = deployable_site(token, pending.subdomain)
    store = BlobStore()
    sizes: dict[str, int] = pending.sizes
    known = {sha: sizes[sha] for sha in pending.required if sha in sizes}
    missing = sorted(store.missing(known) | {sha for sha in pending.required if sha not in sizes})
    if missing:
        raise ApiError(409, f"{len(missing)} blobs are not uploaded yet", missing=missing)
    check_sizes(pending.manifest, sizes)
    files = [
        SourceFile(path, sizes[sha], partial(store.open, sha), sha, content_type or content_type_for(path))
        for path, (sha, content_type) in pending.manifest.items()
    ]
    options = pending.options
    info = _deployment_info(token, options, "deploy API")
    uploaded = sum(sizes[sha] for sha in pending.required)
    with transaction.atomic():
        locked = PendingDeploy.objects.select_for_update().get(pk=pending.pk)
        if locked.deployment_id is not None:
            raise ApiError(409, f"deploy {key} is finished already")
        try:
            summary = publish_stored(
                site or pending.subdomain, files, delete=options["delete"], info=info, bytes_uploaded=uploaded
            )
        except PublishError as exc:
            raise ApiError(400, str(exc)) from exc
        locked.deployment = summary.deployment
        locked.save(update_fields=["deployment"])
        _give_created_site(token, site, summary)
    return locked, summary.as_json()


def _deployment_info(token: DeployToken, options: dict[str, Any], source: str) -> DeploymentInfo:
    return DeploymentInfo(
        draft=options["draft"],
        alias=options["alias"],
        created_by=f"token {token.name}"[:150],
        source=source,
        message=options["message"],
        git_commit=options["git_commit"][:64],
        git_branch=options["git_branch"][:255],
        record_unchanged=True,
    )


def _give_created_site(token: DeployToken, site: Site | None, summary: PublishSummary) -> None:
    """A token that created a site by deploying to it may deploy it again."""
    if site is None and not token.all_sites and summary.deployment is not None:
        token.sites.add(summary.deployment.site)


def _query_options(query: Mapping[str, str], subdomain: str) -> dict[str, Any]:
    flags = {"true": True, "false": False}
    body: dict[str, Any] = dict(query)
    for name in ("draft", "delete"):
        if name in body:
            body[name] = flags.get(body[name], body[name])
    return _options(body, subdomain)


def deploy_zip(
    token: DeployToken, subdomain: str, stream: IO[bytes], length: int | None, query: Mapping[str, str]
) -> PublishSummary:
    """The one-request deploy: a zip as the body (its size within
    ASSETCACHE_MAX_SITE_SIZE), published as ``assetcache_publish`` publishes
    one; the options (draft, alias, message, delete, …) in the query."""
    site = deployable_site(token, subdomain)
    subdomain = site.subdomain if site else subdomain.strip().lower()
    options = _query_options(query, subdomain)
    if length is None:
        raise ApiError(400, "give the zip's Content-Length")
    if length > conf.get().MAX_SITE_SIZE:
        raise ApiError(413, f"a zip of {human_bytes(length)} is over ASSETCACHE_MAX_SITE_SIZE")
    with tempfile.NamedTemporaryFile(suffix=".zip") as copy:
        for chunk in iter_chunks(stream, length):
            copy.write(chunk)
        if copy.tell() != length:
            raise ApiError(400, f"the body ended after {copy.tell()} of the {length} bytes of its Content-Length")
        copy.flush()
        try:
            summary = publish(
                site or subdomain,
                copy.name,
                delete=options["delete"],
                deployment=_deployment_info(token, options, "deploy API (zip)"),
            )
        except PublishError as exc:
            raise ApiError(400, str(exc).replace(copy.name, "the zip")) from exc
    _give_created_site(token, site, summary)
    return summary
