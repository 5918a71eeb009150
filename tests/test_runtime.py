"""Process wiring: what imports before Django is set up, the cache's hooks
sent as Django signals, and the sentinels the hit path compares by identity."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from django_assetcache import runtime, serve, signals
from django_assetcache.entries import EntryKind
from django_assetcache.hosts import HostMiss
from django_assetcache.models import Change, Site, record_change

from .databases import ROOT

HOST = "docs.sites.test"

IMPORT_BEFORE_SETUP = """
import sys
import django_assetcache
from django_assetcache import stats, warm
from django_assetcache.asgi import AssetCacheASGI
from django_assetcache.wsgi import AssetCacheWSGI
loaded = sorted(name for name in sys.modules if name.startswith("django_assetcache."))
print(" ".join(loaded))
"""


def test_the_package_and_its_wrappers_import_before_django_is_set_up() -> None:
    """A wsgi.py imports the wrapper before get_wsgi_application() sets Django
    up, often before DJANGO_SETTINGS_MODULE is set: nothing may need a model."""
    env = {key: value for key, value in os.environ.items() if key != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", IMPORT_BEFORE_SETUP], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert {"django_assetcache.runtime", "django_assetcache.wsgi", "django_assetcache.asgi"} <= loaded
    assert not loaded & {"django_assetcache.models", "django_assetcache.loader", "django_assetcache.receivers"}


@pytest.fixture
def received() -> Iterator[list[dict[str, Any]]]:
    """Every ``invalidated`` and ``evicted`` signal sent meanwhile, as its keyword arguments."""
    calls: list[dict[str, Any]] = []

    def receiver(signal: Any, sender: Any, **kwargs: Any) -> None:
        calls.append({"signal": signal, "sender": sender, **kwargs})

    signals.invalidated.connect(receiver)
    signals.evicted.connect(receiver)
    yield calls
    signals.invalidated.disconnect(receiver)
    signals.evicted.disconnect(receiver)


def test_an_applied_change_sends_invalidated(site: Site, received, django_capture_on_commit_callbacks) -> None:
    cache = runtime.get_cache()
    with django_capture_on_commit_callbacks(execute=True):
        change = record_change(site.pk, Change.Kind.PURGE, ["/b.txt", "/a.txt"])
    assert received == [
        {
            "signal": signals.invalidated,
            "sender": type(cache),
            "change_id": change.id,
            "site_id": site.pk,
            "paths": ["/a.txt", "/b.txt"],
        }
    ]
    assert cache.last_change_id == change.id


def test_eviction_sends_evicted(site: Site, settings, received) -> None:
    settings.ASSETCACHE_MAX_ENTRIES = 2
    client = Client(HTTP_HOST=HOST)
    for path in ("/", "/css/site.css", "/img/logo.png", "/guide/"):
        assert client.get(path).status_code == 200
    evictions = [call for call in received if call["signal"] is signals.evicted]
    assert evictions and all(call["reason"] == "entries" for call in evictions)
    assert sum(call["count"] for call in evictions) == runtime.stats()["evictions_entries"] > 0


def test_an_evicted_tier_file_drops_the_entries_sending_it(site: Site, settings, tmp_path: Path) -> None:
    """The local tier's eviction listener is wired to this process's cache."""
    settings.ASSETCACHE_MEMORY_FILE_LIMIT = 10  # every body is sent from its file
    client = Client(HTTP_HOST=HOST)
    assert client.get("/css/site.css").status_code == 200
    cache = runtime.get_cache()
    site.refresh_from_db()
    entry = cache.entries[(site.live_deployment_id, "/css/site.css")]
    file_paths = entry.file_paths()
    assert file_paths
    for listener in runtime.localtier.listeners:
        listener(file_paths)
    assert (site.live_deployment_id, "/css/site.css") not in cache.entries


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("elsewhere.example", HostMiss.PASS),
        ("nosuchsite.sites.test", HostMiss.UNKNOWN),
        ("a.b.sites.test", HostMiss.UNKNOWN),
    ],
)
def test_hosts_that_are_no_site_map_to_a_host_miss(db, host: str, expected: HostMiss) -> None:
    assert runtime.get_cache().site_for(host) is expected


@pytest.mark.parametrize(
    ("path", "kind"),
    [("/css/site.css", EntryKind.FILE), ("/guide", EntryKind.REDIRECT), ("/nothing-here", EntryKind.MISSING)],
)
def test_entries_have_a_kind(site: Site, path: str, kind: EntryKind) -> None:
    cache = runtime.get_cache()
    info = cache.site_for(HOST)
    assert not isinstance(info, HostMiss)
    assert cache.entry(info, path).kind is kind


@pytest.mark.parametrize(
    ("path_info", "expected"),
    [
        ("/plain.txt", "/plain.txt"),
        ("/caf\u00c3\u00a9.txt", "/caf\u00e9.txt"),  # UTF-8 bytes, as WSGI hands them over (latin-1)
        ("/caf\u00e9.txt", None),  # a lone latin-1 byte: not UTF-8
        ("/\u00ff\u00fe", None),
    ],
)
def test_wsgi_path_is_none_when_not_utf8(path_info: str, expected: str | None) -> None:
    assert serve.wsgi_path(path_info) == expected


@pytest.mark.parametrize(
    ("raw_path", "expected"),
    [(None, "/\ufffd"), (b"/%EF%BF%BD", "/\ufffd"), (b"/%FF", None), (b"/\xff?q=1", None)],
)
def test_asgi_path_is_none_when_not_utf8(raw_path: bytes | None, expected: str | None) -> None:
    assert serve.asgi_path("/\ufffd", raw_path) == expected


def test_a_path_that_is_not_utf8_is_a_400_for_a_site_and_passes_for_other_hosts(site: Site) -> None:
    reply = serve.answer(HOST, None, "GET", "", {}.get)
    assert reply is not None and reply.status == 400
    assert serve.answer("elsewhere.example", None, "GET", "", {}.get) is None


def test_warm_makes_the_process_cache(site: Site) -> None:
    assert not runtime.cache_ready()
    cache = runtime.warm()
    assert runtime.cache_ready() and runtime.get_cache() is cache
    runtime.reset()
    assert not runtime.cache_ready()
