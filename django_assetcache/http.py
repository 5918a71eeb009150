"""HTTP decisions for a site host, independent of any server or framework.

An ``Entry`` is what the cache keeps for one request path of one site. Its
header values are formatted once, when the entry is built; a request only
picks among prepared ``Reply`` objects (200, HEAD, 304) or, for ranges, builds
one small reply. Adapters (the Django middleware, the WSGI and ASGI wrappers)
turn a ``Reply`` into their own response; they never decide anything.
"""

from __future__ import annotations

import enum
import re
import time
from collections.abc import Callable, Sequence
from http import HTTPStatus
from urllib.parse import quote

from django.utils.http import http_date, parse_http_date_safe

from .records import LocatedBlob

# Statuses and their WSGI status lines.
STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}

ALLOWED_METHODS = "GET, HEAD"
NOSNIFF = ("X-Content-Type-Options", "nosniff")
ACCEPT_RANGES = ("Accept-Ranges", "bytes")
VARY = ("Vary", "Accept-Encoding")
PLAIN_TEXT = "text/plain; charset=utf-8"
CRLF = "\r\n"

#: Preference order among stored variants; identity comes last.
ENCODINGS = ("br", "gzip")

_RANGE_UNIT_RE = re.compile(r"\s*bytes\s*=", re.IGNORECASE | re.ASCII)
_RANGE_SPEC_RE = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*", re.ASCII)
_ASCII_SPACE = " \t\n\r\f\v"

#: Most ranges a request may name; more get 200 with the whole body, as
#: RFC 9110 14.2 allows against requests built to cost the server (Apache's
#: MaxRanges has the same purpose).
MAX_RANGES = 100

#: How a request names the header values the decision reads (WSGI names).
HeaderGetter = Callable[[str], "str | None"]


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
        "_raw_headers",
        "adapter_headers",
        "body",
        "file_path",
        "file_size",
        "headers",
        "length",
        "offset",
        "parts",
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
        self.headers = headers
        self.body = body
        self.file_path = file_path
        self.offset = offset
        self.length = length
        self.file_size = file_size
        self.parts = parts
        self._raw_headers: list[tuple[bytes, bytes]] | None = None
        #: Room for an adapter to keep its own form of ``headers``, built once.
        self.adapter_headers: object = None

    @property
    def raw_headers(self) -> list[tuple[bytes, bytes]]:
        """The headers as ASGI wants them (bytes), encoded once per reply."""
        raw = self._raw_headers
        if raw is None:
            raw = self._raw_headers = [
                (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in self.headers
            ]
        return raw

    def __repr__(self) -> str:
        return f"<Reply {self.status} {self.file_path or len(self.body)}>"


def _plain(
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


BAD_REQUEST = _plain(400, "Bad request path.\n")
SITE_NOT_FOUND = _plain(404, "No site is published at this address.\n")
NOT_FOUND = _plain(404, "Not found.\n")
METHOD_NOT_ALLOWED = _plain(405, "Method not allowed.\n", [("Allow", ALLOWED_METHODS)])
BAD_GATEWAY = _plain(502, "The file could not be fetched from storage.\n")


def without_body(reply: Reply) -> Reply:
    """The same reply for HEAD: headers (Content-Length included), no body."""
    return Reply(reply.status, reply.headers)


class _Shared:
    """Header tuples many representations have in common (same type, date,
    Cache-Control, Vary, coding): kept once, not once per file."""

    __slots__ = ("entity", "tail")

    def __init__(self, content_type: str, last_modified: str, cache_control: str, vary: bool, encoding: str) -> None:
        entity = [("Content-Type", content_type), ACCEPT_RANGES, NOSNIFF]
        if encoding:
            entity.append(("Content-Encoding", encoding))
        tail = [("Last-Modified", last_modified), ("Cache-Control", cache_control)]
        if vary:
            tail.append(VARY)
        self.entity = tuple(entity)
        self.tail = tuple(tail)


_shared: dict[tuple[str, str, str, bool, str], _Shared] = {}


def _shared_headers(content_type: str, last_modified: str, cache_control: str, vary: bool, encoding: str) -> _Shared:
    key = (content_type, last_modified, cache_control, vary, encoding)
    shared = _shared.get(key)
    if shared is None:
        if len(_shared) >= 4096:
            _shared.clear()  # only sharing is lost, never correctness
        shared = _shared[key] = _Shared(*key)
    return shared


class Representation:
    """One encoding of one file.

    Its replies (200, HEAD, 304, 412) are built on first use and then kept, so a
    hit builds nothing while a file never asked for that way costs nothing.
    """

    __slots__ = (
        "_failed",
        "_head",
        "_not_modified",
        "_ok",
        "body",
        "encoding",
        "etag",
        "file_path",
        "length",
        "shared",
    )

    def __init__(
        self,
        *,
        encoding: str,
        etag: str,
        length: int,
        body: bytes | None,
        file_path: str | None,
        content_type: str,
        last_modified: str,
        cache_control: str,
        vary: bool,
    ) -> None:
        self.encoding = encoding
        self.etag = etag
        self.length = length
        self.body = body
        self.file_path = file_path
        self.shared = _shared_headers(content_type, last_modified, cache_control, vary, encoding)
        self._ok: Reply | None = None
        self._head: Reply | None = None
        self._not_modified: Reply | None = None
        self._failed: tuple[Reply, Reply] | None = None

    @property
    def content_type(self) -> str:
        return self.shared.entity[0][1]

    @property
    def validators(self) -> list[tuple[str, str]]:
        """What a cache needs to update a stored response (RFC 9110 15.4.5)."""
        return [("ETag", self.etag), *self.shared.tail]

    def _ok_headers(self) -> list[tuple[str, str]]:
        return [*self.shared.entity, ("Content-Length", str(self.length)), *self.validators]

    @property
    def ok(self) -> Reply:
        reply = self._ok
        if reply is None:
            if self.body is not None:
                reply = Reply(200, self._ok_headers(), self.body)
            else:
                reply = Reply(
                    200, self._ok_headers(), file_path=self.file_path, length=self.length, file_size=self.length
                )
            self._ok = reply
        return reply

    @property
    def head(self) -> Reply:
        reply = self._head
        if reply is None:
            reply = self._head = Reply(200, self.ok.headers)
        return reply

    @property
    def not_modified(self) -> Reply:
        reply = self._not_modified
        if reply is None:
            reply = self._not_modified = Reply(304, [*self.validators, NOSNIFF])
        return reply

    def precondition_failed(self, method: str) -> Reply:
        """The 412 for a GET (with its short body) or a HEAD (without)."""
        failed = self._failed
        if failed is None:
            # The validators tell the client what the current representation
            # is; Cache-Control stays no-cache, since this answers one
            # conditional request and must not be reused for another.
            validators = [("ETag", self.etag)]
            for name, value in self.shared.tail:
                validators.append((name, "no-cache" if name == "Cache-Control" else value))
            get = _plain(412, "Precondition failed.\n", validators=validators)
            failed = self._failed = (get, without_body(get))
        return failed[1] if method == "HEAD" else failed[0]

    def part(self, start: int, end: int) -> Reply:
        """A 206 for bytes ``start``..``end`` inclusive."""
        length = end - start + 1
        headers = [
            *self.shared.entity,
            *self.validators,
            ("Content-Length", str(length)),
            ("Content-Range", f"bytes {start}-{end}/{self.length}"),
        ]
        if self.body is not None:
            return Reply(206, headers, self.body[start : end + 1])
        return Reply(206, headers, file_path=self.file_path, offset=start, length=length, file_size=self.length)

    def ranged(self, header: str) -> Reply:
        """The reply to a Range header (If-Range already holds)."""
        ranges = parse_ranges(header, self.length)
        if ranges is None:
            return self.ok
        if not ranges:
            return self.unsatisfiable()
        ranges = coalesce(ranges, self.length)
        if ranges is None:
            return self.ok
        if len(ranges) == 1:
            return self.part(*ranges[0])
        if self.encoding:
            # A multipart body cannot say that its parts are content-coded
            # (Content-Encoding would apply to the multipart body itself).
            return self.ok
        return self.multipart(ranges)

    def multipart(self, ranges: Sequence[tuple[int, int]]) -> Reply:
        """A 206 multipart/byteranges for several ``(start, end)`` inclusive,
        sorted and apart."""
        # The boundary is the ETag's hash of these very bytes: a file cannot
        # contain a digest of itself (that would be a preimage of SHA-256),
        # and part heads hold only a type and a range, so the boundary occurs
        # nowhere in the body. Being fixed per representation, the same
        # request gets the same bytes (cacheable, testable).
        boundary = self.etag[1:-1]
        parts = []
        for index, (start, end) in enumerate(ranges):
            head = (
                f"{CRLF if index else ''}--{boundary}{CRLF}Content-Type: {self.content_type}{CRLF}"
                f"Content-Range: bytes {start}-{end}/{self.length}{CRLF}{CRLF}"
            )
            parts.append(Part(head.encode("latin-1"), start, end + 1))
        parts.append(Part(f"{CRLF}--{boundary}--{CRLF}".encode("latin-1"), 0, 0))
        length = sum(len(part.head) + part.stop - part.start for part in parts)
        headers = [
            ("Content-Type", f"multipart/byteranges; boundary={boundary}"),
            ACCEPT_RANGES,
            NOSNIFF,
            ("Content-Length", str(length)),
            *self.validators,
        ]
        body = self.body
        if body is not None:
            data = b"".join(part.head + body[part.start : part.stop] for part in parts)
            return Reply(206, headers, data)
        return Reply(206, headers, file_path=self.file_path, length=length, file_size=self.length, parts=tuple(parts))

    def unsatisfiable(self) -> Reply:
        extra = [("Content-Range", f"bytes */{self.length}"), ACCEPT_RANGES]
        return _plain(416, "Range not satisfiable.\n", extra, self.validators)


class EntryKind(enum.Enum):
    """What an entry answers with; compared by identity (``is``) on the hit path."""

    #: Serve ``identity`` or a variant.
    FILE = "file"
    #: Redirect to ``location`` (a directory without its slash).
    REDIRECT = "redirect"
    #: Serve the site's error document with 404.
    MISSING = "missing"


class Entry:
    """What the cache keeps for one request path of one site, of a ``kind``.

    ``hot`` is the clock bit of the cache's approximate LRU: set on every hit.
    """

    __slots__ = (
        "_not_found",
        "br",
        "cost",
        "gzip",
        "hot",
        "identity",
        "kind",
        "last_modified",
        "last_modified_ts",
        "location",
    )

    def __init__(
        self,
        kind: EntryKind,
        *,
        identity: Representation | None = None,
        variants: dict[str, Representation] | None = None,
        last_modified: str = "",
        last_modified_ts: int = 0,
        location: str = "",
        cost: int = 0,
    ) -> None:
        self.kind = kind
        self.identity = identity
        variants = variants or {}
        self.br = variants.get("br")
        self.gzip = variants.get("gzip")
        self.last_modified = last_modified
        self.last_modified_ts = last_modified_ts
        self.location = location
        self.cost = cost
        self.hot = False
        self._not_found: Reply | None = None

    def file_paths(self) -> list[str]:
        """Local files this entry sends (large bodies only)."""
        reps = (self.identity, self.br, self.gzip)
        return [rep.file_path for rep in reps if rep is not None and rep.file_path]

    @property
    def has_variants(self) -> bool:
        return self.br is not None or self.gzip is not None

    def not_found(self) -> Reply:
        """This file served as a site's error document: status 404."""
        reply = self._not_found
        if reply is None:
            rep = self.identity
            assert rep is not None
            headers = [
                ("Content-Type", rep.content_type),
                ("Content-Length", str(rep.length)),
                ("Cache-Control", "no-cache"),
                NOSNIFF,
            ]
            body = rep.body
            if body is None:
                reply = Reply(404, headers, file_path=rep.file_path, length=rep.length, file_size=rep.length)
            else:
                reply = Reply(404, headers, body)
            self._not_found = reply
        return reply


def build_file_entry(
    *,
    content_type: str,
    last_modified: float,
    cache_control: str,
    identity: LocatedBlob,
    variants: Sequence[LocatedBlob] = (),
    per_entry_overhead: int = 0,
) -> Entry:
    """An entry for a file: ``identity`` is where its bytes are, ``variants``
    where those of its compressed variants are."""
    last_modified_text = http_date(last_modified)
    vary = bool(variants)

    def representation(encoding: str, located: LocatedBlob) -> Representation:
        return Representation(
            encoding=encoding,
            etag=etag_for(located.blob.sha256),
            length=located.blob.size,
            body=located.body,
            file_path=located.file_path,
            content_type=content_type,
            last_modified=last_modified_text,
            cache_control=cache_control,
            vary=vary,
        )

    reps = {
        variant.blob.encoding: representation(variant.blob.encoding, variant)
        for variant in variants
        if variant.blob.encoding in ENCODINGS
    }
    cost = per_entry_overhead + len(identity.body or b"") + sum(len(variant.body or b"") for variant in variants)
    return Entry(
        EntryKind.FILE,
        identity=representation("", identity),
        variants=reps,
        last_modified=last_modified_text,
        last_modified_ts=int(last_modified),
        cost=cost,
    )


def build_redirect_entry(path: str, per_entry_overhead: int = 0) -> Entry:
    return Entry(EntryKind.REDIRECT, location=quote(path + "/", safe="/:@!$&'()*+,;=-._~"), cost=per_entry_overhead)


def build_missing_entry(per_entry_overhead: int = 0) -> Entry:
    return Entry(EntryKind.MISSING, cost=per_entry_overhead)


def etag_for(sha256: str) -> str:
    # 128 bits of the content hash: as strong as an ETag needs, half the bytes.
    return f'"{sha256[:32]}"'


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
    identity = entry.identity
    assert identity is not None
    if accept_encoding and (entry.br is not None or entry.gzip is not None):
        br_q, gzip_q, best_q = accepted_encodings(accept_encoding)
        best = identity
        if entry.gzip is not None and gzip_q > 0.0 and gzip_q >= best_q:
            best, best_q = entry.gzip, gzip_q
        if entry.br is not None and br_q > 0.0 and br_q >= best_q:
            best = entry.br
        return best
    return identity


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


UNSATISFIABLE = (-1, -1)

#: Positions past any file's length; longer digit strings are not converted
#: (int() refuses more than 4300 digits, and a header must never be a 500).
_FAR = 10**18


def _position(digits: str) -> tuple[int, str]:
    """A range position, and its digits without leading zeros for comparing."""
    digits = digits.lstrip("0") or "0"
    return (int(digits) if len(digits) < 19 else _FAR), digits


def _range_spec(first: str, last: str, length: int) -> tuple[int, int] | None:
    """One range-spec's digits as (start, end) inclusive, UNSATISFIABLE, or
    None when it is invalid (last before first)."""
    if not first:
        if not last:
            return None
        suffix = _position(last)[0]
        if suffix == 0:
            return UNSATISFIABLE
        return (max(length - suffix, 0), length - 1)
    start, start_digits = _position(first)
    if last:
        end, end_digits = _position(last)
        if (len(end_digits), end_digits) < (len(start_digits), start_digits):
            return None
    else:
        end = length - 1
    if start >= length:
        return UNSATISFIABLE
    return (start, min(end, length - 1))


def _range_specs(header: str) -> list[tuple[str, str]] | None:
    """The (first, last) digits of each range-spec of a ``bytes`` Range
    value, empty list elements skipped (RFC 9110 5.6.1.2); None for another
    unit, bad syntax, no range at all, or more than MAX_RANGES."""
    unit = _RANGE_UNIT_RE.match(header)
    if unit is None:
        return None
    specs: list[tuple[str, str]] = []
    for item in header[unit.end() :].split(","):
        if not item.strip(_ASCII_SPACE):
            continue
        match = _RANGE_SPEC_RE.fullmatch(item)
        if match is None or len(specs) == MAX_RANGES:
            return None
        specs.append((match[1], match[2]))
    return specs or None


def parse_range(header: str, length: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a header naming one byte range,
    UNSATISFIABLE, or None to ignore the header (bad syntax, several ranges,
    an empty representation).

    An empty representation has no range to send, yet a suffix range is
    satisfiable on it (RFC 9110 14.1.1): the whole (empty) body answers.
    """
    if length == 0:
        return None
    specs = _range_specs(header)
    if specs is None or len(specs) != 1:
        return None
    return _range_spec(*specs[0], length)


def parse_ranges(header: str, length: int) -> list[tuple[int, int]] | None:
    """The satisfiable ranges of a Range header, (start, end) inclusive, in
    the order asked; ``[]`` when none is satisfiable (416); None to ignore
    the header (bad syntax, an invalid range, too many ranges, an empty
    representation: see ``parse_range``)."""
    if length == 0:
        return None
    specs = _range_specs(header)
    if specs is None:
        return None
    ranges = []
    for first, last in specs:
        byte_range = _range_spec(first, last, length)
        if byte_range is None:
            return None
        if byte_range is not UNSATISFIABLE:
            ranges.append(byte_range)
    return ranges


def coalesce(ranges: Sequence[tuple[int, int]], length: int) -> list[tuple[int, int]] | None:
    """Ranges sorted, with overlapping and adjacent ones merged (as nginx and
    Go send them); None when those asked add up to more than the file: that
    asks to send bytes several times, and gets the whole file once."""
    if sum(end - start + 1 for start, end in ranges) > length:
        return None
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


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
