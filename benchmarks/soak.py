"""Soak: gunicorn under constant load while another process publishes every second.

    .venv/bin/python benchmarks/soak.py [--seconds 60] [--backend database|postgres|redis]
                                        [--workers 3] [--threads 8]

A site of a few files (one large enough to go out by sendfile) is served by
gunicorn with ``--workers`` workers; ``--threads`` client threads send
requests on fresh loopback connections, one at a time each, for the whole
run, while a separate process publishes a new version of the site every
second. Every file's body names its path and version, and the script keeps
the map ETag → (path, version) of every version it published. It checks:

- every response is a 200 whose body hashes to its ETag (never a mix of two
  versions) and whose ETag belongs to the path asked for (never another
  path's body); no 5xx, no connection errors;
- no worker goes back to an older version of a path once it served a newer;
- after the last publish, every worker applies it within the bound
  (``--poll-interval`` + 1 s for ``database``, ``--push-bound`` for the push
  backends; reported by the worker as X-Last-Change), and no request that
  starts later gets an older version.

Prints a one-line summary; exits 1 on any violation. The database is SQLite
(PostgreSQL for ``--backend postgres``); PostgreSQL and redis are throwaway
servers started here.
"""

from __future__ import annotations

import argparse
import hashlib
import random
import shutil
import sys
import tempfile
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.databases import (
    MigratedDatabases,
    PostgresServer,
    Publisher,
    RedisServer,
    ServerUnavailable,
    start_postgres,
    start_redis,
)
from tests.servers import gunicorn, http_request

HOST = "soak.sites.test"
APP = "tests.pid_wsgi:application"
BIG_SIZE = 300 * 1024  # above ASSETCACHE_MEMORY_FILE_LIMIT: sent by sendfile
CHANGING = ["/index.html", "/guide/index.html", "/css/site.css", "/data.json", "/big.bin"]
REQUEST_PATHS = ["/", "/index.html", "/guide/", "/css/site.css", "/data.json", "/big.bin", "/static.txt"]
#: Request path → the asset it answers with.
ASSET_OF = {"/": "/index.html", "/guide/": "/guide/index.html"}


def version_files(version: int) -> dict[str, bytes]:
    files = {
        "index.html": f"<!doctype html><title>/index.html</title><p>version {version} of /index.html</p>",
        "guide/index.html": f"<!doctype html><title>Guide</title><p>version {version} of /guide/index.html</p>",
        "css/site.css": f"/* version {version} of /css/site.css */\nbody {{ color: #333 }}\n" * 8,
        "data.json": f'{{"path": "/data.json", "version": {version}}}',
        "static.txt": "never changes: /static.txt\n",
        "404.html": "<!doctype html><title>Not here</title>",
    }
    data = {name: text.encode() for name, text in files.items()}
    head = f"version {version} of /big.bin\n".encode()
    data["big.bin"] = head + random.Random(version).randbytes(BIG_SIZE - len(head))
    return data


def etag_of(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@dataclass
class Seen:
    pid: str
    path: str
    version: int
    started: float
    ended: float
    change_id: int
    applied_at: float | None


@dataclass
class Soak:
    port: int
    threads: int
    etags: dict[str, tuple[str, int]] = field(default_factory=dict)
    seen: list[Seen] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    server_errors: int = 0
    requests: int = 0
    stopping: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def register(self, version: int) -> dict[str, bytes]:
        files = version_files(version)
        for name, body in files.items():
            self.etags.setdefault(etag_of(body), ("/" + name, version))
        return files

    def violation(self, text: str) -> None:
        with self.lock:
            if len(self.violations) < 1000:
                self.violations.append(text)

    def check(self, path: str, started: float) -> None:
        try:
            status, headers, body = http_request(self.port, path, HOST)
        except Exception as exc:
            self.violation(f"{path}: {type(exc).__name__}: {exc}")
            return
        ended = time.time()
        self.requests += 1
        if status >= 500:
            self.server_errors += 1
        if status != 200:
            self.violation(f"{path}: status {status}: {body[:200]!r}")
            return
        etag = headers.get("etag", "")
        if etag_of(body) != etag:
            self.violation(f"{path}: the body does not hash to its ETag {etag} (a mix?)")
            return
        known = self.etags.get(etag)
        asset = ASSET_OF.get(path, path)
        if known is None or known[0] != asset:
            self.violation(f"{path}: ETag {etag} is {known} , not a version of {asset}")
            return
        change_id, _, applied_at = headers.get("x-last-change", "0 None").partition(" ")
        self.seen.append(
            Seen(
                headers.get("x-worker-pid", "?"),
                path,
                known[1],
                started,
                ended,
                int(change_id),
                None if applied_at == "None" else float(applied_at),
            )
        )

    def client(self, seed: int) -> None:
        rng = random.Random(seed)
        while not self.stopping.is_set():
            self.check(rng.choice(REQUEST_PATHS), time.time())

    def run_load(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self.client, args=(i,), daemon=True) for i in range(self.threads)]
        for thread in threads:
            thread.start()
        return threads


def no_going_back(seen: list[Seen]) -> list[str]:
    """A response that started after another from the same worker for the
    same path had ended must not be of an older version."""
    problems = []
    by_key: dict[tuple[str, str], list[Seen]] = defaultdict(list)
    for record in seen:
        if ASSET_OF.get(record.path, record.path) in CHANGING:
            by_key[(record.pid, record.path)].append(record)
    for (pid, path), records in by_key.items():
        by_start = sorted(records, key=lambda r: r.started)
        by_end = sorted(records, key=lambda r: r.ended)
        newest, i = -1, 0
        for record in by_start:
            while i < len(by_end) and by_end[i].ended < record.started:
                newest = max(newest, by_end[i].version)
                i += 1
            if record.version < newest:
                problems.append(f"worker {pid} went back from version {newest} to {record.version} of {path}")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to publish under load")
    parser.add_argument("--backend", choices=["database", "postgres", "redis"], default="database")
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--threads", type=int, default=8, help="concurrent client connections")
    parser.add_argument(
        "--poll-interval",
        type=float,
        default=None,
        help="ASSETCACHE_POLL_INTERVAL (default 0.5 for database, 30 for push backends)",
    )
    parser.add_argument(
        "--push-bound", type=float, default=0.5, help="seconds the push backends get to converge under this load"
    )
    args = parser.parse_args(argv)
    poll = args.poll_interval if args.poll_interval is not None else (0.5 if args.backend == "database" else 30.0)
    bound = poll + 1.0 if args.backend == "database" else args.push_bound

    base = Path(tempfile.mkdtemp(prefix="assetcache-soak-"))
    postgres: PostgresServer | None = None
    redis: RedisServer | None = None
    databases: MigratedDatabases | None = None
    try:
        try:
            if args.backend == "postgres":
                postgres = start_postgres()
            if args.backend == "redis":
                redis = start_redis()
        except ServerUnavailable as exc:
            print(f"soak: cannot start the {args.backend} backend: {exc}", file=sys.stderr)
            return 2
        databases = MigratedDatabases(base, postgres)
        env = databases.env(base)
        env.update(
            {
                "ASSETCACHE_TEST_MEDIA_ROOT": str(base / "media"),
                "ASSETCACHE_TEST_INVALIDATION": args.backend,
                "ASSETCACHE_TEST_POLL_INTERVAL": str(poll),
            }
        )
        if redis is not None:
            env["ASSETCACHE_TEST_REDIS_URL"] = redis.url
        return soak(args, env, base, bound)
    finally:
        if databases is not None:
            databases.drop_all()
        if redis is not None:
            redis.stop()
        if postgres is not None:
            postgres.stop()
        shutil.rmtree(base, ignore_errors=True)


def write_version(base: Path, soak_state: Soak, version: int) -> Path:
    directory = base / f"v{version}"
    for name, body in soak_state.register(version).items():
        target = directory / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    return directory


def soak(args: argparse.Namespace, env: dict[str, str], base: Path, bound: float) -> int:
    with Publisher(env) as publisher, gunicorn(base, workers=args.workers, app=APP, env=env) as server:
        state = Soak(port=server.port, threads=args.threads)
        publisher.publish("soak", write_version(base, state, 0))
        # Warm: every worker has served every path before the publishing starts.
        pids: set[str] = set()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (len(pids) < args.workers or state.requests < 50):
            for path in REQUEST_PATHS:
                state.check(path, time.time())
            pids = {record.pid for record in state.seen}
        if len(pids) < args.workers:
            state.violation(f"only {len(pids)} of {args.workers} workers answered while warming")
        state.seen.clear()
        requests_before = state.requests

        started = time.time()
        threads = state.run_load()
        commits: list[tuple[int, float]] = []
        version = 0
        while time.time() - started < args.seconds:
            version += 1
            source = write_version(base, state, version)
            commits.append((version, publisher.publish("soak", source)))
            pause = started + version - time.time()
            if pause > 0:
                time.sleep(pause)
        last_version, last_commit = commits[-1] if commits else (0, started)
        # Keep the load on while the last change spreads, and a while after.
        time.sleep(max(0.0, last_commit + bound + 1.5 - time.time()))
        state.stopping.set()
        for thread in threads:
            thread.join(timeout=60)
        elapsed = time.time() - started
        server_log = server.log()

    seen = state.seen
    for problem in no_going_back(seen)[:50]:
        state.violation(problem)
    # After the last publish: every worker applied it within the bound...
    final_change = max((record.change_id for record in seen), default=0)
    converged = 0.0
    workers_seen = {record.pid for record in seen}
    for pid in sorted(workers_seen):
        mine = [record for record in seen if record.pid == pid]
        last = max(mine, key=lambda record: record.started)
        if last.change_id != final_change or last.applied_at is None:
            state.violation(f"worker {pid} ended at change {last.change_id}, not {final_change}")
            continue
        lag = last.applied_at - last_commit
        converged = max(converged, lag)
        if lag > bound:
            state.violation(f"worker {pid} applied the last publish {lag:.3f} s after its commit (bound {bound} s)")
    if workers_seen != pids:
        state.violation(f"workers under load {sorted(workers_seen)} are not the warmed ones {sorted(pids)}")
    # ... and nothing older was served to a request that started after it.
    for record in seen:
        asset = ASSET_OF.get(record.path, record.path)
        if asset in CHANGING and record.started > last_commit + bound and record.version != last_version:
            state.violation(
                f"{record.path}: version {record.version} served by {record.pid} "
                f"{record.started - last_commit:.3f} s after the last commit"
            )
            break

    load_requests = state.requests - requests_before
    ok = not state.violations
    print(
        f"soak {'OK' if ok else 'FAILED'}: {args.backend} backend, {args.workers} workers, {args.threads} client "
        f"threads, {elapsed:.1f} s: {load_requests} requests ({load_requests / elapsed:.0f}/s), "
        f"{len(commits)} publishes, {state.server_errors} 5xx, {len(state.violations)} violations; "
        f"every worker applied the last publish {converged * 1000:.0f} ms after its commit"
        f" (bound {bound * 1000:.0f} ms)",
        flush=True,
    )
    if not ok:
        for text in state.violations[:20]:
            print(f"  {text}", file=sys.stderr)
        tail = server_log[-3000:]
        if tail:
            print("gunicorn log (end):\n" + tail, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
