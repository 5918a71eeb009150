"""What to send: a status, a header list and a body, built once and reused.

A ``Reply`` is the whole answer to one request, independent of any server:
adapters (the middleware, the WSGI and ASGI wrappers) turn it into their own
response and never decide anything. Fixed replies (400, 404, 405, 502) are
built once at import.
"""

from __future__ import annotations

from collections.abc import Sequence
from http import HTTPStatus

# Statuses and their WSGI status lines.
STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}

ALLOWED_METHODS = "GET, HEAD"
NOSNIFF = ("X-Content-Type-Options", "nosniff")
ACCEPT_RANGES = ("Accept-Ranges", "bytes")
#: Sent by every reply of a preview host: search engines keep out.
NOINDEX = ("X-Robots-Tag", "noindex")
#: What every reply of a private site ends with: never stored by a shared
#: cache, and depending on the visitor's cookie.
NO_STORE = ("Cache-Control", "private, no-store")
VARY_COOKIE = ("Vary", "Cookie")
PRIVATE = (NO_STORE, VARY_COOKIE)
VARY = ("Vary", "Accept-Encoding")
PLAIN_TEXT = "text/plain; charset=utf-8"
CRLF = "\r\n"


class Part:
    """One part of a multipart/byteranges body sent from a file: ``head``
    (the boundary line and part headers), then the file's bytes
    ``start`` .. ``stop`` (exclusive; equal for the closing delimiter)."""

    __slots__ = ("head", "start", "stop")

    def __init__(self, head: bytes, start: int, stop: int) -> None:
        self.head = head
        self.start = start
        self.stop = stop


class Reply:
    """What to send: status, header list, and a body in memory or on disk.

    ``body`` is the whole body for memory replies (``b""`` when there is none);
    ``file_path`` with ``offset`` and ``length`` names bytes of a local file
    whose whole size must be ``file_size``; with ``parts`` the body is a
    multipart/byteranges of that file, ``length`` bytes long.
    """

    __slots__ = (
        "_headers",
        "_raw_headers",
        "adapter_headers",
        "body",
        "file_path",
        "file_size",
        "length",
        "offset",
        "parts",
        "sent",
        "status",
        "status_line",
    )

    def __init__(
        self,
        status: int,
        headers: list[tuple[str, str]],
        body: bytes = b"",
        file_path: str | None = None,
        offset: int = 0,
        length: int = 0,
        file_size: int = 0,
        parts: tuple[Part, ...] | None = None,
    ) -> None:
        self.status = status
        self.status_line = STATUS_LINES[status]
        self._headers = headers
        self.body = body
        self.file_path = file_path
        self.offset = offset
        self.length = length
        self.file_size = file_size
        self.parts = parts
        #: Body bytes this reply sends, counted per site (``traffic.py``).
        self.sent = length if file_path is not None else len(body)
        self._raw_headers: list[tuple[bytes, bytes]] | None = None
        #: Room for an adapter to keep its own form of ``headers``, built once.
        self.adapter_headers: object = None

    @property
    def headers(self) -> list[tuple[str, str]]:
        """The header list (a property: ``FileReply`` assembles its own)."""
        return self._headers

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers as ASGI wants them (bytes), encoded once per reply."""
        raw = self._raw_headers
        if raw is None:
            raw = self._raw_headers = raw_form(self._headers)
        return raw

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.file_path or len(self.body)}>"


def raw_form(headers: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Headers as ASGI sends them: lower-case names, both as bytes."""
    return [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in headers]


def plain_reply(
    status: int,
    text: str,
    extra: Sequence[tuple[str, str]] = (),
    validators: Sequence[tuple[str, str]] = (("Cache-Control", "no-cache"),),
) -> Reply:
    body = text.encode()
    headers = [
        ("Content-Type", PLAIN_TEXT),
        ("Content-Length", str(len(body))),
        NOSNIFF,
        *extra,
        *validators,
    ]
    return Reply(status, headers, body)


BAD_REQUEST = plain_reply(400, "Bad request path.\n")
#: For a host that names no site: plain text, or a small page for a browser
#: (``serve`` picks by the Accept header); both vary by it.
SITE_NOT_FOUND = plain_reply(404, "No site is published at this address.\n", [("Vary", "Accept")])
SITE_NOT_FOUND_PAGE = b"""<!doctype html>
<html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>No site here</title>
<style>body{font:1rem/1.5 system-ui,sans-serif;max-width:34rem;margin:18vh auto;padding:0 1rem;color:#333}
h1{font-size:1.4rem;font-weight:600}p{color:#666}</style>
<h1>No site is published at this address.</h1>
<p>Check the address for a typing mistake; if the site is yours, publish it to this name first.</p>
"""
SITE_NOT_FOUND_HTML = Reply(
    404,
    [
        ("Content-Type", "text/html; charset=utf-8"),
        ("Content-Length", str(len(SITE_NOT_FOUND_PAGE))),
        NOSNIFF,
        ("Vary", "Accept"),
        ("Cache-Control", "no-cache"),
    ],
    SITE_NOT_FOUND_PAGE,
)
NOT_FOUND = plain_reply(404, "Not found.\n")
METHOD_NOT_ALLOWED = plain_reply(405, "Method not allowed.\n", [("Allow", ALLOWED_METHODS)])
BAD_GATEWAY = plain_reply(502, "The file could not be fetched from storage.\n")


SERVICE_UNAVAILABLE = plain_reply(503, "The site cannot be served right now.\n", [("Retry-After", "5")])


class FixedReplies:
    """The fixed replies of one kind of host, built once: a live or a preview
    host's (which add X-Robots-Tag), of a public or a private site (whose
    replies are private, Cache-Control and Vary replaced)."""

    __slots__ = (
        "bad_gateway",
        "bad_request",
        "method_not_allowed",
        "not_found",
        "service_unavailable",
    )

    def __init__(self, extra: tuple[tuple[str, str], ...] = (), *, private: bool = False) -> None:
        def fixed(reply: Reply) -> Reply:
            if not extra and not private:
                return reply
            headers = reply.headers
            if private:
                headers = [h for h in headers if h[0] != "Cache-Control" and h[0] != "Vary"]
                return Reply(reply.status, [*headers, *extra, *PRIVATE], reply.body)
            return Reply(reply.status, [*headers, *extra], reply.body)

        self.bad_request = fixed(BAD_REQUEST)
        self.not_found = fixed(NOT_FOUND)
        self.method_not_allowed = fixed(METHOD_NOT_ALLOWED)
        self.bad_gateway = fixed(BAD_GATEWAY)
        self.service_unavailable = fixed(SERVICE_UNAVAILABLE)


DEFAULT_REPLIES = FixedReplies()
NOINDEX_REPLIES = FixedReplies((NOINDEX,))


def fixed_replies(preview: bool, private: bool) -> FixedReplies:
    """The fixed replies of a host: one of four sets, each built once."""
    return _FIXED_REPLIES[preview, private]


_FIXED_REPLIES = {
    (False, False): DEFAULT_REPLIES,
    (True, False): NOINDEX_REPLIES,
    (False, True): FixedReplies(private=True),
    (True, True): FixedReplies((NOINDEX,), private=True),
}


def without_body(reply: Reply) -> Reply:
    """The same reply for HEAD: headers (Content-Length included), no body."""
    return Reply(reply.status, reply.headers)


def for_method(method: str, reply: Reply) -> Reply:
    """A reply as the method wants it: a HEAD gets no body (adapters send
    what they are given)."""
    return without_body(reply) if method == "HEAD" else reply
