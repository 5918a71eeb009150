"""Writing the warm snapshot (its layout is described in ``snapshot.py``)."""

from __future__ import annotations

import json
import os
import time
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from . import conf
from .atomic import atomic_write
from .hosts import SERVING_FIELDS
from .records import AssetRecord, LocatedBlob, SiteRecord
from .snapshot import ENTRY, FOOTER, MAGIC, RECORD, VARIANT, VERSION, encode_path, path_digest


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
    sites: list[SiteRecord],
    assets: dict[int, list[AssetRecord]],
    bodies: Iterable[LocatedBlob],
) -> SnapshotSummary:
    """Write a snapshot atomically (temporary file, then rename).

    ``sites``: a site without a ``change_id`` was read at ``change_id``; one
    kept from an older snapshot keeps its older one. ``assets``: per
    deployment id (of a site's ``deployments``), its assets (the
    ``snapshot_offset`` of their blobs is not read: the new file's own is
    written); a site's deployments share one record per distinct asset.
    ``bodies``: the bodies to keep in the snapshot, in memory.
    """
    target = Path(path)
    summary = SnapshotSummary(path=str(target), sites=len(sites), change_id=change_id)
    with atomic_write(target, prefix=".snapshot-") as out:
        out.write(MAGIC)
        tables = _Tables(_write_bodies(out, bodies, summary))
        site_entries = []
        for site in sites:
            records, entry = _site_entry(site, change_id, assets, tables)
            out.write(tables.add(records))
            site_entries.append(entry)
        for table in (tables.variant_table(), tables.paths, tables.entries):
            tables.crc = zlib.crc32(table, tables.crc)
            out.write(table)
        summary.assets = tables.record_count
        summary.change_id = min([change_id, *(entry["change_id"] for entry in site_entries)])
        index = {
            "version": VERSION,
            "change_id": summary.change_id,
            "created": time.time(),
            "domain": conf.get().DOMAIN,
            "sites": site_entries,
            "types": list(tables.types),
            "bodies_length": summary.body_bytes,
            "records": tables.record_count,
            "variants": len(tables.variants),
            "paths_length": len(tables.paths),
            "entries": len(tables.entries) // ENTRY.size,
            "tables_crc": tables.crc,
        }
        encoded = json.dumps(index, separators=(",", ":")).encode()
        out.write(encoded)
        out.write(FOOTER.pack(len(encoded), zlib.crc32(encoded), MAGIC))
    summary.file_bytes = target.stat().st_size
    return summary


class _Tables:
    """The record, variant, path and entry tables as they are written, and
    their CRC (the records are written site by site, the others after)."""

    def __init__(self, offsets: dict[str, int]) -> None:
        self.offsets = offsets
        self.types: dict[str, int] = {}
        self.variants: list[bytes] = []
        self.record_count = 0
        self.crc = 0
        self.paths = bytearray()
        self.entries = bytearray()

    def add_path(self, path: str) -> tuple[bytes, int, int]:
        """Store ``path``: its digest, its offset in the path area, its length."""
        encoded = encode_path(path)
        offset = len(self.paths)
        if offset + len(encoded) >= 2**32:
            raise ValueError("the snapshot holds at most 4 GiB of paths")
        self.paths += encoded
        return path_digest(encoded), offset, len(encoded)

    def add_entries(self, entries: list[tuple[bytes, int, int, int]]) -> list[int]:
        """Store one deployment's entries (digest, record number, path
        offset, path length), sorted by digest; where its table is (first
        entry, count)."""
        first = len(self.entries) // ENTRY.size
        for entry in sorted(entries):
            self.entries += ENTRY.pack(*entry)
        return [first, len(entries)]

    def add(self, assets: list[AssetRecord]) -> bytes:
        """The record table of one site's ``assets``; their variants are kept
        for the variant table."""
        records = []
        for asset in assets:
            blob = asset.blob
            records.append(
                RECORD.pack(
                    bytes.fromhex(blob.sha256),
                    blob.size,
                    int(asset.last_modified),
                    self.offsets.get(blob.sha256, -1),
                    self.types.setdefault(asset.content_type, len(self.types)),
                    len(asset.variants),
                    len(self.variants),
                )
            )
            for variant in asset.variants:
                self.variants.append(
                    VARIANT.pack(
                        bytes.fromhex(variant.sha256),
                        variant.size,
                        self.offsets.get(variant.sha256, -1),
                        variant.encoding.encode(),
                    )
                )
        table = b"".join(records)
        self.record_count += len(records)
        self.crc = zlib.crc32(table, self.crc)
        return table

    def variant_table(self) -> bytes:
        """The variant table, written after every record table."""
        return b"".join(self.variants)


def _site_entry(
    site: SiteRecord, change_id: int, assets: dict[int, list[AssetRecord]], tables: _Tables
) -> tuple[list[AssetRecord], dict[str, Any]]:
    """A site's distinct records (numbered from ``tables.record_count``), and
    the site as the index holds it: per deployment, where its entry table
    is. Its paths are stored once for all its deployments."""
    paths: dict[str, tuple[bytes, int, int]] = {}
    numbers: dict[tuple[Any, ...], int] = {}
    records: list[AssetRecord] = []
    deployments = []
    for deployment in site.deployments:
        entries = []
        for asset in assets.get(deployment.id, []):
            same = (asset.content_type, int(asset.last_modified), *_blob_key(asset))
            number = numbers.get(same)
            if number is None:
                number = numbers[same] = tables.record_count + len(records)
                records.append(asset)
            stored = paths.get(asset.path)
            if stored is None:
                stored = paths[asset.path] = tables.add_path(asset.path)
            digest, offset, length = stored
            entries.append((digest, number, offset, length))
        deployments.append(
            {
                "id": deployment.id,
                "key": deployment.key,
                "aliases": list(deployment.aliases),
                "rules": deployment.rules,
                "entries": tables.add_entries(entries),
            }
        )
    entry = {
        "id": site.id,
        "subdomain": site.subdomain,
        "is_active": site.is_active,
        "index_document": site.index_document,
        "error_document": site.error_document,
        "cache_control": site.cache_control,
        "domains": list(site.domains),
        **{name: getattr(site, name) for name in SERVING_FIELDS},
        "visibility": site.visibility,
        "previews_private": site.previews_private,
        "access_tag": site.access_tag,
        "change_id": change_id if site.change_id is None else site.change_id,
        "live": site.live_deployment,
        "deployments": deployments,
    }
    return records, entry


def _blob_key(asset: AssetRecord) -> tuple[Any, ...]:
    return tuple((blob.sha256, blob.size, blob.encoding) for blob in asset.blobs())


def _write_bodies(out: BinaryIO, bodies: Iterable[LocatedBlob], summary: SnapshotSummary) -> dict[str, int]:
    """Write each distinct body once; sha256 → its offset in the body area."""
    offsets: dict[str, int] = {}
    position = 0
    for located in bodies:
        sha, data = located.blob.sha256, located.body
        if data is None:
            raise ValueError(f"blob {sha}: the snapshot holds bodies in memory, not files")
        if sha in offsets:
            continue
        out.write(data)
        offsets[sha] = position
        position += len(data)
        summary.bodies += 1
    summary.body_bytes = position
    return offsets
