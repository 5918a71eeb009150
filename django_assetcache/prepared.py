"""What many cache entries share, and the replies a hit sends, kept apart
from the entries so that an entry holds only what differs per file.

``SharedHeaders`` are the header tuples of files with the same type, date,
Cache-Control, Vary, coding and site headers: made once, kept while an entry
uses them, their bytes counted (``shared_bytes``) as long as they live.
``Prepared`` holds the replies of one representation (200, HEAD, 304, 412,
an error document's 404), each built on first use; ``PREPARED`` keeps those
of the representations used last, within a byte budget the cache reserves.
"""

from __future__ import annotations

import threading
import weakref
from collections import OrderedDict
from collections.abc import Hashable

from django.utils.http import http_date

from .replies import ACCEPT_RANGES, NOSNIFF, VARY, Reply, plain_reply, without_body

#: Vary of a private site's files, with and without compressed variants.
VARY_PRIVATE = {True: ("Vary", "Accept-Encoding, Cookie"), False: ("Vary", "Cookie")}

#: A SharedHeaders' own objects (the object, its tuples, its slot in the
#: table, its weak reference) besides its header text; measured with
#: tracemalloc in tests/test_entries_cost.py.
SHARED_OVERHEAD = 1_200
#: One prepared reply (Reply object, header list, the per-file header tuples
#: and, for the ASGI adapter, the header bytes), besides its header text.
REPLY_OVERHEAD = 1_300
#: A reply holds its header text as text and as bytes (ASGI).
REPLY_TEXT_COPIES = 3
#: What the table of prepared replies costs per representation in it.
PREPARED_OVERHEAD = 300
#: The share of ASSETCACHE_MEMORY_LIMIT the cache reserves for ``PREPARED``.
PREPARED_SHARE = 8


class SharedHeaders:
    """Header tuples many representations have in common, kept once."""

    __slots__ = (
        "__weakref__",
        "content_type",
        "entity",
        "extra",
        "last_modified",
        "last_modified_ts",
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
        extra: tuple[tuple[str, str], ...],
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
        self.entity = tuple(entity)
        self.tail = tuple(tail)
        #: Cache-Control of replies that answer one request only (412, 404).
        self.uncached = "private, no-cache" if private else "no-cache"
        #: Characters of header text a reply of these holds (names and values).
        self.text = sum(len(name) + len(value) for name, value in (*self.entity, *self.tail)) + 64

    @property
    def encoding(self) -> str:
        entity = self.entity
        return entity[3][1] if len(entity) > 3 else ""


SharedKey = tuple[str, int, str, bool, str, tuple[tuple[str, str], ...]]
_shared: dict[SharedKey, weakref.ref[SharedHeaders]] = {}
#: Bytes the live SharedHeaders hold (the cache counts them against its limit).
_live = [0]


def shared_bytes() -> int:
    return _live[0]


def shared_headers(
    content_type: str,
    last_modified: float,
    cache_control: str,
    vary: bool,
    encoding: str,
    extra: tuple[tuple[str, str], ...] = (),
) -> SharedHeaders:
    """The shared headers of these values: the live ones if there are."""
    key = (content_type, int(last_modified), cache_control, vary, encoding, extra)
    ref = _shared.get(key)
    shared = None if ref is None else ref()
    if shared is None:
        shared = SharedHeaders(*key)
        cost = SHARED_OVERHEAD + 2 * shared.text

        def gone(dead: weakref.ref[SharedHeaders]) -> None:
            # The last entry using them let go: so does the table.
            _live[0] -= cost
            if _shared.get(key) is dead:
                del _shared[key]

        _shared[key] = weakref.ref(shared, gone)
        _live[0] += cost
    return shared


class Prepared:
    """The replies of one representation, each built on first use."""

    __slots__ = ("cost", "failed", "head", "not_found", "not_modified", "ok")

    def __init__(self) -> None:
        #: Bytes charged for it so far.
        self.cost = PREPARED_OVERHEAD
        self.ok: Reply | None = None
        self.head: Reply | None = None
        self.not_modified: Reply | None = None
        self.failed: tuple[Reply, Reply] | None = None
        self.not_found: Reply | None = None


class PreparedReplies:
    """The prepared replies of the representations used last, oldest out
    first once what they hold passes ``budget`` bytes. Each reply is
    charged when it is built (``REPLY_OVERHEAD`` and its header text)."""

    def __init__(self, budget: int = 1 << 20) -> None:
        self.budget = budget
        self.bytes = 0
        self.held: OrderedDict[Hashable, Prepared] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: Hashable) -> Prepared:
        """The prepared replies of ``key`` (a representation), made if need be."""
        prepared = self.held.get(key)
        if prepared is None:
            prepared = self.held[key] = Prepared()
            self.charge(prepared.cost)
        return prepared

    def built(self, prepared: Prepared, shared: SharedHeaders, replies: int = 1) -> None:
        """``replies`` replies of ``prepared`` were built: charge them."""
        cost = replies * (REPLY_OVERHEAD + REPLY_TEXT_COPIES * shared.text)
        prepared.cost += cost
        self.charge(cost)

    def charge(self, cost: int) -> None:
        with self.lock:
            self.bytes += cost
            while self.bytes > self.budget and self.held:
                _, prepared = self.held.popitem(last=False)
                self.bytes -= prepared.cost

    def forget(self, keys: tuple[Hashable, ...]) -> None:
        """Let the replies of these representations go (they hold the bodies)."""
        with self.lock:
            for key in keys:
                prepared = self.held.pop(key, None)
                if prepared is not None:
                    self.bytes -= prepared.cost

    def clear(self) -> None:
        with self.lock:
            self.held.clear()
            self.bytes = 0


#: The process's prepared replies; the cache sets their budget.
PREPARED = PreparedReplies()


def ok_reply(shared: SharedHeaders, etag: str, body: bytes | None, file_path: str | None, length: int) -> Reply:
    headers = [*shared.entity, ("Content-Length", str(length)), ("ETag", etag), *shared.tail]
    if body is not None:
        return Reply(200, headers, body)
    return Reply(200, headers, file_path=file_path, length=length, file_size=length)


def head_reply(ok: Reply) -> Reply:
    return Reply(200, ok.headers)


def not_modified_reply(shared: SharedHeaders, etag: str) -> Reply:
    return Reply(304, [("ETag", etag), *shared.tail, NOSNIFF])


def precondition_failed_replies(shared: SharedHeaders, etag: str) -> tuple[Reply, Reply]:
    """The 412 for a GET (with its short body) and a HEAD (without)."""
    # The validators tell the client what the current representation is;
    # Cache-Control stays no-cache, since this answers one conditional
    # request and must not be reused for another.
    validators = [("ETag", etag)]
    for name, value in shared.tail:
        validators.append((name, shared.uncached if name == "Cache-Control" else value))
    get = plain_reply(412, "Precondition failed.\n", validators=validators)
    return get, without_body(get)


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
