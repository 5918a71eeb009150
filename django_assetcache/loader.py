"""Builds cache entries from the database: one query per miss."""

from __future__ import annotations

import posixpath
from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from django.conf import settings as django_settings
from django.db import DatabaseError
from django.db.models import Q

from . import conf
from .access import password_tag, private_cache_control
from .cache import BlobUnavailable, Unavailable
from .entries import Entry, build_file_entry, build_missing_entry, build_redirect_entry
from .hosts import SITE_FIELDS, HostMiss, HostTarget, SiteInfo, preview_label
from .mediatypes import header_value
from .models import Asset, Change, Deployment, Domain, Site
from .records import AssetRecord, BlobRecord, LocatedBlob
from .rules import RULE_FILES
from .snapshot import Snapshot, site_target
from .store import BlobStore

#: The same with the password, read through a deployment (for a preview host).
PREVIEW_FIELDS = tuple(f"site__{name}" for name in (*SITE_FIELDS, "password"))


def cache_control_for(site: SiteInfo, path: str, settings: conf.Settings, ruled: str | None = None) -> str:
    """The Cache-Control a file sends: a header rule's, else the site's
    policy, else the defaults; made private on a private site, whatever
    they say."""
    if ruled:
        value = ruled
    elif site.cache_control:
        value = site.cache_control
    elif settings.immutable_re.search(posixpath.basename(path)):
        value = settings.IMMUTABLE_CACHE_CONTROL
    else:
        value = settings.CACHE_CONTROL
    return private_cache_control(value) if site.private else value


def _site_info(row: Sequence[Any], preview: bool) -> SiteInfo:
    """A SiteInfo from a row of SITE_FIELDS, the password, a deployment id
    and that deployment's rules (None: no deployment), as a live or a
    preview host."""
    *fields, visibility, previews_private, password, deployment_id, rules = row
    return SiteInfo(
        *fields,
        visibility=visibility,
        previews_private=previews_private,
        access_tag=password_tag(password),
        force_https=django_settings.SECURE_SSL_REDIRECT,
        deployment_id=deployment_id,
        preview=preview,
        rules=rules or "",
    )


class DatabaseLoader:
    """Answers the cache's misses from the snapshot when it can, else from
    the database; counts the queries it makes."""

    def __init__(self, store: BlobStore | None = None) -> None:
        self._blob_store = store
        self.settings = conf.get()
        self.snapshot: Snapshot | None = None
        self.queries = 0

    @property
    def store(self) -> BlobStore:
        if self._blob_store is None:
            self._blob_store = BlobStore()
        return self._blob_store

    # --- hosts ---------------------------------------------------------------

    def site_for_host(self, host: str) -> HostTarget:
        if self.snapshot is not None:
            target = site_target(self.snapshot, host)
            if target is not None:
                return target
        self.queries += 1
        try:
            return self._site_target(host)
        except DatabaseError as exc:
            raise Unavailable(str(exc)) from exc

    def _site_target(self, host: str) -> HostTarget:
        suffix = "." + self.settings.DOMAIN
        if not host.endswith(suffix):
            # Only a domain whose owner proved control of it is served.
            query = Site.objects.filter(domains__hostname=host, domains__state=Domain.State.VERIFIED)
        else:
            label = host[: -len(suffix)]
            preview = preview_label(label)
            if preview is not None:
                return self._preview_target(*preview)
            query = Site.objects.filter(subdomain=label)
        rows = list(query.values_list(*SITE_FIELDS, "password", "live_deployment_id", "live_deployment__rules")[:1])
        if not rows:
            return HostMiss.PASS
        return _site_info(rows[0], preview=False)

    def _preview_target(self, name: str, subdomain: str) -> HostTarget:
        """The deployment whose key or alias is ``name``, in one query; a key
        wins over an alias of the same spelling."""
        rows = list(
            Deployment.objects.filter(site__subdomain=subdomain)
            .exclude(state=Deployment.State.EXPIRED)
            .filter(Q(key=name) | Q(aliases__name=name))
            .values_list(*PREVIEW_FIELDS, "id", "rules", "key")[:2]
        )
        if not rows:
            return HostMiss.PASS
        *row, _ = next((row for row in rows if row[-1] == name), rows[0])
        return _site_info(row, preview=True)

    # --- entries -------------------------------------------------------------

    def entries_for(self, site: SiteInfo, path: str) -> dict[str, Entry]:
        """The entry for ``path``, plus the site's error document entry,
        from one query."""
        if path.endswith("/"):
            own, index_path = path + site.index_document, None
        else:
            own, index_path = path, path + "/" + site.index_document
        wanted = [p for p in (own, index_path, site.error_path) if p]
        rows = self.rows(site.deployment_id, wanted)
        result: dict[str, Entry] = {}
        if path in RULE_FILES:
            result[path] = build_missing_entry()  # rules are compiled at publish, never served
        elif own in rows:
            result[path] = self.file_entry(site, rows[own], path)
        elif index_path in rows:
            result[path] = build_redirect_entry(path, extra_headers=site.extra_headers)
        else:
            result[path] = build_missing_entry()
        if site.error_path and site.error_path not in result:
            error_row = rows.get(site.error_path)
            result[site.error_path] = (
                self.file_entry(site, error_row, site.error_path) if error_row else build_missing_entry()
            )
        forced = site.forced
        for key_path, entry in result.items():
            entry.forced = forced is not None and forced.may_match(key_path)
        return result

    def rows(self, deployment_id: int | None, paths: list[str]) -> dict[str, AssetRecord]:
        """The assets of ``paths`` in a deployment (None: a site with none)."""
        if deployment_id is None:
            return {}
        if self.snapshot is not None:
            known = self.snapshot.assets_at(deployment_id, paths)
            if known is not None:
                return known
        self.queries += 1
        query = Asset.objects.filter(deployment_id=deployment_id, path__in=paths).values_list(
            "path",
            "content_type",
            "last_modified",
            "blob_id",
            "blob__size",
            "blob__variants__encoding",
            "blob__variants__sha256",
            "blob__variants__size",
        )
        found: dict[str, AssetRecord] = {}
        variants: dict[str, list[BlobRecord]] = {}
        try:
            for path, content_type, modified, sha, size, v_encoding, v_sha, v_size in query:
                if path not in found:
                    found[path] = AssetRecord(path, content_type, modified.timestamp(), BlobRecord(sha, size))
                    variants[path] = []
                if v_sha is not None:
                    variants[path].append(BlobRecord(v_sha, v_size, v_encoding))
        except DatabaseError as exc:
            raise Unavailable(str(exc)) from exc
        return {path: replace(asset, variants=tuple(variants[path])) for path, asset in found.items()}

    def file_entry(self, site: SiteInfo, asset: AssetRecord, request_path: str) -> Entry:
        """The entry of ``asset`` served at ``request_path``, whose header
        rules it carries (merged here, once)."""
        extra, cache_control = site.headers_for(request_path)
        return build_file_entry(
            content_type=header_value(asset.content_type),
            last_modified=asset.last_modified,
            cache_control=cache_control_for(site, asset.path, self.settings, cache_control),
            identity=self.locate(asset.blob),
            variants=[self.locate(variant) for variant in asset.variants],
            extra_headers=extra,
        )

    def locate(self, blob: BlobRecord) -> LocatedBlob:
        """The blob's bytes in memory when it is small enough, else its local file."""
        sha256, size = blob.sha256, blob.size
        if blob.snapshot_offset >= 0 and size <= self.settings.MEMORY_FILE_LIMIT and self.snapshot is not None:
            data = self.snapshot.body_at(blob.snapshot_offset, size, sha256)
            if data is not None:
                return LocatedBlob(blob, body=data)
        try:
            # From a remote storage this may download the blob into the
            # local tier: on a miss only, never on a hit.
            path = self.store.local_path(sha256, size)
        except OSError as exc:
            raise BlobUnavailable(f"blob {sha256}: {exc}") from exc
        if size > self.settings.MEMORY_FILE_LIMIT:
            return LocatedBlob(blob, file_path=path)
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise BlobUnavailable(f"blob {sha256}: {exc}") from exc
        if len(data) != size:
            raise BlobUnavailable(f"blob {sha256}: {len(data)} bytes on disk, {size} expected")
        return LocatedBlob(blob, body=data)

    # --- the change feed ------------------------------------------------------

    def last_change_id(self) -> int:
        self.queries += 1
        try:
            latest = Change.objects.order_by("-id").values_list("id", flat=True).first()
        except DatabaseError as exc:
            raise Unavailable(str(exc)) from exc
        return latest or 0

    def changes_after(self, change_id: int, pending: list[int] | None = None) -> list[Any]:
        """Changes after ``change_id``, and any of the ``pending`` ids that
        have committed since they were skipped."""
        self.queries += 1
        condition = Q(id__gt=change_id)
        if pending:
            condition |= Q(id__in=pending)
        fields = ("id", "site_id", "kind", "paths", "created_at", "deployment_id", "previous_id")
        return list(Change.objects.filter(condition).order_by("id").only(*fields)[:10_000])
