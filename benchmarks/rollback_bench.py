"""Rollback of a large site: how soon every worker serves the old version, and what it stores.

    .venv/bin/python benchmarks/rollback_bench.py [--files 10000] [--rounds 5] [--workers 4]
                                                  [--backends database,postgres,redis] [--quick]

A site of ``--files`` small HTML, CSS and JS files is published twice (v1,
then v2, which differs in every file). For each invalidation backend,
gunicorn (``--workers`` sync workers, tests.pid_wsgi) serves it; client
threads probe a sample of its paths all along, each answer checked against
v1's and v2's exact bytes. Then, ``--rounds`` times, another process runs
``assetcache_rollback bench`` (v2 to v1) and ``assetcache_promote bench
<v2>`` (back to v2), and for each records

- *command*: how long the command took in that process (called to returned);
- *applied*: from its commit to the last worker's cache applying the change,
  as each worker reports it (X-Last-Change);
- *served*: from its commit to the end of the first response with the
  version made live from the last worker (the probes' gaps included);
- the bytes and files it added to the blob storage, the SQL statements it
  sent (and how many of them write), and *stale* answers: an answer with the
  other version from a worker to a request sent after its first answer with
  the new one had been read.

The publish of v2 is measured the same way, for comparison. Writes
docs/benchmarks-rollback.md.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, machine_lines, markdown_table, write_doc
from benchmarks.stacks import Backends, Prober, Stack, reached, stale_answers, warm
from tests.databases import CommandRun, Publisher
from tests.servers import gunicorn

POLL_INTERVAL = 1.0
PUSH_BACKENDS = ("postgres", "redis")
TARGET_SECONDS = 1.0
WORDS = ("asset", "cache", "deploy", "static", "site", "worker", "version", "manifest", "blob", "page", "layout")


# --- the site ---------------------------------------------------------------------------


def site_path(index: int) -> str:
    """A path of the site: 60 % HTML pages, 20 % stylesheets, 20 % scripts."""
    if index == 0:
        return "index.html"
    kind = index % 10
    if kind < 6:
        return f"docs/section-{index // 100:03d}/page-{index:05d}.html"
    if kind < 8:
        return f"assets/css/style-{index:05d}.css"
    return f"assets/js/module-{index:05d}.js"


def file_body(index: int, version: int) -> bytes:
    """The file's bytes in ``version``: the same text (300 B to 6 KiB) under a
    header naming the release, so every file differs between versions."""
    rng = random.Random(index)
    text = " ".join(rng.choices(WORDS, k=rng.randint(40, 800)))
    path = site_path(index)
    if path.endswith(".html"):
        return (
            f"<!doctype html><html><head><title>Page {index}</title>"
            f'<link rel="stylesheet" href="/assets/site.css?release={version}"></head>'
            f"<body><main><h1>Release {version}</h1><p>{text}</p></main></body></html>\n"
        ).encode()
    if path.endswith(".css"):
        return f"/* release {version} */\n.block-{index} {{ content: '{text[:200]}'; margin: 0 auto; }}\n".encode()
    return f"// release {version}\nexport const text{index} = {json.dumps(text)};\n".encode()


@dataclass
class Site:
    files: int
    directories: dict[int, Path]
    #: The probed request paths and the exact bytes each version answers.
    expected: dict[str, dict[int, bytes]]

    def classify(self, path: str, status: int, body: bytes) -> int:
        for version, wanted in self.expected[path].items():
            if status == 200 and body == wanted:
                return version
        raise RuntimeError(f"{path} answered {status}, neither version's bytes: {body[:100]!r}")


def make_site(base: Path, files: int, probes: int) -> Site:
    directories = {version: base / f"site-v{version}" for version in (1, 2)}
    for version, directory in directories.items():
        for index in range(files):
            target = directory / site_path(index)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(file_body(index, version))
    sample = [0, *random.Random("probes").sample(range(1, files), probes - 1)]
    expected = {
        "/" if index == 0 else f"/{site_path(index)}": {version: file_body(index, version) for version in (1, 2)}
        for index in sample
    }
    return Site(files, directories, expected)


def blob_usage(stack: Stack) -> tuple[int, int]:
    """(files, bytes) in the stack's blob storage."""
    count = size = 0
    for directory, _, names in os.walk(stack.work / "media" / "assetcache" / "blobs"):
        for name in names:
            count += 1
            size += os.stat(os.path.join(directory, name)).st_size
    return count, size


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Step:
    command: float
    applied: float
    served: float
    files_added: int
    bytes_added: int
    queries: int
    writes: int
    stale: int


@dataclass
class Result:
    backend: str
    operation: str
    steps: list[Step] = field(default_factory=list)

    def row(self) -> list[str]:
        def ms(pick: Callable[[Step], float], fn: Callable[[list[float]], float]) -> str:
            return f"{fn([pick(step) for step in self.steps]) * 1000:,.0f}"

        return [
            self.backend,
            self.operation,
            ms(lambda s: s.command, statistics.median),
            ms(lambda s: s.command, max),
            ms(lambda s: s.applied, statistics.median),
            ms(lambda s: s.applied, max),
            ms(lambda s: s.served, statistics.median),
            ms(lambda s: s.served, max),
            f"{max(s.bytes_added for s in self.steps):,} ({max(s.files_added for s in self.steps)} files)",
            f"{max(s.queries for s in self.steps)} ({max(s.writes for s in self.steps)})",
            str(sum(s.stale for s in self.steps)),
        ]

    def meets_target(self) -> bool:
        return max(s.served for s in self.steps) < TARGET_SECONDS and max(s.bytes_added for s in self.steps) == 0


@dataclass
class Published:
    backend: str
    seconds: float
    files_added: int
    bytes_added: int
    queries: int


@dataclass
class Round:
    """What one step needs: the runner, the probes and the workers."""

    stack: Stack
    runner: Publisher
    prober: Prober
    pids: set[str]
    rng: random.Random


def step(round_: Round, version: int, *command: str) -> tuple[Step, CommandRun]:
    """Run ``command`` (which makes ``version`` live) and wait until every
    worker serves it; then a pause, so stale answers would show."""
    files, size = blob_usage(round_.stack)
    run = round_.runner.run(*command)
    applied, served = reached(round_.prober, round_.pids, run.committed, version)
    time.sleep(round_.rng.uniform(0.3, 0.7))
    stale = stale_answers(round_.prober, run.committed, time.time(), version)
    files_after, size_after = blob_usage(round_.stack)
    measured = Step(
        run.committed - run.started,
        applied,
        served,
        files_after - files,
        size_after - size,
        run.queries,
        len(run.writes),
        stale,
    )
    return measured, run


@dataclass
class Measured:
    rollback: Result
    promote: Result
    published: Published
    writes: list[str]


def measure_stack(stack: Stack, site: Site, args: argparse.Namespace) -> Measured:
    rollback = Result(stack.backend, "rollback")
    promote = Result(stack.backend, "promote")
    with Publisher(stack.env) as runner:
        runner.run("assetcache_publish", "bench", site.directories[1])
        files, size = blob_usage(stack)
        publish = runner.run("assetcache_publish", "bench", site.directories[2])
        files_after, size_after = blob_usage(stack)
        published = Published(
            stack.backend, publish.committed - publish.started, files_after - files, size_after - size, publish.queries
        )
        v2 = json.loads(runner.run("assetcache_deployments", "bench", "--json").stdout)[0]["id"]
        paths = list(site.expected)
        with gunicorn(stack.work, workers=args.workers, app="tests.pid_wsgi:application", env=stack.env) as server:
            pids = warm(server, args.workers, site.classify, paths, probes=2 * args.workers * len(paths))
            with Prober(server.port, site.classify, paths) as prober:
                round_ = Round(stack, runner, prober, pids, random.Random(stack.backend))
                writes: list[str] = []
                for _ in range(args.rounds):
                    measured, run = step(round_, 1, "assetcache_rollback", "bench")
                    rollback.steps.append(measured)
                    writes = writes or run.writes
                    promote.steps.append(step(round_, 2, "assetcache_promote", "bench", v2)[0])
            if prober.errors:
                print(
                    f"  {stack.backend}: {len(prober.errors)} connection errors: {prober.errors[:3]}", file=sys.stderr
                )
    for result in (rollback, promote):
        print("  ".join(result.row()), flush=True)
    return Measured(rollback, promote, published, writes)


# --- the report ----------------------------------------------------------------------------

HEADERS = [
    "backend",
    "operation",
    "command median ms",
    "command max ms",
    "applied median ms",
    "applied max ms",
    "served median ms",
    "served max ms",
    "bytes stored",
    "queries (writes)",
    "stale answers",
]


def verdict(results: list[Measured]) -> str:
    push = [m.rollback for m in results if m.rollback.backend in PUSH_BACKENDS]
    if not push:
        return (
            "No push backend could be measured here: the target (under 1 s with a push backend, 0 bytes) is not judged."
        )
    held = all(result.meets_target() for result in push)
    worst = max(step.served for result in push for step in result.steps)
    return (
        f"**Target {'met' if held else 'missed'}**: with the push backends "
        f"({', '.join(result.backend for result in push)}) every worker served the old version at most "
        f"{worst * 1000:,.0f} ms after the rollback's commit (target: under 1 s), and the rollback stored "
        f"{max(step.bytes_added for result in push for step in result.steps):,} bytes (target: 0)."
    )


def report(results: list[Measured], args: argparse.Namespace, skipped: list[str]) -> str:
    rows = [result.row() for m in results for result in (m.rollback, m.promote)]
    published = markdown_table(
        ["backend", "publish of v2 s", "bytes stored", "blob files added", "queries"],
        [
            [p.backend, f"{p.seconds:,.2f}", f"{p.bytes_added:,}", f"{p.files_added:,}", f"{p.queries:,}"]
            for p in (m.published for m in results)
        ],
    )
    writes = next((m.writes for m in results if m.writes), [])
    lines = [
        "# Benchmark: rollback of a large site",
        "",
        f"A site of {args.files:,} small HTML, CSS and JS files (300 B to 6 KiB) is published as v1, then as v2, "
        f"which differs in every file. gunicorn with {args.workers} sync workers serves it while three client "
        f"threads probe {args.probes} of its paths on fresh connections, every answer compared with v1's and v2's "
        f"exact bytes. Another process then runs, {args.rounds} times, `assetcache_rollback bench` (back to v1) "
        "and `assetcache_promote bench <v2>` (forward again).",
        "",
        "*command*: the management command, called to returned, in its process. *applied*: from its commit to"
        " the last worker's cache applying the change, as the workers report it (a push is sent at the "
        "commit, before the command has returned and read the clock, so this can come out just under 0). "
        "*served*: from its commit to the end of the first response carrying the version made live from the "
        "last worker (the probes' gaps included). Median and maximum over the rounds. *bytes stored*: what "
        "the command added to the blob storage (the most in any round, with the blob files). *queries "
        "(writes)*: SQL statements the command sent, and of them INSERT, UPDATE and DELETE. *stale answers*: "
        "answers with the other version from a worker to a request sent after the client had read its first "
        "answer with the new one (none may come). Every backend also polls the change feed every "
        f"{POLL_INTERVAL:g} s (`ASSETCACHE_POLL_INTERVAL`, the default): for `database` it is the only way a "
        "change arrives, a reference row.",
        "",
        markdown_table(HEADERS, rows),
        "",
        verdict(results),
        "",
        "The first rollback finds no v1 entry cached (the workers started on v2), so each probed path is read "
        "again from the database once; later switches find both deployments' entries cached, which are keyed by "
        "deployment and never change. Either way the worker's share of a switch does not grow with the size of "
        "the site: it drops the site's host-map entries, it moves or reads no files.",
        "",
        "For comparison, the publish of v2 (every file changed), in the same process:",
        "",
        published,
        "",
    ]
    if writes:
        lines += [
            "The statements a rollback writes (first round, first backend; cut at 200 characters):",
            "",
            "```sql",
            *writes,
            "```",
            "",
        ]
    if skipped:
        lines += [f"Not measured: {', '.join(skipped)}.", ""]
    lines += [
        "## Set-up",
        "",
        "- Everything on one machine, over loopback: gunicorn, the process running the commands, the client, "
        "and for `postgres` and `redis` a throwaway PostgreSQL (`fsync=off`) or redis-server.",
        "- Database: SQLite for `database` and `redis`; PostgreSQL for `postgres`. Blob storage: the file "
        "system. Settings: `tests.settings`.",
        *machine_lines(["Django", "gunicorn", "psycopg", "redis", "django-assetcache"]),
        f"- PostgreSQL: {args.postgres_version}; redis-server: {args.redis_version}",
        f"- Load average (1 min) at start and end: {args.load_start:.2f}, {os.getloadavg()[0]:.2f}",
        "",
        "Reproduce: `.venv/bin/python benchmarks/rollback_bench.py` (or `make bench-rollback`; `--quick` for "
        "1,000 files and one round).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5, help="rollbacks (and promotes) per backend")
    parser.add_argument("--probes", type=int, default=24, help="paths the clients probe")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--backends", default="database,postgres,redis")
    parser.add_argument("--quick", action="store_true", help="1,000 files, one round: a smoke run")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/ alone")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.rounds = 1_000, 1
    args.load_start = os.getloadavg()[0]
    backends = [name.strip() for name in args.backends.split(",") if name.strip()]

    base = Path(tempfile.mkdtemp(prefix="assetcache-rollback-bench-"))
    results: list[Measured] = []
    try:
        site = make_site(base, args.files, args.probes)
        with Backends(base, backends, POLL_INTERVAL) as servers:
            args.postgres_version, args.redis_version = servers.postgres_version, servers.redis_version
            skipped = servers.skipped
            for stack in servers.stacks():
                results.append(measure_stack(stack, site, args))
    finally:
        shutil.rmtree(base, ignore_errors=True)
    text = report(results, args, skipped)
    print()
    print(markdown_table(HEADERS, [result.row() for m in results for result in (m.rollback, m.promote)]))
    print(verdict(results))
    if not args.no_write:
        print(f"\nwrote {write_doc('benchmarks-rollback.md', text).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
