"""Deploy from CI: a 10,000-file site of which 10 files changed, by ``assetcache-deploy`` and by one zip.

    .venv/bin/python benchmarks/deploy_bench.py [--files 10000] [--changed 10] [--rounds 3]
                                                [--workers 4] [--quick]

A site of ``--files`` small HTML, CSS and JS files (benchmarks/rollback_bench.py's)
is deployed once with ``assetcache-deploy`` to gunicorn (``--workers`` sync
workers, SQLite, blobs on the file system). Then, ``--rounds`` times, each
contender deploys the site with ``--changed`` other files changed, the two
taking turns at going first:

- *client*: ``assetcache-deploy`` run as a process (hashing, the manifest,
  the blobs the server lacks, finish), timed from start to exit;
- *zip*: the whole site zipped, sent as one ``POST sites/<sub>/deploys``
  with ``Content-Type: application/zip``, timed from the request to the
  reply (making the zip is timed apart).

Every request goes through a relay in front of gunicorn that counts the
bytes each side sends (HTTP requests and replies, headers included; not
TCP/IP overhead). Writes docs/benchmarks-deploy.md.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, machine_lines, markdown_table, write_doc
from benchmarks.rollback_bench import file_body, site_path
from tests.databases import MigratedDatabases, django_command
from tests.servers import Server, gunicorn

SITE = "bench"
POLL_INTERVAL = 0.5
HOST = f"{SITE}.sites.test"


class CountingRelay:
    """A TCP relay in front of a server that counts the bytes each side sends."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.sent = self.received = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def take(self) -> tuple[int, int]:
        """(bytes the client sent, bytes it received) since the last call."""
        with self.lock:
            counts = (self.sent, self.received)
            self.sent = self.received = 0
        return counts

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:  # closed
                return
            threading.Thread(target=self._relay, args=(client,), daemon=True).start()

    def _relay(self, client: socket.socket) -> None:
        upstream = socket.create_connection(("127.0.0.1", self.target_port))
        back = threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True)
        back.start()
        self._pump(client, upstream, True)
        back.join()
        client.close()
        upstream.close()

    def _pump(self, source: socket.socket, target: socket.socket, from_client: bool) -> None:
        try:
            while data := source.recv(65536):
                with self.lock:
                    if from_client:
                        self.sent += len(data)
                    else:
                        self.received += len(data)
                target.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):  # the other side closed first
            target.shutdown(socket.SHUT_WR)


@dataclass
class Run:
    contender: str
    seconds: float
    sent: int
    received: int
    uploaded: str


def client_deploy(relay: CountingRelay, source: Path, token: str, message: str) -> Run:
    env = {**os.environ, "ASSETCACHE_TOKEN": token, "PYTHONPATH": str(ROOT)}
    url = f"http://127.0.0.1:{relay.port}/assetcache/"
    command = [sys.executable, "-m", "django_assetcache.deployclient", str(source), "--url", url]
    relay.take()
    started = time.perf_counter()
    done = subprocess.run(
        [*command, "--site", SITE, "--message", message], capture_output=True, text=True, env=env, check=False
    )
    seconds = time.perf_counter() - started
    if done.returncode != 0:
        raise RuntimeError(f"assetcache-deploy failed: {done.stderr}")
    # "deployed bench: 10 of 10,000 files uploaded (…), live at … in 2.1 s"
    uploaded = done.stdout.split(": ", 1)[1].split(" files uploaded")[0]
    return Run("client", seconds, *relay.take(), uploaded)


def make_zip(source: Path, target: Path) -> float:
    """Zip ``source`` (deflated, as a CI step would); the seconds it took."""
    started = time.perf_counter()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for file in sorted(source.rglob("*")):
            if file.is_file():
                archive.write(file, file.relative_to(source).as_posix())
    return time.perf_counter() - started


def zip_deploy(relay: CountingRelay, archive: Path, token: str, message: str) -> Run:
    relay.take()
    started = time.perf_counter()
    connection = http.client.HTTPConnection("127.0.0.1", relay.port, timeout=600)
    try:
        headers = {
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/zip",
            "Content-Length": str(archive.stat().st_size),
        }
        with open(archive, "rb") as body:
            connection.request("POST", f"/assetcache/sites/{SITE}/deploys?message={message}", body, headers)
        response = connection.getresponse()
        reply = response.read()
    finally:
        connection.close()
    seconds = time.perf_counter() - started
    if response.status != 201:
        raise RuntimeError(f"zip deploy: {response.status} {reply[:300]!r}")
    return Run("zip", seconds, *relay.take(), "all (one zip)")


def change_files(source: Path, indices: list[int], version: int) -> None:
    for index in indices:
        target = source / site_path(index)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(file_body(index, version))


def check_served(server: Server, index: int, version: int) -> None:
    """Wait until the workers serve ``version`` of a changed file (each
    learns of a deploy from the database, every POLL_INTERVAL)."""
    path = "/" if index == 0 else f"/{site_path(index)}"
    deadline = time.monotonic() + 10 * POLL_INTERVAL
    while (answer := server.request(path, HOST))[::2] != (200, file_body(index, version)):
        if time.monotonic() > deadline:
            raise RuntimeError(f"{path} answered {answer[0]}, not version {version}'s bytes")
        time.sleep(0.1)


@dataclass
class Measured:
    files: int
    first: Run
    runs: list[Run]
    zip_seconds: list[float]
    zip_size: int


def measure(base: Path, args: argparse.Namespace) -> Measured:
    source = base / "site"
    change_files(source, list(range(args.files)), 1)
    env = MigratedDatabases(base).env(base)
    env["ASSETCACHE_TEST_MEDIA_ROOT"] = str(base / "media")
    # Several workers: each learns of a deploy from the database.
    env["ASSETCACHE_TEST_INVALIDATION"] = "database"
    env["ASSETCACHE_TEST_POLL_INTERVAL"] = str(POLL_INTERVAL)
    token = django_command(env, "assetcache_token", "create", "bench", "--all-sites", "--create-sites").stdout.strip()
    gunicorn_args = ["--timeout", "900"]
    with gunicorn(base, workers=args.workers, env=env, extra_args=gunicorn_args) as server:
        relay = CountingRelay(server.port)
        try:
            first = client_deploy(relay, source, token, "first")
            print(f"first deploy: {first}", flush=True)
            runs: list[Run] = []
            zip_seconds: list[float] = []
            zip_size = 0
            version = 1
            for round_index in range(args.rounds):
                order = ["client", "zip"] if round_index % 2 == 0 else ["zip", "client"]
                for contender in order:
                    version += 1
                    # Files 1..files-1 in turn: each deploy changes ones no earlier deploy changed.
                    start = 1 + (version - 2) * args.changed
                    indices = [1 + (start + n - 1) % (args.files - 1) for n in range(args.changed)]
                    change_files(source, indices, version)
                    if contender == "client":
                        run = client_deploy(relay, source, token, f"round {round_index}")
                    else:
                        archive = base / "site.zip"
                        zip_seconds.append(make_zip(source, archive))
                        zip_size = archive.stat().st_size
                        run = zip_deploy(relay, archive, token, f"round-{round_index}")
                    check_served(server, indices[0], version)
                    runs.append(run)
                    print(f"round {round_index + 1}: {run}", flush=True)
        finally:
            relay.close()
    return Measured(args.files, first, runs, zip_seconds, zip_size)


HEADERS = ["deploy", "files uploaded", "seconds (median)", "seconds (max)", "bytes sent", "bytes received"]


def rows(measured: Measured, args: argparse.Namespace) -> list[list[str]]:
    table = []
    for label, contender in ((f"client, {args.changed} changed", "client"), ("zip of the whole site", "zip")):
        runs = [run for run in measured.runs if run.contender == contender]
        table.append(
            [
                label,
                runs[-1].uploaded,
                f"{statistics.median(r.seconds for r in runs):.2f}",
                f"{max(r.seconds for r in runs):.2f}",
                f"{statistics.median(r.sent for r in runs):,.0f}",
                f"{statistics.median(r.received for r in runs):,.0f}",
            ]
        )
    first = measured.first
    table.append(
        [
            "client, first deploy (reference)",
            first.uploaded,
            f"{first.seconds:.2f}",
            f"{first.seconds:.2f}",
            f"{first.sent:,}",
            f"{first.received:,}",
        ]
    )
    return table


def ratios(measured: Measured) -> str:
    def median(contender: str, pick: str) -> float:
        return statistics.median(getattr(r, pick) for r in measured.runs if r.contender == contender)

    seconds = median("zip", "seconds") / median("client", "seconds")
    sent = median("zip", "sent") / median("client", "sent")
    first = measured.first
    return (
        f"The incremental client deploy took {1 / seconds:.2f}× the time of the zip upload "
        f"(the zip {seconds:.1f}× as long) and sent {1 / sent:.3f}× its bytes (the zip {sent:.1f}× as many). "
        f"The first client deploy took {first.seconds / median('zip', 'seconds'):,.0f}× the time of a zip of "
        f"the whole site: one request per file ({first.seconds * 1000 / measured.files:,.0f} ms a file here, 4 at "
        "a time) costs more than its bytes, so a first deploy of a large site goes faster as a zip."
    )


def report(measured: Measured, args: argparse.Namespace) -> str:
    lines = [
        "# Benchmark: deploying a large site from CI",
        "",
        f"A site of {args.files:,} small HTML, CSS and JS files (300 B to 6 KiB) is deployed once with "
        f"`assetcache-deploy`. Then, {args.rounds} times, each way of deploying sends the site with "
        f"{args.changed} files changed (other files each time), the two taking turns at going first:",
        "",
        "- *client*: `assetcache-deploy SOURCE --url … --site bench`, run as a process and timed from start to "
        "exit: it hashes every file, sends the manifest, uploads the blobs the server lacks (4 connections) "
        "and finishes the deploy.",
        "- *zip*: the whole site as one zip, sent in one `POST sites/bench/deploys` with "
        "`Content-Type: application/zip`, timed from the request to the reply. Making the zip "
        f"({measured.zip_size:,} bytes, deflated) took a median {statistics.median(measured.zip_seconds):.2f} s "
        "more, not counted.",
        "",
        "Bytes are counted by a relay in front of gunicorn: everything each side sent over HTTP, headers "
        "included (not TCP/IP overhead). After each deploy a changed file is requested and its bytes checked.",
        "",
        markdown_table(HEADERS, rows(measured, args)),
        "",
        ratios(measured),
        "",
        "The client's bytes are mostly its manifest (a path, a sha256 and a size per file: "
        f"{statistics.median(r.sent for r in measured.runs if r.contender == 'client') / measured.files:.0f} "
        "bytes a file in all here) and one request per changed file; the reply to the manifest lists only the "
        "hashes the storage lacks. The zip carries every file, and the server unpacks and hashes all of them again.",
        "",
        "## Set-up",
        "",
        f"- Everything on one machine, over loopback: gunicorn ({args.workers} sync workers, SQLite, blobs on "
        f"the file system, the `database` invalidation backend polled every {POLL_INTERVAL:g} s, "
        "`tests.settings`), the relay and the client.",
        *machine_lines(["Django", "gunicorn", "django-assetcache"]),
        f"- Load average (1 min) at start and end: {args.load_start:.2f}, {os.getloadavg()[0]:.2f}",
        "",
        "Reproduce: `.venv/bin/python benchmarks/deploy_bench.py` (or `make bench-deploy`; `--quick` for "
        "1,000 files and one round).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--changed", type=int, default=10, help="files changed before each deploy")
    parser.add_argument("--rounds", type=int, default=3, help="deploys of each contender")
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--quick", action="store_true", help="1,000 files, one round: a smoke run")
    parser.add_argument("--no-write", action="store_true", help="print the table, leave docs/ alone")
    args = parser.parse_args(argv)
    if args.quick:
        args.files, args.rounds = 1_000, 1
    args.load_start = os.getloadavg()[0]
    base = Path(tempfile.mkdtemp(prefix="assetcache-deploy-bench-"))
    try:
        measured = measure(base, args)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print()
    print(markdown_table(HEADERS, rows(measured, args)))
    print(ratios(measured))
    if not args.no_write:
        print(f"\nwrote {write_doc('benchmarks-deploy.md', report(measured, args)).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
