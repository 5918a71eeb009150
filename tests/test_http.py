"""HTTP behaviour of a site host, through the serving adapter.

Every request goes through the ``fetch`` fixture, and every test runs once per
adapter: the Django middleware (``django.test.Client``), the WSGI wrapper
(called the way a WSGI server calls it, with ``wsgi.file_wrapper``), the
ASGI wrapper streaming files, and the ASGI wrapper offered
``http.response.pathsend``. Tests only see ``Result(status, headers, body)``.

Tests where it matters run twice (``both_tiers``): with bodies kept in
memory and with every body sent from its file (``FileResponse``).
"""

from __future__ import annotations

import asyncio
import datetime
import gzip
import hashlib
import io
import random
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from urllib.parse import unquote, unquote_to_bytes
from wsgiref.util import FileWrapper

import brotli
import pytest
from asgiref.sync import async_to_sync
from django.core.handlers.asgi import ASGIHandler
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from django.http.request import validate_host
from django.test import Client
from django.utils.datastructures import CaseInsensitiveMapping

from django_assetcache import conf, runtime
from django_assetcache.asgi import AssetCacheASGI
from django_assetcache.models import Asset, Blob, Domain, Site
from django_assetcache.publish import publish
from django_assetcache.ranges import MAX_RANGES
from django_assetcache.replies import SITE_NOT_FOUND_PAGE
from django_assetcache.store import BlobStore
from django_assetcache.wsgi import AssetCacheWSGI
from tests.conftest import SAMPLE, write_tree

HOST = "docs.sites.test"

# --- the one way tests make requests ------------------------------------------


@dataclass(frozen=True)
class Result:
    status: int
    #: Response headers; lookups ignore case.
    headers: Mapping[str, str]
    body: bytes


Fetch = Callable[..., Result]


def meta_name(name: str) -> str:
    """``if_none_match`` or ``If-None-Match`` → ``HTTP_IF_NONE_MATCH``."""
    return "HTTP_" + name.upper().replace("-", "_")


def split_target(target: str) -> tuple[str, str]:
    """(path, query) of a request target as a WSGI server splits it: an
    absolute-form target (``http://host/path``) gives its path alone."""
    before, _, query = target.partition("?")
    if not before.startswith("/"):
        slash = before.find("/", before.find("://") + 3)
        before = before[slash:] if slash >= 0 else ""
    return before, query


def django_client_fetch(
    client: Client, method: str, path: str, host: str = HOST, *, body: bytes = b"", **headers: str
) -> Result:
    extra = {meta_name(name): value for name, value in headers.items()}
    target_path, query = split_target(path)
    # RAW_URI as gunicorn passes it on: the request target, untouched.
    extra["RAW_URI"] = path
    form = "application/x-www-form-urlencoded"
    target = target_path + ("?" + query if query else "")
    response = client.generic(method, target, body, form, HTTP_HOST=host, **extra)
    # Joining the streamed content also closes the file.
    body = b"".join(response.streaming_content) if response.streaming else response.content
    return Result(response.status_code, CaseInsensitiveMapping(dict(response.items())), body)


def header_pairs(host: str, headers: dict[str, str]) -> list[tuple[str, str]]:
    return [("Host", host), *((name.replace("_", "-").title(), value) for name, value in headers.items())]


def wsgi_fetch(method: str, path: str, host: str = HOST, *, body: bytes = b"", **headers: str) -> Result:
    """Call the WSGI wrapper as a WSGI server does: PATH_INFO is the
    percent-decoded bytes as latin-1, RAW_URI the request target (as gunicorn
    sets them), files go through wsgi.file_wrapper."""
    raw_path, query = split_target(path)
    environ = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": unquote_to_bytes(raw_path).decode("latin-1"),
        "QUERY_STRING": query,
        "RAW_URI": path,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.errors": io.StringIO(),
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
        "wsgi.file_wrapper": FileWrapper,
    }
    for name, value in header_pairs(host, headers):
        # On the wire a header is bytes; WSGI hands them over as latin-1.
        environ["HTTP_" + name.upper().replace("-", "_")] = value.encode().decode("latin-1")
    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(status: str, response_headers: list[tuple[str, str]], exc_info: object = None) -> None:
        started.append((status, response_headers))

    iterable = WSGI_APP(environ, start_response)
    try:
        body = b"".join(iterable)
    finally:
        close = getattr(iterable, "close", None)
        if close is not None:
            close()
    status, response_headers = started[-1]
    return Result(int(status.split()[0]), CaseInsensitiveMapping(dict(response_headers)), body)


def asgi_fetch(
    method: str, path: str, host: str = HOST, *, pathsend: bool = False, body: bytes = b"", **headers: str
) -> Result:
    """Call the ASGI wrapper as an ASGI server does."""
    if body:
        headers = {**headers, "Content-Length": str(len(body))}
    raw_path, _, query = path.partition("?")
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(n.lower().encode(), v.encode()) for n, v in header_pairs(host, headers)],
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 12345),
        "extensions": {"http.response.pathsend": {}} if pathsend else {},
    }
    messages: list[dict[str, object]] = []

    requests = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> dict[str, object]:
        if requests:
            return requests.pop()
        # The client stays connected; Django cancels this wait once it has
        # responded.
        await asyncio.Event().wait()
        raise AssertionError("unreachable")

    async def send(message: dict[str, object]) -> None:
        messages.append(message)

    async_to_sync(ASGI_APP)(scope, receive, send)
    start = messages[0]
    assert start["type"] == "http.response.start"
    body = b""
    for message in messages[1:]:
        if message["type"] == "http.response.pathsend":
            body += Path(str(message["path"])).read_bytes()
        else:
            body += message.get("body", b"")  # type: ignore[operator]
    response_headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in start["headers"]}  # type: ignore[union-attr]
    return Result(int(start["status"]), CaseInsensitiveMapping(response_headers), body)  # type: ignore[call-overload]


WSGI_APP = AssetCacheWSGI(WSGIHandler())
ASGI_APP = AssetCacheASGI(ASGIHandler())


@pytest.fixture(params=["middleware", "wsgi", "asgi", "asgi-pathsend"])
def fetch(request: pytest.FixtureRequest, db) -> Iterator[Fetch]:
    """``fetch(method, path, host=HOST, **headers) -> Result``.

    Header names are given as keywords (``range=``, ``if_none_match=``) or as
    ``**{"If-None-Match": ...}``. ``path`` is what goes on the request line,
    percent-encoding and query string included.
    """
    if request.param == "middleware":
        client = Client()

        def fetch(method: str, path: str, host: str = HOST, *, body: bytes = b"", **headers: str) -> Result:
            return django_client_fetch(client, method, path, host, body=body, **headers)

        yield fetch
        return
    # Django's handlers close "old" connections at request boundaries, which
    # would end the test's transaction; its own test client disconnects
    # these receivers the same way.
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        if request.param == "wsgi":
            yield wsgi_fetch
        else:
            yield partial(asgi_fetch, pathsend=request.param == "asgi-pathsend")
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


@pytest.fixture
def adapter(request: pytest.FixtureRequest, fetch: Fetch) -> str:
    """The name of the adapter ``fetch`` goes through."""
    return str(request.node.callspec.params["fetch"])


# --- the published site --------------------------------------------------------

LAST_MODIFIED = datetime.datetime(2024, 1, 2, 3, 4, 5, tzinfo=datetime.UTC)
LAST_MODIFIED_TEXT = "Tue, 02 Jan 2024 03:04:05 GMT"
EARLIER_TEXT = "Tue, 02 Jan 2024 03:04:04 GMT"
LATER_TEXT = "Wed, 03 Jan 2024 00:00:00 GMT"

DEFAULT_CACHE_CONTROL = "public, max-age=0, must-revalidate"
IMMUTABLE_CACHE_CONTROL = "public, max-age=31536000, immutable"

PLAIN = "text/plain; charset=utf-8"
BODY_400 = b"Bad request path.\n"
BODY_404 = b"Not found.\n"
BODY_NO_SITE = b"No site is published at this address.\n"
BODY_405 = b"Method not allowed.\n"
BODY_416 = b"Range not satisfiable.\n"

BIG_SIZE = 300_000  # over the default ASSETCACHE_MEMORY_FILE_LIMIT (256 KiB)

EXTRA: dict[str, bytes | str] = {
    "app.3f2a9c1b.js": "console.log('hashed name');\n" * 10,
    "script.js": "document.title = 'plain name';\n",
    "data.json": '{"name": "docs", "pages": [1, 2, 3]}\n',
    "icon.svg": '<svg xmlns="http://www.w3.org/2000/svg" width="1" height="1"/>\n',
    "a b.txt": "a file with a space in its name\n",
    "café.txt": "non-ASCII name\n",
    "empty.txt": b"",
    "big.bin": random.Random(20240102).randbytes(BIG_SIZE),
}

#: Compressed variants made by the ``docs`` fixture: path → encodings.
VARIANTS = {
    "/css/site.css": ("gzip", "br"),
    "/guide/index.html": ("gzip", "br"),
    "/data.json": ("gzip",),
}


@dataclass
class Docs:
    site: Site
    #: Request path of each asset → its bytes.
    files: dict[str, bytes]
    #: Asset path → {encoding: compressed bytes}.
    variants: dict[str, dict[str, bytes]] = field(default_factory=dict)

    def __getitem__(self, path: str) -> bytes:
        return self.files[path]


def as_bytes(content: bytes | str) -> bytes:
    return content.encode() if isinstance(content, str) else content


def compress(data: bytes, encoding: str) -> bytes:
    return gzip.compress(data, mtime=0) if encoding == "gzip" else brotli.compress(data)


def add_variant(source: bytes, encoding: str, data: bytes) -> None:
    sha = hashlib.sha256(data).hexdigest()
    BlobStore().save(sha, len(data), io.BytesIO(data))
    Blob.objects.create(sha256=sha, size=len(data), source_id=hashlib.sha256(source).hexdigest(), encoding=encoding)


@pytest.fixture
def tier(request, settings) -> str:
    """Where bodies are kept: "memory" (default limits; still, ``/big.bin`` is
    over the memory file limit and is sent from disk) or "disk" (every
    non-empty body is sent from its file). Tests marked ``both_tiers`` run
    with each."""
    name = getattr(request, "param", "memory")
    if name == "disk":
        settings.ASSETCACHE_MEMORY_FILE_LIMIT = 0
    conf.reset()
    runtime.reset()
    return name


both_tiers = pytest.mark.parametrize("tier", ["memory", "disk"], indirect=True)


@pytest.fixture
def docs(site: Site, tier: str, tmp_path: Path) -> Docs:
    """The sample site plus EXTRA, with compressed variants and a fixed Last-Modified."""
    publish(site, write_tree(tmp_path / "extra", EXTRA))
    files = {"/" + name: as_bytes(content) for name, content in {**SAMPLE, **EXTRA}.items()}
    variants: dict[str, dict[str, bytes]] = {}
    for path, encodings in VARIANTS.items():
        variants[path] = {}
        for encoding in encodings:
            data = variants[path][encoding] = compress(files[path], encoding)
            add_variant(files[path], encoding, data)
    Asset.objects.filter(site=site).update(last_modified=LAST_MODIFIED)
    site.refresh_from_db()
    runtime.reset()
    return Docs(site, files, variants)


def edit_site(site: Site, **fields: object) -> None:
    """Change site settings; the process cache starts afresh."""
    for name, value in fields.items():
        setattr(site, name, value)
    site.save()
    runtime.reset()


ETAG_RE = re.compile(r'"[\x21\x23-\x7e]+"')


def assert_file_headers(result: Result, body: bytes, content_type: str) -> None:
    headers = result.headers
    assert headers["Content-Type"] == content_type
    assert headers["Content-Length"] == str(len(body))
    assert ETAG_RE.fullmatch(headers["ETag"]), headers["ETag"]
    assert headers["Last-Modified"] == LAST_MODIFIED_TEXT
    assert headers["Accept-Ranges"] == "bytes"
    assert headers["X-Content-Type-Options"] == "nosniff"


# --- GET and HEAD ----------------------------------------------------------------

#: (request path, asset, Content-Type) of plain GETs.
FILES = [
    ("/", "/index.html", "text/html; charset=utf-8"),
    ("/index.html", "/index.html", "text/html; charset=utf-8"),
    ("/guide/", "/guide/index.html", "text/html; charset=utf-8"),
    ("/css/site.css", "/css/site.css", "text/css; charset=utf-8"),
    ("/script.js", "/script.js", "text/javascript; charset=utf-8"),
    ("/data.json", "/data.json", "application/json; charset=utf-8"),
    ("/icon.svg", "/icon.svg", "image/svg+xml; charset=utf-8"),
    ("/a%20b.txt", "/a b.txt", "text/plain; charset=utf-8"),
    ("/caf%C3%A9.txt", "/café.txt", "text/plain; charset=utf-8"),
    ("/img/logo.png", "/img/logo.png", "image/png"),
    ("/big.bin", "/big.bin", "application/octet-stream"),
    ("/empty.txt", "/empty.txt", "text/plain; charset=utf-8"),
]


@both_tiers
@pytest.mark.parametrize(("path", "asset", "content_type"), FILES)
def test_get_serves_the_file_with_its_headers(fetch, docs, path, asset, content_type):
    result = fetch("GET", path)
    assert result.status == 200, path
    assert result.body == docs[asset], path
    assert_file_headers(result, docs[asset], content_type)
    assert result.headers["Cache-Control"] == DEFAULT_CACHE_CONTROL
    assert "Content-Encoding" not in result.headers
    assert "Content-Range" not in result.headers
    if asset in VARIANTS:
        assert result.headers["Vary"] == "Accept-Encoding", path
    else:
        assert "Vary" not in result.headers, path


def test_etag_is_strong_and_differs_between_files(fetch, docs):
    paths = ("/", "/css/site.css", "/img/logo.png", "/big.bin", "/empty.txt")
    etags = {fetch("GET", path).headers["ETag"] for path in paths}
    assert len(etags) == len(paths)
    assert not any(etag.startswith("W/") for etag in etags)
    assert fetch("GET", "/index.html").headers["ETag"] == fetch("GET", "/").headers["ETag"]
    assert fetch("GET", "/").headers["ETag"] == fetch("GET", "/").headers["ETag"]


@both_tiers
@pytest.mark.parametrize("path", [path for path, _, _ in FILES])
def test_head_has_the_headers_of_get_and_no_body(fetch, docs, path):
    get = fetch("GET", path)
    head = fetch("HEAD", path)
    assert head.status == 200, path
    assert head.body == b"", path
    for name in (
        "Content-Type",
        "Content-Length",
        "ETag",
        "Last-Modified",
        "Cache-Control",
        "Accept-Ranges",
        "X-Content-Type-Options",
    ):
        assert head.headers[name] == get.headers[name], (path, name)
    assert head.headers.get("Vary") == get.headers.get("Vary"), path
    assert "Content-Encoding" not in head.headers


def test_site_cache_control(fetch, docs):
    edit_site(docs.site, cache_control="public, max-age=60")
    for path in ("/", "/css/site.css", "/app.3f2a9c1b.js", "/big.bin"):
        for method in ("GET", "HEAD"):
            result = fetch(method, path)
            assert result.status == 200
            assert result.headers["Cache-Control"] == "public, max-age=60", path
    etag = fetch("GET", "/").headers["ETag"]
    assert fetch("GET", "/", if_none_match=etag).headers["Cache-Control"] == "public, max-age=60"


def test_hashed_name_is_immutable(fetch, docs):
    result = fetch("GET", "/app.3f2a9c1b.js")
    assert result.status == 200
    assert result.body == docs["/app.3f2a9c1b.js"]
    assert_file_headers(result, docs["/app.3f2a9c1b.js"], "text/javascript; charset=utf-8")
    assert result.headers["Cache-Control"] == IMMUTABLE_CACHE_CONTROL
    assert fetch("HEAD", "/app.3f2a9c1b.js").headers["Cache-Control"] == IMMUTABLE_CACHE_CONTROL
    assert fetch("GET", "/script.js").headers["Cache-Control"] == DEFAULT_CACHE_CONTROL


def test_other_methods_get_405(fetch, docs):
    for method in ("POST", "PUT", "DELETE", "OPTIONS", "PATCH", "TRACE"):
        for path in ("/", "/css/site.css", "/missing.html", "/guide", "/a/../b"):
            result = fetch(method, path)
            assert result.status == 405, (method, path)
            assert result.headers["Allow"] == "GET, HEAD"
            assert result.headers["Content-Type"] == PLAIN
            assert result.headers["Content-Length"] == str(len(BODY_405))
            assert result.body == BODY_405


def test_query_string_is_ignored_for_files(fetch, docs):
    result = fetch("GET", "/css/site.css?v=2")
    assert result.status == 200
    assert result.body == docs["/css/site.css"]


# --- conditional requests --------------------------------------------------------


def assert_not_modified(result: Result, etag: str, cache_control: str = DEFAULT_CACHE_CONTROL) -> None:
    assert result.status == 304
    assert result.body == b""
    assert result.headers["ETag"] == etag
    assert result.headers["Cache-Control"] == cache_control
    assert result.headers["Last-Modified"] == LAST_MODIFIED_TEXT


MATCHING_IF_NONE_MATCH = [
    "{etag}",
    '"other", {etag}',
    '"other",{etag} , "more"',
    "W/{etag}",
    '"x", W/{etag}',
    "*",
]


@both_tiers
def test_if_none_match_gives_304(fetch, docs):
    for path in ("/img/logo.png", "/big.bin", "/", "/css/site.css"):
        etag = fetch("GET", path).headers["ETag"]
        for header in MATCHING_IF_NONE_MATCH:
            for method in ("GET", "HEAD"):
                result = fetch(method, path, if_none_match=header.format(etag=etag))
                assert_not_modified(result, etag)
                if path == "/css/site.css":
                    assert result.headers["Vary"] == "Accept-Encoding"
                else:
                    assert "Vary" not in result.headers


def test_if_none_match_not_matching_gives_200(fetch, docs):
    etag = fetch("GET", "/img/logo.png").headers["ETag"]
    prefix = etag[:-2] + '"'  # a tag that is a prefix of the real one
    for header in ('"nope"', 'W/"nope"', '"a", "b"', "", prefix, etag[1:-1], etag + "x"):
        result = fetch("GET", "/img/logo.png", if_none_match=header)
        assert result.status == 200, header
        assert result.body == docs["/img/logo.png"]


def test_304_keeps_the_immutable_cache_control(fetch, docs):
    etag = fetch("GET", "/app.3f2a9c1b.js").headers["ETag"]
    result = fetch("GET", "/app.3f2a9c1b.js", if_none_match=etag)
    assert_not_modified(result, etag, IMMUTABLE_CACHE_CONTROL)


@both_tiers
def test_if_modified_since_not_earlier_gives_304(fetch, docs):
    dates = [
        LAST_MODIFIED_TEXT,
        LATER_TEXT,
        "Tuesday, 02-Jan-24 03:04:05 GMT",  # RFC 850
        "Tue Jan  2 03:04:05 2024",  # asctime
    ]
    for path in ("/img/logo.png", "/big.bin"):
        etag = fetch("GET", path).headers["ETag"]
        for date in dates:
            assert_not_modified(fetch("GET", path, if_modified_since=date), etag)
            assert_not_modified(fetch("HEAD", path, if_modified_since=date), etag)


@pytest.mark.parametrize(
    "date",
    [
        EARLIER_TEXT,
        "Mon, 01 Jan 2024 00:00:00 GMT",
        "yesterday",
        "",
        "Tue, 02 Jan 2024 03:04:05 GMT, x",
        "0",
        "Tue, 32 Jan 2024 03:04:05 GMT",
    ],
)
def test_if_modified_since_earlier_or_invalid_gives_200(fetch, docs, date):
    result = fetch("GET", "/img/logo.png", if_modified_since=date)
    assert result.status == 200, date
    assert result.body == docs["/img/logo.png"]


def test_if_none_match_takes_precedence_over_if_modified_since(fetch, docs):
    etag = fetch("GET", "/img/logo.png").headers["ETag"]
    result = fetch("GET", "/img/logo.png", if_none_match='"other"', if_modified_since=LAST_MODIFIED_TEXT)
    assert result.status == 200
    assert result.body == docs["/img/logo.png"]
    # And a matching tag wins over an earlier date.
    result = fetch("GET", "/img/logo.png", if_none_match=etag, if_modified_since=EARLIER_TEXT)
    assert_not_modified(result, etag)


def test_conditional_is_evaluated_before_range(fetch, docs):
    etag = fetch("GET", "/img/logo.png").headers["ETag"]
    assert_not_modified(fetch("GET", "/img/logo.png", if_none_match=etag, range="bytes=0-3"), etag)
    assert_not_modified(fetch("GET", "/img/logo.png", if_modified_since=LATER_TEXT, range="bytes=0-3"), etag)


BODY_412 = b"Precondition failed.\n"


def assert_precondition_failed(result: Result, etag: str, method: str = "GET") -> None:
    assert result.status == 412
    assert result.headers["Content-Type"] == PLAIN
    assert result.headers["Content-Length"] == str(len(BODY_412))
    assert result.headers["ETag"] == etag
    assert result.headers["Last-Modified"] == LAST_MODIFIED_TEXT
    assert result.headers["Cache-Control"] == "no-cache"
    assert result.headers["X-Content-Type-Options"] == "nosniff"
    assert "Content-Range" not in result.headers
    assert result.body == (BODY_412 if method == "GET" else b"")


#: If-Match values (``{etag}`` is the file's) and whether they match strongly.
IF_MATCH_CASES = [
    ("{etag}", True),
    ("*", True),
    ('"other", {etag}', True),
    ('"other",{etag} , "more"', True),
    ("W/{etag}", False),  # a weak tag never matches strongly
    ('"other", W/{etag}', False),
    ('"other"', False),
    ("", False),
    ("garbage", False),
]


@both_tiers
@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(("header", "matches"), IF_MATCH_CASES)
def test_if_match(fetch, docs, header, matches, method):
    """Issue 11 item 8: an If-Match that does not match strongly gets 412; one that does gets the file."""
    path = "/img/logo.png"  # from memory, or from its file in the disk tier
    etag = fetch("GET", path).headers["ETag"]
    result = fetch(method, path, if_match=header.format(etag=etag))
    if not matches:
        assert_precondition_failed(result, etag, method)
        return
    assert result.status == 200
    assert result.headers["ETag"] == etag
    assert result.body == (docs[path] if method == "GET" else b"")


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize(
    ("date", "passes"),
    [
        (LAST_MODIFIED_TEXT, True),
        (LATER_TEXT, True),
        ("Tuesday, 02-Jan-24 03:04:05 GMT", True),
        ("Fri, 31 Dec 9999 23:59:59 GMT", True),
        (EARLIER_TEXT, False),
        ("Sun, 06 Nov 1994 08:49:37 GMT", False),
        ("Tue Jan  2 03:04:04 2024", False),
        # Not one valid date: the field is ignored.
        ("yesterday", True),
        ("", True),
        (f"{EARLIER_TEXT}, {LATER_TEXT}", True),
    ],
)
def test_if_unmodified_since(fetch, docs, date, passes, method):
    """Issue 11 item 8: If-Unmodified-Since earlier than Last-Modified gets 412."""
    etag = fetch("GET", "/img/logo.png").headers["ETag"]
    result = fetch(method, "/img/logo.png", if_unmodified_since=date)
    if not passes:
        assert_precondition_failed(result, etag, method)
        return
    assert result.status == 200
    assert result.body == (docs["/img/logo.png"] if method == "GET" else b"")


#: Preconditions together, in the order of RFC 9110 13.2.2: (headers, status).
#: ``{etag}`` is the file's tag.
PRECONDITION_ORDER = [
    # A failed If-Match wins over everything after it.
    ({"if_match": '"other"', "if_none_match": "{etag}"}, 412),
    ({"if_match": '"other"', "if_modified_since": LATER_TEXT}, 412),
    ({"if_match": '"other"', "range": "bytes=0-3"}, 412),
    ({"if_match": '"other"', "range": "bytes=999999-"}, 412),
    ({"if_match": '"other"', "if_unmodified_since": LATER_TEXT}, 412),
    # If-Unmodified-Since is ignored when If-Match is present.
    ({"if_match": "{etag}", "if_unmodified_since": EARLIER_TEXT}, 200),
    ({"if_match": "*", "if_unmodified_since": EARLIER_TEXT, "range": "bytes=0-3"}, 206),
    # A failed If-Unmodified-Since wins over If-None-Match and Range.
    ({"if_unmodified_since": EARLIER_TEXT, "if_none_match": "{etag}"}, 412),
    ({"if_unmodified_since": EARLIER_TEXT, "if_modified_since": LATER_TEXT}, 412),
    ({"if_unmodified_since": EARLIER_TEXT, "range": "bytes=0-3"}, 412),
    # Passed, If-None-Match and If-Modified-Since come next, then If-Range.
    ({"if_match": "{etag}", "if_none_match": "{etag}"}, 304),
    ({"if_unmodified_since": LATER_TEXT, "if_none_match": "{etag}"}, 304),
    ({"if_match": "{etag}", "if_modified_since": LATER_TEXT}, 304),
    ({"if_match": "{etag}", "if_none_match": '"other"', "range": "bytes=0-3", "if_range": "{etag}"}, 206),
    ({"if_match": "{etag}", "range": "bytes=0-3", "if_range": '"other"'}, 200),
    ({"if_unmodified_since": LAST_MODIFIED_TEXT, "range": "bytes=999999-"}, 416),
]


@pytest.mark.parametrize(("headers", "status"), PRECONDITION_ORDER)
def test_preconditions_are_evaluated_in_order(fetch, docs, headers, status):
    """Issue 11 item 8: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since, If-Range, in that order."""
    etag = fetch("GET", "/img/logo.png").headers["ETag"]
    result = fetch("GET", "/img/logo.png", **{name: value.format(etag=etag) for name, value in headers.items()})
    assert result.status == status
    if status == 412:
        assert_precondition_failed(result, etag)
    elif status == 304:
        assert_not_modified(result, etag)
    elif status == 206:
        assert result.body == docs["/img/logo.png"][:4]
    elif status == 200:
        assert result.body == docs["/img/logo.png"]


@both_tiers
def test_if_match_compares_the_chosen_variant(fetch, docs):
    """Issue 11 item 8: If-Match is evaluated against the representation Accept-Encoding chose."""
    gzip_etag = fetch("GET", CSS, accept_encoding="gzip").headers["ETag"]
    identity_etag = fetch("GET", CSS).headers["ETag"]
    assert_variant(fetch("GET", CSS, accept_encoding="gzip", if_match=gzip_etag), docs, CSS, "gzip")
    result = fetch("GET", CSS, accept_encoding="gzip", if_match=identity_etag)
    assert_precondition_failed(result, gzip_etag)
    assert result.headers["Vary"] == "Accept-Encoding"
    assert "Content-Encoding" not in result.headers
    assert_precondition_failed(fetch("GET", CSS, if_match=gzip_etag), identity_etag)


# --- ranges -----------------------------------------------------------------------------

RANGE_PATHS = {"/img/logo.png": "image/png", "/big.bin": "application/octet-stream"}


def assert_partial(result: Result, whole: bytes, start: int, end: int, content_type: str) -> None:
    assert result.status == 206
    assert result.headers["Content-Range"] == f"bytes {start}-{end}/{len(whole)}"
    assert result.headers["Content-Length"] == str(end - start + 1)
    assert result.headers["Content-Type"] == content_type
    assert result.headers["Accept-Ranges"] == "bytes"
    assert result.headers["X-Content-Type-Options"] == "nosniff"
    assert ETAG_RE.fullmatch(result.headers["ETag"])
    assert result.headers["Last-Modified"] == LAST_MODIFIED_TEXT
    assert result.headers["Cache-Control"] == DEFAULT_CACHE_CONTROL
    assert result.body == whole[start : end + 1]


def satisfiable_ranges(n: int) -> list[tuple[str, int, int]]:
    """(Range header, first, last) for a file of ``n`` bytes."""
    return [
        ("bytes=0-3", 0, 3),
        ("bytes=5-", 5, n - 1),
        ("bytes=-4", n - 4, n - 1),
        ("bytes=0-0", 0, 0),
        ("bytes=-1", n - 1, n - 1),
        (f"bytes={n - 1}-{n - 1}", n - 1, n - 1),
        (f"bytes={n - 1}-", n - 1, n - 1),
        ("bytes=100-199", 100, 199),
        ("bytes=10-99999999", 10, n - 1),
        (f"bytes=0-{n}", 0, n - 1),
        ("bytes=0-", 0, n - 1),
        ("bytes=-99999999", 0, n - 1),
        (f"bytes=-{n}", 0, n - 1),
        ("BYTES=0-3", 0, 3),
        ("bytes=007-010", 7, 10),
        ("bytes=0-" + "9" * 5000, 0, n - 1),
        ("bytes=-" + "9" * 5000, 0, n - 1),
    ]


@both_tiers
def test_single_range_gives_206(fetch, docs):
    for path, content_type in RANGE_PATHS.items():
        whole = docs[path]
        for header, start, end in satisfiable_ranges(len(whole)):
            result = fetch("GET", path, range=header)
            try:
                assert_partial(result, whole, start, end, content_type)
            except AssertionError as exc:
                raise AssertionError(f"{path} Range: {header[:40]}") from exc


@both_tiers
def test_range_in_the_middle_of_a_large_file_stops_at_its_end(fetch, docs):
    whole = docs["/big.bin"]
    for start in (1, 4095, 65536, 123_457, BIG_SIZE - 1000):
        end = start + 999
        result = fetch("GET", "/big.bin", range=f"bytes={start}-{end}")
        assert_partial(result, whole, start, end, "application/octet-stream")
        assert len(result.body) == 1000


@both_tiers
@pytest.mark.parametrize("path", list(RANGE_PATHS))
def test_unsatisfiable_range_gives_416(fetch, docs, path):
    length = len(docs[path])
    etag = fetch("GET", path).headers["ETag"]
    for header in (
        "bytes=999999-",
        "bytes=-0",
        f"bytes={length}-",
        f"bytes={length}-{length + 5}",
        "bytes=" + "9" * 5000 + "-",
    ):
        result = fetch("GET", path, range=header)
        assert result.status == 416, header[:40]
        assert result.headers["Content-Range"] == f"bytes */{length}"
        assert result.headers["ETag"] == etag
        assert result.headers["Cache-Control"] == DEFAULT_CACHE_CONTROL
        assert result.headers["Last-Modified"] == LAST_MODIFIED_TEXT
        assert result.headers["Content-Type"] == PLAIN
        assert result.headers["Content-Length"] == str(len(BODY_416))
        assert result.body == BODY_416


@pytest.mark.parametrize("header", ["bytes=-1", "bytes=-5", "bytes=0-", "bytes=0-0", "bytes=5-", "bytes=-0"])
def test_range_on_an_empty_file_is_ignored(fetch, docs, header):
    """Issue 11 item 12: any Range on an empty representation is ignored: 200, not 416."""
    result = fetch("GET", "/empty.txt", range=header)
    assert result.status == 200
    assert result.headers["Content-Length"] == "0"
    assert "Content-Range" not in result.headers
    assert result.body == b""


IGNORED_RANGES = [
    "bytes=a-b",
    "items=0-1",
    "bytes=5-2",
    "bytes=",
    "bytes=-",
    "bytes 0-1",
    "0-1",
    "bytes=1.5-2",
    "bytes=+1-2",
    "bytes=٠-٣",  # Arabic-Indic digits are not DIGIT
    "bytes=" + "9" * 5001 + "-" + "9" * 5000,  # last < first
    "bytes=,",
    "bytes=0-1,5-2",  # one invalid range spoils the header
    "bytes=0-1,x",
    "bytes=0-1;4-5",
]


@both_tiers
@pytest.mark.parametrize("path", list(RANGE_PATHS))
def test_ignored_range_gives_200_whole(fetch, docs, path):
    for header in IGNORED_RANGES:
        result = fetch("GET", path, range=header)
        assert result.status == 200, header[:40]
        assert result.body == docs[path]
        assert result.headers["Content-Length"] == str(len(docs[path]))
        assert "Content-Range" not in result.headers


@both_tiers
def test_if_range(fetch, docs):
    for path, content_type in RANGE_PATHS.items():
        whole = docs[path]
        etag = fetch("GET", path).headers["ETag"]
        ranged = {"range": "bytes=2-5"}
        assert_partial(fetch("GET", path, if_range=etag, **ranged), whole, 2, 5, content_type)
        assert_partial(fetch("GET", path, if_range=LAST_MODIFIED_TEXT, **ranged), whole, 2, 5, content_type)
        for other in ('"other"', "W/" + etag, EARLIER_TEXT, LATER_TEXT, "garbage", "", etag[:-2] + '"'):
            result = fetch("GET", path, if_range=other, **ranged)
            assert result.status == 200, other
            assert result.body == whole
            assert "Content-Range" not in result.headers
        # If-Range without Range changes nothing.
        result = fetch("GET", path, if_range='"other"')
        assert (result.status, result.body) == (200, whole)


@pytest.mark.parametrize("path", list(RANGE_PATHS))
def test_head_with_range_gives_200_without_body(fetch, docs, path):
    result = fetch("HEAD", path, range="bytes=0-3")
    assert result.status == 200
    assert result.body == b""
    assert result.headers["Content-Length"] == str(len(docs[path]))
    assert "Content-Range" not in result.headers


# --- several ranges: multipart/byteranges ----------------------------------------------------


def multipart_body(whole: bytes, ranges: list[tuple[int, int]], content_type: str, boundary: str) -> bytes:
    """A multipart/byteranges body as RFC 9110 14.6 and Go's mime/multipart
    write it: the delimiter, part headers, blank line, bytes; then the close."""
    out = b""
    for index, (start, end) in enumerate(ranges):
        out += b"\r\n" if index else b""
        out += f"--{boundary}\r\nContent-Type: {content_type}\r\n".encode()
        out += f"Content-Range: bytes {start}-{end}/{len(whole)}\r\n\r\n".encode()
        out += whole[start : end + 1]
    return out + f"\r\n--{boundary}--\r\n".encode()


def assert_multipart(result: Result, whole: bytes, ranges: list[tuple[int, int]], content_type: str) -> None:
    assert result.status == 206
    media_type, _, boundary = result.headers["Content-Type"].partition("; boundary=")
    assert media_type == "multipart/byteranges"
    assert re.fullmatch(r"[0-9a-f]{32}", boundary), boundary
    assert boundary.encode() not in whole
    assert result.body == multipart_body(whole, ranges, content_type, boundary)
    assert result.headers["Content-Length"] == str(len(result.body))
    assert "Content-Range" not in result.headers
    assert "Content-Encoding" not in result.headers
    assert result.headers["Accept-Ranges"] == "bytes"
    assert result.headers["X-Content-Type-Options"] == "nosniff"
    assert ETAG_RE.fullmatch(result.headers["ETag"])
    assert result.headers["Last-Modified"] == LAST_MODIFIED_TEXT
    assert result.headers["Cache-Control"] == DEFAULT_CACHE_CONTROL


def multipart_cases(n: int) -> list[tuple[str, list[tuple[int, int]]]]:
    """(Range header, the ranges sent) for a file of ``n`` bytes."""
    return [
        ("bytes=0-1,4-5", [(0, 1), (4, 5)]),
        ("bytes=0-1, 4-5", [(0, 1), (4, 5)]),
        ("bytes=500-509,0-3", [(0, 3), (500, 509)]),  # ascending
        ("bytes=0-3,2-6,10-12", [(0, 6), (10, 12)]),  # overlapping: merged
        ("bytes=0-3,4-6,10-12", [(0, 6), (10, 12)]),  # adjacent: merged
        ("bytes=10-12,0-3,4-6", [(0, 6), (10, 12)]),
        ("bytes=-3,0-0", [(0, 0), (n - 3, n - 1)]),
        (f"bytes=0-0,{n - 1}-", [(0, 0), (n - 1, n - 1)]),
        ("bytes=,0-1,,4-5,", [(0, 1), (4, 5)]),  # empty list elements
        ("bytes=0-1,99999999-,4-5", [(0, 1), (4, 5)]),  # the unsatisfiable one is left out
        ("bytes=7-8,100-" + "9" * 30 + ",2-3", [(2, 3), (7, 8), (100, n - 1)]),
        (
            ",".join(f"{2 * i}-{2 * i}" for i in range(MAX_RANGES)).join(("bytes=", "")),
            [(2 * i, 2 * i) for i in range(MAX_RANGES)],
        ),
    ]


@both_tiers
def test_several_ranges_give_multipart_byteranges(fetch, docs):
    """Issue 11 item 10: several ranges get a multipart/byteranges 206,
    ranges ascending, overlapping and adjacent ones coalesced."""
    for path, content_type in RANGE_PATHS.items():
        whole = docs[path]
        for header, ranges in multipart_cases(len(whole)):
            result = fetch("GET", path, range=header)
            try:
                assert_multipart(result, whole, ranges, content_type)
            except AssertionError as exc:
                raise AssertionError(f"{path} Range: {header[:40]}") from exc
        # The same request gets the same bytes (the boundary is fixed per file).
        assert fetch("GET", path, range=header).body == result.body


@both_tiers
@pytest.mark.parametrize(
    ("header", "start", "end"),
    [("bytes=0-3,2-5", 0, 5), ("bytes=4-5,0-3", 0, 5), ("bytes=0-1,,", 0, 1), ("bytes=0-1,999999-", 0, 1)],
)
def test_ranges_that_coalesce_into_one_give_a_single_part(fetch, docs, header, start, end):
    """Issue 11 item 10: ranges merging into one range get a plain 206."""
    for path, content_type in RANGE_PATHS.items():
        assert_partial(fetch("GET", path, range=header), docs[path], start, end, content_type)


@both_tiers
def test_several_ranges_of_a_large_file_from_disk(fetch, docs):
    """Issue 11 item 10: parts of a file sent from disk, ranges longer than a read block."""
    whole = docs["/big.bin"]
    ranges = [(1, 1), (1000, 270_000), (270_002, 270_002), (BIG_SIZE - 5, BIG_SIZE - 1)]
    header = "bytes=" + ",".join(f"{start}-{end}" for start, end in reversed(ranges))
    assert_multipart(fetch("GET", "/big.bin", range=header), whole, ranges, "application/octet-stream")


@both_tiers
@pytest.mark.parametrize(
    "header",
    [
        "bytes=0-,0-",  # more than the file
        "bytes=0-,-1",
        "bytes=1-,0-",
        "bytes=" + ",".join(f"{2 * i}-{2 * i}" for i in range(MAX_RANGES + 1)),  # too many
        "bytes=0-1,,,,4-5," + ",".join(["3-3"] * MAX_RANGES),
    ],
)
@pytest.mark.parametrize("path", list(RANGE_PATHS))
def test_too_many_ranges_or_too_many_bytes_give_200_whole(fetch, docs, header, path):
    """Issue 11 item 10: RFC 9110 14.2 lets a server ignore a costly Range."""
    result = fetch("GET", path, range=header)
    assert (result.status, result.body) == (200, docs[path])
    assert result.headers["Content-Length"] == str(len(docs[path]))


@both_tiers
@pytest.mark.parametrize("path", list(RANGE_PATHS))
def test_several_ranges_all_unsatisfiable_give_416(fetch, docs, path):
    length = len(docs[path])
    result = fetch("GET", path, range=f"bytes={length}-,-0,99999999-")
    assert result.status == 416
    assert result.headers["Content-Range"] == f"bytes */{length}"
    assert result.body == BODY_416


@both_tiers
@pytest.mark.parametrize("path", list(RANGE_PATHS))
def test_several_ranges_honour_if_range_and_head(fetch, docs, path):
    whole = docs[path]
    etag = fetch("GET", path).headers["ETag"]
    ranged = {"range": "bytes=0-1,4-5"}
    assert_multipart(fetch("GET", path, if_range=etag, **ranged), whole, [(0, 1), (4, 5)], RANGE_PATHS[path])
    assert (fetch("GET", path, if_range='"other"', **ranged).body) == whole
    head = fetch("HEAD", path, **ranged)
    assert (head.status, head.body, head.headers["Content-Length"]) == (200, b"", str(len(whole)))


@both_tiers
def test_several_ranges_of_a_content_coded_variant_give_200(fetch, docs):
    """A multipart body cannot carry its parts' Content-Encoding: the variant is sent whole."""
    for encoding in ("gzip", "br"):
        result = fetch("GET", CSS, accept_encoding=encoding, range="bytes=0-1,4-5")
        assert_variant(result, docs, CSS, encoding)
    result = fetch("GET", CSS, range="bytes=0-1,4-5")
    assert_multipart(result, docs[CSS], [(0, 1), (4, 5)], "text/css; charset=utf-8")


@pytest.mark.parametrize("range_header", [None, "bytes=100-", "bytes=0-1,500-"])
def test_a_truncated_file_on_disk_gets_502(fetch, docs, range_header):
    """Issue 11 item 4: a file sent from disk that is shorter than its blob
    gets 502, never 200 with the blob's Content-Length and a short body."""
    whole = docs["/big.bin"]
    assert fetch("GET", "/big.bin").body == whole  # cached, with its file's path
    path = BlobStore().local_path(hashlib.sha256(whole).hexdigest())
    with open(path, "r+b") as blob:
        blob.truncate(len(whole) - 1)
    headers = {"range": range_header} if range_header else {}
    result = fetch("GET", "/big.bin", **headers)
    assert result.status == 502
    assert result.body == b"The file could not be fetched from storage.\n"
    with open(path, "r+b") as blob:
        blob.write(whole)
    assert fetch("GET", "/big.bin").body == whole


def test_range_is_ignored_on_an_error_document(fetch, docs):
    result = fetch("GET", "/missing.html", range="bytes=0-3")
    assert result.status == 404
    assert result.body == docs["/404.html"]


def test_file_over_a_lowered_memory_file_limit(fetch, site, settings):
    """A file just over a lowered ASSETCACHE_MEMORY_FILE_LIMIT is sent from its file."""
    settings.ASSETCACHE_MEMORY_FILE_LIMIT = 100
    conf.reset()
    runtime.reset()
    whole = SAMPLE["img/logo.png"]
    assert isinstance(whole, bytes) and len(whole) > 100
    result = fetch("GET", "/img/logo.png")
    assert result.status == 200
    assert result.body == whole
    assert result.headers["Content-Length"] == str(len(whole))
    partial = fetch("GET", "/img/logo.png", range="bytes=500-509")
    assert partial.status == 206
    assert partial.headers["Content-Range"] == f"bytes 500-509/{len(whole)}"
    assert partial.body == whole[500:510]
    etag = result.headers["ETag"]
    assert fetch("GET", "/img/logo.png", if_none_match=etag).status == 304
    assert fetch("GET", "/", range="bytes=0-1").body == b"<!"


# --- content codings -------------------------------------------------------------------

CSS = "/css/site.css"


def assert_variant(result: Result, docs: Docs, path: str, encoding: str) -> None:
    body = docs.variants[path][encoding]
    assert result.status == 200
    assert result.headers["Content-Encoding"] == encoding
    assert result.headers["Vary"] == "Accept-Encoding"
    assert result.headers["Content-Length"] == str(len(body))
    assert result.headers["Content-Type"] == "text/css; charset=utf-8"
    assert result.headers["Last-Modified"] == LAST_MODIFIED_TEXT
    assert result.headers["Cache-Control"] == DEFAULT_CACHE_CONTROL
    assert result.headers["Accept-Ranges"] == "bytes"
    assert result.body == body


def assert_identity_with_vary(result: Result, docs: Docs, path: str) -> None:
    assert result.status == 200
    assert "Content-Encoding" not in result.headers
    assert result.headers["Vary"] == "Accept-Encoding"
    assert result.headers["Content-Length"] == str(len(docs[path]))
    assert result.body == docs[path]


@both_tiers
def test_gzip_and_brotli_variants(fetch, docs):
    identity = fetch("GET", CSS)
    gzipped = fetch("GET", CSS, accept_encoding="gzip")
    assert_variant(gzipped, docs, CSS, "gzip")
    assert gzip.decompress(gzipped.body) == docs[CSS]
    brotlied = fetch("GET", CSS, accept_encoding="br, gzip")
    assert_variant(brotlied, docs, CSS, "br")
    assert brotli.decompress(brotlied.body) == docs[CSS]
    etags = [r.headers["ETag"] for r in (identity, gzipped, brotlied)]
    assert all(ETAG_RE.fullmatch(etag) for etag in etags)
    assert len(set(etags)) == 3


ACCEPT_ENCODING_CASES = [
    ("gzip", "gzip"),
    ("GZIP", "gzip"),
    ("x-gzip", "gzip"),
    ("gzip, deflate", "gzip"),
    ("deflate, gzip;q=0.5", "gzip"),
    ("br", "br"),
    ("br, gzip", "br"),
    ("gzip, br", "br"),
    ("gzip, deflate, br, zstd", "br"),
    ("br;q=0.1, gzip", "gzip"),
    ("*", "br"),
    ("br;q=0, *", "gzip"),
    ("br;q=0, gzip", "gzip"),
    ("br; q=0, gzip; q=1.0", "gzip"),
    ("BR;Q=0, gzip", "gzip"),
    ("br;q=0.000, gzip;q=0.001", "gzip"),
    ("gzip;q=0, *", "br"),
    ("gzip;q=0, br;q=0", ""),
    ("gzip;q=0, br;q=0, *", ""),
    ("*;q=0", ""),
    ("identity", ""),
    ("deflate", ""),
    ("", ""),
    (None, ""),
    ("gzip;q=nonsense", ""),
    ("gzip;q=2", ""),
    ("gzip;q=-1", ""),
]


@pytest.mark.parametrize(
    ("path", "accept", "encoding"),
    [
        (CSS, "gzip;q=1, br;q=0.8", "gzip"),
        (CSS, "br;q=0.9, gzip", "gzip"),
        (CSS, "gzip;q=0.5, br;q=0.6", "br"),
        (CSS, "gzip;q=0.001, br;q=0.002", "br"),
        (CSS, "gzip;q=0.5, br;q=0.5", "br"),  # a tie: br
        (CSS, "identity;q=0.5, gzip;q=0.5", "gzip"),  # a tie: gzip before identity
        (CSS, "gzip;q=0.5, identity;q=0.6", ""),
        (CSS, "*;q=0.5, identity", ""),
        (CSS, "br;q=0.2, *;q=0.5", "gzip"),
        (CSS, "gzip;q=0.8, x-gzip;q=0.1, br;q=0.5", "gzip"),
        (CSS, "identity;q=0, gzip;q=0.1", "gzip"),
        ("/data.json", "br, gzip;q=0.5", "gzip"),  # br is not stored
        ("/data.json", "gzip;q=0.5, *", ""),  # identity has q=1 by *
        ("/data.json", "gzip;q=0.5, identity;q=0.4", "gzip"),
    ],
)
def test_accept_encoding_q_values(fetch, docs, path, accept, encoding):
    """Issue 11 item 9: the stored variant with the highest q wins; ties go to br, then gzip, then identity."""
    result = fetch("GET", path, accept_encoding=accept)
    if encoding:
        assert result.headers["Content-Encoding"] == encoding
        assert result.body == docs.variants[path][encoding]
    else:
        assert "Content-Encoding" not in result.headers
        assert result.body == docs[path]
    assert result.status == 200
    assert result.headers["Vary"] == "Accept-Encoding"
    assert result.headers["Content-Length"] == str(len(result.body))


@both_tiers
@pytest.mark.parametrize(("accept", "encoding"), ACCEPT_ENCODING_CASES)
def test_accept_encoding_negotiation(fetch, docs, accept, encoding):
    headers = {} if accept is None else {"accept_encoding": accept}
    result = fetch("GET", CSS, **headers)
    try:
        if encoding:
            assert_variant(result, docs, CSS, encoding)
        else:
            assert_identity_with_vary(result, docs, CSS)
    except AssertionError as exc:
        raise AssertionError(f"Accept-Encoding: {accept!r}") from exc


def test_only_existing_variants_are_chosen(fetch, docs):
    assert_identity_with_vary(fetch("GET", "/data.json", accept_encoding="br"), docs, "/data.json")
    result = fetch("GET", "/data.json", accept_encoding="br, gzip")
    assert result.status == 200
    assert result.headers["Content-Encoding"] == "gzip"
    assert result.body == docs.variants["/data.json"]["gzip"]


def test_no_variants_no_vary(fetch, docs):
    result = fetch("GET", "/img/logo.png", accept_encoding="gzip, br")
    assert result.status == 200
    assert "Content-Encoding" not in result.headers
    assert "Vary" not in result.headers
    assert result.body == docs["/img/logo.png"]


def test_head_with_accept_encoding(fetch, docs):
    result = fetch("HEAD", CSS, accept_encoding="gzip")
    assert result.status == 200
    assert result.body == b""
    assert result.headers["Content-Encoding"] == "gzip"
    assert result.headers["Content-Length"] == str(len(docs.variants[CSS]["gzip"]))
    assert result.headers["Vary"] == "Accept-Encoding"
    assert result.headers["ETag"] == fetch("GET", CSS, accept_encoding="gzip").headers["ETag"]


@both_tiers
def test_ranges_apply_to_the_chosen_variant(fetch, docs):
    for encoding in ("gzip", "br"):
        body = docs.variants[CSS][encoding]
        n = len(body)
        etag = fetch("GET", CSS, accept_encoding=encoding).headers["ETag"]
        result = fetch("GET", CSS, accept_encoding=encoding, range="bytes=0-3")
        assert result.status == 206
        assert result.headers["Content-Encoding"] == encoding
        assert result.headers["Vary"] == "Accept-Encoding"
        assert result.headers["ETag"] == etag
        assert result.headers["Content-Range"] == f"bytes 0-3/{n}"
        assert result.headers["Content-Length"] == "4"
        assert result.body == body[:4]
        result = fetch("GET", CSS, accept_encoding=encoding, range="bytes=-3")
        assert result.headers["Content-Range"] == f"bytes {n - 3}-{n - 1}/{n}"
        assert result.body == body[-3:]
        result = fetch("GET", CSS, accept_encoding=encoding, range=f"bytes={n}-")
        assert result.status == 416
        assert result.headers["Content-Range"] == f"bytes */{n}"
        assert result.headers["Vary"] == "Accept-Encoding"
        assert result.headers["ETag"] == etag
        assert result.body == BODY_416
    # The identity is longer than the gzip variant here: its length bounds its own ranges.
    result = fetch("GET", CSS, range="bytes=0-")
    assert result.headers["Content-Range"] == f"bytes 0-{len(docs[CSS]) - 1}/{len(docs[CSS])}"


def test_if_range_uses_the_chosen_variant_etag(fetch, docs):
    body = docs.variants[CSS]["gzip"]
    gzip_etag = fetch("GET", CSS, accept_encoding="gzip").headers["ETag"]
    identity_etag = fetch("GET", CSS).headers["ETag"]
    result = fetch("GET", CSS, accept_encoding="gzip", range="bytes=0-3", if_range=gzip_etag)
    assert result.status == 206
    assert result.body == body[:4]
    result = fetch("GET", CSS, accept_encoding="gzip", range="bytes=0-3", if_range=identity_etag)
    assert result.status == 200
    assert result.body == body


@both_tiers
def test_304_only_for_the_chosen_variant(fetch, docs):
    gzip_etag = fetch("GET", CSS, accept_encoding="gzip").headers["ETag"]
    br_etag = fetch("GET", CSS, accept_encoding="br").headers["ETag"]
    identity_etag = fetch("GET", CSS).headers["ETag"]

    result = fetch("GET", CSS, accept_encoding="gzip", if_none_match=gzip_etag)
    assert_not_modified(result, gzip_etag)
    assert result.headers["Vary"] == "Accept-Encoding"

    # The client's cached gzip copy does not validate another representation.
    assert_identity_with_vary(fetch("GET", CSS, if_none_match=gzip_etag), docs, CSS)
    assert_variant(fetch("GET", CSS, accept_encoding="br", if_none_match=gzip_etag), docs, CSS, "br")
    assert_variant(fetch("GET", CSS, accept_encoding="gzip", if_none_match=identity_etag), docs, CSS, "gzip")

    # A list naming several of them matches the chosen one.
    both = f"{identity_etag}, {br_etag}"
    assert_not_modified(fetch("GET", CSS, accept_encoding="br", if_none_match=both), br_etag)
    assert_not_modified(fetch("GET", CSS, if_none_match=both), identity_etag)
    assert_not_modified(fetch("HEAD", CSS, accept_encoding="br", if_none_match=both), br_etag)


def test_error_document_is_not_content_coded(fetch, docs):
    result = fetch("GET", "/missing.css", accept_encoding="gzip, br")
    assert result.status == 404
    assert "Content-Encoding" not in result.headers
    assert result.body == docs["/404.html"]


# --- paths --------------------------------------------------------------------------------


def test_directory_with_slash_serves_its_index(fetch, docs):
    result = fetch("GET", "/guide/")
    assert result.status == 200
    assert result.body == docs["/guide/index.html"]
    assert result.headers["Content-Type"] == "text/html; charset=utf-8"
    assert result.headers["ETag"] == fetch("GET", "/guide/index.html").headers["ETag"]
    assert fetch("GET", "/").body == docs["/index.html"]


@pytest.mark.parametrize(
    ("path", "location"),
    [
        ("/guide", "/guide/"),
        ("/guide?x=1", "/guide/?x=1"),
        ("/guide?a=1&b=%20c", "/guide/?a=1&b=%20c"),
    ],
)
def test_directory_without_slash_redirects(fetch, docs, path, location):
    for method in ("GET", "HEAD"):
        result = fetch(method, path)
        assert result.status == 301, path
        assert result.headers["Location"] == location
        assert result.body == b""


def test_redirect_location_is_percent_encoded(fetch, site, tmp_path):
    publish(site, write_tree(tmp_path / "more", {"my docs/index.html": "spaced", "é/index.html": "accent"}))
    runtime.reset()
    result = fetch("GET", "/my%20docs")
    assert result.status == 301
    assert result.headers["Location"] == "/my%20docs/"
    assert fetch("GET", result.headers["Location"]).body == b"spaced"
    result = fetch("GET", "/%C3%A9?q=1")
    assert result.status == 301
    assert result.headers["Location"] == "/%C3%A9/?q=1"
    assert fetch("GET", "/%C3%A9/").body == b"accent"


MISSING_PATHS = [
    "/missing.html",
    "/nope/",
    "/nope",
    "/css",
    "/css/",
    "/img/logo.png/",
    "/css//site.css",
    "/INDEX.HTML",
    "/%C3%A9",
]


@both_tiers
@pytest.mark.parametrize("path", MISSING_PATHS)
def test_missing_path_gets_the_error_document(fetch, docs, path):
    for _ in range(2):  # a miss, then a negative hit
        result = fetch("GET", path)
        assert result.status == 404, path
        assert result.headers["Content-Type"] == "text/html; charset=utf-8"
        assert result.headers["Content-Length"] == str(len(docs["/404.html"]))
        assert result.headers["X-Content-Type-Options"] == "nosniff"
        assert result.body == docs["/404.html"]
        head = fetch("HEAD", path)
        assert head.status == 404
        assert head.headers["Content-Length"] == str(len(docs["/404.html"]))
        assert head.body == b""


def test_plain_404_without_an_error_document(fetch, docs):
    edit_site(docs.site, error_document="")
    result = fetch("GET", "/missing.html")
    assert result.status == 404
    assert result.headers["Content-Type"] == PLAIN
    assert result.body == BODY_404
    # The former error document is an ordinary file now.
    assert fetch("GET", "/404.html").status == 200


def test_plain_404_when_the_error_document_is_not_published(fetch, docs):
    edit_site(docs.site, error_document="missing-error.html")
    for _ in range(2):
        result = fetch("GET", "/missing.html")
        assert result.status == 404
        assert result.headers["Content-Type"] == PLAIN
        assert result.body == BODY_404


def test_other_index_document(fetch, docs):
    edit_site(docs.site, index_document="site.css")
    result = fetch("GET", "/css/")
    assert result.status == 200
    assert result.body == docs["/css/site.css"]
    assert fetch("GET", "/css").headers["Location"] == "/css/"
    assert fetch("GET", "/guide/").status == 404


BAD_PATHS = [
    "/a/../b",
    "/..",
    "/a/..",
    "/../index.html",
    "/./x",
    "/.",
    "/guide/./index.html",
    "/%2e%2e/x",
    "/%2E%2E/index.html",
    "/%2e",
    "/guide/%2e/index.html",
    "/a%2f..%2findex.html",
    "/a\\b",
    "/a%5cb",
    "/%5c..%5cindex.html",
    "/a%00b",
    "/index.html%00",
    "/" + "a" * 1024,
    "/" + "%61" * 1024,
]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_bad_paths_get_400(fetch, docs, path):
    for method in ("GET", "HEAD"):
        result = fetch(method, path)
        assert result.status == 400, (method, path[:40])
        assert result.headers["Content-Type"] == PLAIN
        assert result.body == (BODY_400 if method == "GET" else b"")


def test_a_name_with_a_percent_sign_is_reached_by_its_encoding_only(fetch, site, tmp_path):
    publish(site, write_tree(tmp_path / "more", {"%FF.txt": "percent", "100%.txt": "full"}))
    runtime.reset()
    assert fetch("GET", "/%25FF.txt").body == b"percent"
    assert fetch("GET", "/100%25.txt").body == b"full"


@pytest.mark.parametrize("path", ["/%FF%FE", "/caf%E9.txt", "/%C3", "/a/%80/b.txt", "/%EF%BF%BD%FF"])
def test_a_path_that_is_not_utf8_gets_400(fetch, adapter, docs, path):
    """Issue 11 item 12: a path that is not UTF-8 gets 400 through the WSGI and ASGI wrappers alike.

    Through the middleware Django has re-percent-encoded the bytes ("/%FF"),
    which name no file here: 404."""
    result = fetch("GET", path)
    if adapter == "middleware":
        assert (result.status, result.body) == (404, docs["/404.html"])
    else:
        assert (result.status, result.body) == (400, BODY_400)


def test_a_replacement_character_sent_as_utf8_is_a_path_like_any(fetch, site, tmp_path):
    """Issue 11 item 12: U+FFFD in a path is refused only where the request's bytes were not UTF-8."""
    publish(site, write_tree(tmp_path / "more", {"\ufffd.txt": "replacement"}))
    runtime.reset()
    result = fetch("GET", "/%EF%BF%BD.txt")
    assert (result.status, result.body) == (200, b"replacement")


def test_path_at_the_length_limit_is_not_rejected(fetch, docs):
    result = fetch("GET", "/" + "a" * 1023)
    assert result.status == 404
    assert result.body == docs["/404.html"]


def test_dots_inside_names_are_fine(fetch, site, tmp_path):
    publish(site, write_tree(tmp_path / "more", {"...": "three dots", "a..b/.well-known.txt": "ok"}), include=[".*"])
    runtime.reset()
    assert fetch("GET", "/...").body == b"three dots"
    assert fetch("GET", "/a..b/.well-known.txt").body == b"ok"


def test_percent_encoded_names_are_decoded_once(fetch, docs):
    result = fetch("GET", "/a%20b.txt")
    assert result.status == 200
    assert result.body == docs["/a b.txt"]
    assert fetch("GET", "/a b.txt").body == docs["/a b.txt"]
    assert fetch("GET", "/%61%20%62.txt").body == docs["/a b.txt"]
    assert fetch("GET", "/css%2Fsite.css").body == docs["/css/site.css"]
    twice = fetch("GET", "/a%2520b.txt")
    assert twice.status == 404
    assert twice.body == docs["/404.html"]


# --- hosts --------------------------------------------------------------------------------


def test_unknown_site_host_gets_404(fetch, docs):
    unknown = ("nosuch.sites.test", "NOSUCH.sites.test:80", "a.b.sites.test", "x.docs.sites.test", ".sites.test")
    for host in unknown:
        for method in ("GET", "POST"):
            result = fetch(method, "/", host=host)
            assert result.status == 404, host
            assert result.headers["Content-Type"] == PLAIN
            assert result.body == BODY_NO_SITE


NO_SITE_PAGE = SITE_NOT_FOUND_PAGE


@pytest.mark.parametrize(
    ("accept", "content_type", "body"),
    [
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", "text/html; charset=utf-8", NO_SITE_PAGE),
        ("*/*", PLAIN, BODY_NO_SITE),
        (None, PLAIN, BODY_NO_SITE),
        ("application/json", PLAIN, BODY_NO_SITE),
    ],
)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_no_site_is_a_small_page_for_browsers_and_text_for_the_rest(fetch, docs, accept, content_type, body, method):
    headers = {} if accept is None else {"Accept": accept}
    for host in ("nosuch.sites.test", "docs.sites.test"):
        if host == "docs.sites.test":
            edit_site(docs.site, is_active=False)
        result = fetch(method, "/any/path", host=host, **headers)
        assert result.status == 404
        assert result.headers["Content-Type"] == content_type
        assert result.headers["Vary"] == "Accept"
        assert result.headers["Content-Length"] == str(len(body))
        assert result.body == (body if method == "GET" else b"")
    assert len(NO_SITE_PAGE) < 600 and b"No site is published at this address." in NO_SITE_PAGE


def test_inactive_site_gets_404(fetch, docs):
    edit_site(docs.site, is_active=False)
    for path in ("/", "/css/site.css", "/missing", "/guide"):
        result = fetch("GET", path)
        assert result.status == 404
        assert result.body == BODY_NO_SITE


def test_host_is_case_insensitive_and_port_is_ignored(fetch, docs):
    spellings = (
        "DOCS.SITES.TEST",
        "Docs.Sites.Test",
        "docs.sites.test:8000",
        "DOCS.sites.test:443",
        "docs.sites.test.",
    )
    for host in spellings:
        result = fetch("GET", "/css/site.css", host=host)
        assert result.status == 200, host
        assert result.body == docs["/css/site.css"]


def test_custom_domain_serves_the_site(fetch, docs, settings):
    Domain.objects.create(hostname="docs.example.org", site=docs.site, state="verified")
    runtime.reset()
    assert not validate_host("docs.example.org", settings.ALLOWED_HOSTS)
    for host in ("docs.example.org", "DOCS.EXAMPLE.ORG:8443"):
        result = fetch("GET", "/css/site.css", host=host)
        assert result.status == 200
        assert result.body == docs["/css/site.css"]
        assert fetch("GET", "/guide", host=host).headers["Location"] == "/guide/"
        assert fetch("GET", "/missing", host=host).body == docs["/404.html"]
        assert fetch("POST", "/", host=host).status == 405


def test_custom_domain_of_an_inactive_site_gets_404(fetch, docs):
    Domain.objects.create(hostname="docs.example.org", site=docs.site, state="verified")
    edit_site(docs.site, is_active=False)
    result = fetch("GET", "/", host="docs.example.org")
    assert result.status == 404
    assert result.body == BODY_NO_SITE


def test_other_hosts_reach_the_project(fetch, docs, settings):
    settings.ALLOWED_HOSTS = [*settings.ALLOWED_HOSTS, "other.example", "sites.test", "[::1]"]
    for host in ("testserver", "localhost", "127.0.0.1", "other.example", "sites.test", "[::1]"):
        result = fetch("GET", "/", host=host)
        assert result.status == 200, host
        assert result.body == b"project home"
        # The project's own routing, not the site.
        other = fetch("GET", "/css/site.css", host=host)
        assert other.body != docs["/css/site.css"]
        assert other.status == 404


def test_host_that_is_not_allowed_is_left_to_the_project(fetch, docs):
    # Neither a site host nor in ALLOWED_HOSTS: Django's own answer (400).
    result = fetch("GET", "/", host="elsewhere.example")
    assert result.status == 400
    assert result.body != docs["/index.html"]


#: Absolute-form request targets (RFC 9112 3.2.2) sent with another Host,
#: and the body that answers: a site's file, "no site" or the project's page.
ABSOLUTE_FORM_TARGETS = [
    ("http://docs.sites.test/css/site.css", "testserver", "/css/site.css"),
    ("HTTP://DOCS.SITES.TEST:8080/css/site.css?v=1", "testserver", "/css/site.css"),
    ("https://docs.sites.test/img/logo.png", "other.sites.test", "/img/logo.png"),
    ("http://docs.sites.test", "testserver", "/index.html"),
    ("http://docs.sites.test?x=1", "testserver", "/index.html"),
    ("http://nosuch.sites.test/", HOST, "no site"),
    ("http://testserver/", HOST, "project"),
    # Malformed authorities name no site host: the request is the project's.
    ("http://user@docs.sites.test/", HOST, "project"),
    ("http://[::1]/", HOST, "project"),
    ("http://[/", HOST, "project"),
    ("http:///", HOST, "project"),
    ("http://docs.sites.test%2F/", HOST, "project"),
    ("http://docs.sites.test:99999999999999999999/", "testserver", "/index.html"),  # as in a Host field
    ("http://" + "a" * 5000 + ".sites.test/", HOST, "project"),
    ("http://docs.sites.test\\@x/", HOST, "project"),
]


@pytest.mark.parametrize("fetch", ["middleware", "wsgi"], indirect=True)
@pytest.mark.parametrize(("target", "host", "answer"), ABSOLUTE_FORM_TARGETS)
def test_absolute_form_target_chooses_the_site(fetch, docs, target, host, answer):
    """Issue 11 item 11: an absolute-form target's host chooses the site, not the Host field (gunicorn's RAW_URI).

    Runs where the server passes the target on (WSGI: gunicorn's RAW_URI);
    ASGI servers pass no raw target."""
    result = fetch("GET", target, host=host)
    if answer == "no site":
        assert (result.status, result.body) == (404, BODY_NO_SITE)
    elif answer == "project":
        assert (result.status, result.body) == (200, b"project home")
    else:
        assert (result.status, result.body) == (200, docs[answer])
        assert result.headers["Content-Length"] == str(len(docs[answer]))
