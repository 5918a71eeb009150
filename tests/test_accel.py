"""ASSETCACHE_ACCEL: large files handed to nginx (X-Accel-Redirect) in front
of a real gunicorn, through the documented configuration
(deploy/nginx/assetcache-accel.conf.template); the offload decision itself."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from django_assetcache.accel import NGINX_ADDED, Offload, offload_for
from django_assetcache.entries import etag_for
from django_assetcache.publish import publish
from django_assetcache.replies import Reply
from django_assetcache.store import BlobStore

from .conftest import write_tree
from .servers import ROOT, Server, free_port, gunicorn, stop_process, wait_for_port
from .test_deploy_files import nginx_command

HOST = "big.sites.test"
ACCEL_TEMPLATE = ROOT / "deploy" / "nginx" / "assetcache-accel.conf.template"
#: Headers of the connection, not of the reply: nginx and gunicorn each send their own.
HOP = {"date", "server", "connection", "keep-alive"}


@pytest.fixture
def big_site(transactional_db, tmp_path: Path) -> dict[str, bytes]:
    files = {"video.bin": os.urandom(3 * 1024 * 1024 + 123), "small.txt": b"small body\n"}
    publish("big", write_tree(tmp_path / "src", files))
    return files


def accel_snippet(directory: Path, blobs: str) -> Path:
    template = ACCEL_TEMPLATE.read_text()
    snippet = directory / "assetcache-accel.conf"
    # As envsubst with the one name listed: nginx variables stay.
    snippet.write_text(template.replace("${ASSETCACHE_BLOBS}", blobs))
    return snippet


@contextmanager
def nginx_in_front(prefix: Path, upstream: int, blobs: str) -> Iterator[int]:
    """nginx on a free port proxying to ``upstream``, with the accel snippet."""
    prefix.mkdir(parents=True, exist_ok=True)
    port = free_port()
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "".join(
        f"  {kind}_temp_path {prefix}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = prefix / "nginx.conf"
    main.write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
        f"events {{}}\nhttp {{\n  access_log {prefix}/access.log;\n{temp}"
        f"  server {{\n    listen 127.0.0.1:{port};\n"
        f"    location / {{\n      proxy_pass http://127.0.0.1:{upstream};\n      proxy_set_header Host $host;\n"
        '      proxy_http_version 1.1;\n      proxy_set_header Connection "";\n    }\n'
        f"    include {accel_snippet(prefix, blobs)};\n  }}\n}}\n"
    )
    process = subprocess.Popen(nginx_command(main), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, process)
        yield port
    finally:
        stop_process(process)


def request(port: int, path: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
    return Server(port, None, Path()).request(path, HOST, headers=headers)  # type: ignore[arg-type]


def server_env(tmp_path: Path, settings, name: str, accel: str) -> tuple[dict[str, str], Path]:
    """A gunicorn's environment; every body it sends from a file by
    ``wsgi.file_wrapper`` is recorded in the returned log (tests/gunicorn_conf.py)."""
    log = tmp_path / f"{name}-sendfile.jsonl"
    env = {
        "ASSETCACHE_TEST_MEDIA_ROOT": settings.MEDIA_ROOT,
        "ASSETCACHE_TEST_ACCEL": accel,
        "ASSETCACHE_SENDFILE_LOG": str(log),
    }
    return env, log


def test_nginx_sends_offloaded_files_with_our_headers(big_site: dict[str, bytes], tmp_path: Path, settings) -> None:
    """Issue 18 item 3: through nginx, every reply is the one the app sends
    directly (status, body, every header but the connection's); large files
    and single ranges leave the worker with an empty body."""
    data = big_site["video.bin"]
    sha = hashlib.sha256(data).hexdigest()
    blobs = str(Path(BlobStore().local_path(sha)).parents[2])
    etag = etag_for(sha)
    cases: list[tuple[str, dict[str, str], int, bytes, bool]] = [
        ("/video.bin", {}, 200, data, True),
        ("/video.bin", {"Range": "bytes=1000000-1999999"}, 206, data[1000000:2000000], True),
        ("/video.bin", {"Range": "bytes=-10"}, 206, data[-10:], True),
        ("/video.bin", {"Range": "bytes=3000000-"}, 206, data[3000000:], True),
        ("/video.bin", {"Range": "bytes=5-9", "If-Range": etag}, 206, data[5:10], True),
        ("/video.bin", {"Range": "bytes=5-9", "If-Range": "{last_modified}"}, 206, data[5:10], True),
        ("/video.bin", {"Range": "bytes=5-9", "If-Range": '"other"'}, 200, data, False),
        ("/video.bin", {"If-None-Match": etag}, 304, b"", False),
        ("/video.bin", {"If-None-Match": '"other"'}, 200, data, True),
        ("/video.bin", {"If-Modified-Since": "Mon, 01 Jan 2001 00:00:00 GMT"}, 200, data, True),
        ("/video.bin", {"If-Match": etag}, 200, data, False),
        ("/video.bin", {"Range": "bytes=0-9,100-109"}, 206, b"", False),
        ("/small.txt", {}, 200, b"small body\n", False),
        ("/missing", {}, 404, b"Not found.\n", False),
    ]
    env, log = server_env(tmp_path, settings, "accel", "nginx")
    direct_env, _ = server_env(tmp_path, settings, "direct", "")
    with (
        gunicorn(tmp_path, env=env) as accel,
        gunicorn(tmp_path, env=direct_env) as direct,
        nginx_in_front(tmp_path / "nginx", accel.port, blobs) as port,
    ):
        last_modified = request(direct.port, "/video.bin", {})[1]["last-modified"]
        for path, headers, status, body, _ in cases:
            headers = {k: v.format(last_modified=last_modified) for k, v in headers.items()}
            got = request(port, path, headers)
            expected = request(direct.port, path, headers)
            assert got[0] == expected[0] == status, (path, headers, got[:2])
            if body:
                assert got[2] == body, (path, headers)
            assert got[2] == expected[2], (path, headers)
            assert {k: v for k, v in got[1].items() if k not in HOP} == {
                k: v for k, v in expected[1].items() if k not in HOP
            }, (path, headers)
    # The worker sent a file body only for the replies not offloaded.
    records = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    direct_files = [
        (path, headers.get("Range"))
        for path, headers, status, _, offloaded in cases
        if status in (200, 206) and not offloaded and path == "/video.bin"
    ]
    assert [(r["path"], r["range"]) for r in records] == direct_files
    # Two whole files by sendfile; the multipart body (no fileno) read in blocks.
    assert [r["kernel_bytes"] for r in records] == [len(data), len(data), 0]


# --- the decision, without servers ---------------------------------------------------


def headers_of(**values: str) -> object:
    return lambda name: values.get(name)


FILE_HEADERS = [
    ("Content-Type", "video/mp4"),
    ("Accept-Ranges", "bytes"),
    ("X-Content-Type-Options", "nosniff"),
    ("Content-Length", "100"),
    ("ETag", '"abc"'),
    ("Last-Modified", "Mon, 01 Jan 2024 00:00:00 GMT"),
    ("Cache-Control", "no-cache"),
]
PATH = os.sep.join(["", "srv", "blobs", "ab", "cd", "abcd" + "0" * 60])


def file_reply(status: int = 200, headers: list[tuple[str, str]] | None = None) -> Reply:
    return Reply(status, headers or FILE_HEADERS, file_path=PATH, length=100, file_size=100)


@pytest.mark.parametrize(
    ("mode", "header", "value"),
    [
        ("nginx", "X-Accel-Redirect", "/_assetcache_blobs/ab/cd/abcd" + "0" * 60),
        ("apache", "X-Sendfile", PATH),
        ("lighttpd", "X-Sendfile", PATH),
    ],
)
def test_an_offload_keeps_our_headers_and_names_the_file(mode: str, header: str, value: str) -> None:
    reply = file_reply()
    offload = Offload(mode, "/_assetcache_blobs")
    offloaded = offload.reply_for(reply, headers_of())
    assert offloaded is not None
    assert (offloaded.status, offloaded.body, offloaded.file_path) == (200, b"", None)
    assert offloaded.headers == [
        *[item for item in FILE_HEADERS if item[0] != "Content-Length"],
        ("Content-Length", "0"),
        (header, value),
    ]
    # The file's header value is formatted once, then found by the next request.
    again = offload.reply_for(reply, headers_of())
    assert again is not None and again.headers == offloaded.headers
    assert again.headers[-1][1] is offloaded.headers[-1][1]


@pytest.mark.parametrize(
    ("mode", "status", "request_headers", "offloaded"),
    [
        ("nginx", 200, {}, True),
        ("nginx", 200, {"HTTP_RANGE": "bytes=0-"}, False),
        ("nginx", 206, {"HTTP_RANGE": "bytes=0-9"}, True),
        ("nginx", 206, {"HTTP_RANGE": "bytes=0-9,5-20"}, False),
        ("nginx", 206, {"HTTP_RANGE": "bytes=0-9", "HTTP_IF_RANGE": '"abc"'}, True),
        ("nginx", 206, {}, False),
        ("apache", 206, {"HTTP_RANGE": "bytes=0-9"}, False),
        ("lighttpd", 200, {}, True),
        ("nginx", 200, {"HTTP_IF_MATCH": '"abc"'}, False),
        ("apache", 200, {"HTTP_IF_UNMODIFIED_SINCE": "Mon, 01 Jan 2024 00:00:00 GMT"}, False),
        ("nginx", 404, {}, False),
    ],
)
def test_what_is_offloaded(mode: str, status: int, request_headers: dict[str, str], offloaded: bool) -> None:
    reply = file_reply(status)
    assert (Offload(mode, "/b/").reply_for(reply, headers_of(**request_headers)) is not None) is offloaded


@pytest.mark.parametrize(
    ("extra", "offloaded"),
    [
        ([("Vary", "Accept-Encoding"), ("Strict-Transport-Security", "max-age=60")], True),
        ([("X-Robots-Tag", "noindex")], False),  # nginx would drop it
        ([("Content-Security-Policy", "a"), ("Content-Security-Policy", "b")], False),  # only one comes back
    ],
)
def test_nginx_offloads_only_replies_whose_headers_all_reach_the_client(
    extra: list[tuple[str, str]], offloaded: bool
) -> None:
    reply = file_reply(headers=[*FILE_HEADERS, *extra])
    assert (Offload("nginx", "/b/").reply_for(reply, headers_of()) is not None) is offloaded
    assert Offload("apache", "/b/").reply_for(reply, headers_of()) is not None


def test_the_documented_location_gives_back_every_header_the_app_counts_on() -> None:
    template = ACCEL_TEMPLATE.read_text()
    for name in NGINX_ADDED:
        variable = "$upstream_http_" + name.lower().replace("-", "_")
        assert f"add_header {name} {variable};" in template


def test_one_offload_per_mode_and_none_without() -> None:
    assert offload_for(None, "/x/") is None
    assert offload_for("nginx", "/x/") is offload_for("nginx", "/x/")
    offload = Offload("nginx", "/x/")
    for index in range(4100):  # the formatted values stay bounded
        offload.value(f"/a/b/c/{index}")
    assert len(offload.values) <= 4096
