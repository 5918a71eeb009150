from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.db.models import F, QuerySet
from django.test import Client

from django_assetcache import conf, runtime
from django_assetcache.models import Asset, Site
from django_assetcache.publish import publish
from django_assetcache.store import BlobStore, blob_name


@pytest.fixture(autouse=True)
def _fresh_cache(settings, tmp_path: Path) -> Iterator[None]:
    """Every test gets its own blob storage and a process cache it starts."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    conf.reset()
    runtime.reset()
    yield
    runtime.reset()
    conf.reset()


def write_tree(root: Path, files: dict[str, bytes | str]) -> Path:
    for name, content in files.items():
        target = root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    return root


def make_zip(path: Path, files: dict[str, bytes | str]) -> Path:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return path


SAMPLE = {
    "index.html": "<!doctype html><title>Home</title><link rel=stylesheet href=/css/site.css>",
    "css/site.css": "body { color: #333 }\n",
    "guide/index.html": "<!doctype html><title>Guide</title>",
    "404.html": "<!doctype html><title>Not here</title>",
    "img/logo.png": b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4,
}


@pytest.fixture
def sample_dir(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "sample", SAMPLE)


@pytest.fixture
def site(db, sample_dir: Path) -> Site:
    publish("docs", sample_dir)
    return Site.objects.get(subdomain="docs")


@pytest.fixture
def site_client() -> Client:
    return Client(HTTP_HOST="docs.sites.test")


class Terminal(io.StringIO):
    """A stream that says it is a terminal: progress bars draw on it."""

    def isatty(self) -> bool:
        return True


def zip_bytes(files: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()


# --- damaged zips, as bytes: a CLI source, an upload -----------------------------------------


def _member_data_offset(data: bytes, name: bytes) -> int:
    """Where a member's (compressed) bytes start: after its local header."""
    header = data.index(b"PK\x03\x04")
    while data[header + 30 : header + 30 + len(name)] != name:
        header = data.index(b"PK\x03\x04", header + 4)
    name_length = int.from_bytes(data[header + 26 : header + 28], "little")
    extra_length = int.from_bytes(data[header + 28 : header + 30], "little")
    return header + 30 + name_length + extra_length


def zip_with_bad_utf8_name() -> bytes:
    """An entry flagged UTF-8 (bit 11) whose name is Latin-1: b'caf\\xe9\\xe9.txt'."""
    data = zip_bytes({"ok.txt": "ok", "café.txt": "x"})  # zipfile sets bit 11 for a non-ASCII name
    assert data.count("café".encode()) == 2
    return data.replace("café".encode(), b"caf\xe9\xe9")


def zip_with_nul_in_a_name() -> bytes:
    """An entry named b'evil.txt\\x00.html': zipfile cuts it at the NUL to 'evil.txt'."""
    data = zip_bytes({"ok.txt": "ok", "evil.txt_.html": "x"})
    assert data.count(b"evil.txt_.html") == 2
    return data.replace(b"evil.txt_.html", b"evil.txt\x00.html")


def zip_with_damaged_stream(method: int) -> bytes:
    """A deflate, bzip2 or LZMA member whose compressed stream is broken
    (so the decompressor fails, before any CRC check could)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        archive.writestr("ok.txt", "ok")
        archive.writestr("broken.txt", b"text " * 150)
    data = bytearray(buffer.getvalue())
    start = _member_data_offset(bytes(data), b"broken.txt")
    if method == zipfile.ZIP_DEFLATED:
        data[start] = 0x07  # final block of type 3: "invalid block type"
    elif method == zipfile.ZIP_LZMA:
        data[start + 4] = 0xFF  # lc/lp/pb property byte out of range
    else:
        data[start : start + 10] = b"BZh9\x00\x00\x00\x00\x00\x00"  # a bzip2 block header of zeros
    return bytes(data)


def live_assets(subdomain: str = "docs") -> QuerySet[Asset]:
    """The Asset rows of a site's live deployment."""
    return Asset.objects.filter(site__subdomain=subdomain, site__live_deployment=F("deployment")).order_by("path")


def sha(content: bytes | str) -> str:
    """The SHA-256 of bytes, or of text as UTF-8: a blob's name."""
    return hashlib.sha256(content.encode() if isinstance(content, str) else content).hexdigest()


def stored(sha256: str) -> bool:
    """Whether the blob storage holds a blob's file."""
    return BlobStore().storage.exists(blob_name(sha256))


@pytest.fixture
def no_deployment_retention(settings) -> None:
    """A deployment no longer live expires at once, so its blobs are unused
    at once: for tests about blobs and gc (retention is tested on its own)."""
    settings.ASSETCACHE_DEPLOYMENT_RETENTION = 0
    settings.ASSETCACHE_DEPLOYMENT_RETENTION_DAYS = 0
