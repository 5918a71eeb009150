"""Warm start at scale: 100,000 assets across 1,000 sites.

    .venv/bin/python benchmarks/warm_bench.py [--sites 1000] [--per-site 100] [--baseline REV]

Measures, in a throwaway directory (SQLite, filesystem storage):
1. ``warm_up(compress=False)``: seconds and snapshot size;
2. hydration of a fresh process from that snapshot (``django_assetcache.warm()``,
   which loads the snapshot and replays the change feed), in a subprocess;
3. memory per entry in that process: after hydration (the snapshot index)
   and after every asset was requested once (cache entries built), measured
   with tracemalloc, keys and bodies excluded;
4. the hit ratio under a fixed ASSETCACHE_MEMORY_LIMIT with paths asked
   Zipf-like; with ``--baseline`` 3 and 4 for another commit's code too, on
   the same install;
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
from benchmarks.compare_commits import export

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

    from django_assetcache.models import Asset, Blob, Change, Deployment, Site
    from django_assetcache.store import BlobStore
    from django_assetcache.validators import new_deployment_key

    store = BlobStore()
    blobs: list[tuple[str, int]] = []
    for index in range(DISTINCT_BODIES):
        size = int(200 * (8192 / 200) ** rng.random())
        body = f"/* body {index} */ ".encode() + rng.randbytes(size)
        sha = hashlib.sha256(body).hexdigest()
        store.save(sha, len(body), io.BytesIO(body))
        blobs.append((sha, len(body)))
    Blob.objects.bulk_create([Blob(sha256=sha, size=size) for sha, size in blobs], batch_size=2000)
    now = timezone.now().replace(microsecond=0)
    site_rows = Site.objects.bulk_create([Site(subdomain=f"site{n:04d}") for n in range(sites)])
    deployments = Deployment.objects.bulk_create(
        [
            Deployment(site=site, key=new_deployment_key(), created_at=now, state=Deployment.State.LIVE, live_at=now)
            for site in site_rows
        ]
    )
    for site, deployment in zip(site_rows, deployments, strict=True):
        site.live_deployment = deployment
    Site.objects.bulk_update(site_rows, ["live_deployment"], batch_size=2000)
    assets = {}
    for site, deployment in zip(site_rows, deployments, strict=True):
        for n in range(per_site):
            sha, _ = rng.choice(blobs)
            extension = EXTENSIONS[n % len(EXTENSIONS)]
            path = f"/{rng.choice(PATH_PARTS)}/{rng.choice(PATH_PARTS)}/page{n:03d}.{extension}"
            assets[deployment.pk, path] = Asset(
                site=site,
                deployment=deployment,
                path=path,
                blob_id=sha,
                content_type=f"text/{extension}",
                last_modified=now,
            )
    Asset.objects.bulk_create(list(assets.values()), batch_size=5000)
    Change.objects.create(kind=Change.Kind.PUBLISH, site_id=None, paths=None)


CHILD = r"""
import json, os, random, sys, time, tracemalloc, gc
sys.path.insert(0, sys.argv[1])
zipf_limit, zipf_requests, seed = int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
import django
django.setup()
from django_assetcache.models import Asset
pairs = [(f"{sub}.sites.test", path) for sub, path in Asset.objects.values_list("site__subdomain", "path")]
from django.db import connection
connection.close()

# Timed without tracemalloc, which slows allocation several-fold.
import django_assetcache
from django.conf import settings
from django_assetcache import conf, runtime
started = time.perf_counter()
django_assetcache.warm()
hydrate_seconds = time.perf_counter() - started
runtime.reset()

tracemalloc.start()
base, _ = tracemalloc.get_traced_memory()
cache = django_assetcache.warm()
after_hydrate, _ = tracemalloc.get_traced_memory()

from django_assetcache.entries import EntryKind
from django_assetcache.serve import answer
tracemalloc.stop()  # fills are timed without it, and measured below
queries_before = cache.loader.queries
started = time.perf_counter()
for host, path in pairs:
    reply = answer(host, path, "GET", "", {}.get)
    assert reply is not None and reply.status == 200, (host, path, reply)
fill_seconds = time.perf_counter() - started
fill_queries = cache.loader.queries - queries_before
runtime.reset()
cache = django_assetcache.warm()
gc.collect()
tracemalloc.start()
before_fill, _ = tracemalloc.get_traced_memory()
for host, path in pairs:
    answer(host, path, "GET", "", {}.get)
gc.collect()
after_fill, _ = tracemalloc.get_traced_memory()
tracemalloc.stop()  # what is counted next must not count itself
seen = set()
body_bytes = 0
for entry in list(cache.entries.values()):
    if entry.kind is not EntryKind.FILE:
        continue
    for rep in (entry.identity, entry.br, entry.gzip):
        if rep is not None and rep.body is not None and id(rep.body) not in seen:
            seen.add(id(rep.body))
            body_bytes += sys.getsizeof(rep.body)
keys = sum(sys.getsizeof(key) for key in cache.entries)  # the paths were made before
entries = len(cache.entries)

# Hit ratio under a fixed memory limit, paths asked Zipf-like (rank r with
# weight 1/r, ranks shuffled), as a host's traffic is.
settings.ASSETCACHE_MEMORY_LIMIT = zipf_limit
conf.reset()
runtime.reset()
cache = django_assetcache.warm()
rng = random.Random(seed)
ranked = pairs[:]
rng.shuffle(ranked)
weights = [1 / rank for rank in range(1, len(ranked) + 1)]
asked = rng.choices(ranked, weights, k=zipf_requests)
for host, path in asked[: zipf_requests // 4]:  # warm the cache first
    answer(host, path, "GET", "", {}.get)
hits, misses = cache.hits, cache.misses
for host, path in asked[zipf_requests // 4 :]:
    answer(host, path, "GET", "", {}.get)
hits, misses = cache.hits - hits, cache.misses - misses
print(json.dumps({
    "assets": len(pairs),
    "hydrate_seconds": hydrate_seconds,
    "index_bytes": after_hydrate - base,
    "fill_seconds": fill_seconds,
    "fill_queries": fill_queries,
    "entries": entries,
    "entry_bytes": after_fill - before_fill - body_bytes - keys,
    "body_bytes": body_bytes,
    "zipf_entries": len(cache.entries),
    "zipf_hit_ratio": hits / max(hits + misses, 1),
}))
"""


def measure_process(
    env: dict[str, str], root: Path, zipf_limit: int, zipf_requests: int, seed: int
) -> dict[str, float]:
    """The child's measures with the code of ``root`` (this checkout or another commit's)."""
    result = subprocess.run(
        [sys.executable, "-c", CHILD, str(root), str(zipf_limit), str(zipf_requests), str(seed)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    if result.returncode:
        sys.exit(f"the measuring process failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def entry_rows(results: dict[str, dict[str, float]]) -> list[list[str]]:
    """Rows of what each commit's entries cost and the hit ratio they reach."""
    rows = []
    for name, child in results.items():
        rows.append(
            [
                name,
                f"{child['entry_bytes'] / max(child['entries'], 1):.0f} B",
                f"{child['zipf_entries']:,}",
                f"{child['zipf_hit_ratio']:.1%}",
            ]
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sites", type=int, default=1000)
    parser.add_argument("--per-site", type=int, default=100)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--baseline", help="also measure the entries of this commit (e.g. a tag or hash)")
    parser.add_argument("--zipf-limit-mib", type=int, default=64, help="ASSETCACHE_MEMORY_LIMIT of the hit-ratio run")
    parser.add_argument("--zipf-requests", type=int, default=400_000)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="assetcache-warm-bench-"))
    env = {
        "ASSETCACHE_TEST_DIR": str(workdir),
        "ASSETCACHE_TEST_INVALIDATION": "database",
        # Every body of this install fits this budget twice over.
        "ASSETCACHE_TEST_MEMORY_LIMIT": str(1024**3),
        "DJANGO_SETTINGS_MODULE": "tests.settings",
    }
    zipf_limit = args.zipf_limit_mib * 1024 * 1024
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

        child = measure_process(env, ROOT, zipf_limit, args.zipf_requests, args.seed)
        results = {"this commit": child}
        if args.baseline:
            baseline_root = workdir / "baseline"
            short = export(args.baseline, baseline_root)
            results[f"@{short}"] = measure_process(env, baseline_root, zipf_limit, args.zipf_requests, args.seed)
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
                "cache entry",
                f"{child['entry_bytes'] / max(child['entries'], 1):.0f} B/entry",
                "key and body excluded; goal ≤ 200 B",
            ],
        ]
        table = markdown_table(["measure", "value", "note"], rows)
        entries_table = markdown_table(
            ["code", "cache entry", f"entries held in {args.zipf_limit_mib} MiB", "Zipf hit ratio"],
            entry_rows(results),
        )
        print(table)
        print(entries_table)
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
                "reads its header and sorted path tables and replays the change feed (one query). "
                "*Snapshot index* and *cache entry* are measured with tracemalloc in that process. "
                "An entry is measured with its slots in the cache's dict and eviction queue, without "
                "its key (the tuple and the path) and its body, once every asset was asked for "
                "(a hit's reply is assembled for its request from the entry and the header tuples "
                "files share, and kept by nobody). Entries are built lazily, on a "
                "path's first request, from the snapshot: that first request needs no database query. "
                "An entry's own objects (the entry and its ETag) take about 155 B; its slots in the "
                "entries dict take 30 to 60 B more depending on where the dict is in its growth "
                "(CPython doubles it in steps: just past 87,381 entries it is at its emptiest), so the "
                "figure moves with the number of assets (tests/test_entry_cost.py measures 193 B over "
                "10,000 entries).",
                "",
                "## What an entry costs, and the hit ratio it buys",
                "",
                f"The same process then serves {args.zipf_requests:,} requests at paths chosen Zipf-like "
                "(the path of rank *r* with weight 1/*r*, over every asset) with "
                f"`ASSETCACHE_MEMORY_LIMIT` = {args.zipf_limit_mib} MiB; the hit ratio counts the last "
                "three quarters (the first quarter warms the cache). Bodies are held in memory and "
                "count against the limit too, so the entries held grow less than their bookkeeping "
                "shrinks.",
                "",
                entries_table,
                "",
                "## Set-up",
                "",
                f"- Populating the install (not measured above) took {populate_seconds:.1f} s.",
                f"- Load average (1 min) when measuring began: {load:.2f}.",
                *machine_lines(["Django", "django-assetcache"]),
                "",
                "Reproduce: `.venv/bin/python benchmarks/warm_bench.py` "
                "(`--baseline <commit>` measures another commit's entries on the same install).",
            ]
        )
        print(f"\nwrote {write_doc('benchmarks-warm.md', text).relative_to(ROOT)}")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
