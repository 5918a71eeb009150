"""What site rules cost a request: a hit on a site with 1,000 ``_headers``
rules and 1,000 ``_redirects`` rules (100 dynamic, 10 forced) against a hit
on the same files without rules, and a miss that falls through every
dynamic rule.

    .venv/bin/python benchmarks/rules_bench.py [--rounds 30] [--requests 2000]

In one process, through the WSGI wrapper (no server, no sockets: what is
measured is the request path itself). Contenders are interleaved round by
round and the median of the rounds is reported; writes
docs/benchmarks-rules.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import machine_lines, markdown_table, setup_django, write_doc

FILES = {
    "index.html": "<!doctype html><title>Home</title>",
    "css/site.css": "body { color: #333 }\n" * 20,
    "404.html": "<!doctype html><title>Not here</title>",
}


def redirects_file() -> str:
    """1,000 rules: 890 static, 100 dynamic (placeholders, splats, query
    conditions, none of them matching the measured paths), 10 forced (5
    static, 5 dynamic)."""
    lines = [f"/forced-{n} /index.html 200!" for n in range(5)]
    lines += [f"/forced-dyn-{n}/:x /index.html 200!" for n in range(5)]
    for n in range(100):
        kind = n % 3
        if kind == 0:
            lines.append(f"/old-{n}/:year/:slug /new-{n}/:year/:slug 301")
        elif kind == 1:
            lines.append(f"/section-{n}/* /moved-{n}/:splat 302")
        else:
            lines.append(f"/query-{n} id=:id /item-{n}/:id 301")
    lines += [f"/static-{n} /target-{n} 301" for n in range(890)]
    return "\n".join(lines) + "\n"


def headers_file() -> str:
    """1,000 header lines: 500 blocks of two, half static paths, half patterns."""
    blocks = []
    for n in range(250):
        blocks.append(f"/page-{n}.html\n  X-Page: {n}\n  X-Frame-Options: DENY\n")
        blocks.append(f"/area-{n}/*\n  X-Area: {n}\n  X-Robots-Tag: noindex\n")
    return "".join(blocks)


def _app() -> Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]:
    from django_assetcache.wsgi import AssetCacheWSGI

    def not_found(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response("404 Not Found", [])
        return [b""]

    return AssetCacheWSGI(not_found)


def _timer(app: Any, host: str, path: str, requests: int) -> Callable[[], float]:
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "QUERY_STRING": "",
        "HTTP_HOST": host,
        "wsgi.url_scheme": "http",
    }

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        pass

    def run() -> float:
        started = time.perf_counter_ns()
        for _ in range(requests):
            app(environ, start_response)
        return (time.perf_counter_ns() - started) / requests

    return run


def _fall_through(requests: int) -> Callable[[], float]:
    """One rule search (no memo) for a path no rule matches: every dynamic
    rule before the end is tried."""
    from django_assetcache.hosts import SiteInfo
    from django_assetcache.models import Site

    site = Site.objects.select_related("live_deployment").get(subdomain="ruled")
    assert site.live_deployment is not None
    info = SiteInfo(site.pk, site.subdomain, True, "index.html", "404.html", "", rules=site.live_deployment.rules)
    table = info.redirects
    assert table is not None and len(table.dynamic) == 100

    def run() -> float:
        started = time.perf_counter_ns()
        for number in range(requests):
            table.search("ruled.sites.bench", f"/nothing/{number}", "")
        return (time.perf_counter_ns() - started) / requests

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/ alone")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        setup_django("benchmarks.bench_settings", {"BENCH_DIR": directory})
        from django.conf import settings

        from django_assetcache import conf
        from django_assetcache.publish import publish

        # No change-feed poll lands in one contender's round.
        settings.ASSETCACHE_POLL_INTERVAL = 3600
        conf.reset()

        root = Path(directory)
        for name, files in (
            ("plain", FILES),
            ("ruled", {**FILES, "_redirects": redirects_file(), "_headers": headers_file()}),
        ):
            for relative, text in files.items():
                (root / name / relative).parent.mkdir(parents=True, exist_ok=True)
                (root / name / relative).write_text(text)
            summary = publish(name, root / name)
            assert not summary.rule_problems, summary.rule_problems
        app = _app()
        contenders = {
            "hit, no rules": _timer(app, "plain.sites.bench", "/css/site.css", args.requests),
            "hit, 1,000 + 1,000 rules": _timer(app, "ruled.sites.bench", "/css/site.css", args.requests),
            "404 again, no rules": _timer(app, "plain.sites.bench", "/nothing/here", args.requests),
            "404 again, 1,000 + 1,000 rules": _timer(app, "ruled.sites.bench", "/nothing/here", args.requests),
            "rule search falling through 100 dynamic rules": _fall_through(args.requests),
        }
        for run in contenders.values():
            run()  # warm: entries built, memos filled
        samples: dict[str, list[float]] = {name: [] for name in contenders}
        names = list(contenders)
        for number in range(args.rounds):
            # Each round starts with another contender: none always runs
            # right after the rule search, which leaves the CPU caches cold.
            turn = number % len(names)
            for name in names[turn:] + names[:turn]:
                samples[name].append(contenders[name]())
    medians = {name: statistics.median(values) for name, values in samples.items()}
    rows = [
        [name, f"{medians[name] / 1000:.2f}", ratio]
        for name, ratio in (
            ("hit, no rules", "1.00"),
            ("hit, 1,000 + 1,000 rules", f"{medians['hit, 1,000 + 1,000 rules'] / medians['hit, no rules']:.3f}"),
            ("404 again, no rules", "1.00"),
            (
                "404 again, 1,000 + 1,000 rules",
                f"{medians['404 again, 1,000 + 1,000 rules'] / medians['404 again, no rules']:.3f}",
            ),
            ("rule search falling through 100 dynamic rules", ""),
        )
    ]
    table = markdown_table(["Request", "µs per request (median)", "ratio"], rows)
    print(table)
    if not args.no_write:
        text = "\n".join(
            [
                "# Benchmark: site rules",
                "",
                "Written by `benchmarks/rules_bench.py "
                f"--rounds {args.rounds} --requests {args.requests}`: requests through the WSGI wrapper in one "
                "process (no server), contenders interleaved round by round (each round starting with the "
                "next one), the median round reported. The "
                "ruled site has 1,000 `_redirects` rules (890 static, 100 dynamic, 10 forced of which 5 dynamic) "
                "and 1,000 `_headers` lines in 500 blocks; the other site has the same files and no rules.",
                "",
                table,
                "",
                "Whether a forced rule may answer a path is decided when the path's cache entry is built (a "
                "deployment's rules never change), so a hit on a path no forced rule matches reads one flag of "
                "its entry, as on a site without rules; a path a forced rule may answer (or any path, when a "
                "forced rule asks for a host or a query) pays one memo lookup more. Header rules are in the entry "
                "already. A 404 asked again pays one memo lookup in the table of unforced rules. The last row is "
                "what a path asked for the first time pays, before the memo holds it.",
                "",
                *machine_lines(["Django", "django-assetcache"]),
            ]
        )
        print(write_doc("benchmarks-rules.md", text))


if __name__ == "__main__":
    main()
