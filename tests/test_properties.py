"""Properties: whatever a client sends, a site host never answers 5xx, and a
body is only ever bytes of the asset asked for, the error document, or one
of the fixed plain-text bodies."""

from __future__ import annotations

import gzip
import hashlib
import io
import random
import re
from pathlib import Path
from urllib.parse import quote

import brotli
import pytest
from django.test import Client
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from django_assetcache import runtime, serve
from django_assetcache.hosts import normalize_host
from django_assetcache.http import clean_path
from django_assetcache.models import Blob
from django_assetcache.publish import publish
from django_assetcache.ranges import UNSATISFIABLE, parse_range
from django_assetcache.store import BlobStore
from tests.conftest import SAMPLE, write_tree

HOST = "docs.sites.test"
FIXED_BODIES = {
    b"Bad request path.\n",
    b"Not found.\n",
    b"No site is published at this address.\n",
    b"Method not allowed.\n",
    b"Range not satisfiable.\n",
    b"Precondition failed.\n",
}
SITE_STATUSES = {200, 206, 301, 304, 400, 404, 405, 412, 416}

EXTRA: dict[str, bytes | str] = {
    "a b.txt": "spaced name\n",
    "é/index.html": "accented directory\n",
    "big.bin": random.Random(5).randbytes(300_000),  # sent from disk
    "empty.txt": b"",
}
VARIANTS = {"/css/site.css": ("gzip", "br"), "/index.html": ("gzip",)}

PROPERTY_SETTINGS = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


def as_bytes(content: bytes | str) -> bytes:
    return content.encode() if isinstance(content, str) else content


@pytest.fixture
def assets(site, tmp_path: Path) -> dict[str, dict[str, bytes]]:
    """Request path of each asset → {"" (identity) or encoding: bytes}."""
    publish(site, write_tree(tmp_path / "extra", EXTRA))
    files = {"/" + name: {"": as_bytes(content)} for name, content in {**SAMPLE, **EXTRA}.items()}
    store = BlobStore()
    for path, encodings in VARIANTS.items():
        source = files[path][""]
        for encoding in encodings:
            data = gzip.compress(source, mtime=0) if encoding == "gzip" else brotli.compress(source)
            sha = hashlib.sha256(data).hexdigest()
            store.save(sha, len(data), io.BytesIO(data))
            Blob.objects.create(
                sha256=sha, size=len(data), source_id=hashlib.sha256(source).hexdigest(), encoding=encoding
            )
            files[path][encoding] = data
    runtime.reset()
    return files


def representations_for(path: str, assets: dict[str, dict[str, bytes]]) -> dict[str, bytes] | None:
    """The bytes a request path may be answered with (index documents included)."""
    if path.endswith("/"):
        path += "index.html"
    return assets.get(path)


# --- strategies ------------------------------------------------------------------------------

PIECES = [
    "/", "/", "/", ".", "..", "%2e", "%2E%2e", "%00", "%5c", "\\", "%25", "%2f", "%20", " ",
    "a", "index.html", "guide", "css", "site.css", "img", "logo.png", "404.html", "a b.txt",
    "a%20b.txt", "%C3%A9", "é", "%FF", "big.bin", "empty.txt", "~", ";", "x" * 300,
]  # fmt: skip

KNOWN_PATHS = [
    "/", "/index.html", "/guide", "/guide/", "/guide/index.html", "/css/site.css", "/css", "/css/",
    "/img/logo.png", "/404.html", "/a%20b.txt", "/%C3%A9", "/%C3%A9/", "/big.bin", "/empty.txt",
    "/missing", "/nope/",
]  # fmt: skip

# Request targets: known ones, ones built from tricky pieces, and arbitrary
# text percent-encoded (so the server decodes exactly that text).
request_paths = st.one_of(
    st.sampled_from(KNOWN_PATHS),
    st.sampled_from(KNOWN_PATHS),
    st.lists(st.sampled_from(PIECES), max_size=8).map(lambda parts: "/" + "".join(parts)),
    st.text(max_size=40).map(lambda text: quote("/" + text, safe="/")),
    st.builds(lambda n: "/" + "a" * n, st.integers(1015, 1030)),
)

header_text = st.text(st.characters(min_codepoint=32, max_codepoint=255), max_size=40)

position_text = st.one_of(
    st.just(""), st.integers(0, 1100).map(str), st.integers(0, 400_000).map(str), st.just("9" * 30)
)
range_values = st.one_of(
    st.builds(lambda a, b: f"bytes={a}-{b}", position_text, position_text),
    st.sampled_from(["bytes=0-1,4-5", "bytes=-0", "items=0-1", "bytes=5-2", "bytes=-1"]),
    header_text,
)
dates = st.one_of(
    st.sampled_from(
        [
            "Tue, 02 Jan 2024 03:04:05 GMT",
            "Sun, 06 Nov 1994 08:49:37 GMT",
            "Fri, 31 Dec 9999 23:59:59 GMT",
            "Sunday, 06-Nov-94 08:49:37 GMT",
            "Sun Nov  6 08:49:37 1994",
        ]
    ),
    header_text,
)
etag_values = st.one_of(st.sampled_from(["*", 'W/"x"', '"x"', '"", *']), header_text)
encodings = st.one_of(
    st.sampled_from(["gzip", "br", "br, gzip", "*", "br;q=0, *", "gzip;q=0, br;q=0", "identity;q=0"]),
    header_text,
)
hosts = st.one_of(
    st.just(HOST),
    st.just(HOST),
    st.just(HOST),
    st.sampled_from(
        ["DOCS.SITES.TEST:8080", "docs.sites.test.", "nosuch.sites.test", "a.b.sites.test", "testserver",
         "sites.test", "", "[::1]:80"]
    ),
    header_text,
)  # fmt: skip
methods = st.sampled_from(["GET"] * 6 + ["HEAD"] * 2 + ["POST", "PUT", "DELETE", "OPTIONS"])


@st.composite
def request_headers(draw) -> dict[str, str]:
    headers = {}
    for name, values in (
        ("HTTP_RANGE", range_values),
        ("HTTP_IF_RANGE", st.one_of(etag_values, dates)),
        ("HTTP_IF_MATCH", etag_values),
        ("HTTP_IF_UNMODIFIED_SINCE", dates),
        ("HTTP_IF_NONE_MATCH", etag_values),
        ("HTTP_IF_MODIFIED_SINCE", dates),
        ("HTTP_ACCEPT_ENCODING", encodings),
    ):
        if draw(st.booleans()):
            headers[name] = draw(values)
    return headers


# --- through the middleware --------------------------------------------------------------------

CONTENT_RANGE_RE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def check_part(content_range: str, body: bytes, whole: bytes) -> tuple[int, int]:
    first, last, length = map(int, CONTENT_RANGE_RE.fullmatch(content_range).groups())
    assert length == len(whole) and 0 <= first <= last < length
    assert body == whole[first : last + 1]
    return first, last


def check_multipart(content_type: str, body: bytes, whole: bytes) -> None:
    """Every part is the bytes its Content-Range names; parts ascend, never
    overlap nor touch (they are coalesced)."""
    boundary = content_type.partition("boundary=")[2].encode()
    closing = b"\r\n--" + boundary + b"--\r\n"
    assert boundary and body.endswith(closing)
    chunks = (b"\r\n" + body[: -len(closing)]).split(b"\r\n--" + boundary + b"\r\n")
    assert chunks[0] == b""
    previous_end = -2
    for chunk in chunks[1:]:
        head, _, data = chunk.partition(b"\r\n\r\n")
        fields = dict(line.split(": ", 1) for line in head.decode("latin-1").split("\r\n"))
        first, last = check_part(fields["Content-Range"], data, whole)
        assert first > previous_end + 1
        previous_end = last
    assert len(chunks) > 2


def check_site_response(response, method: str, headers: dict[str, str], assets) -> None:
    status = response.status_code
    body = b"".join(response.streaming_content) if response.streaming else response.content
    path = response.wsgi_request.path_info  # what the middleware was given
    event(f"{method} {status}")
    assert status in SITE_STATUSES, status
    if method not in ("GET", "HEAD"):
        assert (status, body) == (405, b"Method not allowed.\n")
        return
    if clean_path(path, 1024) is None:
        assert status == 400
    # A status a header decides only comes with that header.
    if status == 412:
        assert "HTTP_IF_MATCH" in headers or "HTTP_IF_UNMODIFIED_SINCE" in headers
    elif status == 304:
        assert "HTTP_IF_NONE_MATCH" in headers or "HTTP_IF_MODIFIED_SINCE" in headers
    elif status in (206, 416):
        assert "HTTP_RANGE" in headers
    if method == "HEAD" or status == 304:
        assert body == b""
        return
    reps = representations_for(path, assets)
    if status in (200, 206, 304, 412, 416):
        assert reps is not None, f"{status} for {path!r}, which is no asset"
    if status == 200:
        assert body == reps[response.get("Content-Encoding", "")]
    elif status == 206:
        whole = reps[response.get("Content-Encoding", "")]
        if response["Content-Type"].startswith("multipart/byteranges"):
            check_multipart(response["Content-Type"], body, whole)
        else:
            check_part(response["Content-Range"], body, whole)
    elif status == 404:
        assert body in (assets["/404.html"][""], b"Not found.\n")
    elif status == 301:
        assert body == b""
        assert response["Location"].startswith(quote(path, safe="/:@!$&'()*+,;=-._~") + "/")
    else:
        assert body in FIXED_BODIES


@PROPERTY_SETTINGS
@given(method=methods, path=request_paths, headers=request_headers(), host=hosts)
@example(method="GET", path="/img/logo.png", headers={"HTTP_RANGE": "bytes=0-" + "9" * 5000}, host=HOST)
@example(method="GET", path="/big.bin", headers={"HTTP_RANGE": "bytes=" + "9" * 5000 + "-"}, host=HOST)
@example(method="HEAD", path="/a/../b", headers={}, host=HOST)
@example(method="GET", path="/big.bin", headers={"HTTP_RANGE": "bytes=1000-1999"}, host=HOST)
@example(
    method="GET", path="/css/site.css", headers={"HTTP_RANGE": "bytes=-5", "HTTP_ACCEPT_ENCODING": "br"}, host=HOST
)
@example(method="GET", path="/%00", headers={}, host="nosuch.sites.test")
def test_any_request_is_answered_without_error(assets, method, path, headers, host):
    response = Client().generic(method, path, HTTP_HOST=host, **headers)
    normalized = normalize_host(host)
    if normalized == HOST:
        check_site_response(response, method, headers, assets)
    elif normalized is not None and normalized.endswith(".sites.test"):
        assert response.status_code == 404
        assert response.content in (b"No site is published at this address.\n", b"")
    else:
        # Left to the project: whatever it answers, it is not an error.
        assert response.status_code < 500
        if response.streaming:
            b"".join(response.streaming_content)


# --- the core, without an adapter ---------------------------------------------------------------


@PROPERTY_SETTINGS
@given(path=request_paths, headers=request_headers(), host=hosts)
def test_head_never_has_a_body(assets, path, headers, host):
    """Adapters send what they are given: a HEAD reply must carry no body."""
    reply = serve.answer(host, path, "HEAD", "", headers.get)
    if reply is not None:
        assert reply.body == b""
        assert reply.file_path is None
        assert reply.status in SITE_STATUSES


# --- parse_range against a reference model -----------------------------------------------------

positions = st.one_of(st.none(), st.integers(0, 50), st.integers(0, 10**25))


def reference_range(first: int | None, last: int | None, length: int):
    """RFC 9110 14.1.2, for one range; ignored on an empty representation."""
    if length == 0:
        return None
    if first is None:
        if last is None:
            return None
        if last == 0:
            return UNSATISFIABLE
        return (max(length - last, 0), length - 1)
    if last is not None and last < first:
        return None  # invalid: the header is ignored
    if first >= length:
        return UNSATISFIABLE
    return (first, length - 1 if last is None else min(last, length - 1))


@settings(max_examples=500, deadline=None)
@given(
    first=positions,
    last=positions,
    length=st.one_of(st.integers(0, 60), st.integers(0, 10**12)),
    zeros=st.integers(0, 3),
    unit=st.sampled_from(["bytes", "BYTES", "Bytes"]),
)
def test_parse_range_matches_the_reference(first, last, length, zeros, unit):
    def text(value: int | None) -> str:
        return "" if value is None else "0" * zeros + str(value)

    header = f"{unit}={text(first)}-{text(last)}"
    assert parse_range(header, length) == reference_range(first, last, length)


@settings(max_examples=500, deadline=None)
@given(header=st.one_of(st.text(max_size=60), range_values), length=st.integers(0, 10**6))
def test_parse_range_never_fails_and_stays_in_bounds(header, length):
    result = parse_range(header, length)
    if result is not None and result != UNSATISFIABLE:
        first, last = result
        assert 0 <= first <= last < length
