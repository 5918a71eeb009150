from __future__ import annotations

import io
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.test import Client

from django_assetcache import cache, conf
from django_assetcache.models import Site
from django_assetcache.publish import publish


@pytest.fixture(autouse=True)
def _fresh_cache(settings, tmp_path: Path) -> Iterator[None]:
    """Every test gets its own blob storage and a process cache it starts."""
    settings.MEDIA_ROOT = str(tmp_path / "media")
    conf.reset()
    cache.reset()
    yield
    cache.reset()
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


def zip_bytes(files: dict[str, bytes | str]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return buffer.getvalue()
