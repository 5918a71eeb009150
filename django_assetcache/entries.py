"""What the cache keeps for one request path: an ``Entry`` and the
``Representation`` of each encoding it can send.

An entry keeps only what differs per file (its ETag and its bytes or file);
the header tuples are shared among files alike
(``sharedheaders.SharedHeaders``), and a reply (200, HEAD, 304) is assembled
from both for each request: no header is formatted but the length's digits,
and nothing is kept per reply. Rarer replies (412, ranges, an error
document's 404) are built the same way, from the same parts.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from typing import Any, ClassVar
from urllib.parse import quote

from .ranges import coalesce, parse_ranges
from .records import LocatedBlob
from .replies import ACCEPT_RANGES, CRLF, NOSNIFF, Part, Reply, for_method, plain_reply
from .sharedheaders import FileReply, SharedHeaders, not_found_reply, precondition_failed_reply, shared_headers

#: Preference order among stored variants; identity comes last.
ENCODINGS = ("br", "gzip")

#: A body in memory, or a local file's path and size.
Source = bytes | tuple[str, int]


class Representation:
    """One encoding of one file: its ETag and its bytes, in memory
    (``source`` is bytes) or on disk (``source`` is the file's path and size).

    Nothing else is kept per file: the header tuples are shared
    (``SharedHeaders``) and each reply is assembled from them on use.
    """

    __slots__ = ("etag", "shared", "source")

    def __init__(self, *, etag: str, source: Source, shared: SharedHeaders) -> None:
        self.etag = etag
        self.source = source
        self.shared = shared

    @property
    def body(self) -> bytes | None:
        source = self.source
        return None if isinstance(source, tuple) else source

    @property
    def file_path(self) -> str | None:
        source = self.source
        return source[0] if isinstance(source, tuple) else None

    @property
    def length(self) -> int:
        source = self.source
        return source[1] if isinstance(source, tuple) else len(source)

    @property
    def encoding(self) -> str:
        return self.shared.encoding

    @property
    def content_type(self) -> str:
        return self.shared.content_type

    @property
    def validators(self) -> list[tuple[str, str]]:
        """What a cache needs to update a stored response (RFC 9110 15.4.5)."""
        return [("ETag", self.etag), *self.shared.tail]

    @property
    def ok(self) -> Reply:
        source = self.source
        if isinstance(source, bytes):
            return FileReply(200, self.shared, self.etag, len(source), source)
        return FileReply(200, self.shared, self.etag, source[1], file_path=source[0])

    @property
    def head(self) -> Reply:
        return FileReply(200, self.shared, self.etag, self.length)

    @property
    def not_modified(self) -> Reply:
        return FileReply(304, self.shared, self.etag, 0)

    def precondition_failed(self, method: str) -> Reply:
        """The 412 for a GET (with its short body) or a HEAD (without)."""
        return for_method(method, precondition_failed_reply(self.shared, self.etag))

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


class Entry(Representation):
    """What the cache keeps for one request path of one site: a file (the
    entry is its identity representation; ``VariantEntry`` adds stored
    variants), a ``RedirectEntry`` or a ``MissingEntry``; ``kind`` says which.

    ``hot`` is the clock bit of the cache's approximate LRU: set on every hit.
    ``forced`` says whether a forced rule of the site may answer its path, so
    a hit asks the site's forced rules only then (set when it is built: rules
    never change within a deployment).
    """

    __slots__ = ("forced", "hot")

    kind: ClassVar[EntryKind] = EntryKind.FILE
    #: Stored variants; a ``VariantEntry`` holds them.
    br: Representation | None = None
    gzip: Representation | None = None
    #: Where a ``RedirectEntry`` sends the client, and its host's headers.
    location: str = ""
    extra: tuple[tuple[str, str], ...] = ()

    def __init__(self, *, etag: str, source: Source, shared: SharedHeaders) -> None:
        super().__init__(etag=etag, source=source, shared=shared)
        self.hot = False
        self.forced = False

    @property
    def identity(self) -> Representation:
        return self

    @property
    def last_modified(self) -> str:
        return self.shared.last_modified

    @property
    def last_modified_ts(self) -> int:
        return self.shared.last_modified_ts

    @property
    def cost(self) -> int:
        """Bytes of bodies this entry holds in memory (its bookkeeping is
        charged by ``costs.entry_overhead``)."""
        return sum(len(rep.body or b"") for rep in self.representations())

    def representations(self) -> tuple[Representation, ...]:
        return (self,)

    def file_paths(self) -> list[str]:
        """Local files this entry sends (large bodies only)."""
        return [path for rep in self.representations() if (path := rep.file_path)]

    def not_found(self) -> Reply:
        """This file served as a site's error document: status 404."""
        return not_found_reply(self.shared, self.body, self.file_path, self.length)


class VariantEntry(Entry):
    """A file entry with compressed variants stored beside it."""

    __slots__ = ("br", "gzip")

    def __init__(
        self, *, etag: str, source: Source, shared: SharedHeaders, variants: dict[str, Representation]
    ) -> None:
        super().__init__(etag=etag, source=source, shared=shared)
        self.br = variants.get("br")
        self.gzip = variants.get("gzip")

    def representations(self) -> tuple[Representation, ...]:
        return (self, *(rep for rep in (self.br, self.gzip) if rep is not None))


class _Answerless(Entry):
    """An entry that sends no file: its representation slots stay unset."""

    __slots__ = ()

    def __init__(self) -> None:
        self.hot = False
        self.forced = False

    @property
    def cost(self) -> int:
        return 0

    def representations(self) -> tuple[Representation, ...]:
        return ()


class RedirectEntry(_Answerless):
    """A directory asked for without its slash: redirect to ``location``."""

    __slots__ = ("extra", "location")
    kind = EntryKind.REDIRECT

    def __init__(self, location: str, extra: tuple[tuple[str, str], ...]) -> None:
        super().__init__()
        self.location = location
        #: Headers of the host the entry was built for (a redirect adds them).
        self.extra = extra


class MissingEntry(_Answerless):
    """A path the site does not have."""

    __slots__ = ()
    kind = EntryKind.MISSING


def build_file_entry(
    *,
    content_type: str,
    last_modified: float,
    cache_control: str,
    identity: LocatedBlob,
    variants: Sequence[LocatedBlob] = (),
    extra_headers: tuple[tuple[str, str], ...] = (),
) -> Entry:
    """An entry for a file: ``identity`` is where its bytes are, ``variants``
    where those of its compressed variants are; ``extra_headers`` (site
    rules, HSTS) go out with every reply of it."""
    vary = bool(variants)

    def fields(encoding: str, located: LocatedBlob) -> dict[str, Any]:
        source: Source
        if located.body is not None:
            source = located.body
        else:
            assert located.file_path is not None
            source = (located.file_path, located.blob.size)
        shared = shared_headers(content_type, last_modified, cache_control, vary, encoding, extra_headers)
        return {"etag": etag_for(located.blob.sha256), "source": source, "shared": shared}

    reps = {
        variant.blob.encoding: Representation(**fields(variant.blob.encoding, variant))
        for variant in variants
        if variant.blob.encoding in ENCODINGS
    }
    if reps:
        return VariantEntry(**fields("", identity), variants=reps)
    return Entry(**fields("", identity))


def build_redirect_entry(path: str, extra_headers: tuple[tuple[str, str], ...] = ()) -> Entry:
    location = quote(path + "/", safe="/:@!$&'()*+,;=-._~")
    return RedirectEntry(location, extra_headers)


def build_missing_entry() -> Entry:
    return MissingEntry()


def etag_for(sha256: str) -> str:
    # 128 bits of the content hash: as strong as an ETag needs, half the bytes.
    return f'"{sha256[:32]}"'
