"""Offloading a file body to the web server in front (``ASSETCACHE_ACCEL``).

The reply is decided as always; when its body is a local file, what is sent
instead is the same headers, an empty body and one header naming the file
(``X-Accel-Redirect`` for nginx, ``X-Sendfile`` for Apache's mod_xsendfile
and lighttpd, as django-sendfile2 names them), so the web server sends the
bytes with its own sendfile and the worker is free at once.

An offload is made only where the web server's own handling of the request
gives the very reply we decided:

* a 200 of a whole file, to a request without ``Range`` (the server would
  apply it), ``If-Match`` or ``If-Unmodified-Since`` (nginx tests those
  against the file's own date and tag, not ours);
* with nginx, also a 206 of one range, to a request whose ``Range`` names
  one range: nginx applies that same header to the same file itself (and
  its ``If-Range`` to our ETag and Last-Modified, which the documented
  location sets before nginx's range filter runs);
* and only a reply whose every header reaches the client: nginx drops an
  upstream's headers on ``X-Accel-Redirect`` except a few, and the
  documented configuration (``deploy/nginx/assetcache-accel.conf``) adds
  back those of ``NGINX_ADDED``.

Everything else (304, 412, 416, redirects, 404s, bodies from memory,
multipart ranges, whose boundary is ours) is answered directly. The offload
reply of a file is built once and kept on the reply it stands for.
"""

from __future__ import annotations

import os
from collections.abc import Callable

from .replies import Reply

#: The modes of ``ASSETCACHE_ACCEL`` and the header each sends.
HEADERS = {"nginx": "X-Accel-Redirect", "apache": "X-Sendfile", "lighttpd": "X-Sendfile"}

#: Headers nginx keeps from the upstream on ``X-Accel-Redirect``, or makes
#: itself from the file and the request (lower case).
NGINX_KEPT = frozenset(
    {
        "content-type",
        "cache-control",
        "expires",
        "set-cookie",
        "content-disposition",
        "content-length",
        "content-range",
        "accept-ranges",
    }
)
#: Headers the documented internal location adds back from the upstream's
#: (``add_header Name $upstream_http_name``): each at most once per reply.
#: Those Django's SecurityMiddleware adds (when it runs before ours) are here.
NGINX_ADDED = (
    "ETag",
    "Last-Modified",
    "Vary",
    "X-Content-Type-Options",
    "Content-Encoding",
    "Strict-Transport-Security",
    "Content-Security-Policy",
    "X-Frame-Options",
    "Referrer-Policy",
    "Permissions-Policy",
    "Access-Control-Allow-Origin",
    "Cross-Origin-Opener-Policy",
    "Cross-Origin-Embedder-Policy",
    "Cross-Origin-Resource-Policy",
)
_NGINX_ADDED = frozenset(name.lower() for name in NGINX_ADDED)
#: Headers an offload reply does not send: the web server sends its own.
_DROPPED = frozenset({"content-length", "content-range"})
_BODY_LENGTH = ("Content-Length", "0")

HeaderGetter = Callable[[str], "str | None"]


class Offload:
    """How one ``ASSETCACHE_ACCEL`` mode offloads replies."""

    __slots__ = ("header", "nginx", "prefix", "values")

    def __init__(self, mode: str, prefix: str) -> None:
        self.header = HEADERS[mode]
        self.nginx = mode == "nginx"
        self.prefix = prefix if prefix.endswith("/") else prefix + "/"
        #: The header value of each file, formatted once (bounded).
        self.values: dict[str, str] = {}

    def reply_for(self, reply: Reply, get: HeaderGetter) -> Reply | None:
        """What to send instead of ``reply`` (whose body is a file), or None
        to send ``reply`` itself."""
        status = reply.status
        if status == 200:
            if get("HTTP_RANGE") is not None:
                return None
        elif status != 206 or not self.nginx or reply.parts is not None:
            return None
        else:
            asked = get("HTTP_RANGE")
            if asked is None or "," in asked:
                return None  # several ranges we coalesced into one: nginx would not
        if get("HTTP_IF_MATCH") is not None or get("HTTP_IF_UNMODIFIED_SINCE") is not None:
            return None
        # Built for each request: the replies of files are themselves made
        # per request (``sharedheaders.FileReply``), so there is nothing to keep.
        return self._build(reply)

    def _build(self, reply: Reply) -> Reply | None:
        """The offload reply of ``reply``: its headers but the length and
        range, the file's header, no body; None when nginx would lose one of
        its headers."""
        headers = [item for item in reply.headers if item[0].lower() not in _DROPPED]
        if self.nginx and not _carried(headers):
            return None
        assert reply.file_path is not None
        headers.append(_BODY_LENGTH)
        headers.append((self.header, self.value(reply.file_path)))
        # 200 even for a range: nginx makes the 206 from the request's Range.
        return Reply(200, headers)

    def value(self, file_path: str) -> str:
        """The header value naming ``file_path``: the prefix and the blob's
        path under its directory (``ab/cd/<sha256>``) for nginx, the
        absolute path otherwise."""
        value = self.values.get(file_path)
        if value is None:
            if len(self.values) >= 4096:
                self.values.clear()
            value = self.prefix + "/".join(file_path.rsplit(os.sep, 3)[1:]) if self.nginx else file_path
            self.values[file_path] = value
        return value


def _carried(headers: list[tuple[str, str]]) -> bool:
    """Whether nginx passes every one of ``headers`` on to the client."""
    added: set[str] = set()
    for name, _ in headers:
        lower = name.lower()
        if lower in NGINX_KEPT:
            continue
        if lower not in _NGINX_ADDED or lower in added:
            return False
        added.add(lower)
    return True


_offloads: dict[tuple[str, str], Offload] = {}


def offload_for(mode: str | None, prefix: str) -> Offload | None:
    """The ``Offload`` of a mode (one per mode and prefix), None without."""
    if mode is None:
        return None
    key = (mode, prefix)
    offload = _offloads.get(key)
    if offload is None:
        offload = _offloads[key] = Offload(mode, prefix)
    return offload
