"""What counting one request costs: plain integers against prometheus_client.

    .venv/bin/python benchmarks/metrics_bench.py [--number N] [--repeat R]

Times, per request, what the hit path does to count it (the site's counts
list, reached from the SiteInfo it already holds: two list increments) and
the alternatives: the same list found in a dict by site id, and
prometheus_client's labelled counters (a request counter and a byte counter,
looked up by labels or pre-bound, in one process and in multiprocess mode,
where every increment writes a memory-mapped file). Prints a Markdown table
of nanoseconds per request (the best of R runs, less an empty loop's time).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def contenders() -> dict[str, str]:
    return {
        "plain integers, from the SiteInfo (what the hit path does)": (
            "c = site.traffic; c[reply.status // 100] += 1; c[6] += reply.sent"
        ),
        "plain integers, by site id in a dict": ("c = by_id[site.id]; c[reply.status // 100] += 1; c[6] += reply.sent"),
        "prometheus_client, labels() per request": (
            "REQUESTS.labels(site.name, '2xx').inc(); SENT.labels(site.name).inc(reply.sent)"
        ),
        "prometheus_client, children bound once": "requests_child.inc(); sent_child.inc(reply.sent)",
    }


SETUP = """
class Site:
    __slots__ = ("id", "name", "traffic")
class Reply:
    __slots__ = ("status", "sent")
site = Site(); site.id = 7; site.name = "docs"; site.traffic = [0] * 9
reply = Reply(); reply.status = 200; reply.sent = 1234
by_id = {7: [0] * 9}
from prometheus_client import Counter, CollectorRegistry
registry = CollectorRegistry()
REQUESTS = Counter("requests", "r", ["site", "status"], registry=registry)
SENT = Counter("sent_bytes", "b", ["site"], registry=registry)
requests_child = REQUESTS.labels("docs", "2xx")
sent_child = SENT.labels("docs")
"""


def measure(statement: str, number: int, repeat: int) -> float:
    best = min(timeit.repeat(statement, SETUP, number=number, repeat=repeat))
    empty = min(timeit.repeat("pass", SETUP, number=number, repeat=repeat))
    return (best - empty) / number * 1e9


def run_in(mode: str, number: int, repeat: int) -> dict[str, float]:
    """Each contender's cost, in a fresh interpreter (the multiprocess mode
    is chosen when prometheus_client is first imported)."""
    env = dict(os.environ)
    with tempfile.TemporaryDirectory() as directory:
        if mode == "multiprocess":
            env["PROMETHEUS_MULTIPROC_DIR"] = directory
        else:
            env.pop("PROMETHEUS_MULTIPROC_DIR", None)
        output = subprocess.run(
            [sys.executable, __file__, "--child", "--number", str(number), "--repeat", str(repeat)],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    result: dict[str, float] = json.loads(output)
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps({name: measure(stmt, args.number, args.repeat) for name, stmt in contenders().items()}))
        return 0
    single = run_in("single", args.number, args.repeat)
    multi = run_in("multiprocess", args.number, args.repeat)
    print("| Counting one request | ns, one process | ns, multiprocess mode |")
    print("| --- | ---: | ---: |")
    for name in contenders():
        plain = name.startswith("plain")
        second = "(same)" if plain else f"{multi[name]:.0f}"
        print(f"| {name} | {single[name]:.0f} | {second} |")
    print(f"\n{sys.version.split()[0]}, {args.number} requests, best of {args.repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
