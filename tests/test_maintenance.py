"""collect_garbage and assetcache_gc: unused blobs, orphan files, old feed rows."""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import time
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from django_assetcache.maintenance import UNCOMMITTED_GRACE, collect_garbage
from django_assetcache.models import Blob, Change
from django_assetcache.publish import publish
from django_assetcache.store import BlobStore, blob_name

from .conftest import write_tree

KEPT = "kept by every version\n" * 20
DROPPED = "only in the first version\n" * 20
SHARED = "also used by another site\n" * 20


def sha(content: str | bytes) -> str:
    data = content.encode() if isinstance(content, str) else content
    return hashlib.sha256(data).hexdigest()


def stored(sha256: str) -> bool:
    return BlobStore().storage.exists(blob_name(sha256))


def file_of(sha256: str) -> Path:
    return Path(BlobStore().storage.path(blob_name(sha256)))


def add_variant(source: str) -> str:
    """A gzip variant of ``source`` (row and file), as warmup makes them."""
    data = gzip.compress(source.encode(), mtime=0)
    variant = sha(data)
    BlobStore().save(variant, len(data), io.BytesIO(data))
    Blob.objects.create(sha256=variant, size=len(data), source_id=sha(source), encoding="gzip")
    return variant


def add_orphan(content: bytes, age: timedelta | None = None) -> str:
    """A stored file without a Blob row (an interrupted publish leaves these)."""
    orphan = sha(content)
    BlobStore().save(orphan, len(content), io.BytesIO(content))
    if age is not None:
        then = time.time() - age.total_seconds()
        os.utime(file_of(orphan), (then, then))
    return orphan


@pytest.fixture
def two_versions(db, tmp_path: Path) -> dict[str, str]:
    """docs published twice (the second drops two files), blog sharing one file."""
    publish("docs", write_tree(tmp_path / "v1", {"keep.txt": KEPT, "drop.txt": DROPPED, "shared.txt": SHARED}))
    publish("blog", write_tree(tmp_path / "blog", {"index.html": SHARED}))
    variants = {"kept": add_variant(KEPT), "dropped": add_variant(DROPPED)}
    publish("docs", write_tree(tmp_path / "v2", {"keep.txt": KEPT}), delete=True)
    return variants


def test_unreferenced_blobs_go_with_their_files_and_variants(two_versions: dict[str, str]) -> None:
    dropped_size = len(DROPPED.encode()) + Blob.objects.get(pk=two_versions["dropped"]).size
    summary = collect_garbage()
    assert summary.blobs_deleted == 2  # the dropped file and its variant
    assert summary.bytes_freed == dropped_size
    for gone in (sha(DROPPED), two_versions["dropped"]):
        assert not Blob.objects.filter(pk=gone).exists()
        assert not stored(gone)
    # Referenced blobs, a variant of one, and a blob another site still uses stay.
    for kept in (sha(KEPT), two_versions["kept"], sha(SHARED)):
        assert Blob.objects.filter(pk=kept).exists()
        assert stored(kept)
    client = Client(HTTP_HOST="docs.sites.test")
    assert client.get("/keep.txt").content == KEPT.encode()
    assert Client(HTTP_HOST="blog.sites.test").get("/").content == SHARED.encode()
    # Nothing is left to collect.
    again = collect_garbage()
    assert (again.blobs_deleted, again.orphan_files_deleted) == (0, 0)


def test_nothing_to_collect_after_a_single_publish(db, tmp_path: Path) -> None:
    publish("docs", write_tree(tmp_path / "src", {"index.html": "hello", "a/b.css": KEPT}))
    before = set(Blob.objects.values_list("pk", flat=True))
    summary = collect_garbage()
    assert (summary.blobs_deleted, summary.orphan_files_deleted, summary.changes_pruned) == (0, 0, 0)
    assert set(Blob.objects.values_list("pk", flat=True)) == before
    assert all(stored(blob) for blob in before)


def test_orphan_files_are_deleted_after_the_grace_period(db) -> None:
    recent = add_orphan(b"a publish that has not committed yet")
    old = add_orphan(b"left by a publish that died", age=UNCOMMITTED_GRACE + timedelta(hours=1))
    summary = collect_garbage()
    assert summary.orphan_files_deleted == 1
    assert stored(recent)
    assert not stored(old)


def test_dry_run_reports_and_deletes_nothing(two_versions: dict[str, str]) -> None:
    orphan = add_orphan(b"an old orphan", age=timedelta(days=1))
    Change.objects.update(created_at=timezone.now() - timedelta(days=30))
    rows = list(Change.objects.values_list("id", "kind", "paths"))
    blobs = set(Blob.objects.values_list("pk", flat=True))

    summary = collect_garbage(dry_run=True)
    assert summary.dry_run
    assert (summary.blobs_deleted, summary.orphan_files_deleted, summary.changes_pruned) == (2, 1, len(rows))
    assert str(summary).startswith("would delete 2 unused blobs")
    assert set(Blob.objects.values_list("pk", flat=True)) == blobs
    assert all(stored(blob) for blob in blobs)
    assert stored(orphan)
    assert list(Change.objects.values_list("id", "kind", "paths")) == rows

    real = collect_garbage()
    assert (real.blobs_deleted, real.orphan_files_deleted, real.changes_pruned) == (2, 1, len(rows))
    assert not stored(orphan)


def test_old_change_rows_are_pruned_behind_a_marker(db, tmp_path: Path) -> None:
    for version in range(3):
        publish("docs", write_tree(tmp_path / f"v{version}", {"index.html": f"v{version}"}))
    ids = list(Change.objects.values_list("id", flat=True))
    old, recent = ids[:-1], ids[-1:]
    Change.objects.filter(id__in=old).update(created_at=timezone.now() - timedelta(days=8))

    summary = collect_garbage()  # retention: 7 days by default
    assert summary.changes_pruned == len(old)
    remaining = list(Change.objects.values_list("id", "site_id", "kind", "paths"))
    assert [row[0] for row in remaining[:-1]] == recent
    marker = remaining[-1]
    assert marker[0] > max(ids)
    assert marker[1:] == (None, "prune", [str(max(old))])

    # Nothing old any more: no new marker.
    assert collect_garbage().changes_pruned == 0
    assert Change.objects.count() == len(remaining)


def test_retention_is_a_setting(db, tmp_path: Path, settings) -> None:
    publish("docs", write_tree(tmp_path / "src", {"index.html": "x"}))
    rows = Change.objects.count()  # the site's creation, its publish
    Change.objects.update(created_at=timezone.now() - timedelta(hours=2))
    assert collect_garbage().changes_pruned == 0
    settings.ASSETCACHE_CHANGE_RETENTION = 3600
    assert collect_garbage().changes_pruned == rows


def test_gc_command(two_versions: dict[str, str]) -> None:
    out = io.StringIO()
    call_command("assetcache_gc", "--dry-run", stdout=out)
    assert out.getvalue().startswith("would delete 2 unused blobs")
    assert Blob.objects.filter(pk=sha(DROPPED)).exists()
    out = io.StringIO()
    call_command("assetcache_gc", stdout=out)
    assert out.getvalue().startswith("deleted 2 unused blobs")
    assert not Blob.objects.filter(pk=sha(DROPPED)).exists()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["docs"], "purged 1 site "),
        (["docs", "blog"], "purged 2 sites "),
        (["docs", "--path", "/index.html"], "purged 1 path of 1 site "),
        (["docs", "blog", "--path", "/a", "--path", "/b"], "purged 2 paths of 2 sites "),
    ],
)
def test_purge_command_counts_in_words(db, tmp_path: Path, args: list[str], expected: str) -> None:
    """Issue 11 item 20: "1 site", "2 sites", not "1 sites"."""
    for subdomain in ("docs", "blog"):
        publish(subdomain, write_tree(tmp_path / subdomain, {"index.html": subdomain}))
    out = io.StringIO()
    call_command("assetcache_purge", *args, stdout=out)
    assert out.getvalue().startswith(expected)


def test_gc_summary_counts_in_words(db, tmp_path: Path) -> None:
    """Issue 11 item 20: a count of one is said in the singular."""
    publish("docs", write_tree(tmp_path / "v1", {"a.txt": "old"}))
    publish("docs", write_tree(tmp_path / "v2", {"a.txt": "new"}))
    summary = collect_garbage(dry_run=True)
    assert str(summary).startswith("would delete 1 unused blob (3 B), 0 orphan files, ")
