"""The hit path of this checkout against another commit's, in one run.

    .venv/bin/python benchmarks/compare_commits.py --baseline REV [--rounds N] [--duration S]

A refactor must not slow a hit. This checks it the way the suite measures
everything: the other commit is exported (``git archive``) to a temporary
directory, and each of our contenders (the middleware, the WSGI fast path,
the ASGI adapter under uvicorn and granian) runs twice, once from each
checkout, on the same prepared sites, interleaved and rotated round by round
by benchmarks/run.py's own loop. Prints the ratios (this checkout over the
baseline) and writes docs/benchmarks-compare.md. Needs wrk.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import replace
from io import BytesIO
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks import run
from benchmarks.cases import CASES
from benchmarks.common import ROOT, machine_lines, markdown_table, write_doc
from benchmarks.contenders import ASGI_GRANIAN, ASGI_UVICORN, CONTENDERS, FAST_PATH, MIDDLEWARE, Contender

OURS = (MIDDLEWARE, FAST_PATH, ASGI_UVICORN, ASGI_GRANIAN)
#: The cases a hit decides alone: no database, no sendfile-bound body.
HIT_CASES = ("1 KiB hit", "304 Not Modified", "100 KiB hit", "404, negative entry")
#: The bound the architecture issue sets for a change that must not slow a hit.
BOUND = 0.10


def export(rev: str, target: Path) -> str:
    """Write ``rev``'s tree to ``target``; return its short hash."""
    short = subprocess.run(
        ["git", "rev-parse", "--short", rev], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.strip()
    archive = subprocess.run(["git", "archive", "--format=tar", rev], cwd=ROOT, check=True, capture_output=True)
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(target, filter="data")
    return short


def pairs(baseline_root: Path, short: str) -> list[tuple[Contender, Contender]]:
    ours = [c for c in CONTENDERS if c.name in OURS]
    return [(c, replace(c, name=f"{c.name} @{short}", label=f"{c.label} @{short}", root=baseline_root)) for c in ours]


def ratio_rows(
    results: run.Results, contender_pairs: list[tuple[Contender, Contender]]
) -> tuple[list[list[str]], float]:
    """Rows of medians and ratios, and the largest difference in CPU per request.

    Worker CPU time per request is the measure the bound applies to: on a
    machine busy with other work, requests per second swing with whatever
    else runs, while the CPU a worker spends on one request barely moves.
    """
    rows = []
    worst = 0.0
    for case in (case for case in CASES if case.name in HIT_CASES):
        for current, baseline in contender_pairs:
            now = results.get(case.name, current.name)
            then = results.get(case.name, baseline.name)
            if not now or not then:
                continue
            now_rps = statistics.median(s.requests_per_s for s in now)
            then_rps = statistics.median(s.requests_per_s for s in then)
            now_cpu = statistics.median(s.cpu_us_per_request for s in now)
            then_cpu = statistics.median(s.cpu_us_per_request for s in then)
            cpu_ratio = now_cpu / then_cpu
            worst = max(worst, abs(cpu_ratio - 1))
            rows.append(
                [
                    case.name,
                    current.label,
                    f"{now_rps:,.0f}",
                    f"{then_rps:,.0f}",
                    f"{now_rps / then_rps:.2f}×",
                    f"{now_cpu:,.0f}",
                    f"{then_cpu:,.0f}",
                    f"{cpu_ratio:.2f}×",
                ]
            )
    return rows, worst


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline", required=True, help="the commit to compare with (e.g. a tag or a hash)")
    run.add_run_options(parser, rounds=5)
    args = parser.parse_args()
    if run.wrk_missing():
        return 2
    args.selected_cases = [case for case in CASES if case.name in HIT_CASES]
    args.files = 100  # the many-files site (no case here asks it)
    args.workdir = Path(tempfile.mkdtemp(prefix="assetcache-compare-"))
    baseline_root = args.workdir / "baseline"
    try:
        short = export(args.baseline, baseline_root)
        run.prepare(args.workdir, args.files)
        contender_pairs = pairs(baseline_root, short)
        contenders = [c for pair in contender_pairs for c in pair]
        results = run.measure_contenders(contenders, args)
        rows, worst = ratio_rows(results, contender_pairs)
        table = markdown_table(
            [
                "case",
                "contender",
                "this req/s",
                f"@{short} req/s",
                "req/s ratio",
                "this CPU µs/req",
                f"@{short} CPU µs/req",
                "CPU ratio",
            ],
            rows,
        )
        verdict = f"largest difference in CPU per request {worst:.0%} (bound ±{BOUND:.0%})"
        print()
        print(table)
        print(verdict)
        if not args.no_doc:
            text = "\n".join(
                [
                    "# This checkout against another commit: the hit path",
                    "",
                    f"Generated by `benchmarks/compare_commits.py --baseline {args.baseline}` ({short}).",
                    "Each contender runs from both checkouts on the same sites; the run interleaves all of",
                    "them and rotates their order every round. Figures are medians of"
                    f" {args.rounds} rounds of {args.duration} s each. The bound applies to the workers' CPU",
                    "time per request: requests per second swing with whatever else the machine runs, while",
                    "the CPU one request costs a worker barely moves.",
                    "",
                    table,
                    "",
                    f"Result: {verdict}.",
                    "",
                    *machine_lines(["django", "gunicorn", "uvicorn", "granian"]),
                ]
            )
            print(f"wrote {write_doc('benchmarks-compare.md', text).relative_to(ROOT)}")
        return 0 if worst <= BOUND else 1
    finally:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
