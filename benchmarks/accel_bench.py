"""Large files offloaded to nginx (``ASSETCACHE_ACCEL = "nginx"``), against
nginx serving the file itself and against the same stack without offload.

    .venv/bin/python benchmarks/accel_bench.py [--rounds N] [--duration S] [--no-doc]

Three contenders on benchmarks/run.py's prepared sites, measured in one run,
interleaved, their order rotated every round:

(a) nginx serving the files itself (benchmarks/nginx.conf.template: a plain
    static location on the same bytes);
(b) nginx in front of gunicorn (sync workers, the WSGI fast path, as
    docs/deployment.md recommends) with ``ASSETCACHE_ACCEL = "nginx"`` and the
    documented internal location (deploy/nginx/assetcache-accel.conf.template)
    over the blob directory: gunicorn sends the headers, nginx the bytes;
(c) the same nginx and gunicorn with ``ASSETCACHE_ACCEL = None``: gunicorn
    sends the bytes (by sendfile) and nginx passes them on.

Before measuring, every contender's answers are checked byte for byte, and
nginx's log of those check requests says how many bytes it read from gunicorn
for each: (b) must have had only headers for the large bodies. After
measuring, every wrk run is checked: no errors, and at least the body's bytes
for every response. Writes docs/benchmarks-accel.md. Needs wrk and nginx.
"""

from __future__ import annotations

import argparse
import hashlib
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import run
from benchmarks.cases import CASES_BY_NAME, Case
from benchmarks.common import ROOT, machine_lines, markdown_table, write_doc
from benchmarks.contenders import CONTENDERS, FAST_PATH, NGINX, Contender, Server, blob_dir, nginx
from benchmarks.load import WRK_REPORT, wrk_command
from benchmarks.run_report import median, nginx_version
from benchmarks.serve_bench import MIB
from tests.servers import http_request

OFFLOAD = "nginx + gunicorn, offload"
DIRECT = "nginx + gunicorn, no offload"
#: The large file (also one response at a time, when the CPUs are not all
#: busy), a single range of it, and a small body from memory.
CASE_NAMES = ("10 MiB hit", "10 MiB hit (1 connection)", "5 MiB range", "1 KiB hit")
TARGET_CASE = "10 MiB hit"
ONE_CONNECTION = "10 MiB hit (1 connection)"
SMALL_CASE = "1 KiB hit"
#: The target issue 18 sets: (b) sends at least this share of (a)'s bytes per second.
TARGET = 0.95
#: Requests per contender and case whose answer is compared byte for byte.
CHECKS = 5
#: Most bytes of headers a response may add to its body (the wrk check).
HEADER_ALLOWANCE = 1024
#: Most bytes nginx may read from gunicorn for an offloaded reply: headers only.
OFFLOAD_UPSTREAM_LIMIT = 2048
#: Headers of the connection rather than of the reply.
HOP = {"date", "server", "connection", "keep-alive"}


def contenders() -> list[Contender]:
    """(a), (b) and (c); (b) and (c) start their gunicorn first."""
    fast_path = next(c for c in CONTENDERS if c.name == FAST_PATH)
    offloading = replace(fast_path, env={**fast_path.env, "BENCH_ACCEL": "nginx"})
    return [
        next(c for c in CONTENDERS if c.name == NGINX),
        Contender(OFFLOAD, "offload", "nginx", nginx, upstream=offloading),
        Contender(DIRECT, "no offload", "nginx", nginx, upstream=fast_path),
    ]


# --- checking every answer --------------------------------------------------------------


@dataclass(frozen=True)
class Check:
    """How one contender answered one case's check requests."""

    contender: str
    case: str
    status: int
    body_bytes: int
    #: The most bytes nginx read from gunicorn for one of them (None: nginx alone).
    upstream_bytes: int | None
    #: Whether nginx sent the body from the blob file, after an X-Accel-Redirect.
    offloaded: bool


def expected_body(workdir: Path, case: Case) -> bytes:
    """The case's file from the published source directory, cut to its Range."""
    data = (workdir / "site" / case.path.lstrip("/")).read_bytes()
    asked = dict(case.headers).get("Range")
    if asked is None:
        return data
    first, _, last = asked.removeprefix("bytes=").partition("-")
    return data[int(first) : int(last) + 1]


def log_lines(server: Server) -> list[str]:
    """nginx's log of the check requests (benchmarks/nginx-proxy.conf.template)."""
    path = server.log_path.parent / f"nginx-{server.port}" / "check.log"
    return path.read_text().splitlines() if path.exists() else []


def new_log_lines(server: Server, logged: int, count: int) -> list[str]:
    """The ``count`` lines after the first ``logged``: nginx writes a line
    once it has handed the response's last byte to the kernel, which may be
    after the client has read it, so wait for them a little."""
    deadline = time.monotonic() + 5
    while len(lines := log_lines(server)) < logged + count and time.monotonic() < deadline:
        time.sleep(0.01)
    if len(lines) != logged + count:
        raise RuntimeError(f"{server.contender.name}: {len(lines) - logged} check requests logged, not {count}")
    return lines[logged:]


def check_case(server: Server, case: Case, workdir: Path) -> tuple[Check, dict[str, str]]:
    """``CHECKS`` requests, each answer's status and bytes compared with the
    file's; what nginx logged of them; the last answer's headers."""
    expected = expected_body(workdir, case)
    logged = len(log_lines(server))
    headers: dict[str, str] = {}
    for _ in range(CHECKS):
        asked = {**case.request_headers(), "X-Bench-Check": "1"}
        status, headers, body = http_request(server.port, case.path, case.host, headers=asked)
        if status != case.status or hashlib.sha256(body).digest() != hashlib.sha256(expected).digest():
            raise RuntimeError(f"{server.contender.name}, {case.name}: {status}, {len(body)} bytes, not the file's")
    upstream_bytes = None
    offloaded = False
    if server.upstream is not None:
        # status body_bytes_sent upstream_bytes_received "Content-Length" "X-Accel-Redirect" "uri"
        fields = [shlex.split(line) for line in new_log_lines(server, logged, CHECKS)]
        upstream_bytes = max(int(field[2]) for field in fields)
        offloaded = all(field[5].startswith("/_assetcache_blobs/") for field in fields)
    return Check(server.contender.name, case.name, status, len(expected), upstream_bytes, offloaded), headers


def check_offload(checks: list[Check]) -> None:
    """(b) offloaded the large bodies (nginx read only headers from gunicorn),
    and nothing else; (c) offloaded nothing (nginx read every byte)."""
    for check in checks:
        if check.upstream_bytes is None:
            continue
        large = CASES_BY_NAME[check.case].by_bytes
        should = check.contender == OFFLOAD and large
        if check.offloaded != should:
            raise RuntimeError(f"{check.contender}, {check.case}: offloaded {check.offloaded}, expected {should}")
        if should and check.upstream_bytes > OFFLOAD_UPSTREAM_LIMIT:
            raise RuntimeError(f"{check.contender}, {check.case}: {check.upstream_bytes} bytes from gunicorn")
        if not should and check.upstream_bytes < check.body_bytes:
            raise RuntimeError(f"{check.contender}, {check.case}: only {check.upstream_bytes} bytes from gunicorn")


def check_servers(servers: list[Server], cases: list[Case], workdir: Path, checks: list[Check]) -> None:
    """Every answer right, (b)'s large bodies offloaded, and (b) and (c)
    sending the very same headers (but the connection's) for every case."""
    answers: dict[tuple[str, str], dict[str, str]] = {}
    for server in servers:
        for case in cases:
            check, headers = check_case(server, case, workdir)
            checks.append(check)
            answers[server.contender.name, case.name] = {k: v for k, v in headers.items() if k not in HOP}
    check_offload(checks)
    for case in cases:
        if answers[OFFLOAD, case.name] != answers[DIRECT, case.name]:
            raise RuntimeError(f"{case.name}: headers differ with offload: {answers[OFFLOAD, case.name]}")
    for server in servers:
        if server.upstream is not None and len(log_lines(server)) != len(cases) * CHECKS:
            raise RuntimeError(f"{server.contender.name}: requests other than the checks were logged")


def check_samples(results: run.Results, cases: list[Case], args: argparse.Namespace) -> int:
    """Every wrk run: no error, and for each response at least its body's
    bytes (wrk counts bytes as read, so the responses still in flight when a
    run ends may add up to one body per connection). The number of runs."""
    checked = 0
    for (case_name, contender), samples in results.samples.items():
        case = CASES_BY_NAME[case_name]
        assert case.length is not None
        for sample in samples:
            read = sample.mib_per_s * MIB * sample.requests / sample.requests_per_s
            low = sample.requests * case.length
            high = (sample.requests + (case.connections or args.connections)) * (case.length + HEADER_ALLOWANCE)
            if sample.errors or not low * 0.999 <= read <= high:
                raise RuntimeError(f"{contender}, {case_name}: {sample.errors} errors, {read:,.0f} bytes read")
            checked += 1
    return checked


# --- the report -------------------------------------------------------------------------


RESULT_HEADERS = ["case", "contender", "req/s", "req/s range", "MiB/s", "p50 ms", "p99 ms", "CPU µs/req"]
RATIO_HEADERS = ["case", "ratio", "req/s", "other req/s", "req/s ratio", "CPU µs/req", "other CPU µs/req", "CPU ratio"]
#: The ratios the page shows: (b)/(a), (c)/(a), (b)/(c).
PAIRS = [
    ("(b)/(a): offload against nginx alone", OFFLOAD, NGINX),
    ("(c)/(a): no offload against nginx alone", DIRECT, NGINX),
    ("(b)/(c): offload against no offload", OFFLOAD, DIRECT),
]
LETTERS = {NGINX: "(a) nginx alone", OFFLOAD: f"(b) {OFFLOAD}", DIRECT: f"(c) {DIRECT}"}


def result_rows(results: run.Results, cases: list[Case]) -> list[list[object]]:
    rows: list[list[object]] = []
    for case in cases:
        for name in (NGINX, OFFLOAD, DIRECT):
            samples = results.get(case.name, name)
            if not samples:
                continue
            rps = [s.requests_per_s for s in samples]
            rows.append(
                [
                    case.name,
                    LETTERS[name],
                    f"{median(samples, 'requests_per_s'):,.0f}",
                    f"{min(rps):,.0f}–{max(rps):,.0f}",
                    f"{median(samples, 'mib_per_s'):,.1f}",
                    f"{median(samples, 'p50_ms'):.2f}",
                    f"{median(samples, 'p99_ms'):.2f}",
                    f"{median(samples, 'cpu_us_per_request'):,.0f}",
                ]
            )
    return rows


def ratio_rows(results: run.Results, cases: list[Case]) -> list[list[object]]:
    rows: list[list[object]] = []
    for case in cases:
        for label, one, other in PAIRS:
            medians = run.pair_medians(results, case.name, one, other)
            if medians is not None:
                rows.append([case.name, label, *medians.cells()])
    return rows


def target_ratio(results: run.Results) -> float | None:
    medians = run.pair_medians(results, TARGET_CASE, OFFLOAD, NGINX)
    return None if medians is None else medians.rps / medians.other_rps


def verdict(results: run.Results) -> str:
    measured = target_ratio(results)
    if measured is None:
        return f"the {TARGET_CASE} was not measured"
    held = "holds" if measured >= TARGET else "does not hold"
    return f"{TARGET_CASE}, (b)/(a) = {measured:.2f}×: the target of at least {TARGET:.2f}× {held}"


CHECK_HEADERS = ["case", "contender", "status", "body bytes", "bytes nginx read from gunicorn", "offloaded"]


def reading(results: run.Results) -> str:
    """Where (b) loses to (a), in this run's numbers."""
    many = run.pair_medians(results, TARGET_CASE, OFFLOAD, NGINX)
    one = run.pair_medians(results, ONE_CONNECTION, OFFLOAD, NGINX)
    one_b, one_a, small = (
        results.get(ONE_CONNECTION, OFFLOAD),
        results.get(ONE_CONNECTION, NGINX),
        results.get(SMALL_CASE, OFFLOAD),
    )
    if many is None or one is None or not one_b or not one_a or not small:
        return ""
    p50_b, p50_a = median(one_b, "p50_ms"), median(one_a, "p50_ms")
    return (
        f"With offload a 10 MiB response cost the stack {many.cpu - many.other_cpu:,.0f} µs more CPU than nginx "
        f"alone ({many.cpu:,.0f} against {many.other_cpu:,.0f} µs, 16 connections) and, one response at a time, "
        f"{p50_b - p50_a:.2f} ms more time (p50 {p50_b:.2f} against {p50_a:.2f} ms): nginx passes the request to "
        "gunicorn on a new upstream connection (the sync worker closes each), the worker decides the reply, and "
        f"nginx follows the internal redirect. A whole 1 KiB reply through the same stack costs "
        f"{median(small, 'cpu_us_per_request'):,.0f} µs of CPU. That cost is per request, not per byte, but on "
        f"loopback nginx sends 10 MiB in {p50_a:.1f} ms, so here it is {(p50_b - p50_a) / p50_b:.0%} of the time: "
        f"(b)/(a) = {one.rps / one.other_rps:.2f}× one response at a time, {many.rps / many.other_rps:.2f}× with "
        "16 connections, where wrk, nginx and gunicorn share the machine's 2 CPUs. Where the bytes take longer "
        "to leave (a client at 100 MiB/s takes 100 ms for them; not measured here), the same cost is a smaller "
        "share. Without offload a sync worker is busy until nginx has taken the response's last byte, so at "
        "most 2 large responses are in flight at once (one per worker): that is what (b)/(c) shows."
    )


def check_rows(checks: list[Check]) -> list[list[object]]:
    return [
        [
            check.case,
            LETTERS[check.contender],
            check.status,
            f"{check.body_bytes:,}",
            "–" if check.upstream_bytes is None else f"{check.upstream_bytes:,}",
            "–" if check.upstream_bytes is None else ("yes" if check.offloaded else "no"),
        ]
        for check in checks
    ]


def document(args: argparse.Namespace, results: run.Results, checks: list[Check], runs: int) -> str:
    case = args.selected_cases[0]
    wrk = shlex.join(wrk_command("<port>", None, case, args, WRK_REPORT)).replace(f"{ROOT}/", "")
    return "\n".join(
        [
            "# Benchmark: large files offloaded to nginx",
            "",
            'Generated by `benchmarks/accel_bench.py` (`make bench-accel`). With `ASSETCACHE_ACCEL = "nginx"` '
            "the worker answers a request for a file on disk with its headers and `X-Accel-Redirect`, and nginx "
            "sends the bytes ([deployment.md](deployment.md#offloading-large-files-to-nginx)). Three contenders "
            "serve the same bytes, measured in one run, interleaved, their order rotated every round:",
            "",
            "- (a) **nginx alone**: nginx serving the file itself from a plain static location;",
            "- (b) **nginx + gunicorn, offload**: nginx proxying to gunicorn (2 sync workers, the WSGI fast path) "
            'as `deploy/nginx/assetcache.conf.template` does, with `ASSETCACHE_ACCEL = "nginx"` and the internal '
            "location of `deploy/nginx/assetcache-accel.conf.template` over the blob directory;",
            "- (c) **nginx + gunicorn, no offload**: the same stack with `ASSETCACHE_ACCEL = None`: gunicorn sends "
            "the file by sendfile, nginx passes it on.",
            "",
            "## Results",
            "",
            markdown_table(RESULT_HEADERS, result_rows(results, args.selected_cases)),
            "",
            f"Medians of {args.rounds} rounds of {args.duration} s per contender and case; *req/s range* is the "
            "lowest and highest round. *MiB/s* counts every byte wrk read, headers included. *CPU µs/req* is the "
            "user + system CPU time of every worker process of the stack (nginx's, and gunicorn's for (b) and (c)) "
            "during the run, per request, from /proc. "
            f"Load average (1 min): {results.load[0]:.2f} when measuring began, {results.load[1]:.2f} at the end; "
            f"the run took {results.seconds / 60:.1f} min.",
            "",
            "## Ratios",
            "",
            markdown_table(RATIO_HEADERS, ratio_rows(results, args.selected_cases)),
            "",
            "*req/s ratio*: the first contender's median req/s divided by the second's (for the 10 MiB and range "
            "cases the same as MiB/s); *CPU ratio*: the first's CPU time per request divided by the second's "
            "(below 1× is less work).",
            "",
            f"Result: {verdict(results)}.",
            "",
            reading(results),
            "",
            "## How the answers were checked",
            "",
            markdown_table(CHECK_HEADERS, check_rows(checks)),
            "",
            f"Before measuring, {CHECKS} requests per contender and case (with `X-Bench-Check: 1`): every "
            "answer's status and body were compared with the file's own bytes (cut to the range). nginx logs "
            "those requests only (`access_log … if=`, so wrk's are not), with `$upstream_bytes_received` and "
            "`$uri`: *bytes nginx read from gunicorn* is the most of one answer, *offloaded* that nginx sent the "
            "body from the blob file after an internal redirect to `/_assetcache_blobs/…`. So with offload "
            "gunicorn's worker sent only the headers of the 10 MiB and range answers, and without it every byte; "
            "the 1 KiB body comes from the worker's memory in both. (b) and (c) sent the same headers for every "
            "case (`Date`, `Server` and `Connection` aside). During the measurement, every wrk run "
            f"({runs} in all) had no errors and read at least the body's bytes for every response.",
            "",
            "## Set-up",
            "",
            *machine_lines(["Django", "gunicorn", "django-assetcache"]),
            f"- {nginx_version()}, 2 worker processes, sendfile on, for all three",
            f"- Load: `{wrk}`; the other cases change the path, and the range case adds "
            f"`Range: {dict(CASES_BY_NAME['5 MiB range'].headers)['Range']}`.",
            "- The site and files are `make bench`'s ([benchmarks.md](benchmarks.md#set-up)): bodies up to "
            "256 KiB from memory, larger from the blob file; nginx configurations: `benchmarks/nginx.conf.template` "
            "(a) and `benchmarks/nginx-proxy.conf.template` (b, c).",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    run.add_run_options(parser, rounds=5)
    args = parser.parse_args()
    if run.wrk_missing():
        return 2
    if shutil.which("nginx") is None:
        print("nginx is not installed (apt-get install nginx-light): nothing to compare", file=sys.stderr)
        return 2
    args.selected_cases = [CASES_BY_NAME[name] for name in CASE_NAMES]
    args.files = 100  # the many-files site (no case here asks it)
    args.workdir = Path(tempfile.mkdtemp(prefix="assetcache-accel-"))
    try:
        run.prepare(args.workdir, args.files)
        check_blob_dir(args.workdir)
        checks: list[Check] = []
        results = run.measure_contenders(
            contenders(),
            args,
            check_servers=lambda servers: check_servers(servers, args.selected_cases, args.workdir, checks),
        )
        runs = check_samples(results, args.selected_cases, args)
        print()
        print(markdown_table(CHECK_HEADERS, check_rows(checks)))
        print()
        print(markdown_table(RESULT_HEADERS, result_rows(results, args.selected_cases)))
        print()
        print(markdown_table(RATIO_HEADERS, ratio_rows(results, args.selected_cases)))
        print(verdict(results))
        if not args.no_doc:
            path = write_doc("benchmarks-accel.md", document(args, results, checks, runs))
            print(f"wrote {path.relative_to(ROOT)}")
        measured = target_ratio(results)
        return 0 if measured is not None and measured >= TARGET else 1
    finally:
        shutil.rmtree(args.workdir, ignore_errors=True)


def check_blob_dir(workdir: Path) -> None:
    """The directory the internal location maps is the one the app names files in."""
    from django_assetcache.store import BlobStore  # once run.prepare has set Django up

    big = (workdir / "site" / "big.bin").read_bytes()
    path = Path(BlobStore().local_path(hashlib.sha256(big).hexdigest()))
    if path.parents[2] != blob_dir(workdir):
        raise RuntimeError(f"the blobs are in {path.parents[2]}, not {blob_dir(workdir)}")


if __name__ == "__main__":
    sys.exit(main())
