"""Serving throughput: django-assetcache vs whitenoise vs a bare WSGI app, under gunicorn.

    .venv/bin/python benchmarks/serve_bench.py [--quick] [--rounds N] [--duration S]

The same gunicorn command serves each contender; wrk drives them in
interleaved rounds (A B C, B C A, C A B, …) so drift on the machine falls on all of
them alike, and the median of the rounds is reported. Prints the table and
writes docs/benchmarks-serving.md. Needs wrk (``apt-get install wrk``).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, machine_lines, markdown_table, setup_django, write_doc
from tests.servers import free_port, stop_process, wait_for_port

KIB = 1024
MIB = 1024 * KIB
SETTINGS = "benchmarks.bench_settings"
SITE = "bench"
HOST = f"{SITE}.sites.bench"  # ASSETCACHE_DOMAIN in bench_settings
WRK_SCRIPT = ROOT / "benchmarks" / "wrk_report.lua"
WORKERS = 2
WARM_REQUESTS = 20

#: Everything after the bind address and before the app, the same for every contender.
GUNICORN_OPTIONS = [
    "--workers", str(WORKERS), "--worker-class", "sync", "--no-control-socket", "--log-level", "warning",
]  # fmt: skip


@dataclass(frozen=True)
class Contender:
    name: str
    app: str
    env: dict[str, str] = field(default_factory=dict)
    max_size: int | None = None  # the bare app has a single 1 KiB body

    def serves(self, size: int) -> bool:
        return self.max_size is None or size <= self.max_size


DJANGO_APP = "django.core.wsgi:get_wsgi_application()"
CONTENDERS = [
    Contender("django-assetcache", DJANGO_APP, {"BENCH_MIDDLEWARE": "assetcache"}),
    Contender("whitenoise", DJANGO_APP, {"BENCH_MIDDLEWARE": "whitenoise"}),
    Contender("bare WSGI (ceiling)", "benchmarks.bare_app:application", max_size=KIB),
]
BASELINE = "whitenoise"


@dataclass(frozen=True)
class Case:
    name: str
    path: str
    size: int
    conditional: bool = False  # send If-None-Match with the contender's ETag: a 304


FILES = {"/style.css": KIB, "/app.js": 100 * KIB, "/big.bin": 10 * MIB}
CASES = [
    Case("1 KiB hit", "/style.css", KIB),
    Case("304 (If-None-Match)", "/style.css", KIB, conditional=True),
    Case("100 KiB hit", "/app.js", 100 * KIB),
    Case("10 MiB hit", "/big.bin", 10 * MIB),
]


@dataclass
class Sample:
    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    mib_per_s: float
    errors: int
    cpu_us_per_request: float = 0.0


@dataclass
class Server:
    contender: Contender
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    etags: dict[str, str] = field(default_factory=dict)
    sample_headers: list[tuple[str, str]] = field(default_factory=list)

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the workers (the master's children)."""
        return sum(cpu_seconds(pid) for pid in children(self.process.pid))


def children(parent: int) -> list[int]:
    found = []
    for stat_path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_path.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended meanwhile
        if int(fields[1]) == parent:
            found.append(int(stat_path.parent.name))
    return found


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, from /proc (fields 14 and 15)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# --- the site ---------------------------------------------------------------------------


def write_files(site_dir: Path) -> None:
    rng = random.Random(1024)
    text = b"body { margin: 0; padding: 0; color: #333; font: 16px/1.5 system-ui, sans-serif }\n"
    for path, size in FILES.items():
        body = rng.randbytes(size) if path.endswith(".bin") else (text * (size // len(text) + 1))[:size]
        target = site_dir / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)


def prepare(workdir: Path) -> None:
    """Database, published site and warm snapshot, as a deploy would leave them."""
    setup_django(SETTINGS, {"BENCH_DIR": str(workdir)})
    from django_assetcache.publish import publish
    from django_assetcache.warmup import warm_up

    site_dir = workdir / "site"
    write_files(site_dir)
    print(publish(SITE, site_dir))
    print(warm_up(compress=False))


# --- servers ------------------------------------------------------------------------------


def gunicorn_command(port: int | str, app: str) -> list[str]:
    return [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *GUNICORN_OPTIONS, app]


@contextmanager
def running(contender: Contender, workdir: Path) -> Iterator[Server]:
    port = free_port()
    log_path = workdir / f"gunicorn-{port}.log"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "BENCH_DIR": str(workdir),
        "PYTHONPATH": str(ROOT),
        **contender.env,
    }
    with open(log_path, "wb") as log:
        process = subprocess.Popen(gunicorn_command(port, contender.app), cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        try:
            wait_for_port(port, process)
        except RuntimeError:
            sys.stderr.write(log_path.read_text(errors="replace"))
            raise
        yield Server(contender, port, process, log_path)
    finally:
        stop_process(process)


def fetch(port: int, path: str, headers: dict[str, str] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.request("GET", path, headers={"Host": HOST, **(headers or {})})
        response = connection.getresponse()
        return response.status, response.getheaders(), response.read()
    finally:
        connection.close()


def warm_and_check(server: Server) -> None:
    """Warm the workers, check every answer, and learn the ETags for the 304 case."""
    name = server.contender.name
    for path, size in FILES.items():
        if not server.contender.serves(size):
            continue
        for _ in range(WARM_REQUESTS):
            status, headers, body = fetch(server.port, path)
        if status != 200 or len(body) != size:
            raise RuntimeError(f"{name} {path}: {status}, {len(body)} bytes (expected 200, {size})")
        etag = {key.lower(): value for key, value in headers}["etag"]
        server.etags[path] = etag
        if not server.sample_headers:
            server.sample_headers = headers  # the first, smallest file
        status, _, _ = fetch(server.port, path, {"If-None-Match": etag})
        if status != 304:
            raise RuntimeError(f"{name} {path}: {status} to If-None-Match (expected 304)")


# --- wrk ------------------------------------------------------------------------------------


def wrk_command(server: Server | None, case: Case, args: argparse.Namespace) -> list[str]:
    """The wrk command line; without a server, for the report (``<port>``)."""
    command = [
        "wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
        "-s", str(WRK_SCRIPT), "-H", f"Host: {HOST}",
    ]  # fmt: skip
    if case.conditional and server is not None:
        command += ["-H", f"If-None-Match: {server.etags[case.path]}"]
    port = server.port if server is not None else "<port>"
    return [*command, f"http://127.0.0.1:{port}{case.path}"]


def parse_wrk(output: str) -> Sample:
    """The JSON line wrk_report.lua prints after wrk's own report."""
    for line in output.splitlines():
        if line.startswith("WRK_JSON "):
            data = json.loads(line.removeprefix("WRK_JSON "))
            break
    else:
        raise RuntimeError(f"no WRK_JSON line in wrk's output:\n{output}")
    seconds = data["duration_us"] / 1e6
    return Sample(
        requests=data["requests"],
        requests_per_s=data["requests"] / seconds,
        p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000,
        mib_per_s=data["bytes"] / MIB / seconds,
        errors=sum(data["errors"].values()),
    )


def run_wrk(server: Server, case: Case, args: argparse.Namespace) -> Sample:
    cpu_before = server.cpu_seconds()
    result = subprocess.run(wrk_command(server, case, args), capture_output=True, text=True, check=True)
    cpu_used = server.cpu_seconds() - cpu_before
    sample = parse_wrk(result.stdout)
    if sample.requests:
        sample.cpu_us_per_request = cpu_used / sample.requests * 1e6
    return sample


# --- the comparison ---------------------------------------------------------------------------

Results = dict[tuple[str, str], list[Sample]]  # (case, contender) → one sample per round


def measure(servers: list[Server], args: argparse.Namespace) -> Results:
    """Every case on every server, ``args.rounds`` times; the servers' order
    rotates from round to round so none always runs first after a switch."""
    results: Results = {}
    for round_index in range(args.rounds):
        shift = round_index % len(servers)
        order = servers[shift:] + servers[:shift]
        round_number = round_index + 1
        for case in CASES:
            for server in order:
                if not server.contender.serves(case.size):
                    continue
                sample = run_wrk(server, case, args)
                results.setdefault((case.name, server.contender.name), []).append(sample)
                print(
                    f"round {round_number}/{args.rounds}  {case.name:<20} {server.contender.name:<20} "
                    f"{sample.requests_per_s:>9,.0f} req/s  p50 {sample.p50_ms:.2f} ms  "
                    f"p99 {sample.p99_ms:.2f} ms  {sample.cpu_us_per_request:,.0f} CPU µs/req  "
                    f"errors {sample.errors}",
                    flush=True,
                )
    return results


def median(samples: list[Sample], metric: str) -> float:
    return statistics.median(getattr(sample, metric) for sample in samples)


def ratio_to_baseline(samples: list[Sample], baseline: list[Sample]) -> float:
    """Median over rounds of req/s relative to the baseline's in the same round:
    drift between rounds cancels out of each ratio."""
    return statistics.median(s.requests_per_s / b.requests_per_s for s, b in zip(samples, baseline, strict=False))


def table_rows(results: Results) -> list[list[object]]:
    rows: list[list[object]] = []
    for case in CASES:
        baseline = results[(case.name, BASELINE)]
        for contender in CONTENDERS:
            samples = results.get((case.name, contender.name))
            if samples is None:
                continue
            rps = [s.requests_per_s for s in samples]
            rows.append(
                [
                    case.name,
                    contender.name,
                    f"{statistics.median(rps):,.0f}",
                    f"{min(rps):,.0f}–{max(rps):,.0f}",
                    f"{ratio_to_baseline(samples, baseline):.2f}×",
                    f"{median(samples, 'p50_ms'):.2f}",
                    f"{median(samples, 'p99_ms'):.2f}",
                    f"{median(samples, 'mib_per_s'):,.1f}",
                    f"{median(samples, 'cpu_us_per_request'):,.0f}",
                    sum(s.errors for s in samples),
                ]
            )
    return rows


HEADERS = [
    "case", "server", "req/s", "req/s range", "vs whitenoise", "p50 ms", "p99 ms", "MiB/s",
    "CPU µs/req", "errors",
]  # fmt: skip


def header_block(server: Server) -> str:
    lines = [f"{name}: {value}" for name, value in server.sample_headers]
    return "\n".join([f"{server.contender.name}:", "", "```", *lines, "```", ""])


def report(table: str, servers: list[Server], args: argparse.Namespace, load: tuple[float, float]) -> str:
    command = shlex.join(["python", *gunicorn_command("<port>", "<app>")[1:]])
    wrk = shlex.join(wrk_command(None, CASES[0], args)).replace(f"{ROOT}/", "")
    return "\n".join(
        [
            "# Benchmark: serving",
            "",
            "django-assetcache's middleware against whitenoise's `WhiteNoiseMiddleware` serving the "
            "same files, and a bare WSGI app returning a fixed 1 KiB body (the ceiling: what gunicorn "
            "and the loopback allow with no framework at all).",
            "",
            table,
            "",
            f"Median of {args.rounds} interleaved round(s) per contender and case (each metric's own "
            "median); *req/s range* is the lowest and highest round. *vs whitenoise* is the median, "
            "over rounds, of req/s divided by whitenoise's req/s in the same round. *MiB/s* counts "
            "every byte read by wrk, headers included. The bare app has a single 1 KiB body, so it "
            "runs only the 1 KiB and 304 cases. *CPU µs/req* is the user + system CPU time the "
            "gunicorn workers used during the run, per request (from /proc): it depends far less on "
            "other load on the machine than req/s does.",
            "",
            f"Load average (1 min) when measuring began: {load[0]:.2f}; when it ended: {load[1]:.2f}, "
            f"on {len(os.sched_getaffinity(0))} CPUs. wrk and the two busy workers account for about "
            "3 of it; the rest is other work on the machine, which shows in the range column.",
            "",
            "## Set-up",
            "",
            *machine_lines(["Django", "gunicorn", "whitenoise", "django-assetcache"]),
            f"- wrk {wrk_version()}: `{wrk}` (other paths alike; the 304 case adds "
            "`-H 'If-None-Match: <the server's ETag>'`); contenders interleaved within every round, "
            "their order rotated from one round to the next.",
            f"- Server, identical for every contender: `{command}` (access log off, gunicorn's default; "
            "the sync worker closes the connection after each response, so every request is a new "
            "TCP connection on loopback).",
            "- Apps:",
            *[f"  - {describe(contender)}" for contender in CONTENDERS],
            '- Django: `benchmarks/bench_settings.py`: DEBUG off, `INSTALLED_APPS = ["django_assetcache"]`, '
            "the contender's middleware alone in `MIDDLEWARE`, SQLite in a temporary directory.",
            f"- django-assetcache: files published into site `{SITE}` and answered at Host `{HOST}`; "
            "`warm_up(compress=False)` wrote the snapshot before the servers started; "
            f"{assetcache_defaults()}.",
            "- whitenoise: `WHITENOISE_ROOT` = the published source directory, autorefresh off, "
            "finders off, `WHITENOISE_MAX_AGE = 0`, no compressed files on disk; same Host header.",
            f"- Files: 1 KiB `.css`, 100 KiB `.js`, 10 MiB random `.bin`. Before measuring, each "
            f"server got {WARM_REQUESTS} requests per file and its answers were checked (200, length, "
            "304 to its own ETag).",
            "",
            "## Response headers, 1 KiB hit",
            "",
            *[header_block(server) for server in servers],
            "",
            "Reproduce: `.venv/bin/python benchmarks/serve_bench.py` (`--quick` for a smoke run).",
        ]
    )


def assetcache_defaults() -> str:
    from django_assetcache import conf
    from django_assetcache.progress import human_bytes

    settings = conf.get()
    return (
        f"default settings: bodies up to {human_bytes(settings.MEMORY_FILE_LIMIT)} from memory, "
        f"larger by `sendfile`; `{settings.INVALIDATION}` change feed polled every "
        f"{settings.POLL_INTERVAL:g} s"
    )


def describe(contender: Contender) -> str:
    settings = " ".join(f"{name}={value}" for name, value in contender.env.items())
    return f"{contender.name}: `{contender.app}`" + (f" with `{settings}`" if settings else "")


def wrk_version() -> str:
    result = subprocess.run(["wrk", "-v"], capture_output=True, text=True)
    words = (result.stdout + result.stderr).split()
    return words[1] if len(words) > 1 else "unknown"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 round of 2 s")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--duration", type=int, default=4, help="seconds per wrk run")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.duration = 1, 2
    return args


def main() -> int:
    args = parse_args()
    if shutil.which("wrk") is None:
        print("wrk is not installed: apt-get install wrk (or build it from github.com/wg/wrk)", file=sys.stderr)
        return 2
    workdir = Path(tempfile.mkdtemp(prefix="assetcache-serve-bench-"))
    try:
        prepare(workdir)
        with ExitStack() as stack:
            servers = [stack.enter_context(running(contender, workdir)) for contender in CONTENDERS]
            for server in servers:
                warm_and_check(server)
            load_before = os.getloadavg()[0]
            results = measure(servers, args)
            load_after = os.getloadavg()[0]
        table = markdown_table(HEADERS, table_rows(results))
        print()
        print(table)
        path = write_doc("benchmarks-serving.md", report(table, servers, args, (load_before, load_after)))
        print(f"\nwrote {path.relative_to(ROOT)}")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
