"""Throwaway database and message servers for tests, benchmarks and CI.

- ``start_postgres()``: ``initdb`` in a temporary directory (trust
  authentication, superuser ``postgres``) and ``postgres`` listening on a free
  loopback port; ``PostgresServer.stop()`` shuts it down and deletes the
  directory. Run as root, the server runs as the ``postgres`` user.
- ``start_redis()``: ``redis-server`` on a free loopback port, no persistence.
- ``Publisher``: a long-lived process that publishes (or runs another
  management command) on demand and reports the time each returned (its
  transaction committed) and the SQL it sent, so a test can measure how fast
  other processes learn of a change.
- pytest fixtures over these (import them into a test module to use them):
  ``postgres_server`` (session; skips when the binaries are missing),
  ``redis_server`` (session) and ``redis_factory`` (servers a test may stop).

When ``ASSETCACHE_TEST_PG_PORT`` is set (``tests/with_postgres.py``, or a
developer's own server), ``postgres_server`` uses that server instead of
starting one.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers import free_port, stop_process, unavailable

ROOT = Path(__file__).resolve().parent.parent

POSTGRES_MISSING = "PostgreSQL server binaries not installed (apt-get install postgresql)"
REDIS_MISSING = "redis-server not installed (apt-get install redis-server)"
PSYCOPG_MISSING = "psycopg not installed (pip install 'psycopg[binary]')"


class ServerUnavailable(Exception):
    """The server cannot be started here; the message says why."""


# --- PostgreSQL -----------------------------------------------------------------


def postgres_bindir() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``: $PG_BINDIR, the PATH,
    or the newest /usr/lib/postgresql/*/bin."""
    candidates: list[str] = []
    if os.environ.get("PG_BINDIR"):
        candidates.append(os.environ["PG_BINDIR"])
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(str(Path(initdb).parent))
    versions = glob.glob("/usr/lib/postgresql/*/bin")
    versions.sort(key=lambda path: int(Path(path).parent.name) if Path(path).parent.name.isdigit() else 0)
    candidates.extend(reversed(versions))
    for candidate in candidates:
        directory = Path(candidate)
        if (directory / "initdb").is_file() and (directory / "postgres").is_file():
            return directory
    return None


@dataclass
class PostgresServer:
    port: int
    host: str = "127.0.0.1"
    user: str = "postgres"
    password: str = ""
    base_dir: Path | None = None
    process: subprocess.Popen[bytes] | None = None
    log_path: Path | None = None

    @property
    def owned(self) -> bool:
        """Whether this process started the server (and so stops it)."""
        return self.process is not None

    def connect(self, dbname: str = "postgres") -> object:
        import psycopg

        return psycopg.connect(
            host=self.host,
            port=self.port,
            user=self.user,
            password=self.password or None,
            dbname=dbname,
            autocommit=True,
            connect_timeout=5,
        )

    def execute(self, sql: str, dbname: str = "postgres") -> None:
        with self.connect(dbname) as conn:  # type: ignore[attr-defined]
            conn.execute(sql)

    def create_database(self, name: str, template: str | None = None) -> str:
        clause = f' TEMPLATE "{template}"' if template else ""
        self.execute(f'CREATE DATABASE "{name}"{clause}')
        return name

    def drop_database(self, name: str) -> None:
        self.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def django_env(self, dbname: str) -> dict[str, str]:
        """The environment that makes tests.settings use ``dbname`` on this server."""
        env = {
            "ASSETCACHE_TEST_PG_HOST": self.host,
            "ASSETCACHE_TEST_PG_PORT": str(self.port),
            "ASSETCACHE_TEST_PG_NAME": dbname,
            "ASSETCACHE_TEST_PG_USER": self.user,
        }
        if self.password:
            env["ASSETCACHE_TEST_PG_PASSWORD"] = self.password
        return env

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        process = self.process
        if process is not None:
            stop_process(process, signal.SIGINT, timeout=15)  # "fast" shutdown: no waiting for clients
        self.process = None
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None


def _run_as(user: pwd.struct_passwd | None) -> dict[str, object]:
    """Popen arguments that run the child as ``user`` (None: as ourselves)."""
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def start_postgres(timeout: float = 60.0) -> PostgresServer:
    """initdb and start a PostgreSQL server on a free loopback port."""
    bindir = postgres_bindir()
    if bindir is None:
        raise ServerUnavailable(POSTGRES_MISSING)
    try:
        import psycopg  # noqa: F401
    except ImportError as exc:
        raise ServerUnavailable(PSYCOPG_MISSING) from exc
    owner: pwd.struct_passwd | None = None
    if os.geteuid() == 0:
        # initdb and postgres refuse to run as root.
        try:
            owner = pwd.getpwnam("postgres")
        except KeyError as exc:
            raise ServerUnavailable("running as root and there is no 'postgres' user to run PostgreSQL") from exc
    base = Path(tempfile.mkdtemp(prefix="assetcache-pg-"))
    try:
        if owner is not None:
            os.chown(base, owner.pw_uid, owner.pw_gid)
        data, sockets, log_path = base / "data", base / "sock", base / "postgres.log"
        run_as = _run_as(owner)
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LC_ALL": "C", "LANG": "C"}
        init = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
            cwd=base,
            env=env,
            capture_output=True,
            text=True,
            **run_as,  # type: ignore[call-overload]
        )
        if init.returncode != 0:
            raise ServerUnavailable(f"initdb failed ({init.returncode}): {init.stderr.strip() or init.stdout.strip()}")
        sockets.mkdir()
        if owner is not None:
            os.chown(sockets, owner.pw_uid, owner.pw_gid)
        port = free_port()
        with open(log_path, "wb") as log:
            if owner is not None:
                os.fchown(log.fileno(), owner.pw_uid, owner.pw_gid)
            process = subprocess.Popen(
                [
                    str(bindir / "postgres"),
                    "-D",
                    str(data),
                    "-p",
                    str(port),
                    "-k",
                    str(sockets),
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "max_connections=200",
                    # A throwaway server: durability buys nothing.
                    "-c",
                    "fsync=off",
                    "-c",
                    "synchronous_commit=off",
                    "-c",
                    "full_page_writes=off",
                ],
                cwd=base,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                **run_as,  # type: ignore[call-overload]
            )
        server = PostgresServer(port=port, base_dir=base, process=process, log_path=log_path)
    except BaseException:
        shutil.rmtree(base, ignore_errors=True)
        raise
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = server.log()
            server.stop()
            raise ServerUnavailable(f"postgres exited with {process.returncode}: {text[-2000:]}")
        try:
            with server.connect():  # type: ignore[attr-defined]
                return server
        except Exception as exc:
            last_error = exc
            time.sleep(0.1)
    text = server.log()
    server.stop()
    raise ServerUnavailable(f"postgres not ready within {timeout} s ({last_error}): {text[-2000:]}")


def external_postgres() -> PostgresServer | None:
    """The server named by ASSETCACHE_TEST_PG_* (tests/with_postgres.py), if any."""
    port = os.environ.get("ASSETCACHE_TEST_PG_PORT")
    if not port:
        return None
    return PostgresServer(
        port=int(port),
        host=os.environ.get("ASSETCACHE_TEST_PG_HOST", "127.0.0.1"),
        user=os.environ.get("ASSETCACHE_TEST_PG_USER", "postgres"),
        password=os.environ.get("ASSETCACHE_TEST_PG_PASSWORD", ""),
    )


def suite_uses_postgres() -> bool:
    """Whether tests.settings points the whole suite at PostgreSQL."""
    return bool(os.environ.get("ASSETCACHE_TEST_PG_PORT")) and not os.environ.get("ASSETCACHE_TEST_DB")


# --- Redis --------------------------------------------------------------------------


@dataclass
class RedisServer:
    port: int
    process: subprocess.Popen[bytes] | None
    base_dir: Path | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(64).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        process = self.process
        if process is not None:
            stop_process(process)
        self.process = None
        if self.base_dir is not None:
            shutil.rmtree(self.base_dir, ignore_errors=True)
            self.base_dir = None


def redis_binary() -> str | None:
    return shutil.which("redis-server") or next(
        (path for path in ("/usr/bin/redis-server", "/usr/local/bin/redis-server") if os.path.isfile(path)), None
    )


def start_redis(timeout: float = 20.0) -> RedisServer:
    binary = redis_binary()
    if binary is None:
        raise ServerUnavailable(REDIS_MISSING)
    base = Path(tempfile.mkdtemp(prefix="assetcache-redis-"))
    port = free_port()
    log_path = base / "redis.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            [
                binary,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(base),
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
            ],
            cwd=base,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = RedisServer(port=port, process=process, base_dir=base)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            text = log_path.read_text(errors="replace")
            server.stop()
            raise ServerUnavailable(f"redis-server exited with {process.returncode}: {text[-2000:]}")
        if server.ping():
            return server
        time.sleep(0.05)
    server.stop()
    raise ServerUnavailable(f"redis-server not ready within {timeout} s")


# --- Django in other processes ----------------------------------------------------------


def django_environ(env: dict[str, str] | None = None) -> dict[str, str]:
    """The environment of a process running tests.settings with ``env`` on top."""
    environment = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), environment.get("PYTHONPATH")]))
    return environment


def django_command(env: dict[str, str], *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``python -m django ARGS`` in another process; raises with its output on failure."""
    result = subprocess.run(
        [sys.executable, "-m", "django", *args],
        cwd=ROOT,
        env=django_environ(env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"django {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


COMMANDS_CODE = r"""
import io, json, sys, time, traceback
import django
django.setup()
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
print("ready", flush=True)
for line in sys.stdin:
    name, *args = line.rstrip("\n").split("\t")
    out = io.StringIO()
    started = time.time()
    try:
        with CaptureQueriesContext(connection) as queries:
            call_command(name, *args, verbosity=0, stdout=out)
    except Exception:
        print("error " + traceback.format_exc().replace("\n", " | "), flush=True)
    else:
        # The command has returned: its transaction committed.
        statements = [query["sql"] for query in queries.captured_queries]
        writes = [sql[:200] for sql in statements if sql.split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE")]
        done = {"started": started, "committed": time.time(), "stdout": out.getvalue(),
                "queries": len(statements), "writes": writes}
        print(json.dumps(done), flush=True)
"""


@dataclass(frozen=True)
class CommandRun:
    """What one management command run by a ``Publisher`` did."""

    #: Wall-clock times (``time.time()``) the command was called and returned.
    started: float
    committed: float
    stdout: str
    #: How many SQL statements it sent.
    queries: int
    #: The statements that write (INSERT, UPDATE, DELETE), in order, cut at 200 characters.
    writes: list[str]


@dataclass
class Publisher:
    """Another process that runs ``assetcache_publish`` (or any management
    command) when asked.

    ``publish()`` returns the wall-clock time (``time.time()``) at which the
    command returned in that process, i.e. right after its commit; ``run()``
    the whole ``CommandRun``. The process starts at once; the first command
    waits until it is ready.
    """

    env: dict[str, str]
    process: subprocess.Popen[str] = field(init=False)
    ready: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-c", COMMANDS_CODE],
            cwd=ROOT,
            env=django_environ(self.env),
            text=True,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )

    def wait_ready(self) -> None:
        if not self.ready:
            line = self._expect("ready")
            if line != "ready":
                raise RuntimeError(f"publisher said {line!r}")
            self.ready = True

    def _expect(self, what: str) -> str:
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line:
            assert self.process.stderr is not None
            self.process.wait(timeout=10)
            err = self.process.stderr.read()
            raise RuntimeError(f"publisher exited ({self.process.returncode}) waiting for {what}:\n{err}")
        return line.strip()

    def send_command(self, name: str, *args: str | Path) -> None:
        """Ask for ``manage.py NAME ARGS`` without waiting for it."""
        self.wait_ready()
        assert self.process.stdin is not None
        self.process.stdin.write("\t".join([name, *map(str, args)]) + "\n")
        self.process.stdin.flush()

    def send(self, subdomain: str, source: Path | str, *flags: str) -> None:
        """Ask for a publish without waiting for it."""
        self.send_command("assetcache_publish", subdomain, source, *flags)

    def finished(self) -> CommandRun:
        """Wait for the command asked for last; what it did."""
        line = self._expect("a command")
        if not line or line.startswith("error"):
            raise RuntimeError(f"command failed: {line}")
        done = json.loads(line)
        return CommandRun(done["started"], done["committed"], done["stdout"], done["queries"], done["writes"])

    def committed(self) -> float:
        """Wait for the publish asked for last; the time it committed."""
        return self.finished().committed

    def run(self, name: str, *args: str | Path) -> CommandRun:
        self.send_command(name, *args)
        return self.finished()

    def publish(self, subdomain: str, source: Path | str, *flags: str) -> float:
        self.send(subdomain, source, *flags)
        return self.committed()

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- databases for a stack of processes ---------------------------------------------------


class MigratedDatabases:
    """Fresh, migrated databases for a stack of processes (servers, publishers).

    SQLite: a copy of a file migrated once. PostgreSQL: ``CREATE DATABASE …
    TEMPLATE`` of a database migrated once. ``env(name)`` gives the
    environment that points tests.settings at a new one.
    """

    def __init__(self, base_dir: Path, postgres: PostgresServer | None = None) -> None:
        self.base_dir = base_dir
        self.postgres = postgres
        self._template: str | None = None
        self._created: list[str] = []

    def _sqlite_template(self) -> Path:
        template = self.base_dir / "template.sqlite3"
        if not template.exists():
            django_command({"ASSETCACHE_TEST_DB": str(template)}, "migrate", "--noinput", "-v", "0")
        return template

    def _postgres_template(self) -> str:
        assert self.postgres is not None
        if self._template is None:
            name = f"assetcache_tpl_{uuid.uuid4().hex[:10]}"
            self.postgres.create_database(name)
            self._created.append(name)
            django_command(self.postgres.django_env(name), "migrate", "--noinput", "-v", "0")
            self._template = name
        return self._template

    def env(self, directory: Path) -> dict[str, str]:
        """A new database; SQLite files go in ``directory``."""
        if self.postgres is not None:
            name = f"assetcache_{uuid.uuid4().hex[:12]}"
            self.postgres.create_database(name, template=self._postgres_template())
            self._created.append(name)
            return self.postgres.django_env(name)
        target = directory / f"db-{uuid.uuid4().hex[:8]}.sqlite3"
        shutil.copyfile(self._sqlite_template(), target)
        return {"ASSETCACHE_TEST_DB": str(target)}

    def drop_all(self) -> None:
        if self.postgres is None:
            return
        for name in reversed(self._created):
            with contextlib.suppress(Exception):
                self.postgres.drop_database(name)
        self._created.clear()


# --- pytest fixtures ------------------------------------------------------------------------


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A running PostgreSQL: the suite's own (ASSETCACHE_TEST_PG_*) or a throwaway one."""
    external = external_postgres()
    if external is not None:
        yield external
        return
    try:
        server = start_postgres()
    except ServerUnavailable as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    try:
        server = start_redis()
    except ServerUnavailable as exc:
        unavailable(str(exc))
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def redis_factory() -> Iterator[Callable[[], RedisServer]]:
    """Start redis servers of this test's own (it may stop them); all stopped at the end."""
    started: list[RedisServer] = []

    def start() -> RedisServer:
        try:
            server = start_redis()
        except ServerUnavailable as exc:
            unavailable(str(exc))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="session")
def sqlite_databases(tmp_path_factory: pytest.TempPathFactory) -> MigratedDatabases:
    return MigratedDatabases(tmp_path_factory.mktemp("sqlite-databases"))


@pytest.fixture(scope="session")
def postgres_databases(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MigratedDatabases]:
    databases = MigratedDatabases(tmp_path_factory.mktemp("pg-databases"), postgres_server)
    yield databases
    databases.drop_all()
