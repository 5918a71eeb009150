"""The app under a real gunicorn: large files and ranges go out by sendfile."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from django_assetcache.publish import publish

from .conftest import write_tree
from .servers import gunicorn

HOST = "big.sites.test"


@pytest.fixture
def big_site(transactional_db, tmp_path: Path, settings) -> dict[str, bytes]:
    files = {
        "video.bin": os.urandom(3 * 1024 * 1024 + 123),
        "small.txt": b"small body\n",
    }
    publish("big", write_tree(tmp_path / "src", files))
    return files


def test_large_file_and_range_are_sent_by_sendfile(big_site: dict[str, bytes], tmp_path: Path, settings) -> None:
    sendfile_log = tmp_path / "sendfile.jsonl"
    env = {"ASSETCACHE_SENDFILE_LOG": str(sendfile_log), "ASSETCACHE_TEST_MEDIA_ROOT": settings.MEDIA_ROOT}
    data = big_site["video.bin"]
    with gunicorn(tmp_path, env=env) as server:
        status, headers, body = server.request("/video.bin", HOST)
        assert status == 200, server.log()
        assert headers["content-length"] == str(len(data))
        assert body == data

        status, headers, body = server.request("/video.bin", HOST, headers={"Range": "bytes=1000000-1999999"})
        assert status == 206
        assert headers["content-range"] == f"bytes 1000000-1999999/{len(data)}"
        assert headers["content-length"] == "1000000"
        assert body == data[1000000:2000000]

        status, headers, body = server.request("/video.bin", HOST, headers={"Range": f"bytes=-10"})
        assert status == 206
        assert body == data[-10:]

        status, _, body = server.request("/small.txt", HOST)
        assert (status, body) == (200, b"small body\n")

    records = [json.loads(line) for line in sendfile_log.read_text().splitlines()]
    # Exactly the three file responses went through wsgi.file_wrapper; the
    # small file was answered from memory.
    assert [r["path"] for r in records] == ["/video.bin"] * 3
    assert all(r["used"] for r in records)
    assert [r["kernel_bytes"] for r in records] == [len(data), 1000000, 10]
    assert [r["content_length"] for r in records] == [len(data), 1000000, 10]
