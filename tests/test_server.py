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
