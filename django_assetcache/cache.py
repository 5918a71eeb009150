"""The process-global cache: host map, entries, bounds, eviction, counters.

One ``AssetCache`` per process, created on first use. A hit is two dictionary
lookups (host → SiteInfo, (site, path) → Entry) and one attribute store (the
entry's clock bit). Everything that needs the database goes through a
``Loader`` (see ``loader.py``), so this module knows nothing of the ORM.

Concurrency: readers never lock; filling, evicting and applying changes take
one lock. Under the GIL a ``dict.get`` racing a locked insert or delete is
safe, and a lost counter increment between threads is an accepted error.

Eviction is CLOCK (second chance), an approximate LRU: a hit sets
``entry.hot``; the evictor walks keys in insertion order, sparing hot entries
once (clearing the bit, moving them back) and dropping cold ones.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from . import conf, traffic
from .costs import charge, key_cost
from .entries import Entry, EntryKind
from .feed import ChangeRecord, FeedReader, FeedSource
from .hosts import HOST_SHARE, HostMiss, HostTarget, SiteInfo, host_cost, normalize_host, other_sites, request_keys
from .sharedheaders import shared_bytes

logger = logging.getLogger("django_assetcache")

# Bound once: the hit path compares an entry's kind by identity.
_MISSING = EntryKind.MISSING


class Unavailable(Exception):
    """The database or the blob store cannot answer right now (raised by a Loader)."""


class BlobUnavailable(Unavailable):
    """A blob's bytes cannot be had on this machine."""


#: Change kinds that alter what a host maps to (SiteInfo is kept in the host
#: map); of them, those that only move hosts between deployments (entries are
#: keyed by deployment, which never changes, so they stay).
HOST_KINDS = frozenset({"settings", "delete", "domains", "deploy"})
SWITCH_KINDS = frozenset({"deploy"})


class Loader(FeedSource, Protocol):
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


class AssetCache(FeedReader):
    """One process's cache. Its hooks tell whoever made it (``runtime.py``
    wires them to Django signals) of evictions and applied changes, so the
    cache itself stays free of what a process is set up with."""

    loader: Loader

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
        #: Keyed by (SiteInfo.key, path): by deployment, not by site; per site
        #: id, the keys (scopes) it has filled.
        self.entries: dict[tuple[int, str], Entry] = {}
        self.site_scopes: dict[int, set[int]] = {}
        #: Keys in insertion order (one dropped and filled again: twice).
        self.clock: deque[tuple[int, str]] = deque()
        self.bytes_held = 0
        #: What dropped keys cost: they stay in the queue until it lets them go.
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
        entry = self.entries.get((site.key, path))
        if entry is None:
            self.misses += 1
            site.traffic[traffic.MISSES] += 1
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
        entry = self.entries.get((site.key, site.error_path))
        if entry is None:
            return self._fill(site, site.error_path)
        entry.hot = True
        return entry

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
            self.site_scopes.setdefault(site.id, set()).add(site.key)
            for key_path, entry in found.items():
                self._insert((site.key, key_path), entry)
        return found[path]

    def _insert(self, key: tuple[int, str], entry: Entry) -> None:
        old = self.entries.get(key)
        if old is None:
            self.clock.append(key)
        else:  # its slot in the queue serves the new entry
            self.bytes_held -= charge(key[1], old)
        self.entries[key] = entry
        self.bytes_held += charge(key[1], entry)
        self._evict()

    def held(self) -> int:
        """Bytes counted against MEMORY_LIMIT: entries, their shared headers, hosts."""
        hosts = self.raw_host_bytes + self.site_host_bytes
        return self.bytes_held + self.stale_bytes + hosts + shared_bytes()

    def _unlist(self, key: tuple[int, str], entry: Entry) -> None:
        """An entry left ``entries``; its key stays in the queue until it comes up."""
        self.bytes_held -= charge(key[1], entry)
        self.stale_bytes += key_cost(key[1])

    def _evict(self) -> None:
        limit = self.settings.MEMORY_LIMIT
        max_entries = self.settings.MAX_ENTRIES
        evicted = 0
        reason = ""
        while self.clock and (self.held() > limit or len(self.entries) > max_entries):
            reason = "memory" if self.held() > limit else "entries"
            key = self.clock.popleft()
            entry = self.entries.get(key)
            if entry is None:
                self.stale_bytes -= key_cost(key[1])  # dropped since: a stale slot
                continue
            if entry.hot and len(self.clock) > 0:
                entry.hot = False
                self.clock.append(key)
                continue
            del self.entries[key]
            self.bytes_held -= charge(key[1], entry)
            evicted += 1
            if reason == "memory":
                self.evictions_memory += 1
            else:
                self.evictions_entries += 1
        if len(self.clock) > 2 * len(self.entries) + 1024:
            self.clock = deque(dict.fromkeys(key for key in self.clock if key in self.entries))
            self.stale_bytes = 0
        if evicted:
            self.on_evicted(reason, evicted)

    # --- changes --------------------------------------------------------------

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
        switch = change.kind in SWITCH_KINDS
        if hosts:
            self._drop_hosts(site_id)
        snapshot = self.loader.snapshot
        if snapshot is not None:
            snapshot.forget(site_id, change.paths, hosts, change.id, switch=switch)
        if switch:
            self._carry_over(change, snapshot)
        if site_id is None or switch:
            return
        scopes = self.site_scopes.get(site_id, ())
        if change.paths is None:
            self._drop_scopes(scopes)
            return
        for scope in scopes:
            for path in change.paths:
                for key in request_keys(path):
                    entry = self.entries.pop((scope, key), None)
                    if entry is not None:
                        self._unlist((scope, key), entry)

    def _carry_over(self, change: ChangeRecord, snapshot: Any) -> None:
        """A publish made live a deployment that differs from the one before
        only at ``change.paths``: the other entries (and snapshot rows) of
        the one are the other's, deployments never changing, so they move."""
        new, previous = change.deployment_id, change.previous_id
        if new is None or previous is None or change.paths is None:
            return
        if snapshot is not None:
            snapshot.carry(previous, new, change.paths)
        gone = {key for path in change.paths for key in request_keys(path)}
        for key in [key for key in self.entries if key[0] == previous and key[1] not in gone]:
            entry = self.entries.pop(key)
            self._unlist(key, entry)
            if (new, key[1]) not in self.entries:
                self._insert((new, key[1]), entry)
        self.site_scopes.setdefault(change.site_id or 0, set()).add(new)

    def _drop_scopes(self, scopes: Iterable[int]) -> None:
        """Drop the entries of these scopes (a site's deployments)."""
        wanted = set(scopes)
        if wanted:
            for key in [key for key in self.entries if key[0] in wanted]:
                self._unlist(key, self.entries.pop(key))

    def _drop_hosts(self, site_id: int | None) -> None:
        # Negative host entries may concern the changed site (a new subdomain,
        # a new custom domain), so they go too; the maps refill cheaply.
        self.hosts = other_sites(self.hosts, site_id)
        self.site_hosts = other_sites(self.site_hosts, site_id)
        self.raw_host_bytes = sum(host_cost(host, None) for host in self.hosts)
        self.site_host_bytes = sum(host_cost(host, target) for host, target in self.site_hosts.items())

    def forget_files(self, paths: Iterable[str]) -> None:
        """Drop entries that send any of these local files (gone or going)."""
        gone = set(paths)
        with self.lock:
            for key, entry in list(self.entries.items()):
                if entry.kind is EntryKind.FILE and not gone.isdisjoint(entry.file_paths()):
                    del self.entries[key]
                    self._unlist(key, entry)

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
        self.site_scopes = {}
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
