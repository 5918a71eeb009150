"""The servers benchmarks/run.py compares: how each is started, on a free port.

Every Python contender of a kind runs under the same command: gunicorn with
serve_bench's options for the WSGI apps, one uvicorn command and one granian
command for the ASGI apps. nginx serves the published source directory, or,
given an upstream contender, proxies to it as deploy/nginx/ configures nginx
in front of the app, with the ``X-Accel-Redirect`` location included
(benchmarks/accel_bench.py).
``SERVER_CHOICE`` (benchmarks/server_choice.py) adds gunicorn's threaded
worker, with keep-alive, for the WSGI fast path.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import signal
import string
import subprocess
import sys
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.common import ROOT
from benchmarks.serve_bench import WORKERS, children, cpu_seconds, gunicorn_command
from tests.servers import free_port, wait_for_port

SETTINGS = "benchmarks.run_settings"
NGINX_TEMPLATE = ROOT / "benchmarks" / "nginx.conf.template"
NGINX_PROXY_TEMPLATE = ROOT / "benchmarks" / "nginx-proxy.conf.template"
ACCEL_TEMPLATE = ROOT / "deploy" / "nginx" / "assetcache-accel.conf.template"

#: One event loop and one HTTP parser for both ASGI servers' Python side:
#: uvloop and httptools when installed (uvicorn[standard]), else the stdlib's.
LOOP = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
UVICORN_HTTP = "httptools" if importlib.util.find_spec("httptools") else "h11"

UVICORN_OPTIONS = [
    "--workers", str(WORKERS), "--loop", LOOP, "--http", UVICORN_HTTP, "--no-access-log",
    "--log-level", "warning", "--factory",
]  # fmt: skip
GRANIAN_OPTIONS = [
    "--interface", "asgi", "--workers", str(WORKERS), "--loop", LOOP, "--no-ws", "--log-level", "warning",
    "--factory",
]  # fmt: skip

#: gunicorn's threaded worker as deploy/gunicorn.conf.py runs it: 8 threads
#: per worker (2 workers × 8 serve all of wrk's 16 connections at once), and
#: connections kept open between requests for 5 s, as uvicorn does by default.
GTHREAD_THREADS = 8
GTHREAD_OPTIONS = [
    "--workers", str(WORKERS), "--worker-class", "gthread", "--threads", str(GTHREAD_THREADS),
    "--keep-alive", "5", "--no-control-socket", "--log-level", "warning",
]  # fmt: skip

Command = Callable[[int | str, Path], list[str]]


def gunicorn(app: str) -> Command:
    def command(port: int | str, workdir: Path) -> list[str]:
        return gunicorn_command(port, app)

    return command


def gunicorn_gthread(app: str) -> Command:
    def command(port: int | str, workdir: Path) -> list[str]:
        return [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", *GTHREAD_OPTIONS, app]

    return command


def uvicorn(app: str) -> Command:
    def command(port: int | str, workdir: Path) -> list[str]:
        return [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", str(port), *UVICORN_OPTIONS, app]

    return command


def granian(app: str) -> Command:
    def command(port: int | str, workdir: Path) -> list[str]:
        return [sys.executable, "-m", "granian", "--host", "127.0.0.1", "--port", str(port), *GRANIAN_OPTIONS, app]

    return command


def nginx(port: int | str, workdir: Path) -> list[str]:
    prefix = workdir / f"nginx-{port}"
    return ["nginx", "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")]


@dataclass(frozen=True)
class Contender:
    name: str
    label: str  # short, for the chart
    family: str  # "wsgi", "uvicorn", "granian" or "nginx"
    command: Command
    #: What a case's ratio compares this contender with, besides nginx.
    reference: str | None = None
    assetcache: bool = False  # runs the cases only django-assetcache can (a miss to the database)
    env: dict[str, str] = field(default_factory=dict)
    only_cases: tuple[str, ...] | None = None  # None: every case it can answer
    #: The checkout whose code the server runs (another commit's, to compare); None: this one.
    root: Path | None = None
    #: For nginx: the app server it proxies to, started with it; None: nginx serves the files.
    upstream: Contender | None = None

    @property
    def python(self) -> bool:
        return self.family != "nginx"


MIDDLEWARE = "assetcache middleware"
FAST_PATH = "assetcache WSGI fast path"
FAST_PATH_GTHREAD = "assetcache WSGI fast path, gthread"
WHITENOISE = "whitenoise middleware"
BARE = "bare WSGI app (ceiling)"
NGINX = "nginx"
ASGI_UVICORN = "assetcache ASGI, uvicorn"
SERVESTATIC_UVICORN = "servestatic ASGI, uvicorn"
ASGI_GRANIAN = "assetcache ASGI, granian"
SERVESTATIC_GRANIAN = "servestatic ASGI, granian"

DJANGO_WSGI = "django.core.wsgi:get_wsgi_application()"

ASGI_ASSETCACHE = "benchmarks.apps:asgi_assetcache"
ASGI_SERVESTATIC = "benchmarks.apps:asgi_servestatic"

CONTENDERS = [
    Contender(MIDDLEWARE, "middleware", "wsgi", gunicorn(DJANGO_WSGI), WHITENOISE, True,
              {"BENCH_MIDDLEWARE": "assetcache"}),
    Contender(FAST_PATH, "WSGI fast path", "wsgi", gunicorn("benchmarks.apps:wsgi_fast()"), WHITENOISE, True),
    Contender(WHITENOISE, "whitenoise", "wsgi", gunicorn(DJANGO_WSGI), env={"BENCH_MIDDLEWARE": "whitenoise"}),
    # One fixed 1 KiB body (or 304): what gunicorn allows with no framework at all.
    Contender(BARE, "bare WSGI", "wsgi", gunicorn("benchmarks.bare_app:application"), WHITENOISE,
              only_cases=("1 KiB hit", "304 Not Modified")),
    Contender(NGINX, "nginx", "nginx", nginx),
    Contender(ASGI_UVICORN, "ASGI uvicorn", "uvicorn", uvicorn(ASGI_ASSETCACHE), SERVESTATIC_UVICORN, True),
    Contender(SERVESTATIC_UVICORN, "servestatic uvicorn", "uvicorn", uvicorn(ASGI_SERVESTATIC)),
    Contender(ASGI_GRANIAN, "ASGI granian", "granian", granian(ASGI_ASSETCACHE), SERVESTATIC_GRANIAN, True),
    Contender(SERVESTATIC_GRANIAN, "servestatic granian", "granian", granian(ASGI_SERVESTATIC)),
]  # fmt: skip


#: Our fastest app under each server, for benchmarks/server_choice.py: the WSGI
#: fast path under gunicorn's sync and threaded workers, the ASGI adapter under
#: uvicorn and granian, and nginx serving the files itself.
SERVER_CHOICE = [
    next(c for c in CONTENDERS if c.name == FAST_PATH),
    Contender(FAST_PATH_GTHREAD, "WSGI fast path gthread", "wsgi", gunicorn_gthread("benchmarks.apps:wsgi_fast()"),
              assetcache=True),
    *(c for c in CONTENDERS if c.name in (ASGI_UVICORN, ASGI_GRANIAN, NGINX)),
]  # fmt: skip


def available(nginx_found: bool) -> list[Contender]:
    return [c for c in CONTENDERS if c.python or nginx_found]


@dataclass
class Server:
    contender: Contender
    port: int
    process: subprocess.Popen[bytes]
    log_path: Path
    etags: dict[str, str] = field(default_factory=dict)
    upstream: Server | None = None  # the app server behind this nginx

    def workers(self) -> list[int]:
        """The worker processes: the server's children, less helpers such as
        multiprocessing's resource tracker, and those of its upstream."""
        own = [pid for pid in children(self.process.pid) if "resource_tracker" not in cmdline(pid)]
        return own if self.upstream is None else own + self.upstream.workers()

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.workers())


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def write_nginx_conf(port: int, workdir: Path, upstream: Server | None = None) -> None:
    prefix = workdir / f"nginx-{port}"
    prefix.mkdir()
    values: dict[str, object] = {
        "prefix": prefix,
        "port": port,
        "site_dir": workdir / "site",
        # Workers would switch to "nobody", who cannot read the private temporary directory.
        "user_line": "user root;" if os.geteuid() == 0 else "",
    }
    template = NGINX_TEMPLATE
    if upstream is not None:
        template = NGINX_PROXY_TEMPLATE
        values.update(upstream_port=upstream.port, accel_conf=write_accel_conf(prefix, workdir))
    (prefix / "nginx.conf").write_text(string.Template(template.read_text()).substitute(values))


def blob_dir(workdir: Path) -> Path:
    """Where the benchmark's blobs are: the default storage under bench_settings' MEDIA_ROOT."""
    return workdir / "media" / "assetcache" / "blobs"


def write_accel_conf(prefix: Path, workdir: Path) -> Path:
    """deploy/nginx/assetcache-accel.conf.template with the blob directory
    filled in, as ``envsubst '${ASSETCACHE_BLOBS}'`` would."""
    path = prefix / "assetcache-accel.conf"
    path.write_text(ACCEL_TEMPLATE.read_text().replace("${ASSETCACHE_BLOBS}", str(blob_dir(workdir))))
    return path


def server_env(contender: Contender, workdir: Path, max_entries: int) -> dict[str, str]:
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": SETTINGS,
        "BENCH_DIR": str(workdir),
        "BENCH_SITE_DIR": str(workdir / "site"),
        "BENCH_MAX_ENTRIES": str(max_entries),
        "PYTHONPATH": str(contender.root or ROOT),
        **contender.env,
    }


@contextmanager
def running(contender: Contender, workdir: Path, max_entries: int) -> Iterator[Server]:
    """The contender's server on a free port (its upstream started first, stopped last)."""
    with ExitStack() as stack:
        upstream = None
        if contender.upstream is not None:
            upstream = stack.enter_context(running(contender.upstream, workdir, max_entries))
        port = free_port()
        if contender.family == "nginx":
            write_nginx_conf(port, workdir, upstream)
        log_path = workdir / f"server-{port}.log"
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                contender.command(port, workdir),
                cwd=contender.root or ROOT,
                env=server_env(contender, workdir, max_entries),
                stdout=log,
                stderr=log,
            )
        server = Server(contender, port, process, log_path, upstream=upstream)
        try:
            try:
                wait_for_port(port, process)
            except RuntimeError:
                sys.stderr.write(log_path.read_text(errors="replace"))
                raise
            yield server
        finally:
            stop(server)


def stop(server: Server) -> None:
    """SIGTERM to the server's main process, which stops its workers; if it
    has not ended in 15 s, SIGKILL to its workers, then to it."""
    process = server.process
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        for pid in children(process.pid):  # still its children: the master is alive
            os.kill(pid, signal.SIGKILL)
        process.kill()
        process.wait()


def describe_command(contender: Contender) -> str:
    """The contender's command line as the doc shows it."""
    text = shlex.join(contender.command("<port>", Path("<tmp>")))
    return text.replace(sys.executable, "python")
