"""The content-addressed blob store: names, dedup, partial files, streaming hashes."""

from __future__ import annotations

import hashlib
import io
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.files.storage import FileSystemStorage

from django_assetcache.blobfiles import BlobMismatch, Fetch, TierError, write_verified
from django_assetcache.maintenance import collect_garbage
from django_assetcache.store import (
    CHUNK_SIZE,
    PARTIAL_SUFFIX,
    BlobStore,
    BlobTooLarge,
    blob_name,
    get_storage,
    hash_stream,
    iter_chunks,
)

DATA = b"hello, content-addressed world\n"
SHA = hashlib.sha256(DATA).hexdigest()


class CountingStream(io.BytesIO):
    """A BytesIO that remembers how much each read asked for."""

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.requests: list[int] = []

    def read(self, size: int | None = -1) -> bytes:  # type: ignore[override]
        self.requests.append(-1 if size is None else size)
        return super().read(size)


@pytest.fixture
def storage(tmp_path: Path) -> FileSystemStorage:
    return FileSystemStorage(location=tmp_path / "blobs")


@pytest.fixture
def blobs(storage: FileSystemStorage) -> BlobStore:
    return BlobStore(storage)


def files_under(root: str | Path) -> list[str]:
    root = Path(root)
    if not root.exists():
        return []
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def test_blob_name_is_content_addressed() -> None:
    sha = "abcdef" + "0" * 58
    assert blob_name(sha) == f"ab/cd/{sha}"
    assert blob_name(SHA) == f"{SHA[:2]}/{SHA[2:4]}/{SHA}"


def test_hash_stream_matches_hashlib_and_reads_in_chunks() -> None:
    data = os.urandom(2 * CHUNK_SIZE + 12345)
    stream = CountingStream(data)
    assert hash_stream(stream) == (hashlib.sha256(data).hexdigest(), len(data))
    # Never one read of the whole stream: three full-size requests and the final empty one.
    assert stream.requests == [CHUNK_SIZE] * 4


def test_hash_stream_of_nothing() -> None:
    assert hash_stream(io.BytesIO(b"")) == (hashlib.sha256(b"").hexdigest(), 0)


def test_iter_chunks_yields_at_most_chunk_size() -> None:
    data = b"x" * (CHUNK_SIZE + 1)
    chunks = list(iter_chunks(io.BytesIO(data)))
    assert [len(c) for c in chunks] == [CHUNK_SIZE, 1]
    assert b"".join(chunks) == data


def test_limit_allows_exactly_the_limit() -> None:
    data = b"a" * 1000
    assert hash_stream(io.BytesIO(data), limit=1000) == (hashlib.sha256(data).hexdigest(), 1000)


def test_limit_refuses_one_byte_more() -> None:
    with pytest.raises(BlobTooLarge, match="larger than 999 bytes"):
        hash_stream(io.BytesIO(b"a" * 1000), limit=999)


def test_limit_stops_reading_a_long_stream_early() -> None:
    stream = CountingStream(b"z" * (5 * CHUNK_SIZE))
    with pytest.raises(BlobTooLarge):
        for _ in iter_chunks(stream, limit=CHUNK_SIZE + 1):
            pass
    assert len(stream.requests) == 2
    assert stream.tell() == 2 * CHUNK_SIZE


def test_save_stores_the_bytes_under_the_hash(blobs: BlobStore, storage: FileSystemStorage) -> None:
    assert not blobs.has(SHA, len(DATA))
    assert blobs.save(SHA, len(DATA), io.BytesIO(DATA)) is True
    assert files_under(storage.location) == [blob_name(SHA)]
    assert (Path(storage.location) / blob_name(SHA)).read_bytes() == DATA
    assert blobs.has(SHA, len(DATA))
    assert not blobs.has(SHA, len(DATA) + 1)
    with blobs.open(SHA) as stream:
        assert stream.read() == DATA
    assert blobs.local_path(SHA) == str(Path(storage.location) / blob_name(SHA))


def test_saving_the_same_bytes_again_uploads_nothing(
    blobs: BlobStore, storage: FileSystemStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs.save(SHA, len(DATA), io.BytesIO(DATA))
    path = Path(storage.location) / blob_name(SHA)
    os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    before = path.stat()

    def no_upload(*args: object, **kwargs: object) -> str:
        raise AssertionError("uploaded again")

    monkeypatch.setattr(storage, "save", no_upload)
    stream = io.BytesIO(DATA)
    assert blobs.save(SHA, len(DATA), stream) is False
    assert stream.tell() == 0  # not even read
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_size,
    )
    assert files_under(storage.location) == [blob_name(SHA)]


def test_a_partial_file_is_replaced(blobs: BlobStore, storage: FileSystemStorage) -> None:
    path = Path(storage.location) / blob_name(SHA)
    path.parent.mkdir(parents=True)
    path.write_bytes(DATA[:5])  # a crash left half a file
    assert not blobs.has(SHA, len(DATA))
    assert blobs.save(SHA, len(DATA), io.BytesIO(DATA)) is True
    assert path.read_bytes() == DATA
    assert files_under(storage.location) == [blob_name(SHA)]


class LateArrivalStorage(FileSystemStorage):
    """Another process finishes the same blob between our check and our save."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.arrived = False

    def _save(self, name: str, content: object) -> str:
        if not self.arrived:
            self.arrived = True
            target = Path(self.path(name))
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(DATA)
        return super()._save(name, content)  # type: ignore[arg-type]


def test_a_concurrent_save_of_the_same_blob_leaves_one_file(tmp_path: Path) -> None:
    storage = LateArrivalStorage(location=tmp_path / "blobs")
    blobs = BlobStore(storage)
    assert blobs.save(SHA, len(DATA), io.BytesIO(DATA)) is True
    assert files_under(storage.location) == [blob_name(SHA)]
    assert (Path(storage.location) / blob_name(SHA)).read_bytes() == DATA


def test_an_empty_blob(blobs: BlobStore, storage: FileSystemStorage) -> None:
    sha = hashlib.sha256(b"").hexdigest()
    assert blobs.save(sha, 0, io.BytesIO(b"")) is True
    assert (Path(storage.location) / blob_name(sha)).read_bytes() == b""
    assert blobs.has(sha, 0)
    assert blobs.save(sha, 0, io.BytesIO(b"")) is False


def test_delete_and_walk(blobs: BlobStore, storage: FileSystemStorage) -> None:
    assert list(blobs.walk()) == []
    payloads = [b"one", b"two", b"three"]
    hashes = [hashlib.sha256(p).hexdigest() for p in payloads]
    for payload, sha in zip(payloads, hashes, strict=True):
        blobs.save(sha, len(payload), io.BytesIO(payload))
    # Litter that is not a blob is not reported.
    (Path(storage.location) / "README").write_text("not a blob")
    stray = Path(storage.location) / hashes[0][:2] / hashes[0][2:4] / "notes.txt"
    stray.write_text("not a blob either")
    assert sorted(blobs.walk()) == sorted(hashes)
    blobs.delete(hashes[1])
    assert sorted(blobs.walk()) == sorted([hashes[0], hashes[2]])
    assert not blobs.has(hashes[1], 3)


def test_has_is_false_when_the_storage_cannot_tell(
    blobs: BlobStore, storage: FileSystemStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    blobs.save(SHA, len(DATA), io.BytesIO(DATA))

    def broken(name: str) -> int:
        raise OSError("storage unreachable")

    monkeypatch.setattr(storage, "size", broken)
    assert blobs.has(SHA, len(DATA)) is False


def test_default_storage_is_a_filesystem_storage_under_media_root(settings) -> None:
    storage = get_storage()
    assert isinstance(storage, FileSystemStorage)
    assert Path(storage.location) == Path(settings.MEDIA_ROOT) / "assetcache" / "blobs"
    assert BlobStore().storage.location == storage.location


def test_storage_alias_is_used_when_configured(settings, tmp_path: Path) -> None:
    settings.STORAGES = {
        **settings.STORAGES,
        "assetcache": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": str(tmp_path / "elsewhere")},
        },
    }
    storage = get_storage()
    assert Path(storage.location) == tmp_path / "elsewhere"
    BlobStore().save(SHA, len(DATA), io.BytesIO(DATA))
    assert files_under(tmp_path / "elsewhere") == [blob_name(SHA)]


def test_concurrent_saves_of_the_same_large_blob_both_succeed(tmp_path: Path) -> None:
    """Issue 11 item 2: two publishes storing the same new large file at once.

    The second racer starts as soon as the first one's file appears. It used
    to take that save in progress for a partial file and delete it (the first
    failed with FileNotFoundError). Now both succeed, the blob is whole and
    no temporary file is left.
    """
    data = os.urandom(48 * 1024 * 1024)
    digest = hashlib.sha256(data).hexdigest()
    location = tmp_path / "blobs"
    directory = location / digest[:2] / digest[2:4]
    results: dict[str, bool | BaseException] = {}

    def save(who: str) -> None:
        try:
            results[who] = BlobStore(FileSystemStorage(location=location)).save(digest, len(data), io.BytesIO(data))
        except BaseException as exc:
            results[who] = exc

    first = threading.Thread(target=save, args=("first",))
    first.start()
    deadline = time.monotonic() + 30
    while first.is_alive() and time.monotonic() < deadline and not (directory.exists() and any(directory.iterdir())):
        pass
    save("second")
    first.join()
    assert all(isinstance(result, bool) for result in results.values()), results
    assert results["first"] is True
    assert files_under(location) == [blob_name(digest)]
    assert (location / blob_name(digest)).read_bytes() == data
    assert oct((location / blob_name(digest)).stat().st_mode & 0o777) == oct(0o644)


def test_a_dead_save_leaves_a_partial_file_that_gc_removes(db, storage: FileSystemStorage) -> None:
    """Issue 11 item 2: a save in progress writes under a temporary name, never the blob's."""
    blobs = BlobStore(storage)
    partial = Path(storage.location) / SHA[:2] / SHA[2:4] / f"{SHA}.0123456789abcdef{PARTIAL_SUFFIX}"
    partial.parent.mkdir(parents=True)
    partial.write_bytes(DATA[:5])
    assert list(blobs.walk()) == []
    assert list(blobs.walk_partial()) == [f"{SHA[:2]}/{SHA[2:4]}/{partial.name}"]
    collect_garbage(store=blobs)
    assert partial.exists()  # younger than the grace period
    os.utime(partial, (0, 0))
    collect_garbage(store=blobs)
    assert files_under(storage.location) == []


# --- the local tier's verified writes ----------------------------------------------------------


def _failing_fetch() -> Iterator[bytes]:
    yield DATA[:5]
    raise ConnectionError("reset by peer")


@pytest.mark.parametrize(
    ("fetch", "size", "error"),
    [
        (lambda: [DATA[:10], DATA[10:]], None, None),
        (lambda: [DATA], len(DATA), None),
        (lambda: [DATA + b"!"], None, BlobMismatch),
        (lambda: [DATA], len(DATA) - 1, BlobMismatch),
        (_failing_fetch, None, TierError),
    ],
    ids=["chunks", "sized", "other-bytes", "other-size", "download-fails"],
)
def test_write_verified_renames_only_bytes_of_the_hash(
    tmp_path: Path, fetch: Fetch, size: int | None, error: type[Exception] | None
) -> None:
    """The bytes reach the blob's name only once they hash right; the file
    has the mode the umask gives, and no work file is left either way."""
    path, temp_dir = tmp_path / "tier" / SHA[:2] / SHA[2:4] / SHA, tmp_path / "tier" / ".tmp"
    temp_dir.mkdir(parents=True)
    umask = os.umask(0o022)
    try:
        if error is None:
            assert write_verified(SHA, size, fetch, str(path), str(temp_dir)) == len(DATA)
            assert path.read_bytes() == DATA
            assert path.stat().st_mode & 0o777 == 0o644
        else:
            with pytest.raises(error):
                write_verified(SHA, size, fetch, str(path), str(temp_dir))
            assert not path.exists()
    finally:
        os.umask(umask)
    assert list(temp_dir.iterdir()) == []
