"""Where a contender's workers spend their time on one case: py-spy under wrk load.

    .venv/bin/python benchmarks/profile_workers.py --contender middleware --case 304 [--seconds 10]

Starts the contender as benchmarks/run.py does (same site, same server
command), drives it with wrk for ``--seconds`` while ``py-spy record``
samples every worker, and prints the functions with the largest share of the
samples: inclusive (the function and what it calls) and self (the function
alone; time in C code counts for the Python function that called it).
Needs py-spy (``pip install py-spy``) and the right to trace the workers
(root, or ``kernel.yama.ptrace_scope = 0``).

Without py-spy, ``--cprofile`` profiles from inside: each worker's app is
wrapped in cProfile (benchmarks/apps.py, ``BENCH_CPROFILE``), timed in CPU
time of the thread that runs the app (the event loop's, for ASGI, so the
server's own Python code is in it too); the workers' profiles are added up and
the functions with the most own and inclusive time printed. Only the Python
side shows: C code counts for the Python function that called it, and a
server written in Rust (granian) or C does its own work outside the profile.
"""

from __future__ import annotations

import argparse
import pstats
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.cases import CASES, Case
from benchmarks.common import ROOT
from benchmarks.contenders import CONTENDERS, SERVER_CHOICE, Contender, running
from benchmarks.load import etag, wrk_command, wrk_script
from benchmarks.run import prepare, warm_and_check

RATE = 250  # samples per second and worker
#: py-spy installed in the same virtual environment, else on PATH.
PY_SPY = (
    str(Path(sys.executable).with_name("py-spy")) if Path(sys.executable).with_name("py-spy").exists() else "py-spy"
)


def find(options: list[Contender] | list[Case], label: str) -> Contender | Case:
    for option in options:
        if label in (option.label, option.name):
            return option
    raise SystemExit(f"unknown: {label!r}; choose from {', '.join(o.label for o in options)}")


def record(pids: list[int], seconds: int, workdir: Path) -> list[subprocess.Popen[bytes]]:
    return [
        subprocess.Popen(
            [
                PY_SPY, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(RATE),
                "--nonblocking", "--format", "raw", "--output", str(workdir / f"profile-{pid}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for pid in pids
    ]  # fmt: skip


def frame_name(frame: str) -> str:
    """``function (path/to/module.py:123)`` → ``module.py:function``."""
    function, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", f"{ROOT}/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{path}:{function}"


def tally(paths: list[Path]) -> tuple[Counter[str], Counter[str], int]:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for path in paths:
        for line in path.read_text().splitlines():
            stack, _, count_text = line.rpartition(" ")
            count = int(count_text)
            frames = [frame_name(f) for f in stack.split(";") if " (" in f]
            if not frames:
                continue
            total += count
            own[frames[-1]] += count
            for name in set(frames):
                inclusive[name] += count
    return inclusive, own, total


def show(title: str, counter: Counter[str], total: int, top: int) -> None:
    print(f"\n{title} ({total:,} samples)")
    for name, count in counter.most_common(top):
        print(f"{100 * count / total:6.1f}%  {name}")


def cprofile(contender: Contender, case: Case, args: argparse.Namespace) -> int:
    """The contender's workers profiled from inside (benchmarks/apps.py) while wrk runs."""
    env = {**contender.env, "BENCH_CPROFILE": str(args.workdir), "BENCH_CPROFILE_SECONDS": str(args.seconds - 1)}
    with running(replace(contender, env=env), args.workdir, args.max_entries) as server:
        warm_and_check(server, [case])
        etag_value = etag(server, case) if case.conditional else None
        command = wrk_command(server.port, etag_value, case, args, wrk_script(args.workdir, case))
        subprocess.run(command, capture_output=True, check=True)
    profiles = sorted(str(path) for path in args.workdir.glob("profile-*.prof"))
    if not profiles:
        print("no worker wrote a profile", file=sys.stderr)
        return 1
    print(f"{contender.name}, {case.name}: cProfile (thread CPU time) in {len(profiles)} workers, wrk -c16")
    stats = pstats.Stats(*profiles)
    stats.strip_dirs()
    for order in ("tottime", "cumulative"):
        stats.sort_stats(order).print_stats(args.top)
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--contender", required=True, help="a label, e.g. middleware, 'WSGI fast path'")
    parser.add_argument("--case", required=True, help="a case label, e.g. '1 KiB', 304")
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--top", type=int, default=30)
    parser.add_argument("--files", type=int, default=2_000)
    parser.add_argument("--max-entries", type=int, default=64)
    parser.add_argument("--cprofile", action="store_true", help="cProfile inside the workers instead of py-spy")
    args = parser.parse_args()
    if (not args.cprofile and shutil.which(PY_SPY) is None) or shutil.which("wrk") is None:
        print("needs py-spy (pip install py-spy) and wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    contender = find([*CONTENDERS, *SERVER_CHOICE], args.contender)
    case = find(CASES, args.case)
    assert isinstance(contender, Contender) and isinstance(case, Case)
    args.workdir = Path(tempfile.mkdtemp(prefix="assetcache-profile-"))
    args.threads, args.connections, args.duration = 2, 16, args.seconds
    try:
        prepare(args.workdir, args.files)
        if args.cprofile:
            return cprofile(contender, case, args)
        with running(contender, args.workdir, args.max_entries) as server:
            warm_and_check(server, [case])
            etag_value = etag(server, case) if case.conditional else None
            command = wrk_command(server.port, etag_value, case, args, wrk_script(args.workdir, case))
            spies = record(server.workers(), args.seconds, args.workdir)
            subprocess.run(command, capture_output=True, check=True)
            for spy in spies:
                spy.wait(timeout=args.seconds + 30)
        inclusive, own, total = tally(sorted(args.workdir.glob("profile-*.txt")))
        print(f"{contender.name}, {case.name}: py-spy at {RATE} Hz per worker, {args.seconds} s under wrk -c16")
        show("inclusive", inclusive, total, args.top)
        show("self", own, total, args.top)
        return 0
    finally:
        shutil.rmtree(args.workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
