"""Real servers for tests: gunicorn on a free loopback port, and a raw HTTP client."""

from __future__ import annotations

import http.client
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

import pytest

ROOT = Path(__file__).resolve().parent.parent


def unavailable(reason: str) -> NoReturn:
    """Skip a test whose program or service is missing; in CI (``CI=true``) fail it.

    A skipped test proves nothing, so CI, which installs every program the
    suite needs, must not pass with one missing.
    """
    if os.environ.get("CI", "").lower() in ("true", "1", "yes"):
        pytest.fail(f"{reason} (CI=true: a missing program fails the run)", pytrace=False)
    pytest.skip(reason)


def database_gone(media_root: str, tmp_path: Path) -> dict[str, str]:
    """The environment of a test server whose database is unreachable (a file
    in a directory that does not exist): it can serve only from the warm
    snapshot and the blob storage at ``media_root``."""
    return {
        "ASSETCACHE_TEST_MEDIA_ROOT": media_root,
        "ASSETCACHE_TEST_DB": str(tmp_path / "gone" / "db.sqlite3"),
        "ASSETCACHE_TEST_INVALIDATION": "database",
    }


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def stop_process(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Ask a server to stop, and kill it if it does not within ``timeout``."""
    if process.poll() is not None:
        return
    process.send_signal(sig)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"server did not listen on {port} within {timeout} s")


@dataclass
class Server:
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path

    def request(
        self, path: str, host: str, method: str = "GET", headers: dict[str, str] | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        return http_request(self.port, path, host, method, headers)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def http_request(
    port: int, path: str, host: str, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """One request on a fresh connection; header names lower-cased."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        connection.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", host)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        connection.endheaders()
        response = connection.getresponse()
        body = response.read()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, body
    finally:
        connection.close()


@contextmanager
def gunicorn(
    tmp_path: Path,
    *,
    workers: int = 1,
    app: str = "tests.wsgi:application",
    env: dict[str, str] | None = None,
    extra_args: Sequence[str] = (),
    port: int | None = None,
) -> Iterator[Server]:
    port = port or free_port()
    log_path = tmp_path / f"gunicorn-{port}.log"
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"127.0.0.1:{port}",
        "--workers",
        str(workers),
        "--no-control-socket",
        "--config",
        str(ROOT / "tests" / "gunicorn_conf.py"),
        *extra_args,
        app,
    ]
    with open(log_path, "wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, env=environment, stdout=log, stderr=log)
    server = Server(port, process, log_path)
    try:
        wait_for_port(port, process)
        yield server
    finally:
        stop_process(process)
