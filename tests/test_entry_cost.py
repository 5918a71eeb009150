"""Issue 18: what a built cache entry really costs (tracemalloc), and that
what the cache charges for entries and their shared headers covers it."""

from __future__ import annotations

import gc
import sys
import tracemalloc

from django_assetcache import conf
from django_assetcache.cache import AssetCache
from django_assetcache.costs import charge, text_cost
from django_assetcache.entries import Entry, build_file_entry
from django_assetcache.hosts import SiteInfo
from django_assetcache.records import BlobRecord, LocatedBlob
from django_assetcache.sharedheaders import shared_bytes

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
    Its header tuples are shared; and the cache charges no less than what
    the entries really hold."""
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
    charged = sum(charge(path, c.entries[SITE.key, path]) - len(bodies[path]) - text_cost(path) for path in paths)
    assert charged >= grown, (charged, grown)


def test_a_reply_is_assembled_from_shared_parts():
    """A hit's reply holds the entry's own body (not a copy) and the header
    tuples every file alike shares (the same objects), as text and as the
    bytes the ASGI adapter sends; only the ETag and the length are the file's."""
    bodies = {"/a.css": b"a" * 1000, "/b.css": b"b" * 2000}
    loader = BuildingLoader(bodies)
    a, b = (loader.entries_for(SITE, path)[path] for path in bodies)
    ok_a, ok_b = a.ok, b.ok
    assert ok_a.body is a.body
    own = ("ETag", "Content-Length")
    shared_a = [h for h in ok_a.headers if h[0] not in own]
    shared_b = [h for h in ok_b.headers if h[0] not in own]
    assert len(shared_a) == len(shared_b) == 5
    assert all(x is y for x, y in zip(shared_a, shared_b, strict=True))
    assert dict(ok_a.headers)["ETag"] == a.etag and dict(ok_a.headers)["Content-Length"] == "1000"
    raw = dict(ok_b.raw_headers)
    assert raw[b"etag"] == b.etag.encode() and raw[b"content-length"] == b"2000"
    assert [h for h in ok_a.raw_headers if h[0] not in (b"etag", b"content-length")] == [
        (name.lower().encode(), value.encode()) for name, value in shared_a
    ]
    assert dict(a.not_modified.headers)["ETag"] == a.etag and "Content-Length" not in dict(a.not_modified.headers)


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
