"""The process-global cache: host map, entries, bounds, eviction, counters.

One ``AssetCache`` per process, created on first use. A hit is two dictionary
lookups (host → SiteInfo, (site, path) → Entry) and one attribute store (the
entry's clock bit). Everything that needs the database goes through a
``Loader`` (see ``loader.py``), so this module knows nothing of the ORM.

Concurrency: readers never lock; filling, evicting and applying changes take
one lock. Under the GIL a ``dict.get`` racing a locked insert or delete is
safe, and a lost counter increment between threads is an accepted error.

Eviction is CLOCK (second chance), an approximate LRU: a hit sets
``entry.hot``; the evictor walks entries in insertion order, sparing hot ones
once (clearing the bit and moving them to the back) and dropping cold ones.
"""

from __future__ import annotations

import enum
import logging
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from django.core.exceptions import SynchronousOnlyOperation

from . import conf
from .http import Entry, EntryKind

logger = logging.getLogger("django_assetcache")

#: Seconds a hole in the change feed is looked for before it is given up.
PENDING_SECONDS = 60.0

# What an entry costs is charged when it is built, so it must cover what the
# entry holds once every reply it can prepare on use exists (200, HEAD, 304,
# the 404 of an error document, the ASGI header bytes of each): counting less
# would let the real footprint run past ASSETCACHE_MEMORY_LIMIT. The constants
# are measured with tracemalloc at the worst point of dict growth;
# tests/test_cache.py measures them again and fails when they fall short.
# Strings whose length varies (the path, a redirect's location, a file path,
# header values) are charged by their real size on top.

#: A redirect or missing entry: its key tuple, its slots in the entries dict
#: and the clock, the Entry object.
SMALL_ENTRY_OVERHEAD = 300
#: A file entry with its identity representation and every reply of it
#: (header values aside, see HEADER_TEXT_COPIES).
FILE_ENTRY_OVERHEAD = 5_300
#: Each stored variant (br, gzip) of a file entry, with its replies.
REPRESENTATION_OVERHEAD = 5_250
#: Prepared replies of a representation hold its header values several times
#: over (as text and, for ASGI, as bytes).
HEADER_TEXT_COPIES = 5
#: A slot of the host maps besides its key string: dict slot and SiteInfo share.
HOST_OVERHEAD = 100
#: Share of ASSETCACHE_MEMORY_LIMIT each host map (raw Host values, host
#: names) may take before it is cleared; both count against the limit.
HOST_SHARE = 32

# Bound once: the hit path compares an entry's kind by identity.
_MISSING = EntryKind.MISSING


class Unavailable(Exception):
    """The database or the blob store cannot answer right now (raised by a Loader)."""


class BlobUnavailable(Unavailable):
    """A blob's bytes cannot be had on this machine."""


class SiteInfo:
    """What a request needs to know about a site, from the host map."""

    __slots__ = ("active", "cache_control", "error_path", "id", "index_document", "subdomain")

    def __init__(
        self,
        id: int,
        subdomain: str,
        active: bool,
        index_document: str,
        error_document: str,
        cache_control: str,
    ) -> None:
        self.id = id
        self.subdomain = subdomain
        self.active = active
        self.index_document = index_document
        self.error_path = "/" + error_document if error_document else ""
        self.cache_control = cache_control

    def __repr__(self) -> str:
        return f"<SiteInfo {self.id} {self.subdomain}>"


class HostMiss(enum.Enum):
    """Host map values for hosts that are not a site; the hit path tells
    them apart by identity (``is``)."""

    #: Not a site host: the request goes to the project.
    PASS = "pass"
    #: A subdomain of ASSETCACHE_DOMAIN that names no site: 404.
    UNKNOWN = "unknown"


HostTarget = SiteInfo | HostMiss

#: Change kinds that alter what a host maps to (SiteInfo is kept in the host map).
HOST_KINDS = frozenset({"settings", "delete", "domains"})


class ChangeRecord(Protocol):
    id: int
    site_id: int | None
    kind: str
    paths: list[str] | None


class Loader(Protocol):
    queries: int
    snapshot: Any

    def site_for_host(self, host: str) -> HostTarget: ...

    def entries_for(self, site: SiteInfo, path: str) -> dict[str, Entry]: ...

    def last_change_id(self) -> int: ...

    def changes_after(self, change_id: int, pending: list[int] | None = None) -> list[Any]: ...


def _ignore_eviction(reason: str, count: int) -> None:
    """The default ``on_evicted`` hook."""


def _ignore_change(change: ChangeRecord) -> None:
    """The default ``on_applied`` hook."""


class AssetCache:
    """One process's cache. Its hooks tell whoever made it (``runtime.py``
    wires them to Django signals) of evictions and applied changes, so the
    cache itself stays free of what a process is set up with."""

    def __init__(self, loader: Loader, settings: conf.Settings | None = None) -> None:
        self.loader = loader
        self.settings = settings or conf.get()
        self.domain_suffix = "." + self.settings.DOMAIN
        self.max_path = self.settings.MAX_PATH_LENGTH
        self.lock = threading.RLock()
        self.poll_lock = threading.Lock()
        #: Set by every poll() call; cleared by the thread that reads the feed.
        self.poll_again = False
        #: Raw Host values as received, for the hit path: one dict lookup.
        self.hosts: dict[str, HostTarget] = {}
        #: Normalised host names, where lookups that reached the loader are kept.
        self.site_hosts: dict[str, HostTarget] = {}
        #: What each host map costs; both count against MEMORY_LIMIT with the entries.
        self.raw_host_bytes = 0
        self.site_host_bytes = 0
        self.entries: dict[tuple[int, str], Entry] = {}
        self.clock: deque[tuple[tuple[int, str], Entry]] = deque()
        self.bytes_held = 0
        #: What entries dropped or replaced since cost: they stay referenced
        #: by the eviction queue until it lets them go, so they count too.
        self.stale_bytes = 0
        self.hits = 0
        self.misses = 0
        self.negative_hits = 0
        self.evictions_memory = 0
        self.evictions_entries = 0
        self.changes_applied = 0
        self.snapshot_change_id: int | None = None
        self.snapshot_loaded_at: float | None = None
        self.last_change_id = 0
        self.last_change_at: float | None = None
        self.next_poll = 0.0
        self.poll_interval = self.settings.POLL_INTERVAL
        self.polling = self.settings.INVALIDATION != "local"
        #: Change ids skipped in the feed (a transaction that had taken its id
        #: had not committed yet), with when they were first missed.
        self.pending: dict[int, float] = {}
        #: Bumped whenever a change is applied: a fill whose database read
        #: began before that keeps what it read out of the cache.
        self.epoch = 0
        self.created_at = time.time()
        #: Called with (reason, count) after entries were evicted for room.
        self.on_evicted: Callable[[str, int], None] = _ignore_eviction
        #: Called with each change after it was applied.
        self.on_applied: Callable[[ChangeRecord], None] = _ignore_change

    # --- the hit path --------------------------------------------------------

    def site_for(self, raw_host: str) -> HostTarget:
        target = self.hosts.get(raw_host)
        if target is None:
            target = self._resolve_host(raw_host)
        return target

    def entry(self, site: SiteInfo, path: str) -> Entry:
        entry = self.entries.get((site.id, path))
        if entry is None:
            self.misses += 1
            return self._fill(site, path)
        entry.hot = True
        if entry.kind is _MISSING:
            self.negative_hits += 1
        else:
            self.hits += 1
        return entry

    def error_document(self, site: SiteInfo) -> Entry:
        """The site's error document entry; not counted as a hit, since the
        request it serves was a miss."""
        entry = self.entries.get((site.id, site.error_path))
        if entry is None:
            return self._fill(site, site.error_path)
        entry.hot = True
        return entry

    def maybe_poll(self) -> None:
        """Apply new changes when a poll is due: one clock read otherwise."""
        if self.polling and time.monotonic() >= self.next_poll:
            self.poll()

    def poll_due(self) -> bool:
        return self.polling and time.monotonic() >= self.next_poll

    # --- misses -------------------------------------------------------------

    def _resolve_host(self, raw_host: str) -> HostTarget:
        epoch = self.epoch
        host = normalize_host(raw_host)
        if host is None:
            target: HostTarget = HostMiss.PASS
        else:
            # Spellings of one host (case, port, trailing dot) share one lookup.
            known = self.site_hosts.get(host)
            if known is not None:
                target = known
            elif host.endswith(self.domain_suffix):
                label = host[: -len(self.domain_suffix)]
                target = HostMiss.UNKNOWN if "." in label or not label else self._load_host(host)
            else:
                target = self._load_host(host)
        with self.lock:
            if self.epoch != epoch:
                return target  # a change arrived meanwhile: answer, do not keep
            self._remember_host(raw_host, host, target)
        return target

    def _remember_host(self, raw_host: str, host: str | None, target: HostTarget) -> None:
        # Each map has its own byte budget, so junk Host values (a port of
        # 7 KB each) flush the raw map only, not the lookups behind it.
        budget = self.settings.MEMORY_LIMIT // HOST_SHARE
        if host is not None and host not in self.site_hosts:
            cost = host_cost(host, target)
            if self.site_host_bytes + cost > budget:
                self.site_hosts = {}
                self.site_host_bytes = 0
            self.site_hosts[host] = target
            self.site_host_bytes += cost
        cost = host_cost(raw_host, None)
        if self.raw_host_bytes + cost > budget:
            self.hosts = {}
            self.raw_host_bytes = 0
        self.hosts[raw_host] = target
        self.raw_host_bytes += cost
        self._evict()

    def _load_host(self, host: str) -> HostTarget:
        target = self.loader.site_for_host(host)
        if target is HostMiss.PASS and host.endswith(self.domain_suffix):
            return HostMiss.UNKNOWN
        return target

    def _fill(self, site: SiteInfo, path: str) -> Entry:
        epoch = self.epoch
        found = self.loader.entries_for(site, path)
        with self.lock:
            if self.epoch != epoch:
                # A change was applied while we read: what we read may
                # predate it. Answer this request with it, keep nothing.
                return found[path]
            for key_path, entry in found.items():
                self._insert((site.id, key_path), entry)
        return found[path]

    def _insert(self, key: tuple[int, str], entry: Entry) -> None:
        old = self.entries.get(key)
        if old is not None:
            self._unlist(old)
        self.entries[key] = entry
        self.clock.append((key, entry))
        self.bytes_held += entry.cost
        self._evict()

    def held(self) -> int:
        """Bytes counted against MEMORY_LIMIT: entries and host maps."""
        return self.bytes_held + self.stale_bytes + self.raw_host_bytes + self.site_host_bytes

    def _unlist(self, entry: Entry) -> None:
        """An entry left ``entries`` but not the queue: its memory is still held."""
        self.bytes_held -= entry.cost
        self.stale_bytes += entry.cost

    def _evict(self) -> None:
        limit = self.settings.MEMORY_LIMIT
        max_entries = self.settings.MAX_ENTRIES
        evicted = 0
        reason = ""
        while self.clock and (self.held() > limit or len(self.entries) > max_entries):
            reason = "memory" if self.held() > limit else "entries"
            key, entry = self.clock.popleft()
            if self.entries.get(key) is not entry:
                self.stale_bytes -= entry.cost  # dropped or replaced since: a stale slot
                continue
            if entry.hot and len(self.clock) > 0:
                entry.hot = False
                self.clock.append((key, entry))
                continue
            del self.entries[key]
            self.bytes_held -= entry.cost
            evicted += 1
            if reason == "memory":
                self.evictions_memory += 1
            else:
                self.evictions_entries += 1
        if len(self.clock) > 2 * len(self.entries) + 1024:
            self.clock = deque((k, e) for k, e in self.clock if self.entries.get(k) is e)
            self.stale_bytes = 0
        if evicted:
            self.on_evicted(reason, evicted)

    # --- changes --------------------------------------------------------------

    def start(self) -> None:
        """Take the change feed's position before the first fill."""
        self.last_change_id = self.loader.last_change_id()
        self.next_poll = time.monotonic() + self.poll_interval

    def poll(self) -> None:
        """Read and apply the changes committed since the last one applied.

        Never waits: when another thread is polling, it reads the feed once
        more before it lets go, since the read it is doing may predate the
        commit this call was told of (a push notification, this process's
        own commit).
        """
        self.poll_again = True
        while self.poll_again:
            if not self.poll_lock.acquire(blocking=False):
                return  # the thread polling now sees poll_again
            try:
                while self.poll_again:
                    self.poll_again = False
                    self._poll_once()
            finally:
                self.poll_lock.release()
            # A request made between our last read and the release is ours
            # to serve, unless another thread has taken the lock meanwhile.

    def _poll_once(self) -> None:
        self.next_poll = time.monotonic() + self.poll_interval
        try:
            changes = self.loader.changes_after(self.last_change_id, list(self.pending))
        except SynchronousOnlyOperation:
            self.next_poll = 0.0  # called on an event loop: poll from a thread instead
            raise
        except Exception:
            logger.warning("assetcache: cannot read the change feed", exc_info=True)
            return
        self.apply(changes)

    def apply(self, changes: Iterable[ChangeRecord]) -> None:
        now = time.monotonic()
        for change in changes:
            with self.lock:
                late = self.pending.pop(change.id, None) is not None
                if change.id <= self.last_change_id and not late:
                    continue
                # Ids are taken at insert and become visible at commit, so
                # on PostgreSQL a lower id can appear after a higher one:
                # remember the holes and look for them again.
                for missing in range(self.last_change_id + 1, min(change.id, self.last_change_id + 1001)):
                    self.pending[missing] = now
                self._apply_one(change)
                self.last_change_id = max(self.last_change_id, change.id)
                self.last_change_at = time.time()
                self.changes_applied += 1
            self.on_applied(change)
        expired = [cid for cid, since in self.pending.items() if now - since > PENDING_SECONDS]
        for cid in expired:
            self.pending.pop(cid, None)  # rolled back, or pruned: never coming

    def _apply_one(self, change: ChangeRecord) -> None:
        self.epoch += 1
        if change.kind == "prune":
            if change.paths and int(change.paths[0]) > self.last_change_id:
                # Rows this process never saw are gone: start over.
                logger.warning("assetcache: missed pruned changes; dropping the whole cache")
                self._drop_everything()
            return
        site_id = change.site_id
        hosts = change.kind in HOST_KINDS
        if hosts:
            self._drop_hosts(site_id)
        snapshot = self.loader.snapshot
        if snapshot is not None:
            snapshot.forget(site_id, change.paths, hosts, change.id)
        if site_id is None:
            return
        if change.paths is None:
            self._drop_site(site_id)
        else:
            for path in change.paths:
                for key in _request_keys(path):
                    entry = self.entries.pop((site_id, key), None)
                    if entry is not None:
                        self._unlist(entry)

    def _drop_site(self, site_id: int) -> None:
        for key in [key for key in self.entries if key[0] == site_id]:
            self._unlist(self.entries.pop(key))

    def _drop_hosts(self, site_id: int | None) -> None:
        # Negative host entries may concern the changed site (a new subdomain,
        # a new custom domain), so they go too; the maps refill cheaply.
        self.hosts = _other_sites(self.hosts, site_id)
        self.site_hosts = _other_sites(self.site_hosts, site_id)
        self.raw_host_bytes = sum(host_cost(host, None) for host in self.hosts)
        self.site_host_bytes = sum(host_cost(host, target) for host, target in self.site_hosts.items())

    def forget_files(self, paths: Iterable[str]) -> None:
        """Drop entries that send any of these local files (gone or going)."""
        gone = set(paths)
        with self.lock:
            for key, entry in list(self.entries.items()):
                if entry.kind is EntryKind.FILE and not gone.isdisjoint(entry.file_paths()):
                    del self.entries[key]
                    self._unlist(entry)

    def renew_locks(self) -> None:
        """Fresh locks for a forked child: a thread of the parent holding one
        at the fork does not exist in the child to release it."""
        self.lock = threading.RLock()
        self.poll_lock = threading.Lock()

    def use_snapshot(self, snapshot: Any) -> None:
        """Answer from a loaded snapshot; changes after its stamp come next."""
        with self.lock:
            self.loader.snapshot = snapshot
            self.last_change_id = snapshot.change_id
            self.snapshot_change_id = snapshot.change_id
            self.snapshot_loaded_at = time.time()

    def _drop_everything(self) -> None:
        self.epoch += 1
        self.hosts = {}
        self.site_hosts = {}
        self.raw_host_bytes = 0
        self.site_host_bytes = 0
        self.entries = {}
        self.clock = deque()
        self.bytes_held = 0
        self.stale_bytes = 0
        self.loader.snapshot = None

    def clear(self) -> None:
        with self.lock:
            self._drop_everything()

    def stats(self) -> dict[str, Any]:
        lookups = self.hits + self.negative_hits + self.misses
        return {
            "hits": self.hits,
            "misses": self.misses,
            "negative_hits": self.negative_hits,
            "hit_ratio": (self.hits + self.negative_hits) / lookups if lookups else 0.0,
            "db_queries": self.loader.queries,
            "evictions": self.evictions_memory + self.evictions_entries,
            "evictions_memory": self.evictions_memory,
            "evictions_entries": self.evictions_entries,
            "entries": len(self.entries),
            "hosts": len(self.hosts),
            "host_bytes": self.raw_host_bytes + self.site_host_bytes,
            "bytes_held": self.bytes_held,
            "stale_bytes": self.stale_bytes,
            "memory_limit": self.settings.MEMORY_LIMIT,
            "last_change_id": self.last_change_id,
            "last_change_at": self.last_change_at,
            "changes_applied": self.changes_applied,
            "snapshot_change_id": self.snapshot_change_id,
            "snapshot_loaded_at": self.snapshot_loaded_at,
            "invalidation": self.settings.INVALIDATION,
        }


def entry_overhead(path: str, entry: Entry) -> int:
    """Bytes that keeping ``entry`` under ``path`` costs besides its bodies
    (which ``Entry.cost`` counts when the entry is built)."""
    cost = sys.getsizeof(path)
    if entry.kind is not EntryKind.FILE:
        return cost + SMALL_ENTRY_OVERHEAD + (sys.getsizeof(entry.location) if entry.location else 0)
    cost += FILE_ENTRY_OVERHEAD - REPRESENTATION_OVERHEAD
    for rep in (entry.identity, entry.br, entry.gzip):
        if rep is not None:
            header_text = sum(len(value) for _, value in (*rep.shared.entity, *rep.shared.tail))
            cost += REPRESENTATION_OVERHEAD + HEADER_TEXT_COPIES * header_text
            if rep.file_path:
                cost += sys.getsizeof(rep.file_path)
    return cost


def host_cost(host: str, target: HostTarget | None) -> int:
    """Bytes a host map slot costs: its key, and the SiteInfo a lookup made."""
    cost = HOST_OVERHEAD + sys.getsizeof(host)
    if isinstance(target, SiteInfo):
        cost += sum(sys.getsizeof(text) for text in (target.subdomain, target.index_document, target.cache_control))
    return cost


def _other_sites(hosts: dict[str, HostTarget], site_id: int | None) -> dict[str, HostTarget]:
    return {host: target for host, target in hosts.items() if isinstance(target, SiteInfo) and target.id != site_id}


def _request_keys(asset_path: str) -> tuple[str, ...]:
    """Request paths whose answer depends on the asset at ``asset_path``:
    itself, and its directory with and without the slash (index documents
    and their redirects)."""
    directory = asset_path.rsplit("/", 1)[0]
    if not directory:
        return (asset_path, "/")
    return (asset_path, directory + "/", directory)


def normalize_host(raw_host: str) -> str | None:
    """Lower-case host without port or trailing dot; None when malformed."""
    host = raw_host.strip().lower()
    if host.startswith("["):
        return None  # an IPv6 literal is never a site host
    host = host.rsplit(":", 1)[0] if ":" in host else host
    host = host.rstrip(".")
    if not host or len(host) > 253 or not _HOST_CHARS.issuperset(host):
        return None  # not a host name, so never a site host
    return host


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")
