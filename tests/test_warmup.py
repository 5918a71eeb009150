"""assetcache_warmup, the snapshot, hydration and replay."""

from __future__ import annotations

import gzip
import logging
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.test import Client

from django_assetcache import conf, runtime, warm
from django_assetcache.models import Blob, Site
from django_assetcache.publish import publish
from django_assetcache.snapshot import MAGIC, Snapshot, SnapshotError
from django_assetcache.warmup import warm_up, warm_up_from_storage

from .conftest import SAMPLE, write_tree
from .servers import database_gone, gunicorn

CSS = ("body { color: #333; margin: 0 auto; padding: 1em }\n" * 40).encode()
FILES = {**SAMPLE, "css/site.css": CSS, "big.bin": os.urandom(300 * 1024)}


@pytest.fixture
def warmed(db, tmp_path: Path, settings) -> Path:
    settings.ASSETCACHE_POLL_INTERVAL = 3600
    conf.reset()
    publish("docs", write_tree(tmp_path / "src", FILES))
    warm_up()
    runtime.reset()
    return Path(conf.get().SNAPSHOT_PATH)


def fetch(path: str, **headers: str):
    return Client(HTTP_HOST="docs.sites.test").get(path, **headers)


def body_of(response) -> bytes:
    if response.streaming:
        return b"".join(response.streaming_content)
    return response.content


def test_warmed_process_answers_every_asset_without_queries(warmed, django_assert_num_queries) -> None:
    warm()  # what gunicorn's post_fork hook calls: load and replay (one query)
    etags = {}
    with django_assert_num_queries(0):
        for name, content in FILES.items():
            response = fetch("/" + name)
            assert response.status_code == 200, name
            expected = content.encode() if isinstance(content, str) else content
            assert body_of(response) == expected
            etags[name] = response["ETag"]
        for name, etag in etags.items():
            assert fetch("/" + name, HTTP_IF_NONE_MATCH=etag).status_code == 304
        compressed = fetch("/css/site.css", HTTP_ACCEPT_ENCODING="gzip")
        assert compressed["Content-Encoding"] == "gzip"
        assert gzip.decompress(compressed.content) == CSS
        assert (
            fetch("/css/site.css", HTTP_ACCEPT_ENCODING="gzip", HTTP_IF_NONE_MATCH=compressed["ETag"]).status_code
            == 304
        )
        assert fetch("/guide/").status_code == 200
        assert fetch("/guide")["Location"] == "/guide/"
        missing = fetch("/no/such/page")
        assert missing.status_code == 404
        assert missing.content == SAMPLE["404.html"].encode()
    assert runtime.stats()["snapshot_change_id"] is not None


def test_snapshot_older_than_later_publishes_serves_new_content(
    warmed, tmp_path: Path, django_capture_on_commit_callbacks
) -> None:
    changed = {**FILES, "index.html": "<!doctype html><title>Second edition</title>"}
    del changed["guide/index.html"]
    publish("docs", write_tree(tmp_path / "src2", changed), delete=True)
    runtime.reset()
    warm()
    assert fetch("/").content == changed["index.html"].encode()
    assert fetch("/guide/").status_code == 404
    assert fetch("/css/site.css").content == CSS


def test_site_settings_changed_after_snapshot_are_replayed(warmed) -> None:
    Site.objects.filter(subdomain="docs").update(cache_control="max-age=5")
    site = Site.objects.get(subdomain="docs")
    site.is_active = False
    site.save()
    runtime.reset()
    warm()
    assert fetch("/").status_code == 404


def _corrupt_truncated(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _corrupt_magic(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(b"NOTSNAP0" + data[len(MAGIC) :])


def _corrupt_index(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-40] ^= 0xFF  # inside the JSON index, before the footer
    path.write_bytes(bytes(data))


def _corrupt_unreadable(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _corrupt_garbage(path: Path) -> None:
    path.write_bytes(os.urandom(4096))


def _corrupt_empty(path: Path) -> None:
    path.write_bytes(b"")


@pytest.mark.parametrize(
    "corrupt",
    [_corrupt_truncated, _corrupt_magic, _corrupt_index, _corrupt_unreadable, _corrupt_garbage, _corrupt_empty],
)
def test_corrupt_snapshot_is_ignored_with_a_warning(warmed: Path, corrupt, caplog) -> None:
    corrupt(warmed)
    with pytest.raises(SnapshotError):
        Snapshot(warmed)
    with caplog.at_level(logging.WARNING, logger="django_assetcache"):
        response = fetch("/")
    assert response.status_code == 200
    assert response.content == SAMPLE["index.html"].encode()
    assert "ignoring snapshot" in caplog.text
    assert runtime.stats()["snapshot_change_id"] is None


def test_damaged_body_in_snapshot_is_read_from_the_store(warmed: Path, caplog) -> None:
    snapshot = Snapshot(warmed)
    held = next(iter(snapshot.bodies.values()))
    offset, length = held.snapshot_offset, held.size
    assert length > 0
    data = bytearray(warmed.read_bytes())
    for i in range(len(MAGIC) + offset, len(MAGIC) + offset + length):
        data[i] ^= 0x55
    warmed.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="django_assetcache"):
        for name, content in FILES.items():
            expected = content.encode() if isinstance(content, str) else content
            assert body_of(fetch("/" + name)) == expected
    assert "damaged" in caplog.text


def test_snapshot_for_another_domain_is_ignored(warmed: Path, settings, caplog) -> None:
    settings.ASSETCACHE_DOMAIN = "elsewhere.test"
    with caplog.at_level(logging.WARNING, logger="django_assetcache"):
        response = Client(HTTP_HOST="docs.elsewhere.test").get("/")
    assert response.status_code == 200
    assert "made for domain" in caplog.text


def test_warmup_builds_variants_once_per_content_hash(db, tmp_path: Path) -> None:
    publish("one", write_tree(tmp_path / "a", FILES))
    publish("two", write_tree(tmp_path / "b", FILES))
    first = warm_up()
    sources = set(Blob.objects.filter(source__isnull=False).values_list("source_id", flat=True))
    # Only site.css is both compressible and over the 256-byte threshold.
    css_sha = Blob.objects.get(assets__path="/css/site.css", assets__site__subdomain="one").sha256
    assert css_sha in sources
    encodings = set(Blob.objects.filter(source_id=css_sha).values_list("encoding", flat=True))
    assert encodings == {"gzip", "br"}
    big_sha = Blob.objects.get(assets__path="/big.bin", assets__site__subdomain="one").sha256
    assert big_sha not in sources  # not a compressible type
    assert first.variants_built == 2
    second = warm_up()
    assert second.variants_built == 0


def test_warmup_command_summary_and_errors(db, tmp_path: Path, capsys) -> None:
    publish("docs", write_tree(tmp_path / "src", FILES))
    call_command("assetcache_warmup", "--site", "docs")
    out = capsys.readouterr().out
    assert out.startswith(f"warmed 1 site, {len(FILES)} assets;")
    with pytest.raises(CommandError, match="no such site: nope"):
        call_command("assetcache_warmup", "--site", "nope")
    call_command("assetcache_stats")
    stats = capsys.readouterr().out
    assert f"assets:         {len(FILES)}" in stats


def test_stats_command_without_snapshot(db) -> None:
    with pytest.raises(CommandError, match="no usable snapshot"):
        call_command("assetcache_stats")


def test_database_outage_after_warmup_is_shielded(transactional_db, tmp_path: Path, settings) -> None:
    publish("docs", write_tree(tmp_path / "src", FILES))
    warm_up()
    with gunicorn(tmp_path, env=database_gone(settings.MEDIA_ROOT, tmp_path), workers=2) as server:
        for _ in range(4):
            for name, content in FILES.items():
                status, _headers, body = server.request("/" + name, "docs.sites.test")
                expected = content.encode() if isinstance(content, str) else content
                assert (status, body) == (200, expected), server.log()
        status, _, body = server.request("/missing", "docs.sites.test")
        assert (status, body) == (404, SAMPLE["404.html"].encode())
        # A host the snapshot does not know needs the database: 503, not 500.
        status, _, _ = server.request("/", "other.sites.test")
        assert status == 503
    assert "cannot read the change feed" in server.log()


def test_warmup_of_one_site_keeps_the_others_in_the_snapshot(db, tmp_path: Path, django_assert_num_queries) -> None:
    """Issue 11 item 18: `assetcache_warmup --site X` updates X within the
    existing snapshot: the other sites stay (those deleted since go), and
    what changed in them since is replayed."""
    for name in ("one", "two", "three", "gone"):
        publish(name, write_tree(tmp_path / name, {**SAMPLE, "index.html": f"<title>{name}</title>"}))
    warm_up()
    publish("one", write_tree(tmp_path / "one-b", {**SAMPLE, "index.html": "<title>one, second</title>"}))
    publish("two", write_tree(tmp_path / "two-b", {**SAMPLE, "index.html": "<title>two, second</title>"}))
    Site.objects.get(subdomain="gone").delete()

    call_command("assetcache_warmup", "--site", "one", verbosity=0)

    snapshot = Snapshot(conf.get().SNAPSHOT_PATH)
    assert sorted(site.subdomain for site in snapshot.sites.values()) == ["one", "three", "two"]
    runtime.reset()
    warm()
    with django_assert_num_queries(0):
        assert Client(HTTP_HOST="one.sites.test").get("/").content == b"<title>one, second</title>"
        assert Client(HTTP_HOST="three.sites.test").get("/").content == b"<title>three</title>"
    # Changed after the kept rows were read: the replay sends it to the database.
    assert Client(HTTP_HOST="two.sites.test").get("/").content == b"<title>two, second</title>"
    assert Client(HTTP_HOST="gone.sites.test").get("/").status_code == 404


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request) -> Iterator[int]:
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


@pytest.mark.parametrize("from_storage", [False, True], ids=["warmup", "from-storage"])
def test_snapshot_file_mode_follows_the_umask(db, tmp_path: Path, umask: int, from_storage: bool) -> None:
    """Issue 11 item 19: the snapshot is written with the mode the umask
    gives (0644 under umask 022), not 0600, so servers running as another
    user can read it; the same when it is fetched from the storage."""
    publish("docs", write_tree(tmp_path / "src", FILES))
    warm_up(upload=from_storage)
    path = Path(conf.get().SNAPSHOT_PATH)
    if from_storage:
        path.unlink()
        warm_up_from_storage()
    assert path.stat().st_mode & 0o777 == 0o666 & ~umask
    assert [name for name in os.listdir(path.parent) if name.startswith(".snapshot-")] == []
