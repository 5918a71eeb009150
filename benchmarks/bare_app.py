"""The ceiling: a bare WSGI app answering every request with a fixed 1 KiB
body (or 304 when If-None-Match names its ETag), headers prepared once."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

BODY = (b"/* fixed 1 KiB body */\n" + b"a" * 1024)[:1024]
ETAG = '"bare-1024"'
HEADERS = [
    ("Content-Type", "text/css; charset=utf-8"),
    ("Content-Length", str(len(BODY))),
    ("ETag", ETAG),
    ("Cache-Control", "public, max-age=0, must-revalidate"),
]
NOT_MODIFIED = [("ETag", ETAG), ("Cache-Control", "public, max-age=0, must-revalidate")]


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("HTTP_IF_NONE_MATCH") == ETAG:
        start_response("304 Not Modified", NOT_MODIFIED)
        return [b""]
    start_response("200 OK", HEADERS)
    return [BODY]
