"""Scale: how each cost grows from 10,000 to 1,000,000 assets.

    .venv/bin/python benchmarks/scale_bench.py [--quick] [--sizes 10000,100000]
                                               [--databases sqlite,postgres] [--duration 10]

For each size (100 files a site: 100 / 1,000 / 10,000 sites) and database, in
a throwaway directory: the install is generated (benchmarks/scale_install.py:
real publishes for 30 template sites and 3 more at the end, the rest cloned in
bulk), ``assetcache_warmup`` builds the snapshot; a fresh process hydrates
(``django_assetcache.warm()``, three times); gunicorn with 4 sync workers
(each hydrating in ``post_fork``) then answers: 500 first requests for
assets (miss latency), wrk at random paths over every asset (uniform and
Zipf-like), and 5 publishes of a small site (change propagation to the 4
workers). Results accumulate in benchmarks/scale_results.json (one entry per
database and size, so sizes can be run apart, each with when it was measured
and the snapshot format it measured); docs/benchmarks-scale.md and
docs/images/benchmarks-scale.png are written from all of them.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, percentile, process_memory
from benchmarks.propagation_bench import Prober, measure, version_of, warm, write_version
from benchmarks.scale_report import write_report
from benchmarks.serve_bench import children, parse_wrk
from tests.databases import MigratedDatabases, PostgresServer, Publisher, django_environ, start_postgres
from tests.servers import gunicorn, http_request

PER_SITE = 100
SIZES = (10_000, 100_000, 1_000_000)
QUICK_SIZES = (10_000, 100_000)
WORKERS = 4
RESULTS = ROOT / "benchmarks" / "scale_results.json"
MISSES = 500
PUBLISHES = 5

HYDRATE = r"""
import json, os, sys, time
sys.path.insert(0, sys.argv[1])
import django
django.setup()
from benchmarks.common import process_memory
import django_assetcache
before = process_memory()
started = time.perf_counter()
cache = django_assetcache.warm()
seconds = time.perf_counter() - started
after = process_memory()
print(json.dumps({"seconds": seconds, "before": before, "after": after}))
"""


def build(work: Path, env: dict[str, str], sites: int) -> dict[str, float]:
    result = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scale_install.py"), "--sites", str(sites), "--workdir", str(work)],
        env=django_environ(env),
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    for line in result.stdout.splitlines():
        if line.startswith("SCALE_JSON "):
            return json.loads(line.removeprefix("SCALE_JSON "))
    raise RuntimeError(f"building the install failed:\n{result.stdout}\n{result.stderr}")


def hydrate(env: dict[str, str], runs: int = 3) -> dict[str, float]:
    """Median hydration time of ``runs`` fresh processes; memory of the median one."""
    samples = []
    for _ in range(runs):
        result = subprocess.run(
            [sys.executable, "-c", HYDRATE, str(ROOT)],
            env=django_environ(env),
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        samples.append(json.loads(result.stdout.strip().splitlines()[-1]))
    samples.sort(key=lambda sample: sample["seconds"])
    middle = samples[len(samples) // 2]
    return {
        "hydrate_seconds": middle["seconds"],
        "hydrate_rss_growth": middle["after"]["rss"] - middle["before"]["rss"],
        "hydrate_anon_growth": middle["after"]["anon"] - middle["before"]["anon"],
        "hydrate_rss": middle["after"]["rss"],
    }


def worker_memory(server_pid: int) -> dict[str, float]:
    """Largest RSS among the workers, and its anonymous part."""
    memories = [process_memory(pid) for pid in children(server_pid)]
    largest = max(memories, key=lambda memory: memory["rss"])
    return {"rss": largest["rss"], "anon": largest["anon"]}


def miss_latency(port: int, lines: list[str]) -> dict[str, float]:
    """Seconds for first requests of ``lines`` (``host path``), one after another."""
    seconds = []
    for line in lines:
        host, path = line.split(" ", 1)
        started = time.perf_counter()
        status, _, _ = http_request(port, path, host)
        seconds.append(time.perf_counter() - started)
        if status != 200:
            raise RuntimeError(f"{host}{path} answered {status}")
    return {"miss_p50_ms": percentile(seconds, 0.5) * 1000, "miss_p99_ms": percentile(seconds, 0.99) * 1000}


def wrk_rate(port: int, work: Path, zipf: bool, seconds: float) -> float:
    script = work / "scale.lua"
    if not script.exists():
        lua = [(ROOT / "benchmarks" / name).read_text() for name in ("wrk_report.lua", "wrk_scale_paths.lua")]
        script.write_text("\n".join(lua))
    command = ["wrk", "-t2", "-c16", f"-d{seconds:g}s", "--latency", "-s", str(script), f"http://127.0.0.1:{port}/"]
    env = {**os.environ, "BENCH_PATHS": str(work / "paths.txt"), "BENCH_ZIPF": "1" if zipf else "0"}
    sample = parse_wrk(subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout)
    if sample.errors:
        raise RuntimeError(f"wrk counted {sample.errors} errors")
    return sample.requests_per_s


def serve(work: Path, env: dict[str, str], args: argparse.Namespace) -> dict[str, float]:
    found: dict[str, float] = {}
    lines = (work / "paths.txt").read_text().splitlines()
    rng = random.Random(len(lines))
    server_env = {**env, "ASSETCACHE_TEST_WARM": "1"}
    with Publisher(env) as publisher:
        publisher.publish("bench", write_version(work, 0))
        with gunicorn(work, workers=WORKERS, app="tests.pid_wsgi:application", env=server_env) as server:
            pids = warm(server, WORKERS, version_of)
            hydrated = worker_memory(server.process.pid)
            found.update(miss_latency(server.port, rng.sample(lines, MISSES)))
            for name, zipf in (("uniform", False), ("zipf", True)):
                wrk_rate(server.port, work, zipf, args.duration / 2)  # entries built as far as memory allows
                found[f"{name}_rps"] = wrk_rate(server.port, work, zipf, args.duration)
            served = worker_memory(server.process.pid)
            applied = []
            with Prober(server.port, version_of) as prober:
                for number in range(1, PUBLISHES + 1):
                    time.sleep(rng.uniform(0.3, 0.7))
                    applied.append(measure(prober, publisher, work, number, pids)[0])
    found.update(
        {
            "worker_rss_hydrated": hydrated["rss"],
            "worker_anon_hydrated": hydrated["anon"],
            "worker_rss_served": served["rss"],
            "worker_anon_served": served["anon"],
            "propagation_ms": statistics.median(applied) * 1000,
            "propagation_max_ms": max(applied) * 1000,
        }
    )
    return found


def measure_size(
    base: Path, database: str, databases: MigratedDatabases, assets: int, args: argparse.Namespace
) -> dict[str, float]:
    work = base / f"{database}-{assets}"
    work.mkdir()
    env = {
        **databases.env(work),
        "ASSETCACHE_TEST_DIR": str(work),
        "ASSETCACHE_TEST_MEDIA_ROOT": str(work / "media"),
        "ASSETCACHE_TEST_INVALIDATION": "postgres" if database == "postgres" else "database",
        "ASSETCACHE_TEST_POLL_INTERVAL": "1.0",
    }
    load = os.getloadavg()[0]
    result = build(work, env, assets // PER_SITE)
    print(f"  built: {json.dumps(result)}", flush=True)
    result.update(hydrate(env))
    print(f"  hydrated: {result['hydrate_seconds']:.3f} s, +{result['hydrate_rss_growth'] / 2**20:.0f} MiB", flush=True)
    result.update(serve(work, env, args))
    result["load"] = load
    result["finished"] = time.time()  # the doc says when each row was measured
    shutil.rmtree(work, ignore_errors=True)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="10,000 and 100,000 assets only")
    parser.add_argument("--sizes", help="comma-separated asset counts (multiples of 100)")
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each measured wrk run")
    parser.add_argument("--report-only", action="store_true", help="rewrite the doc from the stored results")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")] if args.sizes else list(QUICK_SIZES if args.quick else SIZES)
    results = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
    base = Path(tempfile.mkdtemp(prefix="assetcache-scale-bench-"))
    postgres: PostgresServer | None = None
    try:
        for database in [] if args.report_only else args.databases.split(","):
            if database == "postgres":
                postgres = start_postgres()
            databases = MigratedDatabases(base, postgres if database == "postgres" else None)
            for assets in sizes:
                print(f"{database} {assets:,} assets", flush=True)
                results[f"{database} {assets}"] = measure_size(base, database, databases, assets, args)
                RESULTS.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
            databases.drop_all()
    finally:
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(base, ignore_errors=True)
    print(f"wrote {write_report(results).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
