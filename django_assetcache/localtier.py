"""The local disk tier: blobs of a remote storage, copied to this machine.

A storage without local paths (S3 and the like) cannot hand a file to
``sendfile``, and opening a remote file per request would put the network on
the request path. So the first time a blob is needed on this machine it is
downloaded once into ``ASSETCACHE_LOCAL_DIR`` and served from there:

- **Once.** Threads of one process asking for the same blob wait on one
  download (an ``Event`` per blob); processes of one machine serialise on a
  lock file (``flock`` on one of 256 stripes chosen by the hash), and the
  second one finds the file in place when it gets the lock.
- **Verified.** Bytes are hashed while they are written to a temporary file
  in the tier's own directory; only a file whose SHA-256 (and size) match is
  renamed into place. A mismatch deletes the file, logs an error and raises
  ``BlobMismatch``: the request gets a 502, never wrong bytes.
- **Bounded.** ``ASSETCACHE_DISK_LIMIT`` caps the tier: a float below 1 is the
  largest fraction of the filesystem that may be in use (``statvfs``), any
  other number the bytes the tier's files may occupy (allocated blocks,
  ``st_blocks * 512``). Past it, the least recently used blobs are evicted.
- **Delayed deletes.** An evicted blob stays at its path for
  ``ASSETCACHE_DELETE_DELAY`` seconds: a response already sending it, or a
  path already handed out and not yet opened, still finds it. Asked for again
  meanwhile, it comes back without a download.
- **Survives restarts.** The index is rebuilt from the files present, ordered
  by their access/modification times, so a restarted process keeps its tier.

Recency is kept in memory and refreshed when a blob is asked for here, i.e.
when a cache entry is built, never on a cache hit (a hit must not stat or
lock). The file's mtime is bumped too (at most once a minute) so that other
processes sharing the directory see that the blob is in use.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import logging
import os
import re
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

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

_SHA_RE = re.compile(r"[0-9a-f]{64}")

#: Yields a blob's bytes, in chunks, from the remote storage.
Fetch = Callable[[], Iterable[bytes]]
#: Told the paths of blobs evicted or deleted, so a process cache can drop
#: entries that point at them (called outside the tier's lock).
Listener = Callable[[list[str]], None]

#: Process-wide listeners, whatever tier object evicts.
listeners: list[Listener] = []


class TierError(OSError):
    """A blob could not be made available on the local disk tier."""


class BlobMismatch(TierError):
    """The bytes downloaded do not have the blob's hash or size."""


class _Record:
    __slots__ = ("alloc", "touched", "used")

    def __init__(self, alloc: int, used: float, touched: float) -> None:
        #: Bytes of disk the file occupies (allocated blocks).
        self.alloc = alloc
        #: Wall-clock time of the last use seen by this process.
        self.used = used
        #: When this process last bumped the file's mtime.
        self.touched = touched


class _Download:
    __slots__ = ("error", "event")

    def __init__(self) -> None:
        self.event = threading.Event()
        self.error: BaseException | None = None


@dataclass
class _Pending:
    """An evicted blob waiting for its delayed delete."""

    deadline: float  # time.monotonic() after which it may go
    alloc: int
    evicted_at: float  # wall clock, compared with the file's mtime


def allocated(st: os.stat_result) -> int:
    """Bytes a file occupies on disk (what a byte limit counts)."""
    return st.st_blocks * 512


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
        self._index: OrderedDict[str, _Record] = OrderedDict()
        self._used = 0
        self._pending: dict[str, _Pending] = {}
        self._inflight: dict[str, _Download] = {}
        self._timer: threading.Timer | None = None
        self._clean_temp()
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
        if not _SHA_RE.fullmatch(sha256):
            raise TierError(f"not a blob hash: {sha256!r}")
        path = self.path_of(sha256)
        while True:
            now = time.time()
            waiter: _Download | None = None
            owner = False
            with self._lock:
                record = self._index.get(sha256)
                if record is None:
                    pending = self._pending.pop(sha256, None)
                    if pending is not None:
                        # Evicted but not yet deleted: wanted again, so it
                        # comes back without a download.
                        record = self._index[sha256] = _Record(pending.alloc, now, 0.0)
                        self._used += pending.alloc
                if record is not None:
                    self._index.move_to_end(sha256)
                    record.used = now
                    touch = now - record.touched >= TOUCH_INTERVAL
                    if touch:
                        record.touched = now
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

    def contains(self, sha256: str) -> bool:
        with self._lock:
            return sha256 in self._index

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
            fd, temp = tempfile.mkstemp(prefix=sha256[:16] + "-", dir=self.temp_dir)
            try:
                digest = hashlib.sha256()
                written = 0
                with os.fdopen(fd, "wb") as out:
                    try:
                        for chunk in fetch():
                            digest.update(chunk)
                            out.write(chunk)
                            written += len(chunk)
                            if size is not None and written > size:
                                break  # already wrong: stop downloading
                    except TierError:
                        raise
                    except Exception as exc:
                        raise TierError(f"blob {sha256}: cannot download: {exc}") from exc
                    if digest.hexdigest() != sha256 or (size is not None and written != size):
                        self.mismatches += 1
                        logger.error(
                            "assetcache: blob %s from storage does not match its hash "
                            "(%d bytes read, %s expected); not kept",
                            sha256,
                            written,
                            "?" if size is None else size,
                        )
                        raise BlobMismatch(f"blob {sha256}: downloaded bytes do not match the hash")
                    out.flush()
                    # On disk before the rename: after a crash a blob is
                    # whole or absent, never a file of the right name and
                    # size holding zeros.
                    getattr(os, "fdatasync", os.fsync)(out.fileno())
                os.makedirs(os.path.dirname(path), exist_ok=True)
                os.replace(temp, path)
            except BaseException:
                _unlink(temp)
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

    def _stripe_lock(self, sha256: str) -> _FileLock:
        stripe = int(sha256[:2], 16) % LOCK_STRIPES
        return _FileLock(os.path.join(self.lock_dir, f"{stripe:02x}"))

    def _adopt(self, sha256: str, st: os.stat_result) -> None:
        now = time.time()
        with self._lock:
            old = self._index.pop(sha256, None)
            if old is not None:
                self._used -= old.alloc
            self._pending.pop(sha256, None)
            alloc = allocated(st)
            self._index[sha256] = _Record(alloc, now, now)
            self._used += alloc

    def _present(self, path: str, size: int | None, touch: bool) -> bool:
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return False
        if size is not None and st.st_size != size:
            logger.warning("assetcache: %s has %d bytes, %d expected; fetching it again", path, st.st_size, size)
            _unlink(path)
            return False
        if touch:
            with contextlib.suppress(OSError):  # a read-only tier still serves
                os.utime(path)
        return True

    def _forget(self, sha256: str, record: _Record) -> None:
        with self._lock:
            if self._index.get(sha256) is record:
                del self._index[sha256]
                self._used -= record.alloc

    # --- the limit -------------------------------------------------------------

    def usage(self) -> int:
        """Bytes the tier's indexed files occupy on disk."""
        return self._used

    def excess(self) -> int:
        """Bytes to evict to be back under the limit (<= 0: none)."""
        if self.fraction is None:
            return self._used - self.limit_bytes
        fs = os.statvfs(self.directory)
        total = fs.f_blocks * fs.f_frsize
        in_use = (fs.f_blocks - fs.f_bfree) * fs.f_frsize
        # Blobs waiting for their delayed delete still hold disk but are
        # already given up: they must not cause more evictions.
        waiting = sum(p.alloc for p in self._pending.values())
        return int(in_use - waiting - self.fraction * total)

    def enforce_limit(self, keep: str | None = None) -> list[str]:
        """Evict least recently used blobs until under the limit; ``keep``
        (the blob just fetched, about to be served) is spared. Returns the
        hashes evicted."""
        victims: list[tuple[str, int]] = []
        with self._lock:
            excess = self.excess()
            if excess > 0:
                for sha, record in self._index.items():
                    if excess <= 0:
                        break
                    if sha == keep:
                        continue
                    victims.append((sha, record.alloc))
                    excess -= record.alloc
                now = time.monotonic()
                now_wall = time.time()
                for sha, alloc in victims:
                    del self._index[sha]
                    self._used -= alloc
                    self.evictions += 1
                    if self.delete_delay > 0:
                        self._pending[sha] = _Pending(now + self.delete_delay, alloc, now_wall)
        if victims:
            _notify([self.path_of(sha) for sha, _ in victims])
            if self.delete_delay > 0:
                self._schedule_purge()
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
        now = time.monotonic()
        with self._lock:
            due = [(sha, p) for sha, p in self._pending.items() if force or p.deadline <= now]
            for sha, _ in due:
                del self._pending[sha]
        if not due:
            return 0
        return self._delete_evicted([(sha, pending.evicted_at) for sha, pending in due])

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
                            self._index[sha] = _Record(allocated(st), st.st_mtime, st.st_mtime)
                            self._used += allocated(st)
                    continue
                if _unlink(path):
                    self.deleted += 1
                    deleted.append(path)
        if deleted:
            # Entries built between the eviction and now may point here too.
            _notify(deleted)
        return len(deleted)

    def _schedule_purge(self) -> None:
        with self._lock:
            if self._timer is not None and self._timer.is_alive():
                return
            # A daemon timer: deletes happen even when no further download
            # comes to trigger them.
            timer = threading.Timer(self.delete_delay + 0.05, self._on_timer)
            timer.daemon = True
            self._timer = timer
        timer.start()

    def _on_timer(self) -> None:
        with self._lock:
            self._timer = None
        try:
            self.purge()
        except Exception:  # a timer thread must not die noisily
            logger.warning("assetcache: purging the local tier failed", exc_info=True)
        with self._lock:
            waiting = bool(self._pending)
        if waiting:
            self._schedule_purge()

    def close(self) -> None:
        """Stop the purge timer (tests, benchmarks); pending deletes stay pending."""
        with self._lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()

    # --- removal and listing (assetcache_gc) -------------------------------------

    def remove(self, sha256: str) -> bool:
        """Delete a blob now (one nothing refers to any more)."""
        with self._lock:
            record = self._index.pop(sha256, None)
            if record is not None:
                self._used -= record.alloc
            self._pending.pop(sha256, None)
        path = self.path_of(sha256)
        removed = _unlink(path)
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
            index: list[tuple[float, str, _Record]] = []
            total = 0
            for sha, st in found:
                if sha in self._pending:
                    continue  # evicted here, waiting for its delete
                old = self._index.get(sha)
                last = max(st.st_atime, st.st_mtime, old.used if old else 0.0)
                record = _Record(allocated(st), last, old.touched if old else st.st_mtime)
                index.append((last, sha, record))
                total += record.alloc
            index.sort(key=lambda item: item[0])
            self._index = OrderedDict((sha, record) for _, sha, record in index)
            self._used = total
            self._next_rescan = time.monotonic() + RESCAN_INTERVAL

    def _maybe_rescan(self) -> None:
        if time.monotonic() >= self._next_rescan:
            self.rescan()
            self.enforce_limit()

    def _clean_temp(self) -> None:
        cutoff = time.time() - STALE_TEMP_SECONDS
        for entry in _scandir(self.temp_dir):
            try:
                if entry.stat().st_mtime < cutoff:
                    _unlink(entry.path)
            except FileNotFoundError:
                continue

    def stats(self) -> dict[str, object]:
        with self._lock:
            return {
                "directory": self.directory,
                "blobs": len(self._index),
                "bytes": self._used,
                "limit": self.fraction if self.fraction is not None else self.limit_bytes,
                "pending_deletes": len(self._pending),
                "downloads": self.downloads,
                "download_bytes": self.download_bytes,
                "evictions": self.evictions,
                "mismatches": self.mismatches,
                "deleted": self.deleted,
                "waits": self.waits,
            }


def walk_directory(directory: str | os.PathLike[str]) -> Iterator[tuple[str, os.stat_result]]:
    """(hash, stat) of every blob file under a tier directory."""
    for top in _scandir(os.fspath(directory)):
        if len(top.name) != 2 or not top.is_dir(follow_symlinks=False):
            continue
        for mid in _scandir(top.path):
            if len(mid.name) != 2 or not mid.is_dir(follow_symlinks=False):
                continue
            for entry in _scandir(mid.path):
                name = entry.name
                if _SHA_RE.fullmatch(name) and name.startswith(top.name + mid.name):
                    try:
                        yield name, entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue


class _FileLock:
    """An exclusive ``flock`` on a file, held for a ``with`` block."""

    __slots__ = ("fd", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> _FileLock:
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self.fd)
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        # Closing the descriptor releases the lock.
        os.close(self.fd)
        self.fd = -1


def _scandir(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False


def _notify(paths: list[str]) -> None:
    for listener in list(listeners):
        try:
            listener(paths)
        except Exception:
            logger.warning("assetcache: a local tier listener failed", exc_info=True)


# --- the process-wide tier -------------------------------------------------------

_tier: LocalTier | None = None
_tier_key: tuple[str, float | int, float] | None = None
_tier_lock = threading.Lock()


def get_tier() -> LocalTier:
    """This process's tier, per the current settings (created on first use)."""
    from . import conf

    settings = conf.get()
    key = (settings.LOCAL_DIR, settings.DISK_LIMIT, settings.DELETE_DELAY)
    tier = _tier
    if tier is not None and _tier_key == key:
        return tier
    return _create(key)


def _create(key: tuple[str, float | int, float]) -> LocalTier:
    global _tier, _tier_key
    with _tier_lock:
        if _tier is None or _tier_key != key:
            if _tier is not None:
                _tier.close()
            directory, limit, delay = key
            _tier = LocalTier(directory, disk_limit=limit, delete_delay=delay)
            _tier_key = key
        return _tier


def reset() -> None:
    """Forget this process's tier (its files stay); the next use rebuilds it."""
    global _tier, _tier_key
    with _tier_lock:
        if _tier is not None:
            _tier.close()
        _tier = None
        _tier_key = None


def _after_fork_in_child() -> None:
    # Locks, timers and in-flight downloads do not survive fork: the child
    # builds its own tier from the directory on first use.
    global _tier, _tier_key, _tier_lock
    _tier_lock = threading.Lock()
    _tier = None
    _tier_key = None


os.register_at_fork(after_in_child=_after_fork_in_child)
