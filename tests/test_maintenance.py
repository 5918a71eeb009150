"""collect_garbage and assetcache_gc: unused blobs, orphan files, old feed rows."""

from __future__ import annotations

import gzip
import io
import os
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.core.management import call_command
from django.test import Client
from django.utils import timezone

from django_assetcache import publish as publish_module
from django_assetcache.maintenance import UNCOMMITTED_GRACE, GarbageSummary, collect_garbage
from django_assetcache.models import Blob, Change
from django_assetcache.publish import publish
from django_assetcache.store import BlobStore, blob_name
from django_assetcache.warmup import warm_up

from .conftest import sha, stored, write_tree

# Blobs of a deployment no longer live are unused at once here: these tests
# are about blobs and gc.
pytestmark = pytest.mark.usefixtures("no_deployment_retention")

KEPT = "kept by every version\n" * 20
DROPPED = "only in the first version\n" * 20
SHARED = "also used by another site\n" * 20


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


def test_old_change_rows_are_pruned_behind_a_marker(db, tmp_path: Path, settings) -> None:
    settings.ASSETCACHE_DEPLOYMENT_RETENTION = 20  # no deployment expires: its change would count
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


# --- gc racing a publish ------------------------------------------------------


@pytest.fixture
def gc_before_commit(monkeypatch: pytest.MonkeyPatch) -> list[GarbageSummary]:
    """Run assetcache_gc in every publish between storing its blobs and committing."""
    runs: list[GarbageSummary] = []
    commit = publish_module._commit

    def gc_then_commit(*args: Any, **kwargs: Any) -> None:
        runs.append(collect_garbage())
        commit(*args, **kwargs)

    monkeypatch.setattr(publish_module, "_commit", gc_then_commit)
    return runs


def test_gc_deleting_an_old_orphan_a_publish_relies_on(
    db, tmp_path: Path, gc_before_commit: list[GarbageSummary]
) -> None:
    """Issue 11 item 1: gc deletes a file that a publish is committing.

    A crashed publish left the bytes without a row, long ago. Publishing the
    same bytes finds the file, gc deletes it as an old orphan before the
    commit: the commit stores it again instead of recording a row that points
    at nothing.
    """
    add_orphan(KEPT.encode(), age=UNCOMMITTED_GRACE + timedelta(hours=1))
    publish("docs", write_tree(tmp_path / "src", {"keep.txt": KEPT}))
    assert gc_before_commit[0].orphan_files_deleted == 1
    assert stored(sha(KEPT))
    response = Client(HTTP_HOST="docs.sites.test").get("/keep.txt")
    assert (response.status_code, response.content) == (200, KEPT.encode())
    assert collect_garbage().orphan_files_deleted == 0


def test_gc_deleting_an_unused_blob_a_publish_uses_again(
    db, tmp_path: Path, gc_before_commit: list[GarbageSummary]
) -> None:
    """Issue 11 item 2: gc racing a publish ends in an IntegrityError.

    The publish sees the blob's row (unused since the last publish) and
    stores nothing; gc deletes row and file before the commit. The commit
    makes the row again and stores the file again.
    """
    publish("docs", write_tree(tmp_path / "v1", {"page.txt": DROPPED}))
    publish("docs", write_tree(tmp_path / "v2", {"page.txt": KEPT}), delete=True)
    summary = publish("docs", write_tree(tmp_path / "v3", {"page.txt": DROPPED}))
    assert gc_before_commit[-1].blobs_deleted == 1
    assert summary.changed == ["/page.txt"]
    assert Blob.objects.filter(pk=sha(DROPPED)).exists()
    assert stored(sha(DROPPED))
    response = Client(HTTP_HOST="docs.sites.test").get("/page.txt")
    assert (response.status_code, response.content) == (200, DROPPED.encode())


def test_publishing_again_heals_a_blob_missing_from_the_storage(db, tmp_path: Path) -> None:
    """Issue 11 item 1: publishing again said "0 B stored, unchanged" and the 502 stayed.

    The next publish of those bytes finds the file missing and stores it again.
    """
    source = write_tree(tmp_path / "src", {"keep.txt": KEPT, "other.txt": SHARED})
    publish("docs", source)
    file_of(sha(KEPT)).unlink()
    client = Client(HTTP_HOST="docs.sites.test")
    assert client.get("/keep.txt").status_code == 502

    summary = publish("docs", source)
    assert (summary.unchanged, summary.bytes_stored) == (2, len(KEPT.encode()))
    assert str(summary).startswith(f"docs: 0 added, 0 changed, 2 unchanged, 0 removed; {len(KEPT)} B stored")
    response = client.get("/keep.txt")
    assert (response.status_code, response.content) == (200, KEPT.encode())


def test_warmup_stores_a_lost_variant_again(db, tmp_path: Path) -> None:
    """Issue 11 item 1: warmup called a variant whose file is gone "built" and never stored it again."""
    publish("docs", write_tree(tmp_path / "src", {"page.html": KEPT}))
    warm_up()
    variants = dict(Blob.objects.filter(source_id=sha(KEPT)).values_list("encoding", "sha256"))
    assert variants
    for variant in variants.values():
        file_of(variant).unlink()

    summary = warm_up()
    assert summary.variants_built == len(variants)
    assert dict(Blob.objects.filter(source_id=sha(KEPT)).values_list("encoding", "sha256")) == variants
    assert all(stored(variant) for variant in variants.values())
    with file_of(variants["gzip"]).open("rb") as f:
        assert gzip.decompress(f.read()) == KEPT.encode()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["docs"], "purged 1 site "),
        (["docs", "blog"], "purged 2 sites "),
        (["docs", "--path", "/index.html"], "purged 1 path of 1 site "),
        (["docs", "blog", "--path", "/a", "--path", "/b"], "purged 2 paths of 2 sites "),
        (["Docs", "BLOG"], "purged 2 sites "),  # a site's name in any case, as in every command
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
