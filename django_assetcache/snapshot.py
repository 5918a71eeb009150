"""The warm snapshot: the whole index plus small bodies, in one file.

Layout: ``MAGIC`` (8 bytes, ending in the format version); the bodies; one
fixed-size record per asset (``_RECORD``: hash, size, Last-Modified, where
its body is, its media type and variants); one record per compressed variant
(``_VARIANT``); the index as UTF-8 JSON (sites, their hosts, their paths in
record order, media types, the lengths of the areas before it and the
CRC-32 of the record and variant tables); then a footer: the index length,
the index's CRC-32 and ``MAGIC`` again. Bodies are written once, as they are
read; a file cut short loses its footer and is refused.

Every byte that decides a response is checked: the tables and the index by
their CRCs when the file is loaded (a mismatch and the whole snapshot is
ignored: the process serves from the database), each body against the
SHA-256 its checked record names when its entry is built (a body that does
not match is read from the blob store instead).

A process maps the file (``mmap``), so every worker on a machine shares one
copy of bodies and records through the page cache. Loading parses only the
JSON index: per asset, the process keeps its path and a record number, and
reads the record when the path is first requested.
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
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, BinaryIO

from . import conf
from .atomic import atomic_write
from .cache import HostTarget, SiteInfo

logger = logging.getLogger("django_assetcache")

#: The last two characters are the format version: a snapshot of another
#: version is refused (and warmup writes a new one).
MAGIC = b"ACSNAP03"
VERSION = 3
_FOOTER = struct.Struct("<QQ8s")
#: sha256, size, Last-Modified, body offset (-1: not in the snapshot),
#: media type index, variant count, first variant.
_RECORD = struct.Struct("<32sQqqHHI")
#: sha256, size, body offset, content coding.
_VARIANT = struct.Struct("<32sQq8s")

#: A decoded record: (content_type, last_modified, sha256, size, body_offset,
#: variants [(encoding, sha256, size, body_offset), …]).
Row = tuple[str, int, str, int, int, list[tuple[str, str, int, int]]]


class SnapshotError(Exception):
    """The snapshot is missing, truncated, of another version, or damaged."""


# --- writing ------------------------------------------------------------------


@dataclass
class SnapshotSummary:
    path: str
    sites: int = 0
    assets: int = 0
    bodies: int = 0
    body_bytes: int = 0
    file_bytes: int = 0
    change_id: int = 0


def write_snapshot(
    path: str | os.PathLike[str],
    *,
    change_id: int,
    sites: list[dict[str, Any]],
    assets: dict[int, list[list[Any]]],
    bodies: Iterable[tuple[str, bytes]],
) -> SnapshotSummary:
    """Write a snapshot atomically (temporary file, then rename).

    ``sites``: dicts with id, subdomain, is_active, index_document,
    error_document, cache_control, domains, and optionally change_id: the
    feed position that site's rows were read at (default ``change_id``; a
    site kept from an older snapshot keeps its older one). ``assets``: per
    site id, rows ``[path, content_type, last_modified (int), sha256, size,
    variants]`` with variants ``[[encoding, sha256, size], …]``. ``bodies``:
    (sha256, bytes) of the bodies to keep in the snapshot.
    """
    target = Path(path)
    summary = SnapshotSummary(path=str(target), sites=len(sites), change_id=change_id)
    with atomic_write(target, prefix=".snapshot-") as out:
        out.write(MAGIC)
        offsets = _write_bodies(out, bodies, summary)
        types: dict[str, int] = {}
        variants: list[bytes] = []
        site_entries = []
        tables_crc = 0
        record_count = 0
        for site in sites:
            rows = assets.get(site["id"], [])
            records = []
            for _path, content_type, modified, sha, size, blob_variants in rows:
                records.append(
                    _RECORD.pack(
                        bytes.fromhex(sha),
                        size,
                        int(modified),
                        offsets.get(sha, -1),
                        types.setdefault(content_type, len(types)),
                        len(blob_variants),
                        len(variants),
                    )
                )
                for encoding, v_sha, v_size in blob_variants:
                    variants.append(
                        _VARIANT.pack(bytes.fromhex(v_sha), v_size, offsets.get(v_sha, -1), encoding.encode())
                    )
            table = b"".join(records)
            out.write(table)
            record_count += len(records)
            tables_crc = zlib.crc32(table, tables_crc)
            site_entries.append({**site, "change_id": site.get("change_id", change_id), "paths": [r[0] for r in rows]})
        summary.assets = record_count
        table = b"".join(variants)
        out.write(table)
        summary.change_id = min([change_id, *(site["change_id"] for site in site_entries)])
        index = {
            "version": VERSION,
            "change_id": summary.change_id,
            "created": time.time(),
            "domain": conf.get().DOMAIN,
            "sites": site_entries,
            "types": list(types),
            "bodies_length": summary.body_bytes,
            "records": record_count,
            "variants": len(variants),
            "tables_crc": zlib.crc32(table, tables_crc),
        }
        encoded = json.dumps(index, separators=(",", ":")).encode()
        out.write(encoded)
        out.write(_FOOTER.pack(len(encoded), zlib.crc32(encoded), MAGIC))
    summary.file_bytes = target.stat().st_size
    return summary


def _write_bodies(out: BinaryIO, bodies: Iterable[tuple[str, bytes]], summary: SnapshotSummary) -> dict[str, int]:
    """Write each distinct body once; sha256 → its offset in the body area."""
    offsets: dict[str, int] = {}
    position = 0
    for sha, data in bodies:
        if sha in offsets:
            continue
        out.write(data)
        offsets[sha] = position
        position += len(data)
        summary.bodies += 1
    summary.body_bytes = position
    return offsets


# --- reading ------------------------------------------------------------------


class Snapshot:
    """A loaded snapshot: lookups by host and by (site, path), bodies by hash."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = str(path)
        try:
            with open(self.path, "rb") as f:
                size = os.fstat(f.fileno()).st_size
                if size < len(MAGIC) + _FOOTER.size:
                    raise SnapshotError("truncated")
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        except OSError as exc:
            raise SnapshotError(str(exc)) from exc
        index, index_start = _read_index(self._map)
        self.bodies_start = len(MAGIC)
        self.records_start = self.bodies_start + index["bodies_length"]
        self.variants_start = self.records_start + index["records"] * _RECORD.size
        if self.records_start > index_start or self.variants_start + index["variants"] * _VARIANT.size != index_start:
            raise SnapshotError("records and index disagree in length")
        # One CRC over every record and variant, here rather than per record
        # when it is read: the first read of a record happens while a request
        # waits, and a damaged record found then could no longer make the
        # process ignore the snapshot whole. It is one pass over 64 B per
        # asset: measured 2 to 5 ms for 100,000 assets (zlib.crc32 on a
        # memoryview of the map, no copy), against about 40 ms for the whole
        # hydration (docs/benchmarks-warm.md).
        with memoryview(self._map) as whole, whole[self.records_start : index_start] as tables:
            if zlib.crc32(tables) != index["tables_crc"]:
                raise SnapshotError("record table checksum mismatch")
        self.change_id: int = index["change_id"]
        self.created: float = index["created"]
        self.domain: str = index["domain"]
        self.types: list[str] = index["types"]
        self.record_count: int = index["records"]
        self.sites: dict[int, dict[str, Any]] = {}
        self.hosts: dict[str, int] = {}
        # Per site, path → record number. None marks a path that changed
        # after the snapshot: the database knows better.
        self.assets: dict[int, dict[str, int | None]] = {}
        #: Per site, the feed position its rows were read at: a replayed
        #: change at or before it is already in them.
        self.site_change_ids: dict[int, int] = {}
        first = 0
        for site in index["sites"]:
            paths = site.pop("paths")
            self.assets[site["id"]] = dict(zip(paths, range(first, first + len(paths)), strict=False))
            first += len(paths)
            self.sites[site["id"]] = site
            self.site_change_ids[site["id"]] = site["change_id"]
            self.hosts[f"{site['subdomain']}.{self.domain}"] = site["id"]
            for hostname in site["domains"]:
                self.hosts[hostname] = site["id"]

    def row(self, number: int) -> Row:
        sha, size, modified, body_offset, type_index, variant_count, first_variant = _RECORD.unpack_from(
            self._map, self.records_start + number * _RECORD.size
        )
        variants = []
        for index in range(first_variant, first_variant + variant_count):
            v_sha, v_size, v_offset, encoding = _VARIANT.unpack_from(
                self._map, self.variants_start + index * _VARIANT.size
            )
            variants.append((encoding.rstrip(b"\0").decode(), v_sha.hex(), v_size, v_offset))
        return self.types[type_index], modified, sha.hex(), size, body_offset, variants

    def rows(self) -> Iterator[Row]:
        for number in range(self.record_count):
            yield self.row(number)

    def site_rows(self, site_id: int) -> Iterator[tuple[str, Row]]:
        """(path, row) of every asset of a site the snapshot still answers for."""
        for path, number in self.assets.get(site_id, {}).items():
            if number is not None:
                yield path, self.row(number)

    @cached_property
    def bodies(self) -> dict[str, tuple[int, int]]:
        """sha256 → (offset, length) of every body held (for tools, not requests)."""
        held: dict[str, tuple[int, int]] = {}
        for _, _, sha, size, offset, variants in self.rows():
            for blob_sha, blob_size, blob_offset in [(sha, size, offset), *((v[1], v[2], v[3]) for v in variants)]:
                if blob_offset >= 0:
                    held[blob_sha] = (blob_offset, blob_size)
        return held

    def body_at(self, offset: int, size: int, sha256: str) -> bytes | None:
        """The body stored at ``offset``, if intact."""
        start = self.bodies_start + offset
        data = self._map[start : start + size]
        if hashlib.sha256(data).hexdigest() != sha256:
            logger.warning("assetcache: snapshot body %s is damaged; reading the blob store", sha256)
            return None
        return data

    def forget(self, site_id: int | None, paths: list[str] | None, hosts: bool, change_id: int | None = None) -> None:
        """Stop answering for what change ``change_id`` touched: the database
        knows better, unless that site's rows were read after the change."""
        if site_id is None:
            return
        if change_id is not None and change_id <= self.site_change_ids.get(site_id, -1):
            return
        if hosts:
            self.hosts = {host: sid for host, sid in self.hosts.items() if sid != site_id}
            self.sites.pop(site_id, None)
        if paths is None or hosts:
            self.assets.pop(site_id, None)
        else:
            rows = self.assets.get(site_id)
            if rows is not None:
                for path in paths:
                    rows[path] = None  # changed since: ask the database

    def stats(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "change_id": self.change_id,
            "created": self.created,
            "age_seconds": time.time() - self.created,
            "sites": len(self.sites),
            "assets": sum(len(rows) for rows in self.assets.values()),
            "stale_paths": sum(1 for rows in self.assets.values() for row in rows.values() if row is None),
            "bodies": len(self.bodies),
            "body_bytes": sum(length for _, length in self.bodies.values()),
            "file_bytes": len(self._map),
        }


def _read_index(data: mmap.mmap) -> tuple[dict[str, Any], int]:
    """The checked index, and where it starts in the file."""
    size = len(data)
    index_length, crc, end_magic = _FOOTER.unpack_from(data, size - _FOOTER.size)
    head = data[: len(MAGIC)]
    if head != MAGIC and head.startswith(MAGIC[:-2]):
        raise SnapshotError(f"format version {head[-2:].decode(errors='replace')}, expected {MAGIC[-2:].decode()}")
    if head != MAGIC or end_magic != MAGIC:
        raise SnapshotError("truncated, or not a snapshot")
    index_start = size - _FOOTER.size - index_length
    if index_start < len(MAGIC):
        raise SnapshotError("truncated index")
    encoded = data[index_start : size - _FOOTER.size]
    if zlib.crc32(encoded) != crc:
        raise SnapshotError("index checksum mismatch")
    try:
        index = json.loads(encoded)
    except ValueError as exc:
        raise SnapshotError(f"unreadable index: {exc}") from exc
    if index.get("version") != VERSION:
        raise SnapshotError(f"version {index.get('version')!r}, expected {VERSION}")
    return index, index_start


def load(path: str | None = None) -> Snapshot:
    return Snapshot(path or conf.get().SNAPSHOT_PATH)


def site_target(snapshot: Snapshot, host: str) -> HostTarget | None:
    """The SiteInfo for a host the snapshot knows, else None."""
    site_id = snapshot.hosts.get(host)
    if site_id is None:
        return None
    site = snapshot.sites[site_id]
    return SiteInfo(
        site["id"],
        site["subdomain"],
        site["is_active"],
        site["index_document"],
        site["error_document"],
        site["cache_control"],
    )
