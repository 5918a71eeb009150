"""The snapshot's checksums: a damaged or old snapshot never decides a response."""

from __future__ import annotations

import gzip
import logging
import os
import random
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import brotli
import pytest

from django_assetcache import conf, runtime
from django_assetcache.models import Domain, Site
from django_assetcache.publish import DeploymentInfo, publish
from django_assetcache.snapshot import FOOTER, MAGIC, Snapshot
from django_assetcache.warmup import warm_up
from django_assetcache.wsgi import AssetCacheWSGI

from .conftest import SAMPLE, write_tree

CSS = ("body { color: #333; margin: 0 auto; padding: 1em }\n" * 40).encode()
#: Larger than the memory file limit set below: sent from disk, its length
#: taken from its record.
BIG = bytes(range(256)) * 24
FILES: dict[str, bytes] = {
    **{name: content.encode() if isinstance(content, str) else content for name, content in SAMPLE.items()},
    "css/site.css": CSS,
    "big.bin": BIG,
    # Only in the draft deployment (alias "next"), which shares every other record.
    "draft.html": b"<!doctype html><title>Draft</title>",
    # Site rules live in the index: a flipped byte there refuses the snapshot.
    "_redirects": b"/old /guide/ 302\n/app/* /index.html 200\n",
    "_headers": b"/css/*\n  X-Rule: yes\n",
}
#: (host, path, Accept-Encoding) → what a correct server answers: status,
#: the file whose bytes the body decodes to (None: a redirect).
REQUESTS: list[tuple[str, str, str, int, str | None]] = [
    ("docs.sites.test", "/", "", 200, "index.html"),
    ("docs.sites.test", "/css/site.css", "", 200, "css/site.css"),
    ("docs.sites.test", "/css/site.css", "gzip", 200, "css/site.css"),
    ("docs.sites.test", "/css/site.css", "br, gzip", 200, "css/site.css"),
    ("docs.sites.test", "/img/logo.png", "", 200, "img/logo.png"),
    ("docs.sites.test", "/big.bin", "gzip", 200, "big.bin"),
    ("docs.sites.test", "/guide", "", 301, None),
    ("docs.sites.test", "/no/such/page", "", 404, "404.html"),
    ("docs.sites.test", "/old", "", 302, None),
    ("docs.sites.test", "/app/route", "", 200, "index.html"),
    ("docs.sites.test", "/_redirects", "", 404, "404.html"),
    ("docs.example.org", "/guide/", "", 200, "guide/index.html"),
    ("docs.sites.test", "/draft.html", "", 404, "404.html"),
    ("next--docs.sites.test", "/draft.html", "", 200, "draft.html"),
    ("next--docs.sites.test", "/css/site.css", "gzip", 200, "css/site.css"),
    ("next--docs.sites.test", "/nope", "", 404, "404.html"),
]
#: Flips of each byte outside the bodies (with different values), and of
#: bytes drawn from the bodies, which are checked by hash.
FLIPS_PER_BYTE = 1
BODY_FLIPS = 1100

Response = tuple[int, dict[str, str], bytes]


def _not_a_site(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    raise AssertionError(f"{environ['HTTP_HOST']} was passed on to the project")


APP = AssetCacheWSGI(_not_a_site)


def request(host: str, path: str, accept_encoding: str) -> Response:
    """One request through the WSGI adapter; an exception (what a server
    turns into a 500) fails the test."""
    environ = {
        "HTTP_HOST": host,
        "PATH_INFO": path,
        "REQUEST_METHOD": "GET",
        "QUERY_STRING": "",
        "HTTP_ACCEPT_ENCODING": accept_encoding,
    }
    started: list[Any] = []
    body = APP(environ, lambda status, headers: started.append((status, headers)))
    try:
        data = b"".join(body)
    finally:
        getattr(body, "close", lambda: None)()
    status, headers = started[0]
    return int(status.split()[0]), dict(headers), data


def decoded(headers: dict[str, str], body: bytes) -> bytes:
    encoding = headers.get("Content-Encoding")
    if encoding == "gzip":
        return gzip.decompress(body)
    if encoding == "br":
        return brotli.decompress(body)
    assert encoding is None, encoding
    return body


@pytest.fixture
def snapshot_file(db, tmp_path: Path, settings) -> Path:
    settings.ASSETCACHE_MEMORY_FILE_LIMIT = 4096
    conf.reset()
    live = {name: content for name, content in FILES.items() if name != "draft.html"}
    publish("docs", write_tree(tmp_path / "src", live))
    publish(
        "docs",
        write_tree(tmp_path / "draft", {"draft.html": FILES["draft.html"]}),
        deployment=DeploymentInfo(draft=True, alias="next"),
    )
    Domain.objects.create(site=Site.objects.get(subdomain="docs"), hostname="docs.example.org", state="verified")
    warm_up()
    runtime.reset()
    return Path(conf.get().SNAPSHOT_PATH)


def regions(path: Path) -> dict[str, range]:
    """Every area of the file format, by the offsets a loaded snapshot reports."""
    snapshot = Snapshot(path)
    size = path.stat().st_size
    index_length = FOOTER.unpack(path.read_bytes()[-FOOTER.size :])[0]
    index_start = size - FOOTER.size - index_length
    return {
        "header": range(0, len(MAGIC)),
        "bodies": range(len(MAGIC), snapshot.records_start),
        "records": range(snapshot.records_start, snapshot.variants_start),
        "variants": range(snapshot.variants_start, snapshot.paths_start),
        "paths": range(snapshot.paths_start, snapshot.entries_start),
        "entries": range(snapshot.entries_start, index_start),
        "index": range(index_start, size - FOOTER.size),
        "footer": range(size - FOOTER.size, size),
    }


def flip_positions(areas: dict[str, range], rng: random.Random) -> list[int]:
    """Every byte outside the bodies ``FLIPS_PER_BYTE`` times, and
    ``BODY_FLIPS`` bytes of the bodies."""
    positions = [position for name, area in areas.items() if name != "bodies" for position in area] * FLIPS_PER_BYTE
    positions += rng.sample(areas["bodies"], min(BODY_FLIPS, len(areas["bodies"])))
    rng.shuffle(positions)
    return positions


def test_fuzzed_snapshot_never_decides_a_wrong_response(snapshot_file: Path, caplog) -> None:
    """Issue 11 item 3: flipping any byte of a real snapshot (header, bodies,
    records, variants, index, footer) never gives a wrong byte, a wrong
    Content-Length or a 500: damage outside the bodies makes the process
    ignore the snapshot whole, a damaged body is read from the blob store."""
    original = snapshot_file.read_bytes()
    areas = regions(snapshot_file)
    assert all(len(area) > 0 for area in areas.values()), areas
    rng = random.Random(11)
    positions = flip_positions(areas, rng)
    assert len(positions) >= 2000
    bodies = areas["bodies"]
    fresh = snapshot_file.with_name("fuzzed.bin")
    caplog.set_level(logging.CRITICAL, logger="django_assetcache")
    checked: dict[str, int] = dict.fromkeys(areas, 0)
    for position in positions:
        damaged = bytearray(original)
        damaged[position] ^= rng.randrange(1, 256)
        # A new file, as warmup writes one: rewriting the mapped file in place
        # would change the snapshots loaded before.
        fresh.write_bytes(damaged)
        os.replace(fresh, snapshot_file)
        runtime.reset()
        for host, path, accept, status, name in REQUESTS:
            got_status, headers, body = request(host, path, accept)
            where = f"byte {position} flipped, {host}{path} ({accept or 'identity'})"
            assert got_status == status, where
            assert int(headers["Content-Length"]) == len(body), where
            if name is not None:
                assert decoded(headers, body) == FILES[name], where
        loaded = runtime.stats()["snapshot_change_id"] is not None
        assert loaded == (position in bodies), f"byte {position} flipped"
        checked[next(area for area, span in areas.items() if position in span)] += 1
    assert all(checked.values()), checked
    assert sum(checked.values()) >= 2000


def test_intact_snapshot_answers_the_same(snapshot_file: Path) -> None:
    """The fuzz test's expectations hold for the snapshot it damages."""
    for host, path, accept, status, name in REQUESTS:
        got_status, headers, body = request(host, path, accept)
        assert got_status == status
        assert int(headers["Content-Length"]) == len(body)
        if name is not None:
            assert decoded(headers, body) == FILES[name]
    assert runtime.stats()["snapshot_change_id"] is not None
    assert runtime.stats()["db_queries"] == 1  # the replay; every answer came from the snapshot


def _flip_record(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[Snapshot(path).records_start + 40] ^= 0x01  # a body offset
    path.write_bytes(bytes(data))


def _flip_entry(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[Snapshot(path).entries_start + 8] ^= 0x01  # a record number
    path.write_bytes(bytes(data))


def _flip_path(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[Snapshot(path).paths_start + 1] ^= 0x01
    path.write_bytes(bytes(data))


def _old_version(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(b"ACSNAP07" + data[len(MAGIC) : -len(MAGIC)] + b"ACSNAP07")


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (_flip_record, "table checksum mismatch"),
        (_flip_entry, "table checksum mismatch"),
        (_flip_path, "table checksum mismatch"),
        (_old_version, "format version 07, expected 08"),
    ],
)
def test_refused_snapshot_is_logged_once_and_the_database_answers(
    snapshot_file: Path, caplog, damage: Callable[[Path], None], reason: str
) -> None:
    """Issue 11 item 3: a snapshot whose records fail their checksum, or of
    an older format, is ignored whole with one warning naming why."""
    damage(snapshot_file)
    with caplog.at_level(logging.WARNING, logger="django_assetcache"):
        for host, path, accept, status, name in REQUESTS:
            got_status, headers, body = request(host, path, accept)
            assert got_status == status
            if name is not None:
                assert decoded(headers, body) == FILES[name]
    warnings = [record.getMessage() for record in caplog.records if "ignoring snapshot" in record.getMessage()]
    assert len(warnings) == 1, warnings
    assert warnings[0].endswith(reason)
    assert runtime.stats()["snapshot_change_id"] is None
