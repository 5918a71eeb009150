"""The content-addressed blob store over a Django storage.

A blob is kept once under a name derived from its SHA-256 (``ab/cd/abcd…``),
so saving bytes that are already stored uploads nothing, and a URL path can
never be joined onto a directory: files are found by hash only.

A storage with local paths (``FileSystemStorage``) is served in place. Any
other (django-storages' S3Storage, …) is served from the local disk tier
(``localtier.py``): ``local_path`` downloads a blob there on first use.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.files import File
from django.core.files.storage import FileSystemStorage, InvalidStorageError, Storage, storages

from . import conf
from .atomic import atomic_write
from .localtier import LocalTier
from .tiers import get_tier

CHUNK_SIZE = 1024 * 1024
#: Bytes of a blob being stored that are kept in memory; the rest goes to a
#: temporary file.
SPOOL_SIZE = 8 * 1024 * 1024
#: Where ``assetcache_warmup --upload-snapshot`` puts the snapshot in the
#: storage (blob names are ``xx/yy/<sha256>``, so it cannot clash with one).
SNAPSHOT_NAME = "snapshot/snapshot.bin"
#: Ends the name of a blob file being written (``xx/yy/<sha256>.<random>.part``),
#: renamed into place once whole.
PARTIAL_SUFFIX = ".part"
#: Parallel existence checks against a remote storage.
CHECK_WORKERS = 8


class BlobTooLarge(ValueError):
    """A stream went past the size it was allowed."""


class BlobChanged(ValueError):
    """Bytes read for storing do not match the hash they were stored under."""


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

    def __init__(self, storage: Storage | None = None, tier: LocalTier | None = None) -> None:
        self.storage = storage if storage is not None else get_storage()
        self._tier = tier
        self._has_paths: bool | None = None

    @property
    def remote(self) -> bool:
        """Whether the storage has no local paths (blobs go through the tier)."""
        if self._has_paths is None:
            try:
                self.storage.path(blob_name("0" * 64))
                self._has_paths = True
            except NotImplementedError:
                self._has_paths = False
        return not self._has_paths

    @property
    def tier(self) -> LocalTier | None:
        """The local disk tier, for a remote storage; None otherwise."""
        if not self.remote:
            return None
        if self._tier is None:
            self._tier = get_tier()
        return self._tier

    def has(self, sha256: str, size: int) -> bool:
        """Whether the storage holds the whole blob: one size request (one
        HEAD on S3), a missing blob being one whose size cannot be read.

        The size check catches a file left half-written by a crash.
        """
        try:
            return bool(self.storage.size(blob_name(sha256)) == size)
        except Exception:  # not found: FileNotFoundError here, botocore's ClientError on S3
            return False

    def missing(self, blobs: dict[str, int]) -> set[str]:
        """The hashes of ``blobs`` ({sha256: size}) the storage does not hold whole.

        A remote storage is asked in parallel: one round trip per blob.
        """
        if not self.remote or len(blobs) < 2:
            return {sha for sha, size in blobs.items() if not self.has(sha, size)}
        with ThreadPoolExecutor(max_workers=min(CHECK_WORKERS, len(blobs))) as pool:
            present = dict(zip(blobs, pool.map(self.has, blobs, blobs.values()), strict=True))
        return {sha for sha, whole in present.items() if not whole}

    def save(self, sha256: str, size: int, stream: IO[bytes], *, missing: bool = False) -> bool:
        """Store ``stream`` (whose hash is already known) unless present;
        ``missing``: the caller has just found it absent (``missing()``), so
        it is not asked again.

        Returns whether bytes were uploaded. Any number of processes may save
        the same blob at once: each writes its own temporary file and renames
        it into place, so the final name only ever holds whole bytes. A remote
        storage has no rename, but an object store makes an object visible
        only once its upload completed, which gives the same guarantee.
        """
        if not missing and self.has(sha256, size):
            return False
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_SIZE) as copy:
            # What is uploaded is this copy, hashed as it is made: if the
            # source changed since it was hashed, nothing is stored under a
            # name that does not match its bytes.
            digest = hashlib.sha256()
            for chunk in iter_chunks(stream):
                digest.update(chunk)
                copy.write(chunk)
            if digest.hexdigest() != sha256 or copy.tell() != size:
                raise BlobChanged(f"content changed since it was hashed (expected {sha256})")
            copy.seek(0)
            if self.remote:
                self._upload(sha256, copy)
            else:
                self._write_file(sha256, size, copy)
        return True

    def _upload(self, sha256: str, copy: IO[bytes]) -> None:
        name = blob_name(sha256)
        try:
            damaged = self.storage.exists(name)
        except (OSError, NotImplementedError):
            damaged = False
        if damaged:
            # Objects appear whole or not at all, so one of the wrong size is
            # damage, never another process's upload in progress.
            self.storage.delete(name)
        saved = self.storage.save(name, File(copy, name=name))
        if saved != name:
            # Another process stored the same bytes meanwhile and the storage
            # picked a fresh name for ours: keep theirs, drop the copy.
            self.storage.delete(saved)

    def _write_file(self, sha256: str, size: int, copy: IO[bytes]) -> None:
        final = self.storage.path(blob_name(sha256))
        if _file_size(Path(final)) == size:
            return  # a racer put the whole blob in place meanwhile
        # A unique temporary name (gc removes leftovers by PARTIAL_SUFFIX),
        # synced, renamed: readers see no file or the whole blob, and so
        # does a restart after a crash.
        with atomic_write(final, prefix=f"{sha256}.", suffix=PARTIAL_SUFFIX) as out:
            shutil.copyfileobj(copy, out, CHUNK_SIZE)
            file_mode = getattr(self.storage, "file_permissions_mode", None)
            if file_mode is not None:
                os.chmod(out.name, file_mode)

    def open(self, sha256: str) -> IO[bytes]:
        return self.storage.open(blob_name(sha256), "rb")

    def local_path(self, sha256: str, size: int | None = None) -> str:
        """A path on this machine to the blob's bytes.

        The storage's own path when it has one; else the local tier's copy,
        downloaded now if missing and checked against the hash (and ``size``
        when given). Raises ``localtier.TierError`` (an OSError) when the
        bytes cannot be had.
        """
        tier = self.tier
        if tier is None:
            return self.storage.path(blob_name(sha256))
        name = blob_name(sha256)
        return tier.path_for(sha256, size, lambda: stream_object(self.storage, name))

    def read_local(self, sha256: str, size: int | None = None) -> bytes | None:
        """The blob's bytes, read from this machine (see ``local_path``);
        None when they cannot be had."""
        try:
            with open(self.local_path(sha256, size), "rb") as f:
                return f.read()
        except OSError:
            return None

    def delete(self, sha256: str) -> None:
        self.storage.delete(blob_name(sha256))

    def modified(self, sha256: str) -> datetime:
        return self.storage.get_modified_time(blob_name(sha256))

    def walk(self) -> Iterator[str]:
        """Every blob hash present in the storage."""
        for _, name in self._walk_names():
            if len(name) == 64:
                yield name

    def walk_partial(self) -> Iterator[str]:
        """Storage names of blob files a save that died left half-written."""
        for directory, name in self._walk_names():
            if name.endswith(PARTIAL_SUFFIX):
                yield f"{directory}/{name}"

    def _walk_names(self) -> Iterator[tuple[str, str]]:
        for top in _listdir(self.storage, ""):
            for mid in _listdir(self.storage, top):
                for name in self.storage.listdir(f"{top}/{mid}")[1]:
                    if name.startswith(top + mid):
                        yield f"{top}/{mid}", name


def _file_size(path: Path) -> int | None:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return None


def stream_object(storage: Storage, name: str) -> Iterator[bytes]:
    """The bytes of a stored file, in chunks, as they arrive.

    From S3 (django-storages' S3Storage and subclasses) this is one streamed
    GET: ``storage.open`` would spool the whole object into a temporary file
    before the first byte could be hashed. Other storages are read through
    their file object, in chunks. Raises FileNotFoundError for a missing file.
    """
    if _is_s3(storage):
        yield from _stream_s3(storage, name)
        return
    with storage.open(name, "rb") as stream:
        yield from iter_chunks(stream)


def _is_s3(storage: Storage) -> bool:
    try:
        # Optional extra (s3): absent, no storage can be an S3Storage.
        from storages.backends.s3 import S3Storage
    except (ImportError, ImproperlyConfigured):  # django-storages or boto3 missing
        return False
    return isinstance(storage, S3Storage)


def _stream_s3(storage: Any, name: str) -> Iterator[bytes]:
    # Optional extra (s3): present, since _is_s3 found an S3Storage.
    from botocore.exceptions import ClientError
    from s3transfer.constants import ALLOWED_DOWNLOAD_ARGS
    from storages.utils import clean_name

    key = storage._normalize_name(clean_name(name))
    # The same download parameters S3Storage itself sends (SSE-C keys, …).
    params = {k: v for k, v in storage.get_object_parameters(key).items() if k in ALLOWED_DOWNLOAD_ARGS}
    try:
        response = storage.connection.meta.client.get_object(Bucket=storage.bucket_name, Key=key, **params)
    except ClientError as exc:
        if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404:
            raise FileNotFoundError(f"{name}: not in the storage") from exc
        raise
    body = response["Body"]
    try:
        yield from body.iter_chunks(CHUNK_SIZE)
    finally:
        body.close()


def _listdir(storage: Storage, path: str) -> list[str]:
    try:
        return sorted(d for d in storage.listdir(path)[0] if len(d) == 2)
    except FileNotFoundError:
        return []
