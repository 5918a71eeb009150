"""Builds cache entries from the database: one query per miss."""

from __future__ import annotations

import posixpath
from typing import Any

from django.db import DatabaseError
from django.db.models import Q

from . import conf
from .cache import BlobUnavailable, HostMiss, HostTarget, SiteInfo, Unavailable, entry_overhead
from .http import Entry, build_file_entry, build_missing_entry, build_redirect_entry
from .mediatypes import header_value
from .models import Asset, Change, Site
from .snapshot import Snapshot, site_target
from .store import BlobStore

SITE_FIELDS = ("id", "subdomain", "is_active", "index_document", "error_document", "cache_control")


def cache_control_for(site: SiteInfo, path: str, settings: conf.Settings) -> str:
    if site.cache_control:
        return site.cache_control
    if settings.immutable_re.search(posixpath.basename(path)):
        return settings.IMMUTABLE_CACHE_CONTROL
    return settings.CACHE_CONTROL


class AssetRow:
    """One asset as read from the database or the snapshot, with its
    compressed variants (encoding, sha256, size, body offset). A body offset
    of -1 means the snapshot does not hold that body."""

    __slots__ = ("body_offset", "content_type", "last_modified", "path", "sha256", "size", "variants")

    def __init__(
        self,
        path: str,
        content_type: str,
        last_modified: float,
        sha256: str,
        size: int,
        body_offset: int = -1,
        variants: list[tuple[str, str, int, int]] | None = None,
    ) -> None:
        self.path = path
        self.content_type = content_type
        self.last_modified = last_modified
        self.sha256 = sha256
        self.size = size
        self.body_offset = body_offset
        self.variants = variants if variants is not None else []


class DatabaseLoader:
    """Answers the cache's misses from the snapshot when it can, else from
    the database; counts the queries it makes."""

    def __init__(self, store: BlobStore | None = None) -> None:
        self._store = store
        self.settings = conf.get()
        self.snapshot: Snapshot | None = None
        self.queries = 0

    @property
    def store(self) -> BlobStore:
        if self._store is None:
            self._store = BlobStore()
        return self._store

    # --- hosts ---------------------------------------------------------------

    def site_for_host(self, host: str) -> HostTarget:
        if self.snapshot is not None:
            target = site_target(self.snapshot, host)
            if target is not None:
                return target
        self.queries += 1
        suffix = "." + self.settings.DOMAIN
        if host.endswith(suffix):
            query = Site.objects.filter(subdomain=host[: -len(suffix)])
        else:
            query = Site.objects.filter(domains__hostname=host)
        try:
            rows = list(query.values_list(*SITE_FIELDS)[:1])
        except DatabaseError as exc:
            raise Unavailable(str(exc)) from exc
        return SiteInfo(*rows[0]) if rows else HostMiss.PASS

    # --- entries -------------------------------------------------------------

    def entries_for(self, site: SiteInfo, path: str) -> dict[str, Entry]:
        """The entry for ``path``, plus the site's error document entry,
        from one query."""
        if path.endswith("/"):
            own, index_path = path + site.index_document, None
        else:
            own, index_path = path, path + "/" + site.index_document
        wanted = [p for p in (own, index_path, site.error_path) if p]
        rows = self.rows(site.id, wanted)
        result: dict[str, Entry] = {}
        if own in rows:
            result[path] = self.file_entry(site, rows[own])
        elif index_path in rows:
            result[path] = build_redirect_entry(path)
        else:
            result[path] = build_missing_entry()
        if site.error_path and site.error_path not in result:
            error_row = rows.get(site.error_path)
            result[site.error_path] = self.file_entry(site, error_row) if error_row else build_missing_entry()
        for key_path, entry in result.items():
            entry.cost += entry_overhead(key_path, entry)  # the key is held too
        return result

    def rows(self, site_id: int, paths: list[str]) -> dict[str, AssetRow]:
        if self.snapshot is not None:
            known = self.snapshot.assets.get(site_id)
            if known is not None and all(known.get(path, -1) is not None for path in paths):
                return {
                    path: AssetRow(path, *self.snapshot.row(number))
                    for path in paths
                    if (number := known.get(path)) is not None
                }
        self.queries += 1
        query = Asset.objects.filter(site_id=site_id, path__in=paths).values_list(
            "path",
            "content_type",
            "last_modified",
            "blob_id",
            "blob__size",
            "blob__variants__encoding",
            "blob__variants__sha256",
            "blob__variants__size",
        )
        found: dict[str, AssetRow] = {}
        try:
            for path, content_type, modified, sha, size, v_encoding, v_sha, v_size in query:
                row = found.get(path)
                if row is None:
                    row = found[path] = AssetRow(path, content_type, modified.timestamp(), sha, size)
                if v_sha is not None:
                    row.variants.append((v_encoding, v_sha, v_size, -1))
        except DatabaseError as exc:
            raise Unavailable(str(exc)) from exc
        return found

    def file_entry(self, site: SiteInfo, row: AssetRow) -> Entry:
        return build_file_entry(
            content_type=header_value(row.content_type),
            last_modified=row.last_modified,
            cache_control=cache_control_for(site, row.path, self.settings),
            identity=(row.sha256, row.size, *self.body(row.sha256, row.size, row.body_offset)),
            variants=[
                (encoding, sha, size, *self.body(sha, size, offset)) for encoding, sha, size, offset in row.variants
            ],
        )

    def body(self, sha256: str, size: int, snapshot_offset: int = -1) -> tuple[bytes | None, str | None]:
        """(bytes, None) for a body kept in memory, (None, path) for one sent from disk."""
        if snapshot_offset >= 0 and size <= self.settings.MEMORY_FILE_LIMIT and self.snapshot is not None:
            data = self.snapshot.body_at(snapshot_offset, size, sha256)
            if data is not None:
                return data, None
        try:
            # From a remote storage this may download the blob into the
            # local tier: on a miss only, never on a hit.
            path = self.store.local_path(sha256, size)
        except OSError as exc:
            raise BlobUnavailable(f"blob {sha256}: {exc}") from exc
        if size > self.settings.MEMORY_FILE_LIMIT:
            return None, path
        try:
            with open(path, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise BlobUnavailable(f"blob {sha256}: {exc}") from exc
        if len(data) != size:
            raise BlobUnavailable(f"blob {sha256}: {len(data)} bytes on disk, {size} expected")
        return data, None

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
        fields = ("id", "site_id", "kind", "paths")
        return list(Change.objects.filter(condition).order_by("id").only(*fields)[:10_000])
