"""Issue 18: what a built cache entry really costs (tracemalloc), and that
what the cache charges for entries, their shared headers and their prepared
replies covers it."""

from __future__ import annotations

import gc
import sys
import tracemalloc

from django_assetcache import conf
from django_assetcache.cache import AssetCache
from django_assetcache.costs import charge
from django_assetcache.entries import Entry, build_file_entry
from django_assetcache.hosts import SiteInfo
from django_assetcache.prepared import PREPARED, shared_bytes
from django_assetcache.records import BlobRecord, LocatedBlob

SITE = SiteInfo(1, "docs", True, "index.html", "", "")


class BuildingLoader:
    """Builds a file entry for any path, as the database loader does, from
    bodies made beforehand (what a miss reads is not what an entry keeps)."""

    queries = 0
    snapshot = None

    def __init__(self, bodies: dict[str, bytes]) -> None:
        self.bodies = bodies

    def entries_for(self, site: SiteInfo, path: str) -> dict[str, Entry]:
        body = self.bodies[path]
        sha = f"{len(body):08x}{path[3:]:0>56}"  # distinct per file, as a content hash is
        entry = build_file_entry(
            content_type="text/css",
            last_modified=1_700_000_000.0,
            cache_control="public, max-age=0, must-revalidate",
            identity=LocatedBlob(BlobRecord(sha, len(body)), body=body),
        )
        return {path: entry}


def test_a_built_entry_costs_at_most_200_bytes():
    """10,000 file entries built and kept, as misses keep them, cost at most
    200 bytes each besides their key (the tuple and its path) and body: the
    entry, its ETag, its slots in the entries dict and the eviction queue.
    Its replies are a dictionary lookup away (PREPARED, whose budget the
    cache reserves), its header tuples shared; and the cache charges no less
    than what the entries really hold."""
    count = 10_000
    bodies = {f"/f/{i:05d}.css": b"x" * (300 + i % 5000) for i in range(count)}
    settings = conf.Settings(MEMORY_LIMIT=1 << 40, MAX_ENTRIES=10 * count, INVALIDATION="local")
    c = AssetCache(BuildingLoader(bodies), settings)  # type: ignore[arg-type]
    c.entry(SITE, "/f/00000.css")  # the shared header tuples exist once
    paths = list(bodies)[1:]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for path in paths:
            c.entry(SITE, path)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    key = sys.getsizeof((1, paths[0]))  # the paths themselves were made beforehand
    per_entry = grown / len(paths) - key
    assert per_entry <= 200, per_entry
    charged = sum(charge(path, c.entries[SITE.key, path]) - len(bodies[path]) - sys.getsizeof(path) for path in paths)
    assert charged >= grown, (charged, grown)
    # The replies of a hit are there, prepared once.
    entry = c.entry(SITE, paths[-1])
    assert entry.ok is entry.ok and entry.ok.body == bodies[paths[-1]]


def test_prepared_replies_cost_no_more_than_charged():
    """Every reply an entry may prepare (200, HEAD, 304, both 412s, an error
    document's 404), each with the header bytes the ASGI adapter sends, holds
    no more than PREPARED charges for it."""
    paths = [f"/p/{i:03d}.html" for i in range(300)]
    bodies = {path: b"<p>" + path.encode() * 50 for path in paths}
    loader = BuildingLoader(bodies)
    entries = [loader.entries_for(SITE, path)[path] for path in paths]
    PREPARED.clear()
    PREPARED.budget = 1 << 30
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for entry in entries:
            failed = entry.precondition_failed("GET"), entry.precondition_failed("HEAD")
            for reply in (entry.ok, entry.head, entry.not_modified, entry.not_found(), *failed):
                reply.raw_headers  # noqa: B018  (built and kept, as the ASGI adapter does)
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert 0 < grown <= PREPARED.bytes, (grown, PREPARED.bytes)
    PREPARED.clear()


def test_shared_headers_cost_no_more_than_counted():
    """Files of distinct dates share no header tuples: each set is counted
    while an entry uses it, and no longer once none does."""
    gc.collect()
    counted = shared_bytes()
    entries = []
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for i in range(2000):
            blob = LocatedBlob(BlobRecord(f"{i:064x}", 3), body=b"abc")
            entries.append(
                build_file_entry(
                    content_type="text/html; charset=utf-8",
                    last_modified=1_700_000_000.0 + i,
                    cache_control="public, max-age=0, must-revalidate",
                    identity=blob,
                    extra_headers=(("X-Robots-Tag", "noindex"),),
                )
            )
        entry_memory = 2000 * (sys.getsizeof(entries[0]) + 16 + sys.getsizeof(entries[0].etag)) + sys.getsizeof(entries)
        grown = tracemalloc.get_traced_memory()[0] - before - entry_memory
    finally:
        tracemalloc.stop()
    assert 0 < grown <= shared_bytes() - counted, (grown, shared_bytes() - counted)
    entries.clear()
    gc.collect()
    assert shared_bytes() == counted
