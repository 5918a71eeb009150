"""The records the data path passes between modules, and the snapshot's
round trip of them."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from django_assetcache.hosts import SiteInfo
from django_assetcache.records import AssetRecord, BlobRecord, DeploymentRecord, LocatedBlob, SiteRecord
from django_assetcache.snapshot import Snapshot, site_target
from django_assetcache.snapshotwriter import write_snapshot
from tests.conftest import sha

BODY = b"<h1>hello</h1>" * 10
GZIP = b"gzipped bytes"
BR = b"brotli"
PAGE = AssetRecord(
    "/index.html",
    "text/html",
    1_700_000_000,
    BlobRecord(sha(BODY), len(BODY)),
    (BlobRecord(sha(BR), len(BR), "br"), BlobRecord(sha(GZIP), len(GZIP), "gzip")),
)
#: Its body is not held by the snapshot.
PICTURE = AssetRecord("/a.png", "image/png", 1_600_000_000, BlobRecord("ab" * 32, 5000))


def test_blobs_are_the_asset_blob_then_its_variants() -> None:
    assert PAGE.blobs() == (PAGE.blob, *PAGE.variants)
    assert PICTURE.blobs() == (PICTURE.blob,)


def test_records_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        PAGE.path = "/other"  # type: ignore[misc]  # the point: it cannot be assigned


@pytest.mark.parametrize(
    ("body", "file_path"),
    [(None, None), (b"x" * 5000, "/blobs/ab")],
    ids=["neither", "both"],
)
def test_a_located_blob_is_in_memory_or_on_disk(body: bytes | None, file_path: str | None) -> None:
    with pytest.raises(ValueError, match="give its body or its file path"):
        LocatedBlob(PICTURE.blob, body=body, file_path=file_path)


def test_a_located_body_has_the_blob_size() -> None:
    with pytest.raises(ValueError, match="a body of 4 bytes, 5000 expected"):
        LocatedBlob(PICTURE.blob, body=b"abcd")
    assert LocatedBlob(PICTURE.blob, file_path="/blobs/ab").body is None


def test_the_snapshot_gives_back_the_records_it_was_written_with(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.bin"
    docs_deployments = (DeploymentRecord(10, "aaaaaaaa"), DeploymentRecord(11, "bbbbbbbb", ("next",)))
    sites = [
        SiteRecord(
            1,
            "docs",
            True,
            "index.html",
            "404.html",
            "",
            ("docs.example.com",),
            live_deployment=10,
            deployments=docs_deployments,
        ),
        SiteRecord(
            2,
            "old",
            False,
            "index.htm",
            "",
            "no-cache",
            change_id=3,
            live_deployment=20,
            deployments=(DeploymentRecord(20, "cccccccc"),),
        ),
    ]
    bodies = [LocatedBlob(blob, body=data) for blob, data in zip(PAGE.blobs(), (BODY, BR, GZIP), strict=True)]
    assets = {10: [PAGE], 11: [PAGE, PICTURE], 20: [PICTURE]}
    summary = write_snapshot(path, change_id=7, sites=sites, assets=assets, bodies=bodies)
    # The two deployments of docs share PAGE's record: 3 records, not 4.
    assert (summary.sites, summary.assets, summary.bodies, summary.change_id) == (2, 3, 3, 3)

    snapshot = Snapshot(path)
    assert snapshot.sites == {1: dataclasses.replace(sites[0], change_id=7), 2: sites[1]}
    assert snapshot.site_change_ids == {1: 7, 2: 3}
    assert {number: (table.count, table.stale) for number, table in snapshot.tables.items()} == {
        10: (1, set()),
        11: (2, set()),
        20: (1, set()),
    }
    assert snapshot.site_deployments == {1: [10, 11], 2: [20]}
    page, picture = next(snapshot.deployment_assets(10)), next(snapshot.deployment_assets(20))
    # Where the snapshot holds each body is all that differs.
    assert page == dataclasses.replace(
        PAGE,
        blob=dataclasses.replace(PAGE.blob, snapshot_offset=0),
        variants=(
            dataclasses.replace(PAGE.variants[0], snapshot_offset=len(BODY)),
            dataclasses.replace(PAGE.variants[1], snapshot_offset=len(BODY) + len(BR)),
        ),
    )
    assert picture == PICTURE
    assert sorted(snapshot.deployment_assets(11), key=lambda asset: asset.path) == [picture, page]
    assert snapshot.assets_at(11, [PAGE.path, PICTURE.path, "/none.html"]) == {PAGE.path: page, PICTURE.path: picture}
    assert snapshot.assets_at(20, [PAGE.path]) == {}
    assert snapshot.assets_at(30, [PAGE.path]) is None  # a deployment it does not hold
    assert [snapshot.body_at(blob.snapshot_offset, blob.size, blob.sha256) for blob in page.blobs()] == [BODY, BR, GZIP]
    assert list(snapshot.blobs()) == [*page.blobs(), *picture.blobs(), *picture.blobs()]
    assert snapshot.bodies == {blob.sha256: blob for blob in page.blobs()}
    target = site_target(snapshot, "docs.example.com")
    assert isinstance(target, SiteInfo)
    assert (target.id, target.subdomain, target.error_path, target.deployment_id, target.preview) == (
        1,
        "docs",
        "/404.html",
        10,
        False,
    )
    for host, deployment_id in [
        ("next--docs.sites.test", 11),
        ("bbbbbbbb--docs.sites.test", 11),
        ("aaaaaaaa--docs.sites.test", 10),
    ]:
        target = site_target(snapshot, host)
        assert isinstance(target, SiteInfo)
        assert (target.id, target.deployment_id, target.preview, target.key) == (1, deployment_id, True, -deployment_id)
    assert site_target(snapshot, "zzzzzzzz--docs.sites.test") is None


def test_the_snapshot_writer_takes_bodies_in_memory_only(tmp_path: Path) -> None:
    on_disk = LocatedBlob(PICTURE.blob, file_path="/blobs/ab")
    with pytest.raises(ValueError, match="holds bodies in memory"):
        write_snapshot(tmp_path / "snapshot.bin", change_id=1, sites=[], assets={}, bodies=[on_disk])
    assert list(tmp_path.iterdir()) == []  # nothing left behind


def _snapshot_of(path: Path, assets: dict[int, list[AssetRecord]]) -> Snapshot:
    deployments = tuple(DeploymentRecord(number, f"{number:08x}") for number in assets)
    site = SiteRecord(
        1, "docs", True, "index.html", "", "", live_deployment=next(iter(assets)), deployments=deployments
    )
    write_snapshot(path, change_id=1, sites=[site], assets=assets, bodies=[])
    return Snapshot(path)


def test_every_path_of_a_large_deployment_is_found_in_its_table(tmp_path: Path) -> None:
    """The entry table is searched in the map: each of 3,000 paths (of 3
    kinds, so records are shared) finds its own record, and no other path
    is found."""
    kinds = ["text/html", "text/css", "image/png"]
    assets = [
        AssetRecord(f"/dir{n % 7}/file-{n}.{kinds[n % 3][-3:]}", kinds[n % 3], 1_700_000_000, PICTURE.blob)
        for n in range(3000)
    ]
    snapshot = _snapshot_of(tmp_path / "snapshot.bin", {10: assets})
    assert snapshot.record_count == 3
    found = snapshot.assets_at(10, [asset.path for asset in assets])
    assert found == {asset.path: asset for asset in assets}
    absent = ["/dir0/file-3000.tml", "/", "", "/dir1/FILE-1.css", "/dir0/file-0.tml/", "/\udcff"]
    assert snapshot.assets_at(10, absent) == {}
    assert sorted(snapshot.deployment_assets(10), key=lambda asset: asset.path) == sorted(
        assets, key=lambda asset: asset.path
    )


def test_forgotten_and_carried_paths_are_asked_of_the_database(tmp_path: Path) -> None:
    """A path changed since the snapshot makes it answer None (the database
    knows better) for that path only; a carried deployment answers from the
    previous one's table but at the paths the publish changed."""
    snapshot = _snapshot_of(tmp_path / "snapshot.bin", {10: [PAGE, PICTURE]})
    snapshot.forget(1, [PAGE.path], hosts=False, change_id=2)
    assert snapshot.assets_at(10, [PAGE.path]) is None
    assert snapshot.assets_at(10, [PICTURE.path, "/none"]) == {PICTURE.path: PICTURE}
    assert [asset.path for asset in snapshot.deployment_assets(10)] == [PICTURE.path]
    assert snapshot.stats()["stale_paths"] == 1
    snapshot.carry(10, 11, ["/new.html"])
    assert snapshot.site_deployments[1] == [10, 11]
    assert snapshot.assets_at(11, [PICTURE.path]) == {PICTURE.path: PICTURE}
    assert snapshot.assets_at(11, ["/new.html"]) is None
    assert snapshot.assets_at(11, [PAGE.path]) is None
    assert snapshot.assets_at(10, ["/new.html"]) == {}  # the previous deployment is unchanged
    snapshot.forget(1, None, hosts=False, change_id=3)
    assert snapshot.assets_at(10, [PICTURE.path]) is None and snapshot.assets_at(11, [PICTURE.path]) is None


def resident_bytes() -> int:
    """This process's resident memory, counted page by page (``statm`` may lag)."""
    with open("/proc/self/smaps_rollup") as rollup:
        return next(int(line.split()[1]) * 1024 for line in rollup if line.startswith("Rss:"))


@pytest.mark.skipif(not Path("/proc/self/smaps_rollup").exists(), reason="reads /proc/self/smaps_rollup (Linux)")
def test_loading_leaves_the_tables_out_of_the_process_memory(tmp_path: Path) -> None:
    """The load reads every table to check its CRC, then lets the pages go:
    the process holds none of 100,000 assets' records, paths and entries
    until a miss reads them (they stay in the page cache, shared)."""
    kinds = ["text/html", "text/css", "image/png"]
    assets = {
        deployment: [
            AssetRecord(f"/v{deployment}/file-{n}.html", kinds[n % 3], 1_700_000_000 + n, PICTURE.blob)
            for n in range(deployment * 10_000, deployment * 10_000 + 10_000)
        ]
        for deployment in range(10, 20)
    }
    snapshot = _snapshot_of(tmp_path / "snapshot.bin", assets)
    tables = (tmp_path / "snapshot.bin").stat().st_size - snapshot.records_start
    assert tables > 8 * 2**20
    del snapshot  # unmapped
    before = resident_bytes()
    snapshot = Snapshot(tmp_path / "snapshot.bin")
    assert resident_bytes() - before < tables / 8, (resident_bytes() - before, tables)
    assert snapshot.assets_at(15, ["/v15/file-150099.html"]) == {"/v15/file-150099.html": assets[15][99]}
