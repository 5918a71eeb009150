"""The local disk tier: blobs of a remote storage, copied to this machine.

A storage without local paths (S3 and the like) cannot hand a file to
``sendfile``, and opening a remote file per request would put the network on
the request path. So the first time a blob is needed on this machine it is
downloaded once (one download per blob among threads, a striped ``flock``
among processes), verified against its hash, and renamed into
``ASSETCACHE_LOCAL_DIR``. ``ASSETCACHE_DISK_LIMIT`` bounds the tier, least
recently used out; an evicted blob waits ``ASSETCACHE_DELETE_DELAY`` seconds
before its file goes (``delayed.py``) so responses already sending it finish.
docs/s3.md describes the whole design.

Recency is refreshed when a blob is asked for here, i.e. when a cache entry
is built, never on a cache hit (a hit must not stat or lock). The file's mtime
is bumped too (at most once a minute) so that other processes sharing the
directory see that the blob is in use, and a restarted process rebuilds its
index from the files present in that order.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator

from .blobfiles import (
    SHA_RE,
    BlobMismatch,
    Fetch,
    FileLock,
    TierError,
    allocated,
    remove_older_than,
    unlink,
    walk_directory,
    write_verified,
)
from .delayed import DelayedDeletes
from .tierindex import BlobIndex, TierRecord

__all__ = ["BlobMismatch", "LocalTier", "TierError", "listeners", "walk_directory"]

logger = logging.getLogger("django_assetcache")

#: Work files live in these subdirectories of the tier.
TEMP_DIR = ".tmp"
LOCK_DIR = ".locks"
#: Cross-process download locks: one file per stripe rather than per blob, so
#: lock files never pile up and never need deleting (deleting a lock file
#: others may hold is a race of its own).
LOCK_STRIPES = 256
#: A temporary file this old was left by a process that died mid-download.
STALE_TEMP_SECONDS = 3600.0
#: Seconds between re-reads of the directory, to learn about files other
#: processes added or removed (the byte count of the limit depends on it).
RESCAN_INTERVAL = 300.0
#: A blob's mtime is bumped at most this often when it is used.
TOUCH_INTERVAL = 60.0

#: Told the paths of blobs evicted or deleted, so a process cache can drop
#: entries that point at them (called outside the tier's lock).
Listener = Callable[[list[str]], None]

#: Process-wide listeners, whatever tier object evicts.
listeners: list[Listener] = []


class _Download:
    __slots__ = ("error", "event")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: BaseException | None = None


class LocalTier:
    """The blobs of one directory, bounded, least recently used first out."""

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        disk_limit: float | int,
        delete_delay: float = 60.0,
    ) -> None:
        self.directory = os.path.abspath(os.fspath(directory))
        if isinstance(disk_limit, bool) or disk_limit < 0:
            raise ValueError(f"ASSETCACHE_DISK_LIMIT must be a fraction below 1 or bytes, not {disk_limit!r}")
        #: A fraction of the filesystem, or None when the limit is in bytes.
        self.fraction: float | None = float(disk_limit) if 0 < disk_limit < 1 else None
        self.limit_bytes = 0 if self.fraction is not None else int(disk_limit)
        self.delete_delay = max(0.0, float(delete_delay))
        self._delayed = DelayedDeletes(self.delete_delay, self.purge)
        self.temp_dir = os.path.join(self.directory, TEMP_DIR)
        self.lock_dir = os.path.join(self.directory, LOCK_DIR)
        os.makedirs(self.temp_dir, exist_ok=True)
        os.makedirs(self.lock_dir, exist_ok=True)
        # Counters, for tests, the stats command and benchmarks.
        self.downloads = 0
        self.download_bytes = 0
        self.evictions = 0
        self.mismatches = 0
        self.deleted = 0
        #: Callers that waited for another thread's download of the same blob.
        self.waits = 0
        self._lock = threading.Lock()
        #: Least recently used first.
        self._index = BlobIndex()
        self._inflight: dict[str, _Download] = {}
        remove_older_than(self.temp_dir, STALE_TEMP_SECONDS)
        self.rescan()

    # --- paths -----------------------------------------------------------------

    def path_of(self, sha256: str) -> str:
        """Where the blob lives in the tier (whether or not it is there)."""
        return os.path.join(self.directory, sha256[:2], sha256[2:4], sha256)

    def path_for(self, sha256: str, size: int | None, fetch: Fetch) -> str:
        """A local path holding the blob's bytes, downloading them if needed.

        ``size`` (when known) is checked along with the hash. Raises
        ``TierError`` (``BlobMismatch`` for wrong bytes) when the blob cannot
        be had; no partial or wrong file is ever left at the returned path.
        """
        return self._obtain(sha256, size, fetch, download=True)

    def add_bytes(self, sha256: str, data: bytes) -> str:
        """Put bytes this process already holds (a compressed variant it just
        made) into the tier, sparing a download; verified like one."""
        return self._obtain(sha256, len(data), lambda: (data,), download=False)

    def _obtain(self, sha256: str, size: int | None, fetch: Fetch, *, download: bool) -> str:
        if not SHA_RE.fullmatch(sha256):
            raise TierError(f"not a blob hash: {sha256!r}")
        path = self.path_of(sha256)
        while True:
            now = time.time()
            waiter: _Download | None = None
            owner = False
            with self._lock:
                record = self._index.get(sha256)
                if record is None:
                    pending = self._delayed.reclaim(sha256)
                    if pending is not None:
                        # Evicted but not yet deleted: wanted again, so it
                        # comes back without a download.
                        record = self._index.add(sha256, TierRecord(pending.alloc, now, 0.0))
                if record is not None:
                    touch = self._index.use(sha256, record, now, TOUCH_INTERVAL)
                else:
                    waiter = self._inflight.get(sha256)
                    if waiter is None:
                        waiter = self._inflight[sha256] = _Download()
                        owner = True
            if record is not None:
                if self._present(path, size, touch):
                    return path
                # Removed under us (another process, assetcache_gc) or cut
                # short: forget it and fetch it again.
                self._forget(sha256, record)
                continue
            assert waiter is not None
            if not owner:
                with self._lock:
                    self.waits += 1
                waiter.event.wait()
                if waiter.error is not None:
                    raise TierError(f"blob {sha256}: {waiter.error}") from waiter.error
                continue
            try:
                self._download(sha256, size, fetch, path, counted=download)
            except BaseException as exc:
                waiter.error = exc
                raise
            finally:
                with self._lock:
                    self._inflight.pop(sha256, None)
                waiter.event.set()
            return path

    # --- downloading -----------------------------------------------------------

    def _download(self, sha256: str, size: int | None, fetch: Fetch, path: str, counted: bool = True) -> None:
        with self._stripe_lock(sha256):
            # Another process may have fetched it while this one waited.
            try:
                st = os.stat(path)
            except FileNotFoundError:
                st = None
            if st is not None and (size is None or st.st_size == size):
                self._adopt(sha256, st)
                return
            try:
                written = write_verified(sha256, size, fetch, path, self.temp_dir)
            except BlobMismatch:
                with self._lock:
                    self.mismatches += 1
                raise
            st = os.stat(path)
            if counted:
                with self._lock:
                    self.downloads += 1
                    self.download_bytes += written
            self._adopt(sha256, st)
        try:
            self.enforce_limit(keep=sha256)
            self._maybe_rescan()
        except Exception:
            # The blob is in place: a failure to make room must not fail
            # the request that fetched it.
            logger.warning("assetcache: enforcing the local tier's limit failed", exc_info=True)

    def _stripe_lock(self, sha256: str) -> FileLock:
        stripe = int(sha256[:2], 16) % LOCK_STRIPES
        return FileLock(os.path.join(self.lock_dir, f"{stripe:02x}"))

    def _adopt(self, sha256: str, st: os.stat_result) -> None:
        now = time.time()
        with self._lock:
            self._delayed.reclaim(sha256)
            self._index.add(sha256, TierRecord(allocated(st), now, now))

    def _present(self, path: str, size: int | None, touch: bool) -> bool:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        if size is not None and st.st_size != size:
            logger.warning("assetcache: %s has %d bytes, %d expected; fetching it again", path, st.st_size, size)
            unlink(path)
            return False
        if touch:
            with contextlib.suppress(OSError):  # a read-only tier still serves
                os.utime(path)
        return True

    def _forget(self, sha256: str, record: TierRecord) -> None:
        with self._lock:
            self._index.discard(sha256, record)

    # --- the limit -------------------------------------------------------------

    def usage(self) -> int:
        """Bytes the tier's indexed files occupy on disk."""
        return self._index.used

    def excess(self) -> int:
        """Bytes to evict to be back under the limit (<= 0: none)."""
        if self.fraction is None:
            return self._index.used - self.limit_bytes
        fs = os.statvfs(self.directory)
        total = fs.f_blocks * fs.f_frsize
        in_use = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
        # Blobs waiting for their delayed delete still hold disk but are
        # already given up: they must not cause more evictions.
        waiting = self._delayed.waiting_bytes()
        return int(in_use - waiting - self.fraction * total)

    def enforce_limit(self, keep: str | None = None) -> list[str]:
        """Evict least recently used blobs until under the limit; ``keep``
        (the blob just fetched, about to be served) is spared. Returns the
        hashes evicted."""
        victims: list[tuple[str, int]] = []
        with self._lock:
            excess = self.excess()
            if excess > 0:
                victims = self._index.oldest(excess, keep)
                now = time.monotonic()
                now_wall = time.time()
                for sha, alloc in victims:
                    self._index.pop(sha)
                    self.evictions += 1
                    if self.delete_delay > 0:
                        self._delayed.add(sha, alloc, now, now_wall)
        if victims:
            _notify([self.path_of(sha) for sha, _ in victims])
            if self.delete_delay > 0:
                self._delayed.schedule()
            else:
                self._delete_evicted([(sha, now_wall) for sha, _ in victims])
        self.purge()
        return [sha for sha, _ in victims]

    # --- delayed deletes --------------------------------------------------------

    def purge(self, *, force: bool = False) -> int:
        """Delete evicted blobs whose delay has passed (all with ``force``).

        A blob another process used since it was evicted here (its mtime is
        newer) is kept and indexed again.
        """
        with self._lock:
            due = self._delayed.due(force=force)
        if not due:
            return 0
        return self._delete_evicted(due)

    def _delete_evicted(self, items: list[tuple[str, float]]) -> int:
        """Delete evicted blobs ((hash, eviction wall time)) unless wanted again."""
        deleted: list[str] = []
        for sha, evicted_at in items:
            path = self.path_of(sha)
            # Under the download lock: a download of this blob checks for the
            # file under it too, so it never adopts a file about to go.
            with self._stripe_lock(sha):
                with self._lock:
                    if sha in self._index:
                        continue  # wanted again, here, since the eviction
                try:
                    st = os.stat(path)
                except FileNotFoundError:
                    continue
                if st.st_mtime > evicted_at:
                    # Another process used it since: keep it, as recent.
                    with self._lock:
                        if sha not in self._index:
                            self._index.add(sha, TierRecord(allocated(st), st.st_mtime, st.st_mtime))
                    continue
                if unlink(path):
                    self.deleted += 1
                    deleted.append(path)
        if deleted:
            # Entries built between the eviction and now may point here too.
            _notify(deleted)
        return len(deleted)

    def close(self) -> None:
        """Stop the purge timer (tests, benchmarks); pending deletes stay pending."""
        self._delayed.close()

    # --- removal and listing (assetcache_gc) -------------------------------------

    def remove(self, sha256: str) -> bool:
        """Delete a blob now (one nothing refers to any more)."""
        with self._lock:
            self._index.pop(sha256)
            self._delayed.reclaim(sha256)
        path = self.path_of(sha256)
        removed = unlink(path)
        if removed:
            self.deleted += 1
            _notify([path])
        return removed

    def walk(self) -> Iterator[tuple[str, os.stat_result]]:
        """(hash, stat) of every blob file in the directory."""
        return walk_directory(self.directory)

    def rescan(self) -> None:
        """Rebuild the index from the files present, most recently used last.

        Recency is this process's own record, else the file's atime or mtime
        (bumped by any process that used it).
        """
        found = list(self.walk())
        with self._lock:
            index: list[tuple[float, str, TierRecord]] = []
            for sha, st in found:
                if sha in self._delayed:
                    continue  # evicted here, waiting for its delete
                old = self._index.get(sha)
                last = max(st.st_atime, st.st_mtime, old.used if old else 0.0)
                index.append((last, sha, TierRecord(allocated(st), last, old.touched if old else st.st_mtime)))
            self._index.replace(index)
            self._next_rescan = time.monotonic() + RESCAN_INTERVAL

    def _maybe_rescan(self) -> None:
        if time.monotonic() >= self._next_rescan:
            self.rescan()
            self.enforce_limit()

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {
                "directory": self.directory,
                "blobs": len(self._index),
                "bytes": self._index.used,
                "limit": self.fraction if self.fraction is not None else self.limit_bytes,
                "pending_deletes": len(self._delayed),
                "downloads": self.downloads,
                "download_bytes": self.download_bytes,
                "evictions": self.evictions,
                "mismatches": self.mismatches,
                "deleted": self.deleted,
                "waits": self.waits,
            }


def _notify(paths: list[str]) -> None:
    for listener in list(listeners):
        try:
            listener(paths)
        except Exception:
            logger.warning("assetcache: a local tier listener failed", exc_info=True)
