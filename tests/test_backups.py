"""assetcache_gc and a restored older database: the grace period
(ASSETCACHE_GC_GRACE, --keep-younger-than) keeps every blob a backup younger
than it refers to."""

from __future__ import annotations

import io
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone

from django_assetcache import conf, runtime
from django_assetcache.durations import parse_duration
from django_assetcache.models import Asset, Blob, Change, Domain, Site
from django_assetcache.publish import publish
from django_assetcache.store import BlobStore, blob_name

from .conftest import sha, stored, write_tree

# Blobs of a deployment no longer live are unused at once here: these tests
# are about blobs and gc.
pytestmark = pytest.mark.usefixtures("no_deployment_retention")

V1 = {"index.html": b"<h1>version one</h1>\n", "old.css": b"body { color: navy }\n"}
V2 = {"index.html": b"<h1>version two</h1>\n"}


def back_up(path: Path) -> Path:
    """What a nightly dump holds: every row of the app."""
    with open(path, "w") as out:
        call_command("dumpdata", "django_assetcache", stdout=out)
    return path


def restore(path: Path) -> None:
    """Replace the app's rows by the dump's, as restoring the backup would,
    and start the process over (a restore restarts the servers)."""
    Asset.objects.all().delete()
    Domain.objects.all().delete()
    Site.objects.all().delete()
    Blob.objects.all().delete()
    Change.objects.all().delete()
    call_command("loaddata", str(path), verbosity=0)
    runtime.reset()


@pytest.fixture
def default_grace(settings) -> None:
    del settings.ASSETCACHE_GC_GRACE  # the suite sets 0; use the package's default
    conf.reset()
    assert conf.get().GC_GRACE == 7 * 24 * 3600


def test_a_restored_older_database_finds_its_blobs_after_gc(db, tmp_path: Path, default_grace) -> None:
    publish("docs", write_tree(tmp_path / "v1", V1))
    dump = back_up(tmp_path / "backup.json")
    publish("docs", write_tree(tmp_path / "v2", V2), delete=True)
    summary = call_gc()
    assert "deleted 0 unused blobs" in summary
    assert "kept 2 unused blobs within the grace period" in summary
    assert Client(HTTP_HOST="docs.sites.test").get("/").content == V2["index.html"]

    restore(dump)
    assert all(stored(sha(data)) for data in V1.values())
    client = Client(HTTP_HOST="docs.sites.test")
    for name, data in V1.items():
        response = client.get(f"/{name}")
        assert (response.status_code, b"".join(response)) == (200, data)


def test_without_a_grace_period_the_restored_database_would_miss_them(db, tmp_path: Path) -> None:
    """What the grace period prevents: gc with --keep-younger-than 0."""
    publish("docs", write_tree(tmp_path / "v1", V1))
    dump = back_up(tmp_path / "backup.json")
    publish("docs", write_tree(tmp_path / "v2", V2), delete=True)
    assert call_gc("--keep-younger-than", "0").startswith("deleted 2 unused blobs")
    restore(dump)
    assert not any(stored(sha(data)) for data in V1.values())
    assert Client(HTTP_HOST="docs.sites.test").get("/old.css").status_code == 502


def call_gc(*args: str) -> str:
    out = io.StringIO()
    call_command("assetcache_gc", *args, stdout=out)
    return out.getvalue()


def test_the_grace_counts_from_when_a_blob_became_unused_not_from_its_age(db, tmp_path: Path, default_grace) -> None:
    """A blob stored a year ago and dropped today is as needed by yesterday's
    backup as a new one."""
    publish("docs", write_tree(tmp_path / "v1", V1))
    Blob.objects.update(created_at=timezone.now() - timedelta(days=365))
    publish("docs", write_tree(tmp_path / "v2", V2), delete=True)
    call_gc()
    stamped = dict(Blob.objects.filter(unused_since__isnull=False).values_list("sha256", "unused_since"))
    assert set(stamped) == {sha(data) for data in V1.values()}
    # Six days later: still kept; eight days later: gone.
    Blob.objects.filter(pk__in=stamped).update(unused_since=timezone.now() - timedelta(days=6))
    assert call_gc().startswith("deleted 0 unused blobs")
    Blob.objects.filter(pk__in=stamped).update(unused_since=timezone.now() - timedelta(days=8))
    assert call_gc().startswith("deleted 2 unused blobs")
    assert not any(stored(digest) for digest in stamped)


def test_a_blob_used_again_starts_its_grace_over(db, tmp_path: Path, default_grace) -> None:
    publish("docs", write_tree(tmp_path / "v1", V1))
    publish("docs", write_tree(tmp_path / "v2", V2), delete=True)
    call_gc()
    old_css = sha(V1["old.css"])
    Blob.objects.filter(pk=old_css).update(unused_since=timezone.now() - timedelta(days=30))
    publish("docs", write_tree(tmp_path / "v3", {"old.css": V1["old.css"]}))  # used again: the stamp goes
    assert Blob.objects.get(pk=old_css).unused_since is None
    publish("docs", write_tree(tmp_path / "v4", V2), delete=True)  # unused again, today
    assert call_gc("--dry-run").startswith("would delete 0 unused blobs")
    call_gc()
    assert stored(old_css)
    assert Blob.objects.get(pk=old_css).unused_since > timezone.now() - timedelta(minutes=1)


def test_files_without_a_row_are_kept_for_the_grace_period(db, tmp_path: Path, default_grace) -> None:
    store = BlobStore()
    data = {"day": b"stored a day ago", "month": b"stored a month ago"}
    for name, body in data.items():
        store.save(sha(body), len(body), io.BytesIO(body))
        then = time.time() - {"day": 86400, "month": 30 * 86400}[name]
        os.utime(store.storage.path(blob_name(sha(body))), (then, then))
    assert "0 unused blobs (0 B), 1 orphan file" in call_gc()
    assert stored(sha(data["day"]))
    assert not stored(sha(data["month"]))


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("7d", 604800.0), ("12h", 43200.0), ("30m", 1800.0), ("45s", 45.0), ("2w", 1209600.0), ("3600", 3600.0)],
)
def test_durations(value: str, seconds: float) -> None:
    assert parse_duration(value).total_seconds() == seconds


@pytest.mark.parametrize("value", ["", "7 days", "-1d", "1y", "d"])
def test_a_bad_duration_is_one_line_and_deletes_nothing(db, tmp_path: Path, value: str) -> None:
    publish("docs", write_tree(tmp_path / "v1", V1))
    publish("docs", write_tree(tmp_path / "v2", V2), delete=True)
    blobs = Blob.objects.count()
    with pytest.raises(CommandError, match=r"^--keep-younger-than .*: give a duration such as 7d, 12h"):
        call_gc(f"--keep-younger-than={value}")
    assert Blob.objects.count() == blobs
