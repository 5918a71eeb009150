"""The benchmark suite (``make bench``): django-assetcache against whitenoise,
servestatic and nginx, over WSGI and ASGI servers.

    .venv/bin/python benchmarks/run.py [--quick] [--rounds N] [--duration S] [--only LABEL,…]

Every contender serves the same generated files from a free loopback port;
wrk drives them one after another within each case, and the order of the
contenders rotates from round to round (A B C …, B C … A, …), so drift on the
machine falls on all of them alike. Prints the table and writes
docs/benchmarks.md and docs/images/benchmarks.png. Needs wrk
(``apt-get install wrk``); nginx (``apt-get install nginx-light``) is
skipped with a note when missing.
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
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import serve_bench
from benchmarks.cases import (
    ACCESS_COOKIE,
    CASES,
    MANY_HOST,
    MANY_SITE,
    MEMORY_CASES,
    PRIVATE_HOST,
    PRIVATE_SITE,
    WARM_REQUESTS,
    Case,
    many_path,
    write_many_files,
)
from benchmarks.common import ROOT
from benchmarks.contenders import FAST_PATH, MIDDLEWARE, Contender, Server, available, running
from benchmarks.load import etag, run_wrk
from benchmarks.serve_bench import Sample
from tests.servers import http_request


@dataclass
class Memory:
    """How one server's workers' VmRSS and VmHWM (KiB) changed over each run of a case."""

    first: dict[int, tuple[int, int]] = field(default_factory=dict)  # pid → before the first run
    runs: list[dict[int, tuple[int, int]]] = field(default_factory=list)  # pid → growth, per run

    def growth_kib(self, index: int, runs: slice = slice(None)) -> int:
        """The largest growth of one worker over one run (of ``runs``): index 0 is VmRSS, 1 is VmHWM."""
        return max((growth[index] for run in self.runs[runs] for growth in run.values()), default=0)


@dataclass
class Results:
    samples: dict[tuple[str, str], list[Sample]] = field(default_factory=dict)  # (case, contender)
    memory: dict[tuple[str, str], Memory] = field(default_factory=dict)  # (case, contender)
    sendfile: dict[str, dict[str, object]] = field(default_factory=dict)  # contender → gunicorn's record
    load: tuple[float, float] = (0.0, 0.0)
    seconds: float = 0.0

    def get(self, case: str, contender: str) -> list[Sample] | None:
        return self.samples.get((case, contender))


@dataclass(frozen=True)
class PairMedians:
    """Medians of two contenders on one case (``one`` against ``other``)."""

    rps: float
    other_rps: float
    cpu: float
    other_cpu: float

    @property
    def cpu_ratio(self) -> float:
        return self.cpu / self.other_cpu

    def cells(self) -> list[str]:
        """req/s of each, their ratio, CPU µs per request of each, their ratio."""
        return [
            f"{self.rps:,.0f}",
            f"{self.other_rps:,.0f}",
            f"{self.rps / self.other_rps:.2f}×",
            f"{self.cpu:,.0f}",
            f"{self.other_cpu:,.0f}",
            f"{self.cpu_ratio:.2f}×",
        ]


def pair_medians(results: Results, case: str, one: str, other: str) -> PairMedians | None:
    """The medians of contenders ``one`` and ``other`` on ``case``; None if either has no samples."""
    mine, theirs = results.get(case, one), results.get(case, other)
    if not mine or not theirs:
        return None
    return PairMedians(
        statistics.median(s.requests_per_s for s in mine),
        statistics.median(s.requests_per_s for s in theirs),
        statistics.median(s.cpu_us_per_request for s in mine),
        statistics.median(s.cpu_us_per_request for s in theirs),
    )


# --- preparing the sites ------------------------------------------------------------------------


def prepare(workdir: Path, files: int) -> None:
    """The benchmark site and its warm snapshot (serve_bench's), then a site
    of ``files`` small files published after the snapshot: only the database
    knows its paths."""
    serve_bench.prepare(workdir)
    from django_assetcache.publish import publish

    many_dir = workdir / MANY_SITE
    write_many_files(many_dir, files)
    print(publish(MANY_SITE, many_dir))
    check_misses_query_database()
    prepare_private_site(workdir / "site")


def prepare_private_site(site_dir: Path) -> None:
    """A login site with the benchmark site's files, a user, and that user's
    access cookie for it (``cases.ACCESS_COOKIE``)."""
    import time

    from django.contrib.auth.models import User

    from django_assetcache.access import make_cookie
    from django_assetcache.models import Site
    from django_assetcache.publish import publish

    print(publish(PRIVATE_SITE, site_dir))
    site = Site.objects.get(subdomain=PRIVATE_SITE)
    site.visibility = "login"
    site.save()
    user = User.objects.create_user("bench")
    ACCESS_COOKIE[:] = [f"assetcache_access={make_cookie(('u', user.pk), site.pk, PRIVATE_HOST, time.time() + 86400)}"]


def check_misses_query_database() -> None:
    """A path of the many-files site costs a database query in a fresh cache
    loaded from the snapshot, as in a freshly started worker."""
    from django.db import connections

    from django_assetcache import runtime
    from django_assetcache.serve import answer

    cache = runtime.get_cache()
    queries = cache.loader.queries
    no_headers: dict[str, str] = {}
    reply = answer(MANY_HOST, many_path(1), "GET", "", no_headers.get)
    if reply is None or reply.status != 200 or cache.loader.queries == queries:
        raise RuntimeError(f"a miss on {MANY_HOST} did not query the database: {reply}")
    runtime.reset()
    connections.close_all()


# --- checking and warming each server -----------------------------------------------------------


def warm_and_check(server: Server, cases: Iterable[Case]) -> None:
    """Warm the workers, check every answer, learn the server's ETags."""
    for case in cases:
        if runs(server.contender, case):
            for _ in range(WARM_REQUESTS):
                check(server, case)


def check(server: Server, case: Case) -> None:
    path = many_path(random.randrange(100)) if case.random_paths else case.path
    headers = case.request_headers()
    if case.conditional:
        headers["If-None-Match"] = etag(server, case)
    status, _, body = http_request(server.port, path, case.host, headers=headers)
    if status != case.status or (case.length is not None and len(body) != case.length):
        expected = f"{case.status}, {case.length} bytes"
        raise RuntimeError(f"{server.contender.name}, {case.name}: {status}, {len(body)} bytes (expected {expected})")


def runs(contender: Contender, case: Case) -> bool:
    if contender.only_cases is not None and case.name not in contender.only_cases:
        return False
    return contender.assetcache or not case.assetcache_only


# --- memory -------------------------------------------------------------------------------------


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, VmHWM) of a process, in KiB."""
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, rest = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            values[name] = int(rest.split()[0])
    return values["VmRSS"], values["VmHWM"]


def worker_memory(server: Server) -> dict[int, tuple[int, int]]:
    return {pid: memory_kib(pid) for pid in server.workers()}


def record_growth(memory: Memory, before: dict[int, tuple[int, int]], after: dict[int, tuple[int, int]]) -> None:
    for pid, reading in before.items():
        memory.first.setdefault(pid, reading)
    memory.runs.append(
        {pid: (after[pid][0] - before[pid][0], after[pid][1] - before[pid][1]) for pid in before.keys() & after.keys()}
    )


# --- the interleaved run ------------------------------------------------------------------------


def measure(servers: list[Server], args: argparse.Namespace) -> Results:
    results = Results()
    started = time.monotonic()
    load_before = os.getloadavg()[0]
    for round_index in range(args.rounds):
        shift = round_index % len(servers)
        order = servers[shift:] + servers[:shift]
        for case in args.selected_cases:
            warm_page_cache(args.workdir)
            for server in order:
                if runs(server.contender, case):
                    sample = measure_one(server, case, args, results)
                    results.samples.setdefault((case.name, server.contender.name), []).append(sample)
                    print_sample(round_index, args.rounds, case, server, sample)
    results.load = (load_before, os.getloadavg()[0])
    results.seconds = time.monotonic() - started
    return results


def warm_page_cache(workdir: Path) -> None:
    """Read every file the servers may read (the source directory, the blob
    store, the snapshot, the database) so that the case's runs find them in
    the page cache. Some machines page out file pages idle for a while (this
    benchmark's VM does after 30 s); a case's runs would then also measure
    the disk, first server in the rotation most."""
    for top in (workdir / "site", workdir / "media", workdir / "db.sqlite3"):
        paths = [top] if top.is_file() else (path for path in top.rglob("*") if path.is_file())
        for path in paths:
            with open(path, "rb") as file:
                while file.read(1 << 20):
                    pass


def measure_one(server: Server, case: Case, args: argparse.Namespace, results: Results) -> Sample:
    if case.name not in MEMORY_CASES or not server.contender.python:
        return run_wrk(server, case, args)
    before = worker_memory(server)
    sample = run_wrk(server, case, args)
    memory = results.memory.setdefault((case.name, server.contender.name), Memory())
    record_growth(memory, before, worker_memory(server))
    return sample


def print_sample(round_index: int, rounds: int, case: Case, server: Server, sample: Sample) -> None:
    print(
        f"round {round_index + 1}/{rounds}  {case.name:<26} {server.contender.name:<26} "
        f"{sample.requests_per_s:>9,.0f} req/s {sample.mib_per_s:>8,.1f} MiB/s  "
        f"p50 {sample.p50_ms:6.2f} ms  p99 {sample.p99_ms:7.2f} ms  "
        f"{sample.cpu_us_per_request:>6,.0f} CPU µs/req  errors {sample.errors}",
        flush=True,
    )


# --- sendfile for ranges ------------------------------------------------------------------------


def check_sendfile(contenders: list[Contender], workdir: Path, max_entries: int) -> dict[str, dict[str, object]]:
    """One 5 MiB range request to each gunicorn contender of ours, under
    tests/gunicorn_conf.py, which records how gunicorn sent the body."""
    records: dict[str, dict[str, object]] = {}
    range_case = next(case for case in CASES if case.status == 206)
    for contender in contenders:
        if contender.name not in (MIDDLEWARE, FAST_PATH):
            continue
        log_path = workdir / f"sendfile-{contender.label.replace(' ', '-')}.jsonl"
        env = {
            **contender.env,
            "GUNICORN_CMD_ARGS": f"--config {ROOT / 'tests' / 'gunicorn_conf.py'}",
            "ASSETCACHE_SENDFILE_LOG": str(log_path),
        }
        with running(replace(contender, env=env), workdir, max_entries) as server:
            check(server, range_case)
        records[contender.name] = json.loads(log_path.read_text().splitlines()[-1])
    return records


# --- main ---------------------------------------------------------------------------------------


def add_run_options(parser: argparse.ArgumentParser, rounds: int) -> None:
    """The options of every run of wrk rounds (this one, compare_commits,
    metrics_serve_bench)."""
    parser.add_argument("--rounds", type=int, default=rounds)
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections")
    parser.add_argument("--no-doc", action="store_true", help="print the table, write no doc or chart")


def wrk_missing() -> bool:
    """Whether wrk is missing (said on stderr): nothing can be measured."""
    if shutil.which("wrk") is not None:
        return False
    print("wrk is not installed: apt-get install wrk (or build it from github.com/wg/wrk)", file=sys.stderr)
    return True


def measure_contenders(
    contenders: list[Contender],
    args: argparse.Namespace,
    max_entries: int = 64,
    check_servers: Callable[[list[Server]], None] | None = None,
) -> Results:
    """Start every contender, check each answers every selected case (and
    ``check_servers``, given the running servers, checks more), then measure
    them all, interleaved (``measure``)."""
    with ExitStack() as stack:
        servers = [stack.enter_context(running(c, args.workdir, max_entries)) for c in contenders]
        for server in servers:
            warm_and_check(server, args.selected_cases)
        if check_servers is not None:
            check_servers(servers)
        return measure(servers, args)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 1 s per case")
    add_run_options(parser, rounds=3)
    parser.add_argument("--files", type=int, default=20_000, help="files of the site the miss case asks for")
    parser.add_argument("--max-entries", type=int, default=64, help="ASSETCACHE_MAX_ENTRIES of the servers")
    parser.add_argument("--only", default="", help="comma-separated contender labels (default: all)")
    parser.add_argument("--cases", default="", help="comma-separated case labels (default: all)")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 1
    return args


def select_cases(args: argparse.Namespace) -> list[Case]:
    if not args.cases:
        return CASES
    wanted = {label.strip() for label in args.cases.split(",")}
    return [case for case in CASES if case.label in wanted or case.name in wanted]


def select(args: argparse.Namespace) -> list[Contender] | None:
    if wrk_missing():
        return None
    nginx_found = shutil.which("nginx") is not None
    if not nginx_found:
        print("note: nginx is not installed (apt-get install nginx-light): its contender is skipped", file=sys.stderr)
    contenders = available(nginx_found)
    if args.only:
        wanted = {label.strip() for label in args.only.split(",")}
        contenders = [c for c in contenders if c.label in wanted or c.name in wanted]
    return contenders


def main() -> int:
    args = parse_args()
    contenders = select(args)
    if not contenders:
        return 2
    args.selected_cases = select_cases(args)
    from benchmarks import run_report

    args.workdir = Path(tempfile.mkdtemp(prefix="assetcache-bench-"))
    try:
        prepare(args.workdir, args.files)
        with ExitStack() as stack:
            servers = [stack.enter_context(running(c, args.workdir, args.max_entries)) for c in contenders]
            for server in servers:
                warm_and_check(server, args.selected_cases)
            results = measure(servers, args)
            headers = {server.contender.name: server_headers(server) for server in servers}
        results.sendfile = check_sendfile(contenders, args.workdir, args.max_entries)
        print()
        print(run_report.summary(contenders, results))
        if not args.no_doc:
            for path in run_report.write(contenders, results, headers, args):
                print(f"wrote {path.relative_to(ROOT)}")
        return 0
    finally:
        shutil.rmtree(args.workdir, ignore_errors=True)


def server_headers(server: Server) -> dict[str, str]:
    """The response headers of the 1 KiB hit, for the doc."""
    _, headers, _ = http_request(server.port, CASES[0].path, CASES[0].host)
    return headers


if __name__ == "__main__":
    sys.exit(main())
