"""The app under a real gunicorn: large files and ranges go out by sendfile."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import time
from pathlib import Path

import pytest

from django_assetcache.bodies import FileRange
from django_assetcache.publish import publish
from django_assetcache.ranges import MAX_RANGES
from django_assetcache.store import BlobStore

from .conftest import write_tree
from .servers import Server, gunicorn

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

        status, headers, body = server.request("/video.bin", HOST, headers={"Range": "bytes=-10"})
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


def blob_path(data: bytes) -> str:
    return BlobStore().local_path(hashlib.sha256(data).hexdigest())


def server_env(tmp_path: Path, settings) -> dict[str, str]:
    return {
        "ASSETCACHE_SENDFILE_LOG": str(tmp_path / "sendfile.jsonl"),
        "ASSETCACHE_TEST_MEDIA_ROOT": settings.MEDIA_ROOT,
    }


@pytest.mark.parametrize("headers", [{}, {"Range": "bytes=1000-"}, {"Range": "bytes=0-9,3000000-"}])
def test_a_truncated_blob_file_gets_502_never_a_short_body(
    big_site: dict[str, bytes], tmp_path: Path, settings, headers: dict[str, str]
) -> None:
    """Issue 11 item 4: a blob file cut short on disk answers 502 (its entry
    dropped and rebuilt), never 200 with the full Content-Length and a short body."""
    data = big_site["video.bin"]
    path = blob_path(data)
    with gunicorn(tmp_path, env=server_env(tmp_path, settings)) as server:
        assert server.request("/video.bin", HOST)[2] == data  # the entry is cached
        os.truncate(path, len(data) // 2)
        for _ in range(2):
            status, response_headers, body = server.request("/video.bin", HOST, headers=headers)
            assert status == 502, server.log()
            assert body == b"The file could not be fetched from storage.\n"
            assert response_headers["content-length"] == str(len(body))
        assert "expected" in server.log()  # said why, once per attempt
        # The entry was dropped: the file whole again serves at once.
        with open(path, "r+b") as blob:
            blob.write(data)
        status, _, body = server.request("/video.bin", HOST)
        assert (status, body) == (200, data)


def test_several_ranges_through_gunicorn(big_site: dict[str, bytes], tmp_path: Path, settings) -> None:
    """Issue 11 item 10: multipart/byteranges from disk through a real
    gunicorn, iterated in blocks (never by sendfile of the raw file)."""
    data = big_site["video.bin"]
    ranges = [(0, 0), (1000, 2_000_000), (3_000_000, len(data) - 1)]
    header = "bytes=3000000-,1000-1500000,1400000-2000000,0-0"  # unordered, overlapping
    with gunicorn(tmp_path, env=server_env(tmp_path, settings)) as server:
        status, headers, body = server.request("/video.bin", HOST, headers={"Range": header})
        assert status == 206, server.log()
        media_type, _, boundary = headers["content-type"].partition("; boundary=")
        assert media_type == "multipart/byteranges"
        assert boundary.encode() not in data
        expected = b""
        for index, (start, end) in enumerate(ranges):
            expected += (b"\r\n" if index else b"") + f"--{boundary}\r\n".encode()
            expected += b"Content-Type: application/octet-stream\r\n"
            expected += f"Content-Range: bytes {start}-{end}/{len(data)}\r\n\r\n".encode()
            expected += data[start : end + 1]
        expected += f"\r\n--{boundary}--\r\n".encode()
        assert body == expected
        assert headers["content-length"] == str(len(expected))
        # Too many ranges: the whole file, by sendfile.
        many = "bytes=" + ",".join(f"{2 * i}-{2 * i}" for i in range(MAX_RANGES + 1))
        status, headers, body = server.request("/video.bin", HOST, headers={"Range": many})
        assert (status, body) == (200, data)
    records = [json.loads(line) for line in (tmp_path / "sendfile.jsonl").read_text().splitlines()]
    assert [(r["used"], r["kernel_bytes"]) for r in records] == [(False, 0), (True, len(data))]


def aborted_download(server: Server, headers: str) -> None:
    """Send a request and close the connection without reading the answer."""
    with socket.create_connection(("127.0.0.1", server.port)) as sock:
        sock.sendall(f"GET /video.bin HTTP/1.1\r\nHost: {HOST}\r\n{headers}\r\n".encode())


def test_aborted_downloads_leave_no_error_in_gunicorns_log(
    big_site: dict[str, bytes], tmp_path: Path, settings
) -> None:
    """Issue 11 item 7: when sendfile fails before sending anything (the
    client is gone), gunicorn falls back to seeking and reading the body; the
    body supports that, so an aborted download is no error."""
    with gunicorn(tmp_path, env=server_env(tmp_path, settings)) as server:
        for index in range(40):
            aborted_download(server, f"Range: bytes={1000 + index}-\r\n" if index % 2 else "")
        time.sleep(0.5)
        assert server.request("/small.txt", HOST)[0] == 200
        log = server.log()
    assert "Error handling request" not in log, log
    assert "Traceback" not in log, log


def range_of(data: bytes, tmp_path: Path, offset: int, length: int) -> FileRange:
    path = tmp_path / "blob"
    path.write_bytes(data)
    return FileRange(str(path), offset, length, len(data))


def test_socket_sendfile_fallback_on_a_closed_connection_is_a_broken_pipe(tmp_path: Path) -> None:
    """Issue 11 item 7: gunicorn's ``sock.sendfile(body, offset, count)``
    (offset read by lseek on ``body.fileno()``) against a client that is
    gone: os.sendfile fails, the fallback seeks and reads, and the outcome
    is the broken pipe gunicorn ignores, not an AttributeError."""
    body = range_of(os.urandom(100_000), tmp_path, 5000, 20_000)
    server_side, client_side = socket.socketpair()
    client_side.close()
    with server_side, pytest.raises(BrokenPipeError):
        server_side.sendfile(body, offset=os.lseek(body.fileno(), 0, os.SEEK_CUR), count=20_000)
    body.close()


@pytest.mark.parametrize("sender", ["sendfile", "fallback"])
def test_socket_sendfile_and_its_fallback_send_exactly_the_range(tmp_path: Path, sender: str) -> None:
    """Issue 11 item 7: what gunicorn does with a body, by os.sendfile and by
    the read-and-send fallback socket.sendfile uses when os.sendfile fails:
    the range's bytes, and the positions gunicorn and socket expect after."""
    data = os.urandom(100_000)
    body = range_of(data, tmp_path, 5000, 20_000)
    server_side, client_side = socket.socketpair()
    with server_side, client_side:
        fileno = body.fileno()
        offset = os.lseek(fileno, 0, os.SEEK_CUR)
        assert offset == 5000
        if sender == "sendfile":
            sent = server_side.sendfile(body, offset=offset, count=20_000)
        else:
            sent = server_side._sendfile_use_send(body, offset=offset, count=20_000)  # type: ignore[attr-defined]
        assert sent == 20_000
        assert body.tell() == 25_000  # socket.sendfile's documented position after sending
        os.lseek(fileno, offset, os.SEEK_SET)  # what gunicorn does next
        received = b""
        while len(received) < 20_000:
            received += client_side.recv(65536)
    assert received == data[5000:25_000]
    assert body.read() == b""  # the range is spent
    body.close()


def test_file_range_measures_as_its_range(tmp_path: Path) -> None:
    """Issue 11 item 7: Django's FileResponse and waitress measure a body by
    tell, seek to the end, tell, seek back: that gives the range's length."""
    data = os.urandom(10_000)
    body = range_of(data, tmp_path, 1000, 500)
    start = body.tell()
    body.seek(0, os.SEEK_END)
    assert body.tell() - start == 500
    body.seek(start)
    assert body.read(100) == data[1000:1100]
    body.seek(-50, os.SEEK_CUR)
    assert body.read() == data[1050:1500]
    with pytest.raises(OSError):
        body.seek(999)  # before the range
    body.close()
    assert body.closed


def test_wrappers_import_before_django_is_set_up(tmp_path: Path) -> None:
    """``wsgi.py``/``asgi.py`` import the wrappers before creating Django's
    application, as the documentation shows."""
    import subprocess
    import sys

    code = (
        "from django_assetcache.wsgi import AssetCacheWSGI\n"
        "from django_assetcache.asgi import AssetCacheASGI\n"
        "from django.core.wsgi import get_wsgi_application\n"
        "from django.core.asgi import get_asgi_application\n"
        "AssetCacheWSGI(get_wsgi_application()); AssetCacheASGI(get_asgi_application())\n"
        "print('ready')\n"
    )
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings"}
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ready"


#: Targets a client may send gunicorn in absolute form with Host: big.sites.test, and what answers.
#: An authority that is no host name names no site: the project answers.
ODD_TARGETS = [
    ("http://[::1]/", b"project home"),
    ("http://user@big.sites.test/", b"project home"),
    ("http:///", b"project home"),
    ("http://big.sites.test%2F/", b"project home"),
    ("http://" + "a" * 3000 + ".sites.test/", b"project home"),
    ("ftp://other.example/small.txt", None),
]


@pytest.mark.parametrize("app", ["tests.wsgi:application", "tests.preload_wsgi:application"])
def test_absolute_form_target_under_gunicorn(big_site: dict[str, bytes], tmp_path: Path, settings, app: str) -> None:
    """Issue 11 item 11: under gunicorn, an absolute-form target's host chooses the site (middleware and WSGI
    wrapper), and no target, however malformed, gets a 500."""
    env = {"ASSETCACHE_TEST_MEDIA_ROOT": settings.MEDIA_ROOT}
    small = big_site["small.txt"]
    with gunicorn(tmp_path, app=app, env=env) as server:
        status, headers, body = server.request("http://big.sites.test/small.txt", "testserver")
        assert (status, body) == (200, small), server.log()
        assert headers["content-length"] == str(len(small))
        status, _, body = server.request("HTTP://BIG.SITES.TEST:8000/small.txt?x=1", "other.sites.test")
        assert (status, body) == (200, small)
        status, _, body = server.request("http://testserver/", HOST)
        assert (status, body) == (200, b"project home")
        status, _, body = server.request("http://nosuch.sites.test/small.txt", HOST)
        assert (status, body) == (404, b"No site is published at this address.\n")
        for target, expected in ODD_TARGETS:
            status, _, body = server.request(target, HOST)
            if expected is None:  # another host: the project's 404 for /small.txt
                assert status == 404, target
            else:
                assert (status, body) == (200, expected), target[:40]
        log = server.log()
    assert "Traceback" not in log
