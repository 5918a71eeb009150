"""The content-addressed blob store over a Django storage.

A blob is kept once under a name derived from its SHA-256 (``ab/cd/abcd…``),
so saving bytes that are already stored uploads nothing, and a URL path can
never be joined onto a directory: files are found by hash only.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from collections.abc import Iterator
from pathlib import Path
from typing import IO, BinaryIO

from django.conf import settings
from django.core.files import File
from django.core.files.storage import FileSystemStorage, InvalidStorageError, Storage, storages

from . import conf

CHUNK_SIZE = 1024 * 1024


class BlobTooLarge(ValueError):
    """A stream went past the size it was allowed."""


def blob_name(sha256: str) -> str:
    return f"{sha256[:2]}/{sha256[2:4]}/{sha256}"


def iter_chunks(stream: IO[bytes], limit: int | None = None) -> Iterator[bytes]:
    """Read a stream in chunks, refusing to go past ``limit`` bytes."""
    total = 0
    while chunk := stream.read(CHUNK_SIZE):
        total += len(chunk)
        if limit is not None and total > limit:
            raise BlobTooLarge(f"larger than {limit} bytes")
        yield chunk


def hash_stream(stream: IO[bytes], limit: int | None = None) -> tuple[str, int]:
    """SHA-256 hex and size of a stream, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    for chunk in iter_chunks(stream, limit):
        digest.update(chunk)
        size += len(chunk)
    return digest.hexdigest(), size


def get_storage() -> Storage:
    """The storage named by ``ASSETCACHE_STORAGE``, or the filesystem default."""
    alias = conf.get().STORAGE
    try:
        return storages[alias]
    except InvalidStorageError:
        return FileSystemStorage(location=Path(settings.MEDIA_ROOT) / "assetcache" / "blobs")


class BlobStore:
    """Saves and finds blobs by hash in one Django storage."""

    def __init__(self, storage: Storage | None = None) -> None:
        self.storage = storage if storage is not None else get_storage()

    def has(self, sha256: str, size: int) -> bool:
        """Whether the storage holds the whole blob.

        The size check catches a file left half-written by a crash.
        """
        name = blob_name(sha256)
        try:
            return self.storage.exists(name) and self.storage.size(name) == size
        except (OSError, NotImplementedError):
            return False

    def save(self, sha256: str, size: int, stream: BinaryIO) -> bool:
        """Store ``stream`` (whose hash is already known) unless present.

        Returns whether bytes were uploaded.
        """
        if self.has(sha256, size):
            return False
        name = blob_name(sha256)
        if self.storage.exists(name):
            # A partial file from an interrupted save: replace it.
            self.storage.delete(name)
        saved = self.storage.save(name, File(stream, name=name))
        if saved != name:
            # Another process stored the same bytes meanwhile and the storage
            # picked a fresh name for ours: keep theirs, drop the copy.
            self.storage.delete(saved)
        return True

    def open(self, sha256: str) -> IO[bytes]:
        return self.storage.open(blob_name(sha256), "rb")

    def local_path(self, sha256: str) -> str | None:
        """A path on this machine to the blob's bytes, if the storage has one."""
        try:
            return self.storage.path(blob_name(sha256))
        except NotImplementedError:
            return None

    def delete(self, sha256: str) -> None:
        self.storage.delete(blob_name(sha256))

    def modified(self, sha256: str) -> datetime:
        return self.storage.get_modified_time(blob_name(sha256))

    def walk(self) -> Iterator[str]:
        """Every blob hash present in the storage."""
        for top in _listdir(self.storage, ""):
            for mid in _listdir(self.storage, top):
                files = self.storage.listdir(f"{top}/{mid}")[1]
                for name in files:
                    if len(name) == 64 and name.startswith(top + mid):
                        yield name


def _listdir(storage: Storage, path: str) -> list[str]:
    try:
        return sorted(d for d in storage.listdir(path)[0] if len(d) == 2)
    except FileNotFoundError:
        return []


