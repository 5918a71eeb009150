"""Change propagation: how soon every worker serves a commit, and what a backend costs a hit.

    .venv/bin/python benchmarks/propagation_bench.py [--publishes 20] [--seconds 5] [--workers 3]
                                                     [--backends database,postgres,redis]

For each invalidation backend, gunicorn (``--workers`` sync workers) serves a
small site; another process publishes a new version ``--publishes`` times,
0.3 to 0.7 s apart (so the database backend's poll is met at every phase).
For each publish it records

- *applied*: from the commit (the publish returning in the publishing
  process) to the last worker's cache applying the change, as each worker
  reports it (X-Last-Change, see tests/pid_wsgi.py);
- *served*: from the commit to the end of the first response with the new
  version from the last worker, as seen by three client threads probing on
  fresh connections (includes the probes' own gaps).

Then requests/s of a 1 KiB cache hit on the plain test project
(tests.wsgi) with each backend and with ``local`` (no propagation at all):
wrk when installed, else a Python http.client loop (much slower; the client
is the bottleneck). PostgreSQL and redis are throwaway servers started here
(SQLite is the database for the other backends). Every backend polls every
``ASSETCACHE_POLL_INTERVAL`` = 1 s (the default), the push backends as a
safety net. Writes docs/benchmarks-propagation.md.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, machine_lines, markdown_table, write_doc
from benchmarks.stacks import HOST, Backends, Prober, Stack, reached, warm
from tests.databases import Publisher
from tests.servers import gunicorn, http_request

POLL_INTERVAL = 1.0
KIB_BODY = b"<!doctype html>" + b"x" * (1024 - len(b"<!doctype html>"))
VERSION_RE = re.compile(rb"version (\d+)")


def version_files(number: int) -> dict[str, bytes]:
    return {
        "index.html": f"<!doctype html><title>Bench</title><p>version {number}</p>".encode(),
        "1k.html": KIB_BODY,
        "404.html": b"<!doctype html><title>Not here</title>",
    }


def write_version(base: Path, number: int) -> Path:
    directory = base / f"v{number}"
    for name, body in version_files(number).items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    return directory


def measure(prober: Prober, publisher: Publisher, base: Path, number: int, pids: set[str]) -> tuple[float, float]:
    """(applied, served) seconds after the commit of version ``number``,
    the probes running all along (a worker polls the database backend's feed
    on requests: steady traffic, not a burst started just before the commit)."""
    committed = publisher.publish("bench", write_version(base, number))
    return reached(prober, pids, committed, number)


def version_of(path: str, status: int, body: bytes) -> int:
    """The version number a probe of the page carries."""
    match = VERSION_RE.search(body)
    if status != 200 or match is None:
        raise RuntimeError(f"unexpected answer {status}: {body[:100]!r}")
    return int(match.group(1))


def throughput(port: int, seconds: float) -> tuple[float, str]:
    url = f"http://127.0.0.1:{port}/1k.html"
    status, _, body = http_request(port, "/1k.html", HOST)
    if status != 200 or body != KIB_BODY:
        raise RuntimeError(f"1 KiB hit answered {status}")
    if shutil.which("wrk"):
        result = subprocess.run(
            ["wrk", "-t", "2", "-c", "16", "-d", f"{seconds:g}s", "-H", f"Host: {HOST}", url],
            capture_output=True,
            text=True,
            check=True,
        )
        match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)", result.stdout)
        if match is None or errors is not None:
            raise RuntimeError(f"wrk: {result.stdout}")
        return float(match.group(1)), "wrk -t2 -c16"
    count = 0
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def loop() -> None:
        nonlocal count
        while time.monotonic() < end:
            http_request(port, "/1k.html", HOST)
            with lock:
                count += 1

    threads = [threading.Thread(target=loop) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return count / seconds, "http.client, 8 threads"


@dataclass
class Result:
    backend: str
    applied: list[float] = field(default_factory=list)
    served: list[float] = field(default_factory=list)
    rps: float = 0.0
    rates: list[float] = field(default_factory=list)
    client: str = ""

    def row(self) -> list[str]:
        def ms(values: list[float], fn: object) -> str:
            return f"{fn(values) * 1000:,.0f}" if values else "–"  # type: ignore[operator]

        return [
            self.backend,
            ms(self.applied, statistics.median),
            ms(self.applied, max),
            ms(self.served, statistics.median),
            ms(self.served, max),
            f"{self.rps:,.0f}",
            f"{min(self.rates):,.0f}–{max(self.rates):,.0f}" if self.rates else "–",
        ]


def propagation(stack: Stack, args: argparse.Namespace, result: Result) -> None:
    rng = random.Random(stack.backend)
    with Publisher(stack.env) as publisher:
        publisher.publish("bench", write_version(stack.work, 0))
        if stack.backend == "local":
            return  # nothing propagates
        with gunicorn(stack.work, workers=args.workers, app="tests.pid_wsgi:application", env=stack.env) as server:
            pids = warm(server, args.workers, version_of)
            with Prober(server.port, version_of) as prober:
                for number in range(1, args.publishes + 1):
                    time.sleep(rng.uniform(0.3, 0.7))
                    applied, served = measure(prober, publisher, stack.work, number, pids)
                    result.applied.append(applied)
                    result.served.append(served)
            if prober.errors:
                print(
                    f"  {stack.backend}: {len(prober.errors)} connection errors while probing: {prober.errors[:3]}",
                    file=sys.stderr,
                )
    print(f"{stack.backend:9} {' '.join(f'{cell:>8}' for cell in result.row()[1:5])}", flush=True)


def hit_rates(stacks: list[Stack], results: dict[str, Result], args: argparse.Namespace) -> None:
    """Every backend's server runs at once; the throughput runs alternate
    between them (``--rounds`` times) and the median counts, so a busy
    moment of the machine does not fall on one backend only."""
    with ExitStack() as servers:
        ports = {}
        for stack in stacks:
            server = servers.enter_context(
                gunicorn(stack.work, workers=args.workers, app="tests.wsgi:application", env=stack.env)
            )
            throughput(server.port, 1.0)  # every worker has the file cached
            ports[stack.backend] = server.port
        rates: dict[str, list[float]] = {stack.backend: [] for stack in stacks}
        for _ in range(args.rounds):
            for stack in stacks:
                rate, client = throughput(ports[stack.backend], args.seconds)
                rates[stack.backend].append(rate)
                results[stack.backend].client = client
    for backend, values in rates.items():
        results[backend].rps = statistics.median(values)
        results[backend].rates = values
        print(f"{backend:9} 1 KiB hits/s: {' '.join(f'{v:,.0f}' for v in values)}", flush=True)


HEADERS = [
    "backend",
    "applied median ms",
    "applied max ms",
    "served median ms",
    "served max ms",
    "1 KiB hits/s",
    "runs min–max",
]


def report(results: list[Result], args: argparse.Namespace, skipped: list[str]) -> str:
    client = results[0].client if results else ""
    lines = [
        "# Benchmark: change propagation",
        "",
        f"gunicorn with {args.workers} sync workers serves a small site; another process publishes a new "
        f"version {args.publishes} times (0.3–0.7 s apart). *applied*: from the commit to the last worker's "
        "cache applying the change, as the workers report it; *served*: from the commit to the end of the "
        "first response carrying the new version from the last worker, seen by three client threads "
        "probing on fresh connections (their gaps included). Median and maximum over the publishes. "
        f"Every backend also polls the feed every {POLL_INTERVAL:g} s (`ASSETCACHE_POLL_INTERVAL`, the "
        "default); the push backends only as a safety net.",
        "",
        f"*1 KiB hits/s*: one cached 1 KiB file over loopback ({client}, a new connection per request as "
        f"gunicorn's sync workers close them) on the plain test project (middleware); median of {args.rounds} "
        f"runs of {args.seconds:g} s, the backends taking turns. `local` has no propagation at all: the "
        "baseline for what polling or a listener thread costs. Where the ranges of the runs overlap, "
        "the difference is noise: a hit costs the same with every backend (one clock comparison for "
        "the poll; the listener thread sleeps in a socket read).",
        "",
        markdown_table(HEADERS, [result.row() for result in results]),
        "",
    ]
    if skipped:
        lines += [f"Not measured: {', '.join(skipped)}.", ""]
    lines += [
        "## Set-up",
        "",
        "- Everything on one machine, over loopback: gunicorn, the publishing process, the client, "
        "and for `postgres` and `redis` a throwaway PostgreSQL (`fsync=off`) or redis-server.",
        "- Database: SQLite for `local`, `database` and `redis`; PostgreSQL for `postgres`. "
        "Settings: `tests.settings`.",
        *machine_lines(["Django", "gunicorn", "psycopg", "redis", "django-assetcache"]),
        f"- PostgreSQL: {args.postgres_version}; redis-server: {args.redis_version}",
        f"- Load average (1 min) at start and end: {args.load_start:.2f}, {os.getloadavg()[0]:.2f} "
        "(other work on the machine shows up as spread between runs)",
        "",
        "Reproduce: `.venv/bin/python benchmarks/propagation_bench.py` (or `make bench-propagation`).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--publishes", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each throughput run")
    parser.add_argument("--rounds", type=int, default=3, help="throughput runs per backend (median)")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--backends", default="local,database,postgres,redis")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/ alone")
    args = parser.parse_args(argv)
    args.load_start = os.getloadavg()[0]
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]

    base = Path(tempfile.mkdtemp(prefix="assetcache-propagation-bench-"))
    results: dict[str, Result] = {}
    try:
        with Backends(base, backends, POLL_INTERVAL) as servers:
            args.postgres_version, args.redis_version = servers.postgres_version, servers.redis_version
            skipped = servers.skipped
            stacks = servers.stacks()
            print(
                f"{'backend':9} {'applied':>8} {'max':>8} {'served':>8} {'max':>8}  (ms after the commit)", flush=True
            )
            for stack in stacks:
                results[stack.backend] = Result(stack.backend)
                propagation(stack, args, results[stack.backend])
            hit_rates(stacks, results, args)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    ordered = [results[backend] for backend in backends if backend in results]
    text = report(ordered, args, skipped)
    print()
    print(markdown_table(HEADERS, [result.row() for result in ordered]))
    if not args.no_write:
        print(f"\nwrote {write_doc('benchmarks-propagation.md', text).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
