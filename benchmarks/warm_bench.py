"""Warm start at scale: 100,000 assets across 1,000 sites.

    .venv/bin/python benchmarks/warm_bench.py [--sites 1000] [--per-site 100]

Measures, in a throwaway directory (SQLite, filesystem storage):
1. ``warm_up(compress=False)``: seconds and snapshot size;
2. hydration of a fresh process from that snapshot (``django_assetcache.warm()``,
   which loads the snapshot and replays the change feed), in a subprocess;
3. memory per entry in that process: after hydration (the snapshot index)
   and after every asset was requested once (cache entries built), measured
   with tracemalloc, bodies excluded;
and writes docs/benchmarks-warm.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, machine_lines, markdown_table, setup_django, write_doc

#: Distinct file bodies shared among the sites (vendored scripts, logos,
#: shared styles), as real hosts of many sites see.
DISTINCT_BODIES = 20_000
PATH_PARTS = ("assets", "css", "js", "img", "docs", "blog", "guide", "api")
EXTENSIONS = ("html", "css", "js", "svg", "png", "json")


def populate(sites: int, per_site: int, rng: random.Random) -> None:
    """Write blobs through the store and rows in bulk (publishing 1,000 sites
    file by file would measure publishing, not warming)."""
    import hashlib
    import io

    from django.utils import timezone

    from django_assetcache.models import Asset, Blob, Change, Site
    from django_assetcache.store import BlobStore

    store = BlobStore()
    blobs: list[tuple[str, int]] = []
    for index in range(DISTINCT_BODIES):
        size = int(200 * (8192 / 200) ** rng.random())
        body = f"/* body {index} */ ".encode() + rng.randbytes(size)
        sha = hashlib.sha256(body).hexdigest()
        store.save(sha, len(body), io.BytesIO(body))
        blobs.append((sha, len(body)))
    Blob.objects.bulk_create([Blob(sha256=sha, size=size) for sha, size in blobs], batch_size=2000)
    site_rows = Site.objects.bulk_create([Site(subdomain=f"site{n:04d}") for n in range(sites)])
    now = timezone.now().replace(microsecond=0)
    assets = []
    for site in site_rows:
        for n in range(per_site):
            sha, _ = rng.choice(blobs)
            extension = EXTENSIONS[n % len(EXTENSIONS)]
            path = f"/{rng.choice(PATH_PARTS)}/{rng.choice(PATH_PARTS)}/page{n:03d}.{extension}"
            assets.append(Asset(site=site, path=path, blob_id=sha, content_type=f"text/{extension}", last_modified=now))
    Asset.objects.bulk_create(assets, batch_size=5000, ignore_conflicts=True)
    Change.objects.create(kind=Change.Kind.PUBLISH, site_id=None, paths=None)


CHILD = r"""
import json, os, sys, time, tracemalloc
sys.path.insert(0, sys.argv[1])
import django
django.setup()
from django_assetcache.models import Asset
pairs = [(f"{sub}.sites.test", path) for sub, path in Asset.objects.values_list("site__subdomain", "path")]
from django.db import connection
connection.close()

# Timed without tracemalloc, which slows allocation several-fold.
import django_assetcache
from django_assetcache import runtime
started = time.perf_counter()
django_assetcache.warm()
hydrate_seconds = time.perf_counter() - started
runtime.reset()

tracemalloc.start()
base, _ = tracemalloc.get_traced_memory()
cache = django_assetcache.warm()
after_hydrate, _ = tracemalloc.get_traced_memory()

from django_assetcache.serve import answer
tracemalloc.stop()  # fills are timed without it, and measured below
queries_before = cache.loader.queries
started = time.perf_counter()
body_bytes = 0
for host, path in pairs:
    reply = answer(host, path, "GET", "", {}.get)
    assert reply is not None and reply.status == 200, (host, path, reply)
fill_seconds = time.perf_counter() - started
runtime.reset()
cache = django_assetcache.warm()
tracemalloc.start()
before_fill, _ = tracemalloc.get_traced_memory()
for host, path in pairs:
    answer(host, path, "GET", "", {}.get)
seen = set()
for entry in list(cache.entries.values()):
    for rep in (entry.identity, entry.br, entry.gzip):
        if rep is not None and rep.body is not None and id(rep.body) not in seen:
            seen.add(id(rep.body))
            body_bytes += len(rep.body)
after_fill, _ = tracemalloc.get_traced_memory()
print(json.dumps({
    "assets": len(pairs),
    "hydrate_seconds": hydrate_seconds,
    "index_bytes": after_hydrate - base,
    "fill_seconds": fill_seconds,
    "fill_queries": cache.loader.queries - queries_before,
    "entries": len(cache.entries),
    "entry_bytes": after_fill - before_fill - body_bytes,
    "body_bytes": body_bytes,
}))
"""


def measure_process(env: dict[str, str]) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--per-site", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="assetcache-warm-bench-"))
    env = {
        "ASSETCACHE_TEST_DIR": str(workdir),
        "ASSETCACHE_TEST_INVALIDATION": "database",
        # Every body of this install fits the default memory budget twice over.
        "ASSETCACHE_TEST_MEMORY_LIMIT": str(1024**3),
    }
    try:
        setup_django("tests.settings", env)
        from django_assetcache import conf
        from django_assetcache.progress import human_bytes
        from django_assetcache.warmup import warm_up

        started = time.perf_counter()
        populate(args.sites, args.per_site, random.Random(args.seed))
        populate_seconds = time.perf_counter() - started

        load = os.getloadavg()[0]
        started = time.perf_counter()
        summary = warm_up(compress=False)
        warm_seconds = time.perf_counter() - started
        snapshot_bytes = Path(conf.get().SNAPSHOT_PATH).stat().st_size

        child = measure_process({**env, "DJANGO_SETTINGS_MODULE": "tests.settings"})
        assets = child["assets"]
        rows = [
            ["assets / sites", f"{summary.assets:,} / {summary.sites:,}", ""],
            ["warmup (`warm_up(compress=False)`)", f"{warm_seconds:.2f} s", ""],
            [
                "snapshot size",
                human_bytes(snapshot_bytes),
                f"{summary.snapshot.bodies:,} distinct bodies, {human_bytes(summary.snapshot.body_bytes)}",
            ],
            ["hydration of one process (`warm()`)", f"{child['hydrate_seconds']:.3f} s", "goal < 0.5 s"],
            ["snapshot index in memory", f"{child['index_bytes'] / assets:.0f} B/asset", "before any request"],
            [
                "first request for every asset",
                f"{child['fill_seconds']:.2f} s",
                f"{child['fill_queries']} queries, all change-feed polls (1 s interval)",
            ],
            [
                "cache entry metadata",
                f"{child['entry_bytes'] / max(child['entries'], 1):.0f} B/entry",
                "bodies excluded; goal < 200 B",
            ],
        ]
        table = markdown_table(["measure", "value", "note"], rows)
        print(table)
        text = "\n".join(
            [
                "# Benchmark: warm start",
                "",
                f"A generated install of {summary.assets:,} assets across {summary.sites:,} sites "
                f"({DISTINCT_BODIES:,} distinct bodies of 200 B to 8 KiB, shared among sites), "
                "in SQLite with filesystem storage.",
                "",
                table,
                "",
                "*Hydration* is a fresh process's `django_assetcache.warm()`: it maps the snapshot, "
                "parses its index and replays the change feed (one query). *Snapshot index* and "
                "*cache entry metadata* are measured with tracemalloc in that process; entry "
                "metadata excludes the bodies held in memory. Entries are built lazily, on a "
                "path's first request, from the snapshot index: that first request needs no "
                "database query.",
                "",
                "What scales with the install is the snapshot index: a path and a record number "
                "per asset, every other field read from the mapped file when the path is first "
                "asked for. That meets the goal of under 200 bytes per asset. A built entry is "
                "larger, by design: it keeps its prepared replies (header list, body reference) so "
                "that a hit formats nothing, and only paths that were requested have one; the "
                "goal of 200 bytes is not met for those, and ASSETCACHE_MEMORY_LIMIT bounds them.",
                "",
                "## Set-up",
                "",
                f"- Populating the install (not measured above) took {populate_seconds:.1f} s.",
                f"- Load average (1 min) when measuring began: {load:.2f}.",
                *machine_lines(["Django", "django-assetcache"]),
                "",
                "Reproduce: `.venv/bin/python benchmarks/warm_bench.py`.",
            ]
        )
        print(f"\nwrote {write_doc('benchmarks-warm.md', text).relative_to(ROOT)}")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
