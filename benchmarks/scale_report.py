"""docs/benchmarks-scale.md and its chart, from benchmarks/scale_results.json."""

from __future__ import annotations

import datetime
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.common import DOCS, machine_lines, markdown_table, write_doc

CHART = DOCS / "images" / "benchmarks-scale.png"
MIB = 1024 * 1024
Results = dict[str, dict[str, float]]


@dataclass(frozen=True)
class Measure:
    key: str
    label: str
    unit: str
    show: Callable[[float], str]
    promise: str
    #: The design's growth, as an exponent of the asset count: 0 constant, 1 linear.
    promised: float
    scale: float = 1.0


def mib(value: float) -> str:
    return f"{value / MIB:,.1f}"


def fixed(digits: int) -> Callable[[float], str]:
    return lambda value: f"{value:,.{digits}f}"


MEASURES = [
    Measure("publish_empty_files_per_s", "publish, first 30 sites", "files/s", fixed(0),
            "constant: per file, a hash, a store and a row", 0),
    Measure("publish_full_files_per_s", "publish of 3 sites into the full install", "files/s", fixed(0),
            "constant: a publish reads and writes its own site's rows only", 0),
    Measure("warmup_seconds", "`assetcache_warmup`", "s", fixed(1),
            "linear in assets (every row read, every entry written), plus compressing each distinct body once", 1),
    Measure("snapshot_bytes", "snapshot size", "MiB", mib,
            "linear in assets (index) plus the distinct small bodies", 1, MIB),
    Measure("hydrate_seconds", "hydration of one process", "s", fixed(3),
            "the snapshot is mapped, its sites read, its tables checked in one CRC pass: under 0.5 s at 1M", 1),
    Measure("hydrate_rss_growth", "RSS growth at hydration", "MiB", mib,
            "linear in sites (the pages of the checked tables are let go): under 200 MB at 1M", 1, MIB),
    Measure("worker_rss_hydrated", "worker RSS after hydration", "MiB", mib,
            "Django's own plus the hydration growth", 1, MIB),
    Measure("worker_rss_served", "worker RSS after the wrk runs", "MiB", mib,
            "plus built entries, bounded by ASSETCACHE_MEMORY_LIMIT (64 MiB)", 1, MIB),
    Measure("uniform_rps", "hits at uniform random paths", "req/s", fixed(0),
            "constant per hit (dictionary lookups); the share of misses grows once the paths outnumber the cache", 0),
    Measure("zipf_rps", "hits at Zipf-like random paths", "req/s", fixed(0),
            "constant: the hot paths stay cached", 0),
    Measure("miss_p50_ms", "first request of a path, p50", "ms", fixed(2),
            "constant: a binary search of the deployment's table in the mapped file, no query", 0),
    Measure("miss_p99_ms", "first request of a path, p99", "ms", fixed(2), "constant", 0),
    Measure("propagation_ms", "change applied by all 4 workers, median", "ms", fixed(0),
            "constant: one feed read per poll, drops only the changed site's entries", 0),
]  # fmt: skip


def exponent(points: list[tuple[int, float]]) -> float | None:
    """The slope of log(value) against log(assets), first to last size."""
    usable = [(n, v) for n, v in points if v > 0]
    if len(usable) < 2 or usable[0][0] == usable[-1][0]:
        return None
    (n0, v0), (n1, v1) = usable[0], usable[-1]
    return math.log(v1 / v0) / math.log(n1 / n0)


def growth(value: float | None) -> str:
    if value is None:
        return "–"
    if abs(value) < 0.3:
        word = "constant"
    elif value < 0:
        word = "falls"
    elif value < 0.7:
        word = "sub-linear"
    elif value < 1.3:
        word = "linear"
    else:
        word = "super-linear"
    return f"{word} (n^{value:.2f})"


def series(results: Results, database: str, key: str) -> list[tuple[int, float]]:
    points = [(int(name.split()[1]), data[key]) for name, data in results.items() if name.split()[0] == database]
    return sorted((n, v) for n, v in points if v is not None)


def table(results: Results, database: str) -> str:
    sizes = sorted({int(name.split()[1]) for name in results if name.split()[0] == database})
    rows = []
    for measure in MEASURES:
        points = dict(series(results, database, measure.key))
        cells = [measure.show(points[n]) if n in points else "–" for n in sizes]
        rows.append([f"{measure.label} ({measure.unit})", *cells, growth(exponent(sorted(points.items())))])
    headers = ["measure", *[f"{n:,} assets / {n // 100:,} sites" for n in sizes], "growth"]
    return markdown_table(headers, rows)


def chart(results: Results, path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = 4
    rows = math.ceil(len(MEASURES) / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(18, 3.6 * rows), squeeze=False)
    databases = sorted({name.split()[0] for name in results})
    flat = list(axes.flat)
    for axis, measure in zip(flat, MEASURES, strict=False):
        for database in databases:
            points = series(results, database, measure.key)
            xs = [n for n, _ in points]
            ys = [v / measure.scale for _, v in points]
            axis.plot(xs, ys, marker="o", label=database)
        axis.set_xscale("log")
        axis.set_title(measure.label.replace("`", ""), fontsize=10)
        axis.set_ylabel(measure.unit)
        axis.set_ylim(bottom=0)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=8)
    for axis in flat[len(MEASURES) :]:
        axis.axis("off")
    figure.suptitle("django-assetcache at scale: each measure against the number of assets (log scale)")
    figure.tight_layout(rect=(0, 0, 1, 0.96))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=80)
    plt.close(figure)
    return path


def write_report(results: Results) -> Path:
    image = chart(results, CHART)
    databases = [d for d in ("sqlite", "postgres") if any(name.startswith(d + " ") for name in results)]
    tables = {database: table(results, database) for database in databases}
    promises = markdown_table(["measure", "what the design promises"], [[m.label, m.promise] for m in MEASURES])
    text = document(
        tables,
        promises,
        results,
        image.relative_to(DOCS).as_posix(),
        machine_lines(["Django", "gunicorn", "psycopg", "django-assetcache"]),
    )
    return write_doc("benchmarks-scale.md", text)


def runs(results: Results) -> str:
    """When each size was measured, in which snapshot format, and how loaded the machine was."""
    rows = []
    for name, data in sorted(
        results.items(), key=lambda item: (list(TITLES).index(item[0].split()[0]), int(item[0].split()[1]))
    ):
        database, assets = name.split()
        finished = datetime.datetime.fromtimestamp(data["finished"], datetime.UTC) if "finished" in data else None
        rows.append(
            [
                f"{TITLES[database]}, {int(assets):,} assets",
                finished.strftime("%Y-%m-%d %H:%M") if finished else "–",
                f"{data['snapshot_format']:.0f}" if "snapshot_format" in data else "–",
                f"{data['load']:.2f}",
            ]
        )
    return markdown_table(["run", "measured by (UTC)", "snapshot format", "load average (1 min) at its start"], rows)


def document(tables: dict[str, str], promises: str, results: Results, image: str, machine: list[str]) -> str:
    lines = ["# Benchmark: scale", "", INTRO, "", f"![Each measure against the number of assets]({image})", ""]
    for database, text in tables.items():
        lines += [f"## {TITLES[database]}", "", text, ""]
    lines += ["## What the design promises", "", promises, "", FINDINGS, "", "## Set-up", "", SETUP]
    # Sizes are measured in separate runs: the table below dates each, not the page.
    lines += [line for line in machine if not line.startswith("- Date:")]
    lines += ["", RUNS, "", runs(results), "", REPRODUCE]
    return "\n".join(lines)


TITLES = {"sqlite": "SQLite", "postgres": "PostgreSQL"}
INTRO = """How each cost of django-assetcache grows with the install: 10,000, 100,000 and 1,000,000 assets
across 100, 1,000 and 10,000 sites of 100 files each, on SQLite and on PostgreSQL. Every site has
55 small HTML pages of its own, CSS, JavaScript and SVG drawn from pools of "framework" bodies that
every site shares (40 stylesheets, 60 scripts of 2 KiB to 200 KiB), images (PNGs of its own, shared
JPEGs), JSON, and one download of 1 to 4 MiB from a pool of six. Sizes are log-uniform within each
kind: many small files, some images, a few large ones.

**How the install is made.** Publishing 10,000 sites one by one would measure publishing for hours.
30 template sites are published for real (`publish()`: reading, hashing, storing blobs, writing
rows; their speed is the first row), then the other sites are written in bulk as clones of the
templates, in exactly the rows a publish writes (a `Site`, its live `Deployment`, one `Asset` per
file pointing at the template's blobs, one `Change`), and 3 more sites are published for real into
the full install (the second row). The blob store stays the size of the templates (about 100 MiB
whatever the asset count); every asset is still its own row, its own path in the snapshot and its
own cache entry. Then `assetcache_warmup` runs (compressed variants, then the snapshot).

**What is measured.** *Hydration*: a fresh process's `django_assetcache.warm()` (median of three
processes), and how much its resident memory grew: RSS in all, which includes the pages of the
mapped snapshot it touched, shared by every worker through the page cache. Then gunicorn with
4 sync workers, each hydrating in `post_fork` (`ASSETCACHE_MEMORY_LIMIT` 64 MiB, the default):
the largest worker RSS after hydration, 500 first requests of random assets one after another
(*miss*: the entry is built from the snapshot, no query), wrk (`-t2 -c16`) choosing a random asset
of the whole install for every request, uniformly and Zipf-like (rank *r* asked about 1/*r* as
often), each after a run half as long that fills the caches, the largest worker RSS after those
runs, and 5 publishes of a small site while three clients probe it: the time from the commit to
the last of the 4 workers applying the change (database backend polling every second on SQLite,
LISTEN/NOTIFY on PostgreSQL).

*growth* is the exponent *k* of the asset count between the smallest and the largest size
measured (value ∝ n^k): about 0 is constant, about 1 linear. Within ±0.3 it reads as constant:
on this shared 2-CPU machine (load averages below) throughputs vary by up to 1.5× from run to
run. A measure that is a constant plus a part linear in assets (the snapshot: the distinct bodies
plus the index) shows a small exponent until the linear part dominates; the findings give the
per-asset part."""
FINDINGS = """## Findings

- **Hits** do not slow down as the install grows: the hit path is a dictionary lookup per host
  and per path whatever their number. Requests/s are low in absolute terms because every request
  is a new connection to a sync worker, one in a hundred is a 1–4 MiB download, and the machine
  is shared; what matters here is that the rate does not fall with the asset count. The Zipf-like
  workload is served at about the same rate as the uniform one (within the run-to-run noise),
  although the uniform one misses the process cache (64 MiB per worker) far more often: a miss is
  cheap (next point), so the hit ratio matters less here than the connection set-up and the large
  downloads. The two tables were measured in separate runs about two hours apart (Set-up);
  neither a hit nor a miss makes a query, so read each table across its sizes rather than one
  table's hit rows against the other's.
- **A first request** (a miss of the process cache) costs the same at every size, about 1 ms over
  HTTP at p50: the entry is built from the snapshot's record for the path, with no query.
- **Change propagation** stays within the ±0.3 band of a constant: under the poll interval (1 s)
  with the database backend, about 0.1 s or less with PostgreSQL's LISTEN/NOTIFY (a median of 38
  to 46 ms up to 100,000 assets, 105 ms at 1,000,000; these runs do not tell whether that rise is
  noise or a cost of the larger install). A change drops one site's entries, whatever else the
  cache holds.
- **Publishing** runs at the same files/s into an empty install and into a full one: a publish
  reads and writes only its own site's rows.
- **`assetcache_warmup`** is dominated, at these sizes, by compressing the distinct bodies (the
  same ~100 MiB at every size: the sites share them); the snapshot's own part grows linearly.
- **The snapshot** is the distinct small bodies (about 40 MiB here, the same at every size) plus
  about 200 bytes per asset: its record (64 bytes, plus 56 per compressed variant), its
  path, and its entry in its deployment's table (20 bytes).
- **Hydration** grows with the sites, not the assets: the process parses the snapshot's JSON index,
  which holds the sites, their hosts, their settings and, per deployment, where its table of
  paths is in the file; then it checks the CRC of every table (one pass in C over those 200
  bytes per asset in the mapped file) and unmaps those pages again (`madvise`), so they stay in the
  page cache that every worker shares and not in the process. No path is decoded at load: a
  path's first request searches its deployment's table (sorted by a 64-bit digest of the path)
  in place and compares the stored path. At 1,000,000 assets across 10,000 sites a process
  hydrates in 0.41 s on SQLite and 0.30 s on PostgreSQL, and its RSS grows by 30 MiB on both:
  within the targets (under 0.5 s and under 200 MB), where the previous format (1.4 µs and
  380 bytes per asset, every path decoded) extrapolated to 1.4 s and 360 MiB. Both still grow
  linearly in this install (a constant plus a linear part, so the growth column reads below 1),
  because its sites grow with its assets: about 3 KiB of RSS per site (its record, its hosts,
  where its tables are), and about 0.3 to 0.4 µs per asset, the CRC pass and the sites' part of
  the JSON index. Both tables were measured with this format (version 8, Set-up).
- **Worker memory after serving** at 1,000,000 assets (341 MiB of RSS on SQLite, 350 MiB on
  PostgreSQL) is mostly file pages (236 and 239 MiB): random paths over the whole install read
  nearly every page of the 230 MiB snapshot, which the 4 workers share through the page cache.
  The worker's own (anonymous) memory is 105 and 110 MiB, the entries bounded by
  `ASSETCACHE_MEMORY_LIMIT` included."""
SETUP = """- Everything on one machine over loopback: gunicorn, wrk, the publishing process and, for
  PostgreSQL, a throwaway server (`fsync=off`, tests/databases.py). Settings: `tests.settings`
  (`tests.pid_wsgi`, which tells which worker answered and when it applied a change)."""
RUNS = """Each size on each database: the time by which it was measured, the snapshot format it
measured, and the load average when its measurement began."""
REPRODUCE = (
    "Reproduce: `make bench-scale` (10k, 100k and 1M assets; `make bench-scale ARGS=--quick` for 10k and 100k only)."
)
