"""Driving a server with wrk for one case of benchmarks/run.py."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
from pathlib import Path

from benchmarks.cases import Case
from benchmarks.common import ROOT
from benchmarks.contenders import Server
from benchmarks.serve_bench import Sample, parse_wrk
from tests.servers import http_request

WRK_REPORT = ROOT / "benchmarks" / "wrk_report.lua"
WRK_RANDOM = ROOT / "benchmarks" / "wrk_random_paths.lua"


def etag(server: Server, case: Case) -> str:
    """The server's own ETag for the case's path (nginx, whitenoise and
    servestatic each make their own)."""
    if case.path not in server.etags:
        status, headers, _ = http_request(server.port, case.path, case.host)
        if status != 200 or "etag" not in headers:
            raise RuntimeError(f"{server.contender.name}: no ETag for {case.path} ({status})")
        server.etags[case.path] = headers["etag"]
    return server.etags[case.path]


def wrk_script(workdir: Path, case: Case) -> Path:
    """wrk_report.lua, with the random-path request function appended for the miss case."""
    if not case.random_paths:
        return WRK_REPORT
    script = workdir / "wrk_random.lua"
    if not script.exists():
        script.write_text(WRK_REPORT.read_text() + "\n" + WRK_RANDOM.read_text())
    return script


def wrk_command(
    port: int | str, etag_value: str | None, case: Case, args: argparse.Namespace, script: Path
) -> list[str]:
    connections = case.connections or args.connections
    command = [
        "wrk", f"-t{min(args.threads, connections)}", f"-c{connections}", f"-d{args.duration}s", "--latency",
        "-s", str(script), "-H", f"Host: {case.host}",
    ]  # fmt: skip
    for name, value in case.request_headers().items():
        command += ["-H", f"{name}: {value}"]
    if etag_value is not None:
        command += ["-H", f"If-None-Match: {etag_value}"]
    return [*command, f"http://127.0.0.1:{port}{case.path}"]


def run_wrk(server: Server, case: Case, args: argparse.Namespace) -> Sample:
    etag_value = etag(server, case) if case.conditional else None
    command = wrk_command(server.port, etag_value, case, args, wrk_script(args.workdir, case))
    env = {**os.environ, "BENCH_FILES": str(args.files)}
    cpu_before = server.cpu_seconds()
    result = subprocess.run(command, capture_output=True, text=True, check=True, env=env)
    cpu_used = server.cpu_seconds() - cpu_before
    sample = parse_wrk(result.stdout)
    if case.status >= 400:
        sample.errors -= status_errors(result.stdout)  # wrk counts every 4xx as an error
    if sample.requests:
        sample.cpu_us_per_request = cpu_used / sample.requests * 1e6
    return sample


def status_errors(output: str) -> int:
    for line in output.splitlines():
        if line.startswith("WRK_JSON "):
            return int(json.loads(line.removeprefix("WRK_JSON "))["errors"]["status"])
    return 0
