"""Files named by their content hash in a sharded directory (``xx/yy/<sha256>``).

The small file-system pieces the local disk tier is made of: writing a blob
whole-or-not-at-all and verified against its hash, listing a directory of
blobs, an exclusive file lock. Nothing here knows of Django.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Iterable, Iterator

from .atomic import atomic_write

logger = logging.getLogger("django_assetcache")

SHA_RE = re.compile(r"[0-9a-f]{64}")

#: Yields a blob's bytes, in chunks.
Fetch = Callable[[], Iterable[bytes]]


class TierError(OSError):
    """A blob could not be made available on the local disk tier."""


class BlobMismatch(TierError):
    """The bytes downloaded do not have the blob's hash or size."""


def allocated(st: os.stat_result) -> int:
    """Bytes a file occupies on disk (what a byte limit counts)."""
    return st.st_blocks * 512


def write_verified(sha256: str, size: int | None, fetch: Fetch, path: str, temp_dir: str) -> int:
    """Write the bytes ``fetch`` yields to ``path``, only if they hash to
    ``sha256`` (and have ``size`` bytes when given); return the bytes written.

    The bytes go to a temporary file in ``temp_dir`` (on the same file system,
    where the tier finds work files a dead process left), reach the disk, and
    are renamed into place: after a crash the blob is whole or absent, never a
    file of the right name holding zeros.
    """
    digest = hashlib.sha256()
    written = 0
    with atomic_write(path, prefix=sha256[:16] + "-", temp_dir=temp_dir) as out:
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
            logger.error(
                "assetcache: blob %s from storage does not match its hash (%d bytes read, %s expected); not kept",
                sha256,
                written,
                "?" if size is None else size,
            )
            # Raised inside the block: the temporary file goes, nothing is renamed.
            raise BlobMismatch(f"blob {sha256}: downloaded bytes do not match the hash")
    return written


def walk_directory(directory: str | os.PathLike[str]) -> Iterator[tuple[str, os.stat_result]]:
    """(hash, stat) of every blob file under a tier directory."""
    for top in scandir(os.fspath(directory)):
        if len(top.name) != 2 or not top.is_dir(follow_symlinks=False):
            continue
        for mid in scandir(top.path):
            if len(mid.name) != 2 or not mid.is_dir(follow_symlinks=False):
                continue
            for entry in scandir(mid.path):
                name = entry.name
                if SHA_RE.fullmatch(name) and name.startswith(top.name + mid.name):
                    try:
                        yield name, entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue


class FileLock:
    """An exclusive ``flock`` on a file, held for a ``with`` block."""

    __slots__ = ("fd", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self.fd = -1

    def __enter__(self) -> FileLock:
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


def remove_older_than(directory: str, seconds: float) -> None:
    """Delete the files of ``directory`` not modified for ``seconds`` (work
    files left by a process that died)."""
    cutoff = time.time() - seconds
    for entry in scandir(directory):
        try:
            if entry.stat().st_mtime < cutoff:
                unlink(entry.path)
        except FileNotFoundError:
            continue


def scandir(path: str) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(path) as entries:
            return list(entries)
    except (FileNotFoundError, NotADirectoryError):
        return []


def unlink(path: str) -> bool:
    try:
        os.unlink(path)
        return True
    except FileNotFoundError:
        return False
