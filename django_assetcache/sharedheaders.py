"""What many cache entries share, and the replies assembled from it.

``SharedHeaders`` are the header tuples of files with the same type, date,
Cache-Control, Vary, coding and site headers, as text and as the bytes the
ASGI adapter sends: made once, kept while an entry uses them, their bytes
counted (``shared_bytes``) as long as they live. A ``FileReply`` is the 200,
HEAD or 304 of one file, assembled for each request from them and the file's
own ETag and length: nothing is kept per reply, and a header list is made
only in the form the adapter asks for.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable

from django.utils.http import http_date

from .replies import ACCEPT_RANGES, NOSNIFF, STATUS_LINES, VARY, Reply, plain_reply, raw_form

#: Vary of a private site's files, with and without compressed variants.
VARY_PRIVATE = {True: ("Vary", "Accept-Encoding, Cookie"), False: ("Vary", "Cookie")}

#: A SharedHeaders' own objects (the object, its tuples and their bytes
#: forms, its slot in the table, its weak reference) besides its header
#: text; measured with tracemalloc in tests/test_entry_cost.py.
SHARED_OVERHEAD = 2_700
#: A SharedHeaders holds its header text as text and as bytes.
SHARED_TEXT_COPIES = 2

Header = tuple[str, str]
RawHeader = tuple[bytes, bytes]


class SharedHeaders:
    """Header tuples many representations have in common, kept once."""

    __slots__ = (
        "__weakref__",
        "content_type",
        "entity",
        "extra",
        "last_modified",
        "last_modified_ts",
        "not_modified_tail",
        "raw_entity",
        "raw_not_modified_tail",
        "raw_tail",
        "tail",
        "text",
        "uncached",
    )

    def __init__(
        self,
        content_type: str,
        last_modified_ts: int,
        cache_control: str,
        vary: bool,
        encoding: str,
        extra: tuple[Header, ...],
    ) -> None:
        self.content_type = content_type
        self.last_modified_ts = last_modified_ts
        self.last_modified = http_date(last_modified_ts)
        entity = [("Content-Type", content_type), ACCEPT_RANGES, NOSNIFF]
        if encoding:
            entity.append(("Content-Encoding", encoding))
        # Extra headers (site rules, HSTS) sit with the validators, so a 304
        # sends them too.
        tail = [("Last-Modified", self.last_modified), ("Cache-Control", cache_control), *extra]
        # A private site's file (its Cache-Control made private when the
        # entry is built) depends on the visitor's cookie too.
        private = cache_control.startswith("private")
        if vary or private:
            tail.append(VARY_PRIVATE[vary] if private else VARY)
        #: Headers of the site rather than the file (rules, HSTS, a preview's
        #: X-Robots-Tag): a 404 with the error document sends them too.
        self.extra = extra
        #: Before the file's Content-Length and ETag; ``tail`` after them.
        self.entity = tuple(entity)
        self.tail = tuple(tail)
        self.not_modified_tail = (*self.tail, NOSNIFF)
        self.raw_entity = tuple(raw_form(self.entity))
        self.raw_tail = tuple(raw_form(self.tail))
        self.raw_not_modified_tail = (*self.raw_tail, *raw_form((NOSNIFF,)))
        #: Cache-Control of replies that answer one request only (412, 404).
        self.uncached = "private, no-cache" if private else "no-cache"
        #: Characters of header text these hold (names and values).
        self.text = sum(len(name) + len(value) for name, value in self.not_modified_tail + self.entity)

    @property
    def encoding(self) -> str:
        entity = self.entity
        return entity[3][1] if len(entity) > 3 else ""

    @property
    def cost(self) -> int:
        return SHARED_OVERHEAD + SHARED_TEXT_COPIES * self.text


SharedKey = tuple[str, int, str, bool, str, tuple[Header, ...]]


class SharedTable:
    """The live SharedHeaders by what they are made of, and the bytes they
    hold. A weak reference lets one go with the last entry using it; the
    lock keeps the table and its count right when entries of several
    threads are built, or let go, at once (a weak reference's callback runs
    in whichever thread drops the last reference, possibly while it holds
    the lock already: hence reentrant)."""

    def __init__(self) -> None:
        self.table: dict[SharedKey, weakref.ref[SharedHeaders]] = {}
        self.bytes = 0
        self.lock = threading.RLock()

    def get(self, key: SharedKey) -> SharedHeaders:
        with self.lock:
            ref = self.table.get(key)
            shared = None if ref is None else ref()
            if shared is None:
                shared = SharedHeaders(*key)
                self.table[key] = weakref.ref(shared, self._callback(key, shared.cost))
                self.bytes += shared.cost
            return shared

    def _callback(self, key: SharedKey, cost: int) -> Callable[[weakref.ref[SharedHeaders]], None]:
        lock, table = self.lock, self.table

        def gone(dead: weakref.ref[SharedHeaders]) -> None:
            # The last entry using them let go: so does the table.
            with lock:
                self.bytes -= cost
                if table.get(key) is dead:
                    del table[key]

        return gone


_SHARED = SharedTable()


def shared_bytes() -> int:
    """Bytes the live SharedHeaders of this process hold."""
    return _SHARED.bytes


def shared_headers(
    content_type: str,
    last_modified: float,
    cache_control: str,
    vary: bool,
    encoding: str,
    extra: tuple[Header, ...] = (),
) -> SharedHeaders:
    """The shared headers of these values: the live ones if there are."""
    return _SHARED.get((content_type, int(last_modified), cache_control, vary, encoding, extra))


class FileReply(Reply):
    """The 200 (GET or HEAD) or 304 of one representation, assembled from
    its ``SharedHeaders``, ETag and length when an adapter asks for its
    headers: as text (WSGI, the middleware) or as bytes (ASGI), only the
    form asked for, from parts made once. Made for every hit, so it sets
    only the slots a hit needs: never a range (``offset``, ``parts``), and
    its header lists are made on the one read an adapter does."""

    __slots__ = ("content_length", "etag", "shared")

    offset = 0
    parts = None

    def __init__(
        self,
        status: int,
        shared: SharedHeaders,
        etag: str,
        content_length: int,
        body: bytes = b"",
        file_path: str | None = None,
    ) -> None:
        # Not Reply.__init__: this runs on every hit, and sets fewer slots.
        self.status = status
        self.status_line = STATUS_LINES[status]
        self.shared = shared
        self.etag = etag
        self.content_length = content_length
        self.body = body
        self.file_path = file_path
        if file_path is None:
            self.length = self.file_size = 0
            self.sent = len(body)
        else:
            self.length = self.file_size = self.sent = content_length
        self.adapter_headers = None

    @property
    def headers(self) -> list[Header]:
        shared = self.shared
        etag = ("ETag", self.etag)
        if self.status == 304:
            return [etag, *shared.not_modified_tail]
        return [*shared.entity, ("Content-Length", str(self.content_length)), etag, *shared.tail]

    @property
    def raw_headers(self) -> list[RawHeader]:
        shared = self.shared
        etag = (b"etag", self.etag.encode())
        if self.status == 304:
            return [etag, *shared.raw_not_modified_tail]
        return [*shared.raw_entity, (b"content-length", b"%d" % self.content_length), etag, *shared.raw_tail]


def precondition_failed_reply(shared: SharedHeaders, etag: str) -> Reply:
    """The 412 of a representation (a HEAD gets it through ``for_method``)."""
    # The validators tell the client what the current representation is;
    # Cache-Control stays no-cache, since this answers one conditional
    # request and must not be reused for another.
    validators = [("ETag", etag)]
    for name, value in shared.tail:
        validators.append((name, shared.uncached if name == "Cache-Control" else value))
    return plain_reply(412, "Precondition failed.\n", validators=validators)


def not_found_reply(shared: SharedHeaders, body: bytes | None, file_path: str | None, length: int) -> Reply:
    """A file served as a site's error document: status 404."""
    headers = [
        ("Content-Type", shared.content_type),
        ("Content-Length", str(length)),
        ("Cache-Control", shared.uncached),
        NOSNIFF,
        *shared.extra,
    ]
    if body is None:
        return Reply(404, headers, file_path=file_path, length=length, file_size=length)
    return Reply(404, headers, body)
