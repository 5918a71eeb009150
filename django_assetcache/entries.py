"""What the cache keeps for one request path: an ``Entry`` and the
``Representation`` of each encoding it can send.

Header values are formatted once, when an entry is built; a request only
picks among prepared replies (200, HEAD, 304, 412) or, for ranges, builds one
small reply.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from urllib.parse import quote

from django.utils.http import http_date

from .ranges import coalesce, parse_ranges
from .records import LocatedBlob
from .replies import ACCEPT_RANGES, CRLF, NOSNIFF, VARY, Part, Reply, plain_reply, without_body

#: Preference order among stored variants; identity comes last.
ENCODINGS = ("br", "gzip")
#: Vary of a private site's files, with and without compressed variants.
VARY_PRIVATE = {True: ("Vary", "Accept-Encoding, Cookie"), False: ("Vary", "Cookie")}


class _Shared:
    """Header tuples many representations have in common (same type, date,
    Cache-Control, Vary, coding): kept once, not once per file."""

    __slots__ = ("entity", "extra", "tail", "uncached")

    def __init__(
        self,
        content_type: str,
        last_modified: str,
        cache_control: str,
        vary: bool,
        encoding: str,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        entity = [("Content-Type", content_type), ACCEPT_RANGES, NOSNIFF]
        if encoding:
            entity.append(("Content-Encoding", encoding))
        # Extra headers (site rules, HSTS) sit with the validators, so a 304
        # sends them too.
        tail = [("Last-Modified", last_modified), ("Cache-Control", cache_control), *extra]
        # A private site's file (its Cache-Control made private when the
        # entry is built) depends on the visitor's cookie too.
        private = cache_control.startswith("private")
        if vary or private:
            tail.append(VARY_PRIVATE[vary] if private else VARY)
        #: Headers of the site rather than the file (rules, HSTS, a preview's
        #: X-Robots-Tag): a 404 with the error document sends them too.
        self.extra = extra
        self.entity = tuple(entity)
        self.tail = tuple(tail)
        #: Cache-Control of replies that answer one request only (412, 404).
        self.uncached = "private, no-cache" if private else "no-cache"


_shared: dict[tuple[str, str, str, bool, str, tuple[tuple[str, str], ...]], _Shared] = {}


def _shared_headers(
    content_type: str,
    last_modified: str,
    cache_control: str,
    vary: bool,
    encoding: str,
    extra: tuple[tuple[str, str], ...] = (),
) -> _Shared:
    key = (content_type, last_modified, cache_control, vary, encoding, extra)
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
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.encoding = encoding
        self.etag = etag
        self.length = length
        self.body = body
        self.file_path = file_path
        self.shared = _shared_headers(content_type, last_modified, cache_control, vary, encoding, extra)
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
                validators.append((name, self.shared.uncached if name == "Cache-Control" else value))
            get = plain_reply(412, "Precondition failed.\n", validators=validators)
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
        return plain_reply(416, "Range not satisfiable.\n", extra, self.validators)


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
        "extra",
        "forced",
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
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.kind = kind
        #: Headers of the host the entry was built for (a redirect adds them).
        self.extra = extra
        self.identity = identity
        variants = variants or {}
        self.br = variants.get("br")
        self.gzip = variants.get("gzip")
        self.last_modified = last_modified
        self.last_modified_ts = last_modified_ts
        self.location = location
        self.cost = cost
        self.hot = False
        #: Whether a forced rule of the site may answer its path, so a hit
        #: asks the site's forced rules only then (set when it is built:
        #: rules never change within a deployment).
        self.forced = False
        self._not_found: Reply | None = None

    def file_paths(self) -> list[str]:
        """Local files this entry sends (large bodies only)."""
        reps = (self.identity, self.br, self.gzip)
        return [rep.file_path for rep in reps if rep is not None and rep.file_path]

    def not_found(self) -> Reply:
        """This file served as a site's error document: status 404."""
        reply = self._not_found
        if reply is None:
            rep = self.identity
            assert rep is not None
            headers = [
                ("Content-Type", rep.content_type),
                ("Content-Length", str(rep.length)),
                ("Cache-Control", rep.shared.uncached),
                NOSNIFF,
                *rep.shared.extra,
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
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> Entry:
    """An entry for a file: ``identity`` is where its bytes are, ``variants``
    where those of its compressed variants are; ``extra_headers`` (site
    rules, HSTS) go out with every reply of it."""
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
            extra=extra_headers,
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
        extra=extra_headers,
    )


def build_redirect_entry(
    path: str, per_entry_overhead: int = 0, extra_headers: tuple[tuple[str, str], ...] = ()
) -> Entry:
    location = quote(path + "/", safe="/:@!$&'()*+,;=-._~")
    return Entry(EntryKind.REDIRECT, location=location, cost=per_entry_overhead, extra=extra_headers)


def build_missing_entry(per_entry_overhead: int = 0) -> Entry:
    return Entry(EntryKind.MISSING, cost=per_entry_overhead)


def etag_for(sha256: str) -> str:
    # 128 bits of the content hash: as strong as an ETag needs, half the bytes.
    return f'"{sha256[:32]}"'
