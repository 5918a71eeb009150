"""Sites stored in S3-compatible object storage, served from the local disk tier.

Everything here talks HTTP to a real moto server (``ThreadedMotoServer``)
through django-storages' real ``S3Storage`` and boto3: nothing of either is
replaced. Requests reaching the server are counted from its request log.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import boto3
import pytest
from django.core.management import call_command
from django.db import connections
from django.test import Client
from moto.server import ThreadedMotoServer
from storages.backends.s3 import S3Storage

from django_assetcache import conf, localtier, maintenance, runtime, tiers, warm
from django_assetcache.localtier import LocalTier
from django_assetcache.models import Blob, Site
from django_assetcache.publish import publish
from django_assetcache.store import SNAPSHOT_NAME, BlobStore, blob_name, get_storage, stream_object

from .conftest import SAMPLE, Terminal, sha, write_tree
from .servers import ROOT, free_port

BIG = os.urandom(1024 * 1024)  # over ASSETCACHE_MEMORY_FILE_LIMIT: sent from a file
CSS = ("body { color: #333; margin: 0 auto; padding: 1em }\n" * 40).encode()
FILES: dict[str, bytes | str] = {**SAMPLE, "css/site.css": CSS, "big.bin": BIG}

_buckets = itertools.count()


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


class RequestLog(logging.Handler):
    """The moto server's access log (werkzeug), as request lines."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@dataclass
class S3:
    client: Any
    bucket: str
    endpoint: str
    log: RequestLog
    options: dict[str, str] = field(default_factory=dict)

    def requests(self, method: str, key: str) -> int:
        needle = f'"{method} /{self.bucket}/{key} '
        return sum(needle in line for line in self.log.lines)

    def gets(self, digest: str) -> int:
        return self.requests("GET", blob_name(digest))

    def puts(self, digest: str) -> int:
        return self.requests("PUT", blob_name(digest))

    def keys(self) -> set[str]:
        pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket)
        return {item["Key"] for page in pages for item in page.get("Contents", ())}

    def blob_keys(self) -> set[str]:
        return {key.rsplit("/", 1)[-1] for key in self.keys() if key != SNAPSHOT_NAME}

    def put(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=key, Body=data)


@pytest.fixture
def s3(settings, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[S3]:
    # Credentials and region come from the storage options; keep any real
    # AWS configuration of the machine out of the way.
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    }.items():
        monkeypatch.setenv(name, value)
    bucket = f"assetcache-{os.getpid()}-{next(_buckets)}"
    client = boto3.client(
        "s3",
        endpoint_url=moto_endpoint,
        aws_access_key_id="test",
        aws_secret_access_key="test",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=bucket)
    options = {
        "bucket_name": bucket,
        "endpoint_url": moto_endpoint,
        "access_key": "test",
        "secret_key": "test",
        "region_name": "us-east-1",
    }
    settings.STORAGES = {
        **settings.STORAGES,
        "assetcache": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": options},
    }
    settings.ASSETCACHE_DELETE_DELAY = 0
    settings.ASSETCACHE_DISK_LIMIT = 1 << 40
    conf.reset()
    runtime.reset()
    tiers.reset()
    log = RequestLog()
    werkzeug = logging.getLogger("werkzeug")
    werkzeug.addHandler(log)
    old_level = werkzeug.level
    werkzeug.setLevel(logging.INFO)
    try:
        yield S3(client, bucket, moto_endpoint, log, options)
    finally:
        werkzeug.removeHandler(log)
        werkzeug.setLevel(old_level)
        tiers.reset()
        runtime.reset()
        client.close()


@pytest.fixture
def no_remote_open(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail if anything opens a blob through S3Storage's file object (S3File
    spools the whole object before the first byte): the tier streams GETs."""

    def refuse(self: S3Storage, name: str, mode: str = "rb") -> Any:
        raise AssertionError(f"S3Storage.open({name!r}) on the request path")

    monkeypatch.setattr(S3Storage, "_open", refuse)


def tier() -> LocalTier:
    return tiers.get_tier()


def fetch(path: str, **headers: str) -> Any:
    return Client(HTTP_HOST="docs.sites.test").get(path, **headers)


def body_of(response: Any) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def open_files() -> set[str]:
    found = set()
    for fd in os.listdir("/proc/self/fd"):
        try:
            found.add(os.readlink(f"/proc/self/fd/{fd}"))
        except OSError:
            continue
    return found


def tier_files(directory: str | Path) -> list[str]:
    return sorted(name for name, _ in localtier.walk_directory(directory))


def temp_files(t: LocalTier) -> list[str]:
    return os.listdir(t.temp_dir)


@pytest.fixture
def published(s3: S3, db, tmp_path: Path) -> S3:
    publish("docs", write_tree(tmp_path / "src", FILES))
    runtime.reset()
    return s3


# --- publishing ----------------------------------------------------------------


def test_publish_uploads_each_new_blob_once_and_downloads_nothing(s3: S3, db, tmp_path: Path) -> None:
    summary = publish("docs", write_tree(tmp_path / "v1", FILES))
    assert s3.blob_keys() == {sha(content) for content in FILES.values()}
    assert s3.keys() == {blob_name(sha(content)) for content in FILES.values()}
    assert summary.bytes_stored == sum(len(c.encode() if isinstance(c, str) else c) for c in FILES.values())
    assert all(s3.puts(sha(content)) == 1 for content in FILES.values())

    # The same bytes under another site: nothing uploaded, nothing downloaded.
    publish("other", tmp_path / "v1")
    # A blob whose row is gone but whose object is there (a publish that
    # failed after uploading): found by HEAD, not uploaded again.
    extra = b"already in the bucket\n"
    s3.put(blob_name(sha(extra)), extra)
    publish("third", write_tree(tmp_path / "v3", {"extra.txt": extra, "new.txt": "new\n"}))
    assert s3.puts(sha(extra)) == 1  # the put above only
    assert s3.puts(sha("new\n")) == 1
    assert all(s3.puts(sha(content)) == 1 for content in FILES.values())
    assert [line for line in s3.log.lines if f'"GET /{s3.bucket}/' in line] == []
    assert not os.path.exists(conf.get().LOCAL_DIR) or tier_files(conf.get().LOCAL_DIR) == []


# --- serving -------------------------------------------------------------------


def test_first_request_downloads_once_then_serves_from_the_tier(published: S3, no_remote_open) -> None:
    big, small = sha(BIG), sha(SAMPLE["index.html"])
    response = fetch("/big.bin")
    assert response.status_code == 200
    assert response.streaming  # FileResponse over the tier's file: sendfile-able
    # The body is the tier's file, open until sent (the test client hides
    # the FileRange behind its own iterator).
    assert tier().path_of(big) in open_files()
    assert body_of(response) == BIG
    assert published.gets(big) == 1
    assert Path(tier().path_of(big)).read_bytes() == BIG

    index = fetch("/")
    assert index.status_code == 200 and not index.streaming
    assert index.content == SAMPLE["index.html"].encode()
    assert published.gets(small) == 1

    # Hits, and misses of a fresh process cache over the same tier: no GET.
    for _ in range(3):
        assert body_of(fetch("/big.bin")) == BIG
    runtime.reset()
    assert body_of(fetch("/big.bin")) == BIG
    assert fetch("/").content == SAMPLE["index.html"].encode()
    assert published.gets(big) == 1 and published.gets(small) == 1
    assert tier().downloads == 3  # the big file, the error document, the index
    assert temp_files(tier()) == []


def test_a_file_deleted_under_a_cached_entry_is_fetched_again(published: S3, caplog) -> None:
    """Another process's tier evicted the file this process's entry sends:
    the entry is rebuilt and the blob downloaded again, never a 502."""
    big = sha(BIG)
    assert body_of(fetch("/big.bin")) == BIG  # cached entry pointing at the tier file
    os.unlink(tier().path_of(big))  # what a delete by another process looks like here
    with caplog.at_level(logging.WARNING, logger="django_assetcache"):
        response = fetch("/big.bin")
    assert response.status_code == 200
    assert body_of(response) == BIG
    assert published.gets(big) == 2
    assert "rebuilding its cache entry" in caplog.text


def test_hash_mismatch_is_a_502_and_nothing_is_kept(published: S3, caplog) -> None:
    big = sha(BIG)
    wrong = bytearray(BIG)
    wrong[12345] ^= 0xFF
    published.put(blob_name(big), bytes(wrong))  # same size, other bytes
    published.put(blob_name(sha(CSS)), b"short")  # other size
    with caplog.at_level(logging.ERROR, logger="django_assetcache"):
        assert fetch("/big.bin").status_code == 502
        assert fetch("/css/site.css").status_code == 502
    assert "does not match its hash" in caplog.text
    assert not os.path.exists(tier().path_of(big))
    assert not os.path.exists(tier().path_of(sha(CSS)))
    assert temp_files(tier()) == []
    assert tier().mismatches == 2

    # Fixed in the bucket: the next request (a miss again) serves it.
    published.put(blob_name(big), BIG)
    response = fetch("/big.bin")
    assert response.status_code == 200 and body_of(response) == BIG


def test_a_blob_missing_from_the_bucket_is_a_502(published: S3, caplog) -> None:
    published.client.delete_object(Bucket=published.bucket, Key=blob_name(sha(BIG)))
    with caplog.at_level(logging.ERROR, logger="django_assetcache"):
        assert fetch("/big.bin").status_code == 502
    assert fetch("/").status_code == 200
    assert temp_files(tier()) == []


def test_concurrent_first_requests_cause_one_download(
    s3: S3, transactional_db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish("docs", write_tree(tmp_path / "src", FILES))
    runtime.reset()
    # Hold the one download open a moment so every thread arrives while it
    # runs (wrapping this package's own method, not boto3 or the storage).
    real_download = LocalTier._download

    def slow_download(self: LocalTier, *args: Any, **kwargs: Any) -> None:
        time.sleep(0.5)
        real_download(self, *args, **kwargs)

    monkeypatch.setattr(LocalTier, "_download", slow_download)
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    results: list[tuple[int, bytes]] = []

    def worker() -> None:
        try:
            barrier.wait()
            response = fetch("/big.bin")
            results.append((response.status_code, body_of(response)))
        finally:
            connections.close_all()

    threads = [threading.Thread(target=worker) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert results == [(200, BIG)] * threads_count
    assert s3.gets(sha(BIG)) == 1
    assert tier().downloads == 2  # the big file and the error document, once each
    assert tier().waits >= threads_count - 1


CROSS_PROCESS = r"""
import json, os, sys, time
import boto3
sys.path.insert(0, sys.argv[1])
from django_assetcache.localtier import LocalTier

directory, endpoint, bucket, key, digest, size, start_at = sys.argv[2:9]
client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test",
                      aws_secret_access_key="test", region_name="us-east-1")

def fetch():
    time.sleep(0.5)  # a slow link: the other process arrives meanwhile
    body = client.get_object(Bucket=bucket, Key=key)["Body"]
    try:
        yield from body.iter_chunks(65536)
    finally:
        body.close()

tier = LocalTier(directory, disk_limit=1 << 40, delete_delay=0)
time.sleep(max(0.0, float(start_at) - time.time()))
path = tier.path_for(digest, int(size), fetch)
with open(path, "rb") as f:
    ok = f.read() == open(sys.argv[9], "rb").read()
print(json.dumps({"downloads": tier.downloads, "ok": ok}))
"""


def test_processes_sharing_a_tier_download_once(s3: S3, tmp_path: Path) -> None:
    data = os.urandom(2 * 1024 * 1024)
    digest = sha(data)
    s3.put(blob_name(digest), data)
    original = tmp_path / "original"
    original.write_bytes(data)
    directory = tmp_path / "shared-tier"
    start_at = str(time.time() + 1.5)
    args = [
        sys.executable,
        "-c",
        CROSS_PROCESS,
        str(ROOT),
        str(directory),
        s3.endpoint,
        s3.bucket,
        blob_name(digest),
        digest,
        str(len(data)),
        start_at,
        str(original),
    ]
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    processes = [subprocess.Popen(args, stdout=subprocess.PIPE, env=env) for _ in range(2)]
    outputs = [json.loads(p.communicate(timeout=60)[0]) for p in processes]
    assert [p.returncode for p in processes] == [0, 0]
    assert all(out["ok"] for out in outputs)
    assert sorted(out["downloads"] for out in outputs) == [0, 1]
    assert s3.gets(digest) == 1
    assert os.listdir(directory / localtier.TEMP_DIR) == []


# --- the disk limit --------------------------------------------------------------


def stored_blobs(count: int, size: int = 64 * 1024) -> list[tuple[str, bytes]]:
    store = BlobStore(get_storage())
    blobs = []
    for _ in range(count):
        data = os.urandom(size)
        digest = sha(data)
        store.save(digest, len(data), io.BytesIO(data))
        blobs.append((digest, data))
    return blobs


def tier_store(directory: Path, **kwargs: Any) -> tuple[LocalTier, BlobStore]:
    options = {"disk_limit": 1 << 40, "delete_delay": 0.0, **kwargs}
    t = LocalTier(directory, **options)
    return t, BlobStore(get_storage(), tier=t)


def disk_bytes(directory: Path) -> int:
    return sum(st.st_blocks * 512 for _, st in localtier.walk_directory(directory))


def test_the_byte_limit_evicts_least_recently_used_blobs(s3: S3, tmp_path: Path) -> None:
    blobs = stored_blobs(5)
    probe, probe_store = tier_store(tmp_path / "probe")
    probe_store.local_path(blobs[0][0], len(blobs[0][1]))
    per_blob = probe.usage()
    assert per_blob >= 64 * 1024

    limit = 3 * per_blob + per_blob // 2
    t, store = tier_store(tmp_path / "tier", disk_limit=limit)
    for digest, data in blobs[:3]:
        store.local_path(digest, len(data))
    store.local_path(blobs[0][0], len(blobs[0][1]))  # used again: now the most recent
    store.local_path(blobs[3][0], len(blobs[3][1]))  # evicts blobs[1]
    store.local_path(blobs[4][0], len(blobs[4][1]))  # evicts blobs[2]
    kept = {blobs[0][0], blobs[3][0], blobs[4][0]}
    assert set(tier_files(t.directory)) == kept
    assert t.usage() <= limit and disk_bytes(tmp_path / "tier") <= limit
    assert t.evictions == 2 and t.deleted == 2
    for digest, data in blobs:
        if digest in kept:
            assert Path(t.path_of(digest)).read_bytes() == data


def test_the_fraction_limit_watches_the_filesystem(s3: S3, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = stored_blobs(4)
    directory = tmp_path / "tier"
    other_data = 10 * 1024 * 1024
    frsize = 4096
    real_statvfs = os.statvfs
    holder: dict[str, int] = {}

    class FakeVfs:
        """A filesystem of known size holding other data plus the tier."""

        def __init__(self, path: str) -> None:
            used = other_data + disk_bytes(directory)
            self.f_frsize = frsize
            self.f_blocks = holder["total"] // frsize
            self.f_bfree = self.f_blocks - used // frsize

    def statvfs(path: Any) -> Any:
        if os.fspath(path).startswith(str(directory)):
            return FakeVfs(os.fspath(path))
        return real_statvfs(path)

    probe, probe_store = tier_store(tmp_path / "probe")
    probe_store.local_path(blobs[0][0], len(blobs[0][1]))
    per_blob = probe.usage()
    # Half the filesystem may be in use: room for the other data and 2.5 blobs.
    holder["total"] = 2 * (other_data + 2 * per_blob + per_blob // 2)
    monkeypatch.setattr(os, "statvfs", statvfs)
    t, store = tier_store(directory, disk_limit=0.5)
    assert t.fraction == 0.5
    for digest, data in blobs:
        store.local_path(digest, len(data))
    assert set(tier_files(directory)) == {blobs[2][0], blobs[3][0]}
    assert t.excess() <= 0


def test_a_file_evicted_while_being_sent_arrives_whole(published: S3) -> None:
    response = fetch("/big.bin")  # the FileRange is open from here
    path = tier().path_of(sha(BIG))
    t = tier()
    t.limit_bytes = 0
    assert sha(BIG) in t.enforce_limit()
    assert not os.path.exists(path)  # no delay configured: deleted already
    assert body_of(response) == BIG
    # The cache entry went with the file: the next request fetches it again.
    t.limit_bytes = 1 << 40
    again = fetch("/big.bin")
    assert again.status_code == 200 and body_of(again) == BIG
    assert published.gets(sha(BIG)) == 2


def test_delayed_delete_keeps_handed_out_paths_valid(published: S3, settings) -> None:
    settings.ASSETCACHE_DELETE_DELAY = 30
    runtime.reset()
    t = tier()
    assert t.delete_delay == 30
    response = fetch("/big.bin")
    body_of(response)
    path = t.path_of(sha(BIG))
    site_id = Site.objects.get(subdomain="docs").live_deployment_id  # entries are keyed by deployment
    assert (site_id, "/big.bin") in runtime.get_cache().entries

    t.limit_bytes = 0
    assert sha(BIG) in t.enforce_limit()
    # Still there for a path handed out and not yet opened...
    with open(path, "rb") as handed_out:
        assert handed_out.read() == BIG
    # ...but the cache no longer sends it, so nothing keeps using it.
    assert (site_id, "/big.bin") not in runtime.get_cache().entries
    assert t.stats()["pending_deletes"] >= 1
    # Wanted again within the delay: back without a download.
    assert body_of(fetch("/big.bin")) == BIG
    assert published.gets(sha(BIG)) == 1

    t.enforce_limit()
    assert t.purge(force=True) >= 1
    assert not os.path.exists(path)
    t.limit_bytes = 1 << 40
    assert body_of(fetch("/big.bin")) == BIG
    assert published.gets(sha(BIG)) == 2


# --- restarts --------------------------------------------------------------------


def test_a_restarted_tier_keeps_its_files_and_their_order(s3: S3, tmp_path: Path) -> None:
    blobs = stored_blobs(3)
    directory = tmp_path / "tier"
    first, store = tier_store(directory)
    for digest, data in blobs:
        store.local_path(digest, len(data))
    assert first.downloads == 3
    per_blob = first.usage() // 3
    now = time.time()
    for age, (digest, _) in zip((300, 200, 100), blobs, strict=False):
        os.utime(first.path_of(digest), (now - age, now - age))
    first.close()

    second, store2 = tier_store(directory, disk_limit=2 * per_blob + per_blob // 2)
    assert second.stats()["blobs"] == 3 and second.usage() == 3 * per_blob
    assert second.enforce_limit() == [blobs[0][0]]  # the least recently used
    for digest, data in blobs[1:]:
        assert Path(store2.local_path(digest, len(data))).read_bytes() == data
    assert second.downloads == 0
    assert all(s3.gets(digest) == 1 for digest, _ in blobs)


def test_stale_temporary_files_are_cleaned_at_start(s3: S3, tmp_path: Path) -> None:
    directory = tmp_path / "tier"
    LocalTier(directory, disk_limit=1 << 40)
    stale = directory / localtier.TEMP_DIR / "dead-process"
    fresh = directory / localtier.TEMP_DIR / "live-process"
    stale.write_bytes(b"x")
    fresh.write_bytes(b"y")
    os.utime(stale, (time.time() - 2 * localtier.STALE_TEMP_SECONDS,) * 2)
    LocalTier(directory, disk_limit=1 << 40)
    assert os.listdir(directory / localtier.TEMP_DIR) == ["live-process"]


# --- garbage collection --------------------------------------------------------------


def test_gc_removes_unreferenced_blobs_from_s3_and_the_tier(
    s3: S3, db, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings
) -> None:
    # v1 is expired at once: its blobs are the unreferenced ones.
    settings.ASSETCACHE_DEPLOYMENT_RETENTION = 0
    settings.ASSETCACHE_DEPLOYMENT_RETENTION_DAYS = 0
    v1 = {"index.html": "v1", "gone.txt": "only in v1\n", "big.bin": BIG}
    v2 = {"index.html": "v2", "kept.txt": "kept\n"}
    publish("docs", write_tree(tmp_path / "v1", v1))
    publish("docs", write_tree(tmp_path / "v2", v2), delete=True)
    store = BlobStore()
    for digest, size in Blob.objects.values_list("sha256", "size"):
        store.local_path(digest, size)
    # A publish in flight: uploaded, fetched by a server, not committed yet.
    orphan = b"uploaded by a publish that has not committed\n"
    store.save(sha(orphan), len(orphan), io.BytesIO(orphan))
    store.local_path(sha(orphan), len(orphan))
    t = tier()

    summary = maintenance.collect_garbage()
    referenced = {sha(c) for c in v2.values()}
    unreferenced = {sha("v1"), sha("only in v1\n"), sha(BIG)}
    assert summary.blobs_deleted == 3
    assert summary.tier_files_deleted == 3
    assert s3.blob_keys() == referenced | {sha(orphan)}
    assert set(tier_files(t.directory)) == referenced | {sha(orphan)}
    assert not unreferenced & set(tier_files(t.directory))

    # Past the grace period, the orphan goes from both.
    monkeypatch.setattr(maintenance, "UNCOMMITTED_GRACE", timedelta(0))
    old = time.time() - 3600
    os.utime(t.path_of(sha(orphan)), (old, old))
    time.sleep(1.1)  # S3 modification times have a one-second resolution
    summary = maintenance.collect_garbage()
    assert summary.orphan_files_deleted == 1 and summary.tier_files_deleted == 1
    assert s3.blob_keys() == referenced
    assert set(tier_files(t.directory)) == referenced
    assert fetch("/").content == b"v2"


# --- warmup ------------------------------------------------------------------------


def test_warmup_fills_the_tier_and_another_machine_warms_from_storage(
    s3: S3, db, tmp_path: Path, settings, django_assert_num_queries
) -> None:
    settings.ASSETCACHE_POLL_INTERVAL = 3600
    publish("docs", write_tree(tmp_path / "src", FILES))
    stderr = Terminal()
    call_command("assetcache_warmup", "--upload-snapshot", stdout=io.StringIO(), stderr=stderr)
    assert "downloading" in stderr.getvalue()
    first = tier()
    every_blob = dict(Blob.objects.values_list("sha256", "size"))
    assert len(every_blob) > len(FILES)  # compressed variants too
    assert set(tier_files(first.directory)) == set(every_blob)
    # Variants were put in the tier by the process that made them.
    assert first.downloads == len(FILES)
    s3.client.head_object(Bucket=s3.bucket, Key=SNAPSHOT_NAME)

    # A new machine: empty media directory, no database needed.
    settings.MEDIA_ROOT = str(tmp_path / "new-machine")
    tiers.reset()
    runtime.reset()
    gets_before = len([line for line in s3.log.lines if '"GET /' in line])
    with django_assert_num_queries(0):
        call_command("assetcache_warmup", "--from-storage", stdout=io.StringIO(), stderr=io.StringIO())
    assert Path(conf.get().SNAPSHOT_PATH).is_file()
    second = tier()
    assert second.directory.startswith(str(tmp_path / "new-machine"))
    assert sha(BIG) in tier_files(second.directory)
    # Bodies in the snapshot are not downloaded again.
    assert sha(SAMPLE["index.html"]) not in tier_files(second.directory)
    gets_after_warmup = len([line for line in s3.log.lines if '"GET /' in line])
    assert gets_after_warmup > gets_before

    warm()
    downloads = second.downloads
    with django_assert_num_queries(0):
        for name, content in FILES.items():
            response = fetch("/" + name)
            assert response.status_code == 200, name
            assert body_of(response) == (content.encode() if isinstance(content, str) else content)
        assert fetch("/css/site.css", HTTP_ACCEPT_ENCODING="gzip")["Content-Encoding"] == "gzip"
    assert second.downloads == downloads
    assert len([line for line in s3.log.lines if '"GET /' in line]) == gets_after_warmup


def test_from_storage_without_a_stored_snapshot_is_an_error(s3: S3) -> None:
    from django.core.management import CommandError

    with pytest.raises(CommandError, match="--upload-snapshot"):
        call_command("assetcache_warmup", "--from-storage", stdout=io.StringIO(), stderr=io.StringIO())
    assert not Path(conf.get().SNAPSHOT_PATH).exists()


def test_stream_object_reads_s3_without_the_file_object(s3: S3, no_remote_open) -> None:
    data = os.urandom(3 * 1024 * 1024 + 17)
    s3.put("some/object", data)
    assert b"".join(stream_object(get_storage(), "some/object")) == data
    with pytest.raises(FileNotFoundError):
        list(stream_object(get_storage(), "no/such/object"))


def test_delayed_deletes_happen_on_their_own(tmp_path: Path) -> None:
    # The tier alone, fed from memory: the timer, not a later download, deletes.
    t = LocalTier(tmp_path / "tier", disk_limit=1 << 40, delete_delay=0.2)
    data = os.urandom(10_000)
    path = t.path_for(sha(data), len(data), lambda: (data,))
    t.limit_bytes = 0
    assert t.enforce_limit() == [sha(data)]
    assert os.path.exists(path)
    deadline = time.monotonic() + 5
    while t.deleted == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not os.path.exists(path)
    assert t.stats()["pending_deletes"] == 0 and t.deleted == 1
    t.close()


def test_a_damaged_stored_snapshot_does_not_replace_a_good_one(s3: S3, db, tmp_path: Path, settings) -> None:
    from django.core.management import CommandError

    publish("docs", write_tree(tmp_path / "src", FILES))
    call_command("assetcache_warmup", "--upload-snapshot", "--no-compress", stdout=io.StringIO(), stderr=io.StringIO())
    local = Path(conf.get().SNAPSHOT_PATH)
    good = local.read_bytes()
    s3.put(SNAPSHOT_NAME, good[: len(good) // 2])  # an upload cut short
    with pytest.raises(CommandError, match="unusable"):
        call_command("assetcache_warmup", "--from-storage", stdout=io.StringIO(), stderr=io.StringIO())
    assert local.read_bytes() == good
    assert [name for name in os.listdir(local.parent) if name.startswith(".snapshot-")] == []
