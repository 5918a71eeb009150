"""The warm snapshot: the whole index plus small bodies, in one file.

Layout: ``MAGIC`` (8 bytes, ending in the format version); the bodies; one
fixed-size record per distinct asset of a site (``RECORD``: hash, size,
Last-Modified, where its body is, its media type and variants), shared by
every deployment of the site that has it; one record per compressed variant
(``VARIANT``); the paths (UTF-8, each site's once, end to end); per
deployment a table of one ``ENTRY`` per asset (the path's digest, its record
number, where its path is), sorted by digest; the index as UTF-8 JSON
(sites, their hosts, their transport settings, their live deployment, and
per deployment kept (the live one and the retained ones, with their key,
aliases and compiled rules) where its entry table is; media types, the
lengths of the areas before it and the CRC-32 of everything between the
bodies and the index); then a footer: the index length, the index's CRC-32
and ``MAGIC`` again. Bodies are written once, as they are read; a file cut
short loses its footer and is refused.

Every byte that decides a response is checked: the tables and the index by
their CRCs when the file is loaded (a mismatch and the whole snapshot is
ignored: the process serves from the database), each body against the
SHA-256 its checked record names when its entry is built (a body that does
not match is read from the blob store instead).

A process maps the file (``mmap``), so every worker on a machine shares one
copy of bodies, records and entry tables through the page cache. Loading
parses only the JSON index, whose size grows with the sites, not the assets:
a path's first request finds its entry by a binary search of its
deployment's table in the map, and compares the stored path to the asked one
(two paths may share a digest).
"""

from __future__ import annotations

import hashlib
import json
import logging
import mmap
import os
import struct
import time
import zlib
from bisect import bisect_left
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from django.conf import settings as django_settings

from . import conf
from .hosts import SERVING_FIELDS, HostTarget, SiteInfo
from .records import AssetRecord, BlobRecord, DeploymentRecord, SiteRecord

logger = logging.getLogger("django_assetcache")

#: The last two characters are the format version: a snapshot of another
#: version is refused (and warmup writes a new one).
MAGIC = b"ACSNAP08"
VERSION = 7
FOOTER = struct.Struct("<QQ8s")
#: sha256, size, Last-Modified, body offset (-1: not in the snapshot),
#: media type index, variant count, first variant.
RECORD = struct.Struct("<32sQqqHHI")
#: sha256, size, body offset, content coding.
VARIANT = struct.Struct("<32sQq8s")
#: path digest (``path_digest``), record number, path offset in the path
#: area, path length.
ENTRY = struct.Struct("<8sIII")
DIGEST_SIZE = 8


def path_digest(encoded: bytes) -> bytes:
    """The digest an entry table is sorted by, of a path encoded by ``encode_path``."""
    return hashlib.blake2b(encoded, digest_size=DIGEST_SIZE).digest()


def encode_path(path: str) -> bytes:
    # surrogatepass: a request path decoded with surrogates is looked up
    # (and found absent) rather than failing.
    return path.encode(errors="surrogatepass")


class SnapshotError(Exception):
    """The snapshot is missing, truncated, of another version, or damaged."""


@dataclass(slots=True)
class EntryTable:
    """Where a deployment's entries are in the map, and the paths changed
    since the snapshot (the database knows better)."""

    first: int
    count: int
    stale: set[str] = field(default_factory=set)


class Snapshot:
    """A loaded snapshot: lookups by host and by (site, path), bodies by hash."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < len(MAGIC) + FOOTER.size:
                    raise SnapshotError("truncated")
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise SnapshotError(str(exc)) from exc
        index, index_start = _read_index(self._map)
        self.bodies_start = len(MAGIC)
        self.records_start = self.bodies_start + index["bodies_length"]
        self.variants_start = self.records_start + index["records"] * RECORD.size
        self.paths_start = self.variants_start + index["variants"] * VARIANT.size
        self.entries_start = self.paths_start + index["paths_length"]
        self.entry_count: int = index["entries"]
        starts = (self.bodies_start, self.records_start, self.variants_start, self.paths_start, self.entries_start)
        if list(starts) != sorted(starts) or self.entries_start + self.entry_count * ENTRY.size != index_start:
            raise SnapshotError("tables and index disagree in length")
        # One CRC over every record, variant, path and entry, here rather
        # than when each is read: the first read happens while a request
        # waits, and damage found then could no longer make the process
        # ignore the snapshot whole. zlib.crc32 on a memoryview of the map
        # (no copy) runs at about 1 GB/s: 0.1 s for 1,000,000 assets.
        with memoryview(self._map) as whole, whole[self.records_start : index_start] as tables:
            if zlib.crc32(tables) != index["tables_crc"]:
                raise SnapshotError("table checksum mismatch")
        _release(self._map, self.records_start, index_start)
        self.change_id: int = index["change_id"]
        self.created: float = index["created"]
        self.domain: str = index["domain"]
        self.types: list[str] = index["types"]
        self.record_count: int = index["records"]
        self.sites: dict[int, SiteRecord] = {}
        #: Host name → (site id, deployment id, whether a preview host).
        self.hosts: dict[str, tuple[int, int | None, bool]] = {}
        #: Per deployment answered for, its entry table.
        self.tables: dict[int, EntryTable] = {}
        #: Per site, the deployments the snapshot holds.
        self.site_deployments: dict[int, list[int]] = {}
        #: Per deployment held, its compiled site rules.
        self.rules: dict[int, str] = {}
        #: Per site, the feed position its rows were read at: a replayed
        #: change at or before it is already in them.
        self.site_change_ids: dict[int, int] = {}
        for entry in index["sites"]:
            self._add_site(entry)

    def _add_site(self, entry: dict[str, Any]) -> None:
        site = _site_record(entry)
        self.sites[site.id] = site
        self.site_change_ids[site.id] = entry["change_id"]
        live = (site.id, site.live_deployment, False)
        self.hosts[f"{site.subdomain}.{self.domain}"] = live
        for hostname in site.domains:
            self.hosts[hostname] = live
        self.site_deployments[site.id] = []
        for deployment, (first, count) in zip(
            site.deployments, (d["entries"] for d in entry["deployments"]), strict=True
        ):
            if first < 0 or count < 0 or first + count > self.entry_count:
                raise SnapshotError(f"deployment {deployment.key}: entries out of range")
            self.tables[deployment.id] = EntryTable(first, count)
            self.site_deployments[site.id].append(deployment.id)
            self.rules[deployment.id] = deployment.rules
            for name in (deployment.key, *deployment.aliases):
                self.hosts[f"{name}--{site.subdomain}.{self.domain}"] = (site.id, deployment.id, True)

    def assets_at(self, deployment_id: int, paths: list[str]) -> dict[str, AssetRecord] | None:
        """The assets at ``paths`` of a deployment (a path it does not have
        is left out), or None when the snapshot cannot answer for every one
        of them: the database knows better."""
        table = self.tables.get(deployment_id)
        if table is None or not table.stale.isdisjoint(paths):
            return None
        found = {}
        for path in paths:
            number = self._find(table, path)
            if number is None:
                return None
            if number >= 0:
                found[path] = self.record(number, path)
        return found

    def _find(self, table: EntryTable, path: str) -> int | None:
        """The record number of ``path`` in ``table``; -1 when it has no
        such path, None when its entry points outside the file's tables."""
        encoded = encode_path(path)
        digest = path_digest(encoded)
        start = self.entries_start + table.first * ENTRY.size
        data = self._map

        def digest_at(position: int) -> bytes:
            at = start + position * ENTRY.size
            return data[at : at + DIGEST_SIZE]

        for position in range(bisect_left(range(table.count), digest, key=digest_at), table.count):
            found, number, offset, length = ENTRY.unpack_from(data, start + position * ENTRY.size)
            if found != digest:
                break
            begin = self.paths_start + offset
            if number >= self.record_count or begin + length > self.entries_start:
                return None
            if data[begin : begin + length] == encoded:
                return int(number)
        return -1

    def record(self, number: int, path: str) -> AssetRecord:
        """The asset of record ``number``, whose path is ``path``."""
        content_type, modified, blob, variants = self._unpack(number)
        return AssetRecord(path, content_type, modified, blob, variants)

    def _unpack(self, number: int) -> tuple[str, int, BlobRecord, tuple[BlobRecord, ...]]:
        sha, size, modified, body_offset, type_index, variant_count, first_variant = RECORD.unpack_from(
            self._map, self.records_start + number * RECORD.size
        )
        variants = []
        for index in range(first_variant, first_variant + variant_count):
            v_sha, v_size, v_offset, encoding = VARIANT.unpack_from(
                self._map, self.variants_start + index * VARIANT.size
            )
            variants.append(BlobRecord(v_sha.hex(), v_size, encoding.rstrip(b"\0").decode(), v_offset))
        return self.types[type_index], modified, BlobRecord(sha.hex(), size, "", body_offset), tuple(variants)

    def blobs(self) -> Iterator[BlobRecord]:
        """The blob and the variants of every record, in record order."""
        for number in range(self.record_count):
            _, _, blob, variants = self._unpack(number)
            yield blob
            yield from variants

    def deployment_assets(self, deployment_id: int) -> Iterator[AssetRecord]:
        """Every asset of a deployment the snapshot still answers for, in
        the order of its entry table."""
        table = self.tables.get(deployment_id)
        if table is None:
            return
        start = self.entries_start + table.first * ENTRY.size
        for _, number, offset, length in ENTRY.iter_unpack(self._map[start : start + table.count * ENTRY.size]):
            begin = self.paths_start + offset
            path = self._map[begin : begin + length].decode(errors="surrogatepass")
            if path not in table.stale:
                yield self.record(number, path)

    @cached_property
    def bodies(self) -> dict[str, BlobRecord]:
        """sha256 → the blob of every body held (for tools, not requests)."""
        return {blob.sha256: blob for blob in self.blobs() if blob.snapshot_offset >= 0}

    def body_at(self, offset: int, size: int, sha256: str) -> bytes | None:
        """The body stored at ``offset``, if intact."""
        start = self.bodies_start + offset
        data = self._map[start : start + size]
        if hashlib.sha256(data).hexdigest() != sha256:
            logger.warning("assetcache: snapshot body %s is damaged; reading the blob store", sha256)
            return None
        return data

    def forget(
        self,
        site_id: int | None,
        paths: list[str] | None,
        hosts: bool,
        change_id: int | None = None,
        switch: bool = False,
    ) -> None:
        """Stop answering for what change ``change_id`` touched: the database
        knows better, unless that site's rows were read after the change.
        A ``switch`` (which deployment hosts serve) drops the site's hosts
        and keeps its deployments' rows, which never change."""
        if site_id is None:
            return
        if change_id is not None and change_id <= self.site_change_ids.get(site_id, -1):
            return
        if hosts:
            self.hosts = {host: target for host, target in self.hosts.items() if target[0] != site_id}
            if not switch:
                self.sites.pop(site_id, None)
        if switch:
            return
        deployments = self.site_deployments.get(site_id, [])
        for deployment_id in deployments:
            if paths is None or hosts:
                self.tables.pop(deployment_id, None)
            elif (table := self.tables.get(deployment_id)) is not None:
                table.stale.update(paths)  # changed since: ask the database

    def carry(self, previous: int, new: int, paths: list[str]) -> None:
        """Deployment ``new`` holds the rows of ``previous`` but at
        ``paths``: answer for it from them (``paths`` from the database)."""
        table = self.tables.get(previous)
        if table is None or new in self.tables:
            return
        self.tables[new] = EntryTable(table.first, table.count, table.stale | set(paths))
        for deployments in self.site_deployments.values():
            if previous in deployments:
                deployments.append(new)

    def stats(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "change_id": self.change_id,
            "created": self.created,
            "age_seconds": time.time() - self.created,
            "sites": len(self.sites),
            "assets": sum(table.count for table in self.tables.values()),
            "stale_paths": sum(len(table.stale) for table in self.tables.values()),
            "bodies": len(self.bodies),
            "body_bytes": sum(blob.size for blob in self.bodies.values()),
            "file_bytes": len(self._map),
        }


def _release(data: mmap.mmap, start: int, end: int) -> None:
    """Unmap from this process the pages from ``start`` to ``end``, which
    the checksum read: they stay in the page cache, shared, and come back
    when a miss reads one, so the process's resident memory grows with the
    paths asked for, not with the install (where ``madvise`` exists)."""
    if hasattr(mmap, "MADV_DONTNEED"):
        aligned = start - start % mmap.PAGESIZE
        data.madvise(mmap.MADV_DONTNEED, aligned, end - aligned)


def _read_index(data: mmap.mmap) -> tuple[dict[str, Any], int]:
    """The checked index, and where it starts in the file."""
    size = len(data)
    index_length, crc, end_magic = FOOTER.unpack_from(data, size - FOOTER.size)
    head = data[: len(MAGIC)]
    if head != MAGIC and head.startswith(MAGIC[:-2]):
        raise SnapshotError(f"format version {head[-2:].decode(errors='replace')}, expected {MAGIC[-2:].decode()}")
    if head != MAGIC or end_magic != MAGIC:
        raise SnapshotError("truncated, or not a snapshot")
    index_start = size - FOOTER.size - index_length
    if index_start < len(MAGIC):
        raise SnapshotError("truncated index")
    encoded = data[index_start : size - FOOTER.size]
    if zlib.crc32(encoded) != crc:
        raise SnapshotError("index checksum mismatch")
    try:
        index = json.loads(encoded)
    except ValueError as exc:
        raise SnapshotError(f"unreadable index: {exc}") from exc
    if index.get("version") != VERSION:
        raise SnapshotError(f"version {index.get('version')!r}, expected {VERSION}")
    return index, index_start


def _site_record(entry: dict[str, Any]) -> SiteRecord:
    return SiteRecord(
        id=entry["id"],
        subdomain=entry["subdomain"],
        is_active=entry["is_active"],
        index_document=entry["index_document"],
        error_document=entry["error_document"],
        cache_control=entry["cache_control"],
        domains=tuple(entry["domains"]),
        change_id=entry["change_id"],
        live_deployment=entry["live"],
        deployments=tuple(
            DeploymentRecord(deployment["id"], deployment["key"], tuple(deployment["aliases"]), deployment["rules"])
            for deployment in entry["deployments"]
        ),
        **{name: entry[name] for name in SERVING_FIELDS},
        visibility=entry["visibility"],
        previews_private=entry["previews_private"],
        access_tag=entry["access_tag"],
    )


def load(path: str | None = None) -> Snapshot:
    return Snapshot(path or conf.get().SNAPSHOT_PATH)


def site_target(snapshot: Snapshot, host: str) -> HostTarget | None:
    """The SiteInfo for a host the snapshot knows, else None."""
    target = snapshot.hosts.get(host)
    if target is None:
        return None
    site_id, deployment_id, preview = target
    site = snapshot.sites[site_id]
    return SiteInfo(
        site.id,
        site.subdomain,
        site.is_active,
        site.index_document,
        site.error_document,
        site.cache_control,
        *(getattr(site, name) for name in SERVING_FIELDS),
        visibility=site.visibility,
        previews_private=site.previews_private,
        access_tag=site.access_tag,
        force_https=django_settings.SECURE_SSL_REDIRECT,
        deployment_id=deployment_id,
        preview=preview,
        rules=snapshot.rules.get(deployment_id, "") if deployment_id is not None else "",
    )
