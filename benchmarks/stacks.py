"""What the change benchmarks share: a stack of processes per invalidation
backend (its own database and media, PostgreSQL and redis started here), and
probes that tell when every gunicorn worker serves a version.

The probes need a server running ``tests.pid_wsgi`` (every response names
the worker that made it, ``X-Worker-Pid``, and when its cache applied the
last change, ``X-Last-Change``). Used by propagation_bench.py and
rollback_bench.py; it imports the test helpers (tests/servers.py,
tests/databases.py), so it needs the test extras installed.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.databases import (
    MigratedDatabases,
    PostgresServer,
    RedisServer,
    ServerUnavailable,
    start_postgres,
    start_redis,
)
from tests.servers import Server, http_request

HOST = "bench.sites.test"

#: Which version a response carries (from its path, status and body);
#: raises on an answer that is no version at all.
Classifier = Callable[[str, int, bytes], int]


# --- a stack per backend -----------------------------------------------------------


@dataclass
class Stack:
    backend: str
    work: Path
    env: dict[str, str]


@dataclass
class Backends:
    """The throwaway PostgreSQL and redis the wanted backends need, the
    backends that could not be measured (and why), and the stacks."""

    base: Path
    wanted: list[str]
    poll_interval: float
    postgres: PostgresServer | None = None
    redis: RedisServer | None = None
    skipped: list[str] = field(default_factory=list)
    postgres_version: str = "not used"
    redis_version: str = "not used"

    def __enter__(self) -> Backends:
        if "postgres" in self.wanted:
            try:
                self.postgres = start_postgres()
                with self.postgres.connect() as conn:  # type: ignore[attr-defined]
                    self.postgres_version = conn.execute("SHOW server_version").fetchone()[0]
            except ServerUnavailable as exc:
                print(f"skipping postgres: {exc}", file=sys.stderr)
                self.skipped.append(f"postgres ({exc})")
        if "redis" in self.wanted:
            try:
                self.redis = start_redis()
                self.redis_version = server_version(["redis-server", "--version"])
            except ServerUnavailable as exc:
                print(f"skipping redis: {exc}", file=sys.stderr)
                self.skipped.append(f"redis ({exc})")
        return self

    def __exit__(self, *exc: object) -> None:
        if self.redis is not None:
            self.redis.stop()
        if self.postgres is not None:
            self.postgres.stop()

    def stacks(self) -> list[Stack]:
        """A stack per wanted backend that can run, in the order asked:
        SQLite for all but ``postgres``."""
        sqlite = MigratedDatabases(self.base)
        stacks = []
        for backend in self.wanted:
            if (backend == "postgres" and self.postgres is None) or (backend == "redis" and self.redis is None):
                continue
            databases = MigratedDatabases(self.base, self.postgres) if backend == "postgres" else sqlite
            stacks.append(self._stack(backend, databases))
        return stacks

    def _stack(self, backend: str, databases: MigratedDatabases) -> Stack:
        work = self.base / backend
        work.mkdir()
        env = databases.env(work)
        env.update(
            {
                "ASSETCACHE_TEST_MEDIA_ROOT": str(work / "media"),
                "ASSETCACHE_TEST_INVALIDATION": backend,
                "ASSETCACHE_TEST_POLL_INTERVAL": str(self.poll_interval),
            }
        )
        if backend == "redis" and self.redis is not None:
            env["ASSETCACHE_TEST_REDIS_URL"] = self.redis.url
        return Stack(backend, work, env)


def server_version(command: list[str]) -> str:
    try:
        return subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]
    except (OSError, subprocess.CalledProcessError, IndexError):
        return "not installed"


# --- probes ---------------------------------------------------------------------------


@dataclass
class Probe:
    pid: str
    path: str
    version: int
    #: When the request was about to be sent, and when its answer had been read.
    started: float
    ended: float
    applied_at: float | None


@dataclass
class Prober:
    """Client threads requesting ``paths`` in turn, each on a fresh
    connection, recording which worker answered which version when."""

    port: int
    classify: Classifier
    paths: Sequence[str] = ("/",)
    threads: int = 3
    probes: list[Probe] = field(default_factory=list)
    stopping: threading.Event = field(default_factory=threading.Event)
    errors: list[str] = field(default_factory=list)

    def run(self, offset: int) -> None:
        turn = offset
        while not self.stopping.is_set():
            path = self.paths[turn % len(self.paths)]
            turn += 1
            started = time.time()
            try:
                status, headers, body = http_request(self.port, path, HOST)
            except OSError as exc:
                self.errors.append(f"{type(exc).__name__}: {exc}")
                if len(self.errors) > 100:
                    raise
                time.sleep(0.01)
                continue
            version = self.classify(path, status, body)
            _, _, applied = headers.get("x-last-change", "0 None").partition(" ")
            self.probes.append(
                Probe(
                    headers["x-worker-pid"],
                    path,
                    version,
                    started,
                    time.time(),
                    None if applied == "None" else float(applied),
                )
            )
            time.sleep(0.002)

    def __enter__(self) -> Prober:
        step = max(1, len(self.paths) // self.threads)
        self.workers = [
            threading.Thread(target=self.run, args=(index * step,), daemon=True) for index in range(self.threads)
        ]
        for worker in self.workers:
            worker.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        for worker in self.workers:
            worker.join(timeout=30)


def warm(
    server: Server, workers: int, classify: Classifier, paths: Sequence[str] = ("/",), probes: int = 30
) -> set[str]:
    """Probe until every worker has answered (and ``probes`` answers came);
    the workers' pids."""
    pids: set[str] = set()
    deadline = time.monotonic() + 60
    with Prober(server.port, classify, paths, threads=workers + 1) as prober:
        while time.monotonic() < deadline:
            pids = {probe.pid for probe in prober.probes}
            if len(pids) == workers and len(prober.probes) >= probes:
                break
            time.sleep(0.02)
    if len(pids) != workers:
        raise RuntimeError(f"only {len(pids)} of {workers} workers answered")
    return pids


def reached(
    prober: Prober, pids: set[str], committed: float, version: int, timeout: float = 30.0
) -> tuple[float, float]:
    """Wait until every worker in ``pids`` has answered ``version`` after
    ``committed`` (a ``time.time()``); (applied, served) seconds after it:
    the last worker's cache applying the change, as it reports it, and the
    end of the last worker's first response with ``version``."""
    deadline = committed + timeout
    while time.time() < deadline:
        if {probe.pid for probe in list(prober.probes) if probe.version == version and probe.ended > committed} >= pids:
            break
        time.sleep(0.005)
    else:
        raise RuntimeError(
            f"version {version} did not reach every worker within {timeout:g} s; errors {prober.errors[:5]}"
        )
    applied: dict[str, float] = {}
    served: dict[str, float] = {}
    for probe in sorted(prober.probes, key=lambda p: p.ended):
        if probe.version == version and probe.ended > committed and probe.pid not in served:
            served[probe.pid] = probe.ended
            applied[probe.pid] = probe.applied_at if probe.applied_at is not None else probe.ended
    return max(applied.values()) - committed, max(served.values()) - committed


def stale_answers(prober: Prober, committed: float, until: float, version: int) -> int:
    """Answers with another version than ``version`` from a worker, to a
    request sent after the client had read that worker's first answer with
    ``version`` (between a commit at ``committed`` and ``until``, before the
    next change): a worker going back to what it served before. A sync
    worker answers one request at a time, so such a request came after."""
    window = sorted((p for p in list(prober.probes) if committed < p.ended <= until), key=lambda p: p.ended)
    first: dict[str, float] = {}
    for probe in window:
        if probe.version == version:
            first.setdefault(probe.pid, probe.ended)
    return sum(1 for p in window if p.version != version and p.pid in first and p.started > first[p.pid])
