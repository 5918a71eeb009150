"""What benchmarks/run.py asks every contender for, and the sites that answer it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from benchmarks.serve_bench import HOST, KIB, MIB

#: A second site, published after the warm snapshot was written, so that its
#: paths are known only to the database.
MANY_SITE = "many"
MANY_HOST = f"{MANY_SITE}.sites.bench"
MANY_BODY = 100  # bytes per file of the many-files site
RANGE = "bytes=1048576-6291455"
#: A login site with the benchmark site's files, published after the snapshot
#: too; its case sends an access cookie (verified once per worker).
PRIVATE_SITE = "private"
PRIVATE_HOST = f"{PRIVATE_SITE}.sites.bench"
#: The access cookie, once ``run.prepare`` has made it.
ACCESS_COOKIE: list[str] = []
#: Requests per case to every server before measuring, each answer checked.
WARM_REQUESTS = 10


@dataclass(frozen=True)
class Case:
    name: str
    label: str  # short, for the chart
    path: str
    status: int
    length: int | None  # of the body; None: whatever the server's error page is
    headers: tuple[tuple[str, str], ...] = ()
    conditional: bool = False  # If-None-Match with the server's own ETag
    host: str = HOST
    random_paths: bool = False  # a random path of the many-files site per request
    assetcache_only: bool = False
    connections: int | None = None  # wrk's, when not the run's default
    cookie: bool = False  # send ACCESS_COOKIE

    def request_headers(self) -> dict[str, str]:
        headers = dict(self.headers)
        if self.cookie:
            headers["Cookie"] = ACCESS_COOKIE[0]
        return headers

    @property
    def by_bytes(self) -> bool:
        """Whether MiB/s, rather than requests/s, is what this case is about."""
        return self.length is not None and self.length >= MIB


CASES = [
    Case("1 KiB hit", "1 KiB", "/style.css", 200, KIB),
    Case("304 Not Modified", "304", "/style.css", 304, 0, conditional=True),
    Case("100 KiB hit", "100 KiB", "/app.js", 200, 100 * KIB),
    # One response in flight at a time: what one body costs a worker's memory,
    # and nginx against gunicorn's sync workers at the same concurrency.
    Case("10 MiB hit (1 connection)", "10 MiB 1 conn", "/big.bin", 200, 10 * MIB, connections=1),
    Case("10 MiB hit", "10 MiB", "/big.bin", 200, 10 * MIB),
    Case("5 MiB range", "5 MiB range", "/big.bin", 206, 5 * MIB, headers=(("Range", RANGE),)),
    Case(
        "miss to the database",
        "miss → DB",
        "/f/00000.txt",
        200,
        MANY_BODY,
        host=MANY_HOST,
        random_paths=True,
        assetcache_only=True,
    ),
    Case("404, negative entry", "404", "/missing.txt", 404, None),
    Case(
        "1 KiB hit, private site (cookie verified)",
        "1 KiB private",
        "/style.css",
        200,
        KIB,
        host=PRIVATE_HOST,
        assetcache_only=True,
        cookie=True,
    ),
]
CASES_BY_NAME = {case.name: case for case in CASES}
#: The cases during which the workers' memory is read. The first comes first
#: in a round, so its first run follows only the warm-up's requests, one at a time.
MEMORY_CASES = ("10 MiB hit (1 connection)", "10 MiB hit")


def many_path(number: int) -> str:
    """The request path of file ``number``; benchmarks/wrk_random_paths.lua builds the same."""
    return f"/f/{number:05d}.txt"


def write_many_files(directory: Path, count: int) -> None:
    """``count`` distinct files of ``MANY_BODY`` bytes each."""
    for number in range(count):
        target = directory / many_path(number).lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(f"file {number:05d}\n".encode().ljust(MANY_BODY - 1, b".") + b"\n")
