"""The local tier's index: blobs present on this machine, least recently used
first, with the disk each occupies.

Pure bookkeeping, no file system and no lock: the tier holds its lock around
every call.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable


class TierRecord:
    __slots__ = ("alloc", "touched", "used")

    def __init__(self, alloc: int, used: float, touched: float) -> None:
        #: Bytes of disk the file occupies (allocated blocks).
        self.alloc = alloc
        #: Wall-clock time of the last use seen by this process.
        self.used = used
        #: When this process last bumped the file's mtime.
        self.touched = touched


class BlobIndex:
    """Records by hash in recency order, and the bytes they add up to."""

    __slots__ = ("_records", "used")

    def __init__(self) -> None:
        self._records: OrderedDict[str, TierRecord] = OrderedDict()
        self.used = 0

    def __len__(self) -> int:
        return len(self._records)

    def __contains__(self, sha256: str) -> bool:
        return sha256 in self._records

    def get(self, sha256: str) -> TierRecord | None:
        return self._records.get(sha256)

    def add(self, sha256: str, record: TierRecord) -> TierRecord:
        """Index a blob as the most recently used (replacing its old record)."""
        self.pop(sha256)
        self._records[sha256] = record
        self.used += record.alloc
        return record

    def use(self, sha256: str, record: TierRecord, now: float, touch_interval: float) -> bool:
        """Mark a blob used now; return whether its file's mtime is due a bump."""
        self._records.move_to_end(sha256)
        record.used = now
        if now - record.touched >= touch_interval:
            record.touched = now
            return True
        return False

    def pop(self, sha256: str) -> TierRecord | None:
        record = self._records.pop(sha256, None)
        if record is not None:
            self.used -= record.alloc
        return record

    def discard(self, sha256: str, record: TierRecord) -> None:
        """Drop ``record`` unless the blob was indexed again since."""
        if self._records.get(sha256) is record:
            self.pop(sha256)

    def oldest(self, excess: int, keep: str | None) -> list[tuple[str, int]]:
        """(hash, bytes) of the least recently used blobs that free ``excess``
        bytes, sparing ``keep``."""
        victims: list[tuple[str, int]] = []
        for sha, record in self._records.items():
            if excess <= 0:
                break
            if sha != keep:
                victims.append((sha, record.alloc))
                excess -= record.alloc
        return victims

    def replace(self, records: Iterable[tuple[float, str, TierRecord]]) -> None:
        """Index exactly ``records`` ((last use, hash, record)), oldest first."""
        ordered = sorted(records, key=lambda item: item[0])
        self._records = OrderedDict((sha, record) for _, sha, record in ordered)
        self.used = sum(record.alloc for record in self._records.values())
