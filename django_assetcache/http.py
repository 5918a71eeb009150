"""HTTP decisions for a site host, independent of any server or framework.

Given an ``Entry`` (entries.py) and the request's headers, ``decide`` picks the
reply: content coding, preconditions (412, 304), ranges (206, 416) or the whole
body. The rest here reads the request: which host it names, whether its path
is acceptable.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from django.utils.http import parse_http_date_safe

from .entries import Entry, Representation
from .replies import NOSNIFF, PLAIN_TEXT, Reply

#: How a request names the header values the decision reads (WSGI names).
HeaderGetter = Callable[[str], "str | None"]


def redirect(entry: Entry, query_string: str) -> Reply:
    location = entry.location + ("?" + query_string if query_string else "")
    return Reply(
        301,
        [
            ("Location", location),
            ("Content-Type", PLAIN_TEXT),
            ("Content-Length", "0"),
            ("Cache-Control", "no-cache"),
            NOSNIFF,
            *entry.extra,
        ],
    )


#: An absolute-form request target: scheme "://" authority, then the path.


_ABSOLUTE_FORM_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://([^/?#]*)", re.ASCII)


def request_host(host: str, target: str | None) -> str:
    """The host a request names: ``host`` (the Host field), unless the raw
    request ``target`` is in absolute form, whose authority then wins
    (RFC 9112 3.2.2). A malformed authority names no site host."""
    if target is None or target[:1] == "/":
        return host
    match = _ABSOLUTE_FORM_RE.match(target)
    return host if match is None else match.group(1)


def clean_path(path: str, max_length: int) -> str | None:
    """The request path if it is acceptable, else None (a 400).

    ``path`` is already percent-decoded once by the server.
    """
    if len(path) > max_length or not path.startswith("/"):
        return None
    if "\x00" in path or "\\" in path:
        return None
    if "/." in path:
        for segment in path.split("/"):
            if segment == "." or segment == "..":
                return None
    return path


# --- negotiation --------------------------------------------------------------

#: Qualities a client gives (br, gzip, identity), each 0.0 (refused) to 1.0.
Qualities = tuple[float, float, float]

_accept_cache: dict[str, Qualities] = {}


def accepted_encodings(header: str) -> Qualities:
    """The q-values of ``br``, ``gzip`` and ``identity`` under an Accept-Encoding value.

    A coding the value does not name gets the q of ``*``, or 0. Identity is
    sent when nothing else is acceptable, so its 0 only means "last".
    """
    result = _accept_cache.get(header)
    if result is None:
        qualities: dict[str, float] = {}
        for item in header.split(","):
            name, _, params = item.partition(";")
            name = name.strip().lower()
            if name:
                qualities[name] = _quality(params)
        star = qualities.get("*", 0.0)
        result = (
            qualities.get("br", star),
            qualities.get("gzip", qualities.get("x-gzip", star)),
            qualities.get("identity", star),
        )
        if len(_accept_cache) >= 512:
            _accept_cache.clear()
        _accept_cache[header] = result
    return result


def _quality(params: str) -> float:
    """The q parameter of one Accept-Encoding item; a bad one refuses it."""
    q = 1.0
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip().lower() == "q":
            try:
                q = float(value.strip())
            except ValueError:
                q = 0.0
            if not 0.0 <= q <= 1.0:
                q = 0.0
    return q


def choose(entry: Entry, accept_encoding: str | None) -> Representation:
    """The stored representation with the highest q; ties go to br, then
    gzip, then identity, which is also what a client refusing all gets."""
    if accept_encoding and (entry.br is not None or entry.gzip is not None):
        br_q, gzip_q, best_q = accepted_encodings(accept_encoding)
        best: Representation = entry
        if entry.gzip is not None and gzip_q > 0.0 and gzip_q >= best_q:
            best, best_q = entry.gzip, gzip_q
        if entry.br is not None and br_q > 0.0 and br_q >= best_q:
            best = entry.br
        return best
    return entry


# --- conditional requests and ranges ------------------------------------------


def etag_matches(header: str, etag: str) -> bool:
    """Weak comparison of an If-None-Match value against one ETag."""
    if header == etag:
        return True
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*":
            return True
        if candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False


def etag_matches_strongly(header: str, etag: str) -> bool:
    """Strong comparison of an If-Match value against one ETag: a weak tag
    never matches."""
    if header == etag:
        return True
    for candidate in header.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate == etag:
            return True
    return False


def unmodified_since(header: str, entry: Entry) -> bool | None:
    """If-Unmodified-Since: whether the file is not newer than the date, or
    None when the value is not one valid date (the field is then ignored)."""
    if header == entry.last_modified:
        return True
    since = parse_http_date_safe(header)
    if since is None:
        return None
    return entry.last_modified_ts <= since


def not_modified_since(header: str, entry: Entry) -> bool:
    if header == entry.last_modified:
        return True
    since = parse_http_date_safe(header)
    if since is None or since > time.time():
        return False
    return entry.last_modified_ts <= since


def range_still_valid(if_range: str, rep: Representation, entry: Entry) -> bool:
    """If-Range: an ETag must match strongly, a date exactly."""
    if_range = if_range.strip()
    if if_range.startswith('"') or if_range.startswith("W/"):
        return if_range == rep.etag
    return parse_http_date_safe(if_range) == entry.last_modified_ts


def preconditions(entry: Entry, rep: Representation, method: str, get: HeaderGetter) -> Reply | None:
    """A 412 or 304 when a precondition decides the reply, else None.

    Evaluated in the order of RFC 9110 13.2.2: If-Match, or If-Unmodified-Since
    when there is no If-Match; then If-None-Match, or If-Modified-Since when
    there is no If-None-Match. (If-Range comes last, with the range.)
    """
    if_match = get("HTTP_IF_MATCH")
    if if_match is not None:
        if not etag_matches_strongly(if_match, rep.etag):
            return rep.precondition_failed(method)
    else:
        if_unmodified_since = get("HTTP_IF_UNMODIFIED_SINCE")
        if if_unmodified_since is not None and unmodified_since(if_unmodified_since, entry) is False:
            return rep.precondition_failed(method)
    if_none_match = get("HTTP_IF_NONE_MATCH")
    if if_none_match is not None:
        if etag_matches(if_none_match, rep.etag):
            return rep.not_modified
    else:
        if_modified_since = get("HTTP_IF_MODIFIED_SINCE")
        if if_modified_since is not None and not_modified_since(if_modified_since, entry):
            return rep.not_modified
    return None


def decide(entry: Entry, method: str, get: HeaderGetter) -> Reply:
    """The reply to a GET or HEAD for a FILE entry.

    ``get`` reads request headers by their WSGI names (``HTTP_RANGE``…).
    """
    rep = choose(entry, get("HTTP_ACCEPT_ENCODING"))
    decided = preconditions(entry, rep, method, get)
    if decided is not None:
        return decided
    if method == "HEAD":
        return rep.head
    range_header = get("HTTP_RANGE")
    if range_header is not None:
        if_range = get("HTTP_IF_RANGE")
        if if_range is None or range_still_valid(if_range, rep, entry):
            return rep.ranged(range_header)
    return rep.ok
