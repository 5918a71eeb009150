"""Tables, targets, chart and docs/benchmarks.md for benchmarks/run.py."""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.cases import CASES, CASES_BY_NAME, MANY_BODY, MANY_HOST, MEMORY_CASES, RANGE, WARM_REQUESTS, Case
from benchmarks.common import DOCS, ROOT, machine_lines, markdown_table, write_doc
from benchmarks.contenders import (
    ASGI_GRANIAN,
    ASGI_UVICORN,
    FAST_PATH,
    GRANIAN_OPTIONS,
    LOOP,
    MIDDLEWARE,
    NGINX,
    NGINX_TEMPLATE,
    SERVESTATIC_GRANIAN,
    SERVESTATIC_UVICORN,
    UVICORN_OPTIONS,
    WHITENOISE,
    Contender,
    describe_command,
)
from benchmarks.load import WRK_REPORT, wrk_command
from benchmarks.serve_bench import GUNICORN_OPTIONS, HOST, MIB, SITE, Sample, assetcache_defaults, wrk_version

if TYPE_CHECKING:
    from benchmarks.run import Memory, Results

CHART = DOCS / "images" / "benchmarks.png"
PROFILE_DOC = "benchmarks-profile.md"
MEMORY_LIMIT_KIB = 1024
COLOURS = {"wsgi": "#1f77b4", "nginx": "#7f7f7f", "uvicorn": "#2ca02c", "granian": "#d62728"}
OURS_HATCH = ""
THEIRS_HATCH = "//"


# --- numbers ------------------------------------------------------------------------------------


def metric(case: Case) -> str:
    """What a case's ratios compare: bytes for the multi-MiB bodies, requests otherwise."""
    return "mib_per_s" if case.by_bytes else "requests_per_s"


def median(samples: Sequence[Sample], name: str) -> float:
    return statistics.median(getattr(sample, name) for sample in samples)


def ratio(results: Results, case: Case, contender: str, reference: str) -> float | None:
    """Median over rounds of the contender's metric divided by the reference's
    in the same round: drift between rounds cancels out of each ratio."""
    samples, baseline = results.get(case.name, contender), results.get(case.name, reference)
    if not samples or not baseline:
        return None
    name = metric(case)
    pairs = [(s, b) for s, b in zip(samples, baseline, strict=True) if getattr(b, name) > 0]
    if not pairs:
        return None
    return statistics.median(getattr(s, name) / getattr(b, name) for s, b in pairs)


def cpu_ratio(results: Results, case: Case, contender: str, reference: str) -> float | None:
    """Median over rounds of the reference's CPU time per request divided by
    the contender's: how many times less work a request costs the contender."""
    samples, baseline = results.get(case.name, contender), results.get(case.name, reference)
    if not samples or not baseline:
        return None
    pairs = [(s, b) for s, b in zip(samples, baseline, strict=True) if s.cpu_us_per_request > 0]
    if not pairs:
        return None
    return statistics.median(b.cpu_us_per_request / s.cpu_us_per_request for s, b in pairs)


def times(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


# --- the results table --------------------------------------------------------------------------

HEADERS = [
    "case", "server", "req/s", "p50 ms", "p99 ms", "MiB/s", "CPU µs/req",
    "vs whitenoise", "vs servestatic", "vs nginx", "errors",
]  # fmt: skip


def wsgi_reference(contender: Contender) -> str | None:
    return WHITENOISE if contender.family == "wsgi" else None


def servestatic_reference(contender: Contender) -> str | None:
    if contender.family not in ("uvicorn", "granian"):
        return None
    return contender.reference or contender.name


def table_rows(contenders: Sequence[Contender], results: Results) -> list[list[object]]:
    rows: list[list[object]] = []
    for case in CASES:
        for contender in contenders:
            samples = results.get(case.name, contender.name)
            if not samples:
                continue
            wsgi_ref, asgi_ref = wsgi_reference(contender), servestatic_reference(contender)
            rows.append(
                [
                    case.name,
                    contender.name,
                    f"{median(samples, 'requests_per_s'):,.0f}",
                    f"{median(samples, 'p50_ms'):.2f}",
                    f"{median(samples, 'p99_ms'):.2f}",
                    f"{median(samples, 'mib_per_s'):,.1f}",
                    f"{median(samples, 'cpu_us_per_request'):,.0f}",
                    times(ratio(results, case, contender.name, wsgi_ref)) if wsgi_ref else "",
                    times(ratio(results, case, contender.name, asgi_ref)) if asgi_ref else "",
                    times(ratio(results, case, contender.name, NGINX)),
                    sum(s.errors for s in samples),
                ]
            )
    return rows


# --- targets ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    case: str
    contender: str
    reference: str
    minimum: float

    def describe(self) -> str:
        what = "MiB/s" if CASES_BY_NAME[self.case].by_bytes else "req/s"
        return f"{self.case}: {self.contender} ≥ {self.minimum:g}× {self.reference} ({what})"


TARGETS = [
    Target("1 KiB hit", FAST_PATH, WHITENOISE, 1.4),
    Target("1 KiB hit", MIDDLEWARE, WHITENOISE, 1.1),
    Target("304 Not Modified", FAST_PATH, WHITENOISE, 1.4),
    Target("304 Not Modified", MIDDLEWARE, WHITENOISE, 1.1),
    Target("10 MiB hit", FAST_PATH, NGINX, 0.9),
    Target("10 MiB hit", MIDDLEWARE, NGINX, 0.9),
    Target("1 KiB hit", ASGI_UVICORN, SERVESTATIC_UVICORN, 1.2),
    Target("1 KiB hit", ASGI_GRANIAN, SERVESTATIC_GRANIAN, 1.2),
]
MEMORY_TARGETS = [ASGI_UVICORN, ASGI_GRANIAN]


def verdict(met: bool | None) -> str:
    return "not measured" if met is None else ("met" if met else "**missed**")


def target_rows(results: Results) -> list[list[object]]:
    return [*ratio_target_rows(results), *memory_target_rows(results), *sendfile_target_rows(results)]


def ratio_target_rows(results: Results) -> list[list[object]]:
    rows: list[list[object]] = []
    for target in TARGETS:
        case = CASES_BY_NAME[target.case]
        measured = ratio(results, case, target.contender, target.reference)
        met = None if measured is None else measured >= target.minimum
        cpu = times(cpu_ratio(results, case, target.contender, target.reference))
        rows.append([target.describe(), times(measured), verdict(met), cpu])
    return rows


def memory_target_rows(results: Results) -> list[list[object]]:
    rows: list[list[object]] = []
    for name in MEMORY_TARGETS:
        one, many = (results.memory.get((case, name)) for case in MEMORY_CASES)
        growth = None if one is None else one.growth_kib(0, FIRST_RUN)
        met = None if growth is None else growth <= MEMORY_LIMIT_KIB
        measured = "–" if growth is None else f"{growth:+,} KiB"
        if many is not None:
            measured += f" (16 connections: {many.growth_kib(0):+,} KiB)"
        description = f"10 MiB hit, one response at a time: {name} worker VmRSS grows ≤ 1 MiB"
        rows.append([description, measured, verdict(met), ""])
    return rows


def sendfile_target_rows(results: Results) -> list[list[object]]:
    rows: list[list[object]] = []
    for name in (MIDDLEWARE, FAST_PATH):
        record = results.sendfile.get(name)
        if record is None:
            rows.append([f"5 MiB range: {name} sends it by sendfile", "–", verdict(None), ""])
            continue
        sent = bool(record.get("used")) and record.get("kernel_bytes") == 5 * MIB
        measured = f"sendfile: {record.get('used')}, {record.get('kernel_bytes'):,} bytes"
        rows.append([f"5 MiB range: {name} sends it by sendfile", measured, verdict(sent), ""])
    return rows


TARGET_HEADERS = ["target", "measured", "result", "by CPU time per request"]


def missed(results: Results) -> bool:
    return any("missed" in str(row[2]) for row in target_rows(results))


def summary(contenders: Sequence[Contender], results: Results) -> str:
    return "\n\n".join(
        [
            markdown_table(HEADERS, table_rows(contenders, results)),
            markdown_table(TARGET_HEADERS, target_rows(results)),
            markdown_table(MEMORY_HEADERS, memory_rows(results)),
        ]
    )


# --- the chart ----------------------------------------------------------------------------------


def chart(contenders: Sequence[Contender], results: Results, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    cases = [case for case in CASES if any(results.get(case.name, c.name) for c in contenders)]
    rows = len(cases) // 3 + 1  # and a place for the legend
    figure, axes = plt.subplots(rows, 3, figsize=(18, 4.7 * rows), squeeze=False)
    flat = list(axes.flat)
    for axis, case in zip(flat, cases, strict=False):
        chart_case(axis, case, contenders, results)
    for axis in flat[len(cases) :]:
        axis.axis("off")
    legend_axis = flat[len(cases)]
    families = {c.family for c in contenders}
    handles = [Patch(color=COLOURS[f], label=LEGEND[f]) for f in COLOURS if f in families]
    handles += [Patch(facecolor="white", edgecolor="black", hatch=THEIRS_HATCH, label="hatched: not django-assetcache")]
    legend_axis.legend(handles=handles, loc="center", fontsize=11, frameon=False)
    figure.suptitle(
        "Serving the same files: medians of interleaved wrk runs, longer is better\n"
        "(×: against whitenoise under gunicorn, against servestatic under the same ASGI server)",
        fontsize=14,
    )
    figure.tight_layout(rect=(0, 0, 1, 0.95))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=90)
    plt.close(figure)
    return path


LEGEND = {
    "wsgi": "gunicorn, sync worker",
    "nginx": "nginx, sendfile",
    "uvicorn": "uvicorn (ASGI)",
    "granian": "granian (ASGI)",
}


def tick_label(value: float, _position: int) -> str:
    return f"{value / 1000:g}k" if value >= 1000 else f"{value:g}"


def chart_case(axis: object, case: Case, contenders: Sequence[Contender], results: Results) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    name = metric(case)
    shown = [c for c in contenders if results.get(case.name, c.name)]
    values = [median(results.get(case.name, c.name) or [], name) for c in shown]
    positions = list(range(len(shown)))[::-1]
    bars = axis.barh(  # type: ignore[attr-defined]
        positions,
        values,
        color=[COLOURS[c.family] for c in shown],
        hatch=[OURS_HATCH if c.assetcache else THEIRS_HATCH for c in shown],
        edgecolor="black",
        linewidth=0.5,
    )
    axis.set_yticks(positions, [c.label for c in shown], fontsize=10)  # type: ignore[attr-defined]
    axis.set_title(case.name, fontsize=12)  # type: ignore[attr-defined]
    axis.set_xlabel("MiB/s" if case.by_bytes else "requests/s")  # type: ignore[attr-defined]
    top = max(values, default=0) or 1
    axis.set_xlim(0, top * 1.35)  # type: ignore[attr-defined]
    axis.xaxis.set_major_locator(MaxNLocator(5))  # type: ignore[attr-defined]
    axis.xaxis.set_major_formatter(FuncFormatter(tick_label))  # type: ignore[attr-defined]
    for bar, contender, value in zip(bars, shown, values, strict=True):
        reference = wsgi_reference(contender) or servestatic_reference(contender)
        vs = ratio(results, case, contender.name, reference) if reference and reference != contender.name else None
        text = f"{value:,.0f}" + (f"  ({vs:.2f}×)" if vs is not None else "")
        y = bar.get_y() + bar.get_height() / 2
        axis.text(value + top * 0.01, y, text, va="center", fontsize=9)  # type: ignore[attr-defined]


# --- the document -------------------------------------------------------------------------------


def write(
    contenders: Sequence[Contender], results: Results, headers: dict[str, dict[str, str]], args: argparse.Namespace
) -> list[Path]:
    image = chart(contenders, results, CHART)
    doc = write_doc("benchmarks.md", document(contenders, results, headers, args))
    return [doc, image]


def document(
    contenders: Sequence[Contender], results: Results, headers: dict[str, dict[str, str]], args: argparse.Namespace
) -> str:
    return "\n".join(
        [
            "# Benchmarks",
            "",
            "django-assetcache next to whitenoise, servestatic and nginx, serving the same files on the same "
            "machine under the same load. Written by `make bench` (`benchmarks/run.py`): every number on this "
            "page comes from one interleaved run.",
            "",
            f"![Requests/s (MiB/s for the large bodies) per case and server](images/{CHART.name})",
            "",
            *others_section(),
            *targets_section(results),
            "## Results",
            "",
            markdown_table(HEADERS, table_rows(contenders, results)),
            "",
            *results_notes(args, results),
            *memory_section(results),
            *sendfile_section(results),
            *setup_section(contenders, args, results),
            *headers_section(contenders, headers),
            "Reproduce: `make bench` (`.venv/bin/python benchmarks/run.py`; `--quick` for a smoke run, "
            "`--only LABEL,…` for some contenders, `--help` for the rest).",
        ]
    )


#: The benchmarks with a page of their own: (page, what it measures, its make target or script).
OTHER_BENCHMARKS = [
    (
        "benchmarks-accel.md",
        "large files offloaded to nginx (`ASSETCACHE_ACCEL`), against nginx alone and without offload",
        "make bench-accel",
    ),
    ("benchmarks-compare.md", "the hit path of this checkout against another commit", "make bench-compare"),
    (
        "benchmarks-deploy.md",
        "deploying a 10,000-file site with 10 files changed, by the client and by one zip",
        "make bench-deploy",
    ),
    (PROFILE_DOC, "where a worker's time goes", "benchmarks/profile_workers.py"),
    ("benchmarks-publish.md", "publishing", "make bench-publish"),
    ("benchmarks-propagation.md", "how soon every worker serves a change, per backend", "make bench-propagation"),
    ("benchmarks-rollback.md", "rollback and promote of a 10,000-file site", "make bench-rollback"),
    ("benchmarks-rules.md", "site rules", "benchmarks/rules_bench.py"),
    ("benchmarks-s3.md", "remote storage (S3) and the local disk tier", "benchmarks/s3_bench.py"),
    ("benchmarks-serving.md", "serving", "benchmarks/serve_bench.py"),
    ("benchmarks-warm.md", "warm start", "benchmarks/warm_bench.py"),
]


def others_section() -> list[str]:
    return [
        "Other benchmarks, each with its own page:",
        "",
        *(f"- [{page}]({page}): {what} (`{how}`)" for page, what, how in OTHER_BENCHMARKS),
        "",
    ]


def targets_section(results: Results) -> list[str]:
    lines = [
        "## Targets",
        "",
        markdown_table(TARGET_HEADERS, target_rows(results)),
        "",
        "*measured*: the median over rounds of the two servers' req/s (MiB/s for 10 MiB) divided in the same "
        "round; *result* judges that ratio. *by CPU time per request*: the other server's CPU time per "
        "request divided by ours, from the same runs (median over rounds): how many times less work a request "
        "costs. It depends much less than req/s on other load on the machine and on what the server waits "
        "for, so it shows what the app itself changes. The memory targets are read from the *10 MiB hit (1 "
        "connection)* case, first round (see *Memory* below).",
        "",
    ]
    if missed(results) and (DOCS / PROFILE_DOC).exists():
        lines += [
            f"Where the time goes in the missed targets, from profiles of the workers: [{PROFILE_DOC}]({PROFILE_DOC}) "
            "(gunicorn's sync worker and its per-connection close set a floor under every WSGI contender; the "
            "middleware still pays for Django's request cycle; with sync workers, large files are limited by how "
            "many responses the server has in flight).",
            "",
        ]
    return lines


def results_notes(args: argparse.Namespace, results: Results) -> list[str]:
    return [
        f"Medians of {args.rounds} round(s) of {args.duration} s per server and case (each column its own "
        "median). *MiB/s* counts every byte wrk read, headers included. *CPU µs/req* is the user + system CPU "
        "time of the server's worker processes during the run, per request (from /proc): it depends less on "
        "other load on the machine than req/s does. *vs …* is the median, over rounds, of this server's "
        "req/s (MiB/s for the 10 MiB and 5 MiB cases) divided by the other's in the same round: *vs "
        "whitenoise* for the gunicorn contenders, *vs servestatic* for the ASGI contenders under the same "
        "ASGI server, *vs nginx* for all. *errors* are wrk's socket errors and unexpected statuses (the 404 "
        "case's 404s are expected).",
        "",
        f"The whole run took {results.seconds / 60:.1f} min. Load average (1 min) when measuring began: "
        f"{results.load[0]:.2f}; when it ended: {results.load[1]:.2f}, on {len(os.sched_getaffinity(0))} "
        "CPUs. wrk and the busy server share those CPUs; load beyond about 3 is other work on the machine.",
        "",
    ]


MEMORY_HEADERS = [
    "server", "worker VmRSS", "1 connection, first run: VmRSS", "VmHWM", "16 connections, largest: VmRSS", "VmHWM",
]  # fmt: skip
FIRST_RUN = slice(0, 1)


def memory_rows(results: Results) -> list[list[object]]:
    rows: list[list[object]] = []
    names = dict.fromkeys(name for _, name in results.memory)
    for name in names:
        one, many = (results.memory.get((case, name)) for case in MEMORY_CASES)
        start = one or many
        assert start is not None
        rows.append(
            [
                name,
                f"{max(rss for rss, _ in start.first.values()) / 1024:,.1f} MiB",
                *growth_cells(one, FIRST_RUN),
                *growth_cells(many),
            ]
        )
    return rows


def growth_cells(memory: Memory | None, runs: slice = slice(None)) -> list[str]:
    if memory is None:
        return ["–", "–"]
    return [f"{memory.growth_kib(0, runs):+,} KiB", f"{memory.growth_kib(1, runs):+,} KiB"]


def memory_section(results: Results) -> list[str]:
    rows = memory_rows(results)
    if not rows:
        return []
    return [
        "## Memory while sending 10 MiB files",
        "",
        markdown_table(MEMORY_HEADERS, rows),
        "",
        "Read from `/proc/<pid>/status` of each worker just before and just after every 10 MiB run. "
        "*worker VmRSS*: the largest worker before the first run. *1 connection, first run*: the *10 MiB hit "
        "(1 connection)* case, one response in flight at a time, in the first round, when the workers had "
        "served only the warm-up requests (one at a time too) and the smaller cases; later rounds follow a "
        "16-connection run, whose freed memory the allocator hands out again, so they say more about the "
        "allocator than about one response. *16 connections, largest*: the *10 MiB hit* case, about 8 "
        "responses in flight per worker, the largest growth of one worker over one run of any round. *VmHWM* "
        "is the peak resident size, so its growth shows a peak the run caused even when the memory was given "
        "back by its end. Each worker had already sent the file during the warm-up requests. granian offers "
        "the ASGI `http.response.pathsend` extension, so django-assetcache hands it the file's path; "
        "under uvicorn, which does not, it reads 256 KiB blocks in a thread and sends each as it is read.",
        "",
    ]


def sendfile_section(results: Results) -> list[str]:
    if not results.sendfile:
        return []
    rows = [
        [
            name,
            str(record.get("range")),
            str(record.get("used")),
            f"{record.get('content_length'):,}",
            f"{record.get('kernel_bytes'):,}",
        ]
        for name, record in results.sendfile.items()
    ]
    return [
        "## Ranges go out by sendfile",
        "",
        "A 206 from django-assetcache is a `FileRange` (`django_assetcache/bodies.py`): the file, positioned "
        "at the range's start, with `Content-Length` set to the range's length. gunicorn's "
        "`wsgi.file_wrapper` hands it to `os.sendfile`, which sends exactly those bytes from the page cache "
        "without copying them through Python. `tests/test_server.py` checks this on every test run; this "
        "run checked it again with one range request to a gunicorn started with `tests/gunicorn_conf.py`, "
        "which records each body gunicorn sent by sendfile and the bytes the kernel was asked for:",
        "",
        markdown_table(["server", "Range", "sent by sendfile", "Content-Length", "bytes by os.sendfile"], rows),
        "",
    ]


def setup_section(contenders: Sequence[Contender], args: argparse.Namespace, results: Results) -> list[str]:
    wrk = shlex.join(wrk_command("<port>", None, CASES[0], args, WRK_REPORT)).replace(f"{ROOT}/", "")
    return [
        "## Set-up",
        "",
        *machine_lines(
            [
                "Django",
                "gunicorn",
                "uvicorn",
                "granian",
                "uvloop",
                "httptools",
                "whitenoise",
                "servestatic",
                "django-assetcache",
            ]
        ),
        f"- nginx: {nginx_version()}; wrk {wrk_version()}.",
        f"- Load: `{wrk}`; the other cases change the path and add headers (below). Within each case every "
        "server ran once per round, one after another; the servers' order rotated by one from round to round.",
        "",
        "### Servers",
        "",
        "Every server listens on its own free 127.0.0.1 port, all of them started before measuring and idle "
        "while another is measured. Every Python server has 2 worker processes, as nginx does.",
        "",
        "- **gunicorn**, for every WSGI contender: "
        f"`gunicorn --bind 127.0.0.1:<port> {shlex.join(GUNICORN_OPTIONS)} <app>`: "
        "the sync worker, one request at a time per worker, no keep-alive (it closes the connection after each "
        "response, so every request is a new TCP connection); access log off (gunicorn's default); "
        "bodies from `wsgi.file_wrapper` go out by sendfile.",
        "- **uvicorn**, for every ASGI contender: "
        f"`uvicorn --host 127.0.0.1 --port <port> {shlex.join(UVICORN_OPTIONS)} <factory>`: "
        f"{LOOP} event loop, keep-alive on (uvicorn's default, 5 s idle timeout), no `pathsend` extension.",
        "- **granian**, for every ASGI contender: "
        f"`granian --host 127.0.0.1 --port <port> {shlex.join(GRANIAN_OPTIONS)} <factory>`: "
        f"{LOOP} event loop, HTTP/1 keep-alive on (granian's default), offers `http.response.pathsend`.",
        f"- **nginx**: `{NGINX_TEMPLATE.relative_to(ROOT)}` filled in: `worker_processes 2`, `sendfile on`, "
        "`tcp_nopush on`, `keepalive_timeout 75s`, access log off, `etag on`; root = the published source "
        "directory; run as `nginx -p <tmp> -c <tmp>/nginx.conf` in the foreground.",
        "",
        "| contender | command |",
        "| --- | --- |",
        *[f"| {c.name} | `{describe_command(c)}`{env_note(c)} |" for c in contenders],
        "",
        "### Apps and settings",
        "",
        "- Django: `benchmarks/run_settings.py` = `benchmarks/bench_settings.py` (DEBUG off, "
        '`INSTALLED_APPS = ["django_assetcache"]`, one middleware chosen by `BENCH_MIDDLEWARE`, no URL '
        f"patterns, SQLite in a temporary directory) with `ASSETCACHE_MAX_ENTRIES = {args.max_entries}`. "
        "The WSGI fast path and the ASGI app wrap Django's handler (`benchmarks/apps.py`) and answer site "
        "hosts before it runs.",
        f"- django-assetcache: the files published into site `{SITE}` and asked for at Host `{HOST}`; "
        f"`warm_up(compress=False)` wrote the warm snapshot before the servers started; {assetcache_defaults()}.",
        "- whitenoise: `WhiteNoiseMiddleware` alone, `WHITENOISE_ROOT` = the published source directory, "
        "autorefresh and finders off, `WHITENOISE_MAX_AGE = 0`, no compressed files on disk.",
        "- servestatic: `ServeStaticASGI(None, root=<the published source directory>, max_age=0)`, with no "
        "Django behind it (a path it does not know gets its own 404).",
        "- bare WSGI app (`benchmarks/bare_app.py`): one fixed 1 KiB body, or a 304 when `If-None-Match` "
        "names its ETag, headers prepared once: what gunicorn itself allows with no framework, so the ceiling "
        "for the WSGI contenders. It runs the 1 KiB and 304 cases only.",
        "",
        "### Cases",
        "",
        "- Files: a 1 KiB `.css`, a 100 KiB `.js` and a 10 MiB random `.bin` (bodies up to 256 KiB are "
        "answered from memory by django-assetcache, larger ones by sendfile or pathsend).",
        "- *304 Not Modified*: the 1 KiB file with `If-None-Match: <the server's own ETag>` (nginx, whitenoise "
        "and servestatic make their own; each was fetched first).",
        f"- *5 MiB range*: the 10 MiB file with `Range: {RANGE}`: a 206 of 5 MiB.",
        f"- *miss to the database*: django-assetcache only. A second site of {args.files:,} files of "
        f"{MANY_BODY} bytes, published after the snapshot was written, so only the database knows its paths, "
        f"asked for at Host `{MANY_HOST}`; `benchmarks/wrk_random_paths.lua` picks one of its paths at random "
        f"for every request. With `ASSETCACHE_MAX_ENTRIES = {args.max_entries}` a worker's cache holds a few "
        "dozen of them, so nearly every request misses (more than 99%): one SQLite query for the path (plus "
        "one for the host, once per worker) on a new connection (Django's default `CONN_MAX_AGE = 0`), the "
        "body read from the blob store, the entry built and cached, an older one evicted. The run checks "
        "beforehand that such a miss queries the database. The same bound lets the hit cases' five entries "
        "stay: a hit only marks its entry, and nothing is evicted while only they are asked for.",
        "- *404, negative entry*: a fixed missing path, `/missing.txt`. django-assetcache answers from a "
        "cached negative entry (the site has no `404.html`, so a plain 404); whitenoise passes the request "
        "to Django, whose URL resolver finds nothing; servestatic and nginx answer with their own 404.",
        f"- Before measuring, every server got {WARM_REQUESTS} requests per case and each answer was checked "
        "(status and body length). Before each case of each round, every file the servers may read (the "
        "source directory, the blob store, the snapshot, the SQLite database) was read once, so the runs find "
        "it in the page cache: this machine pages out file pages left idle for 30 s (DAMON), and without that "
        f"the miss case, whose {args.files:,} files and database pages are otherwise idle between rounds, measured the "
        "disk.",
        "",
    ]


def env_note(contender: Contender) -> str:
    return "".join(f" with `{name}={value}`" for name, value in contender.env.items())


def headers_section(contenders: Sequence[Contender], headers: dict[str, dict[str, str]]) -> list[str]:
    lines = ["## Response headers, 1 KiB hit", ""]
    for contender in contenders:
        if contender.name in headers:
            fields = [f"{name}: {value}" for name, value in headers[contender.name].items() if name != "date"]
            lines += [f"{contender.name}:", "", "```", *fields, "```", ""]
    return lines


def nginx_version() -> str:
    import subprocess

    try:
        result = subprocess.run(["nginx", "-v"], capture_output=True, text=True)
    except OSError:
        return "not installed"
    return (result.stderr or result.stdout).strip().removeprefix("nginx version: ")
