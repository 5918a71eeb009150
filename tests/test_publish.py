"""publish(): directories and zips in, assets, blobs and one Change out.

Bad input raises PublishError with one line, having changed nothing.
"""

from __future__ import annotations

import builtins
import io
import os
import stat
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import pytest
from django.db.models import F

from django_assetcache import deployments as deployments_module
from django_assetcache import sources as sources_module
from django_assetcache.models import Asset, Blob, Change, Site
from django_assetcache.progress import plural
from django_assetcache.publish import PublishError, publish
from django_assetcache.sources import normalize_path
from django_assetcache.store import blob_name, get_storage
from tests.conftest import (
    SAMPLE,
    Terminal,
    live_assets,
    make_zip,
    sha,
    stored,
    write_tree,
    zip_with_bad_utf8_name,
    zip_with_damaged_stream,
    zip_with_nul_in_a_name,
)

pytestmark = pytest.mark.django_db


def as_bytes(content: bytes | str) -> bytes:
    return content.encode() if isinstance(content, str) else content


SAMPLE_PATHS = sorted("/" + name for name in SAMPLE)
SAMPLE_BYTES = sum(len(as_bytes(content)) for content in SAMPLE.values())


def blob_files() -> dict[str, bytes]:
    """Every file in the blob storage, by name, with its bytes."""
    root = Path(get_storage().location)
    if not root.exists():
        return {}
    files = sorted(p for p in root.rglob("*") if p.is_file())
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in files}


def db_state() -> dict[str, list[Any]]:
    return {
        "sites": list(Site.objects.order_by("pk").values_list("pk", "subdomain", "generation")),
        "assets": list(
            Asset.objects.order_by("pk").values_list(
                "pk", "site_id", "path", "blob_id", "content_type", "last_modified"
            )
        ),
        "blobs": list(Blob.objects.order_by("sha256").values_list("sha256", "size")),
        "changes": list(Change.objects.order_by("pk").values_list("pk", "site_id", "kind", "paths")),
    }


def site_content(subdomain: str) -> dict[str, tuple[str, str]]:
    return {
        path: (blob_id, content_type)
        for path, blob_id, content_type in Asset.objects.filter(
            site__subdomain=subdomain, site__live_deployment=F("deployment")
        ).values_list("path", "blob_id", "content_type")
    }


def generation(subdomain: str) -> int:
    return Site.objects.values_list("generation", flat=True).get(subdomain=subdomain)


def publish_changes(subdomain: str) -> list[list[str] | None]:
    site_id = Site.objects.values_list("pk", flat=True).get(subdomain=subdomain)
    return list(Change.objects.filter(site_id=site_id, kind="deploy").order_by("pk").values_list("paths", flat=True))


def add_symlink(archive: zipfile.ZipFile, name: str, target: str) -> None:
    info = zipfile.ZipInfo(name)
    info.external_attr = (stat.S_IFLNK | 0o777) << 16
    archive.writestr(info, target)


# --- publishing a directory or a zip -----------------------------------------------------


def test_publish_a_directory_creates_the_site(sample_dir: Path) -> None:
    summary = publish("docs", sample_dir)

    assert summary.subdomain == "docs"
    assert summary.created is True
    assert summary.dry_run is False
    assert sorted(summary.added) == SAMPLE_PATHS
    assert (summary.changed, summary.unchanged, summary.removed) == ([], 0, [])
    assert summary.files == 5
    assert summary.bytes_stored == SAMPLE_BYTES
    assert summary.bytes_deduplicated == 0

    site = Site.objects.get(subdomain="docs")
    assert site_content("docs") == {
        "/" + name: (sha(content), ctype)
        for (name, content), ctype in zip(
            SAMPLE.items(),
            ["text/html", "text/css", "text/html", "text/html", "image/png"],
            strict=True,
        )
    }
    assert sorted(Blob.objects.values_list("sha256", "size")) == sorted(
        (sha(c), len(as_bytes(c))) for c in SAMPLE.values()
    )
    assert blob_files() == {blob_name(sha(c)): as_bytes(c) for c in SAMPLE.values()}
    # Creating the site is a settings change (processes refresh their host map);
    # the content is exactly one publish change listing every path.
    assert list(Change.objects.order_by("pk").values_list("site_id", "kind", "paths")) == [
        (site.pk, "settings", None),
        (site.pk, "deploy", SAMPLE_PATHS),
    ]
    assert site.generation == 2


def test_publish_a_zip(tmp_path: Path) -> None:
    archive = make_zip(tmp_path / "site.zip", SAMPLE)
    summary = publish("docs", archive)
    assert summary.created is True
    assert sorted(summary.added) == SAMPLE_PATHS
    assert summary.bytes_stored == SAMPLE_BYTES
    assert {path: blob for path, (blob, _) in site_content("docs").items()} == {
        "/" + name: sha(content) for name, content in SAMPLE.items()
    }
    assert site_content("docs")["/css/site.css"][1] == "text/css"
    assert blob_files() == {blob_name(sha(c)): as_bytes(c) for c in SAMPLE.values()}
    assert publish_changes("docs") == [SAMPLE_PATHS]


def test_directory_and_zip_of_the_same_files_are_the_same_site(sample_dir: Path, tmp_path: Path) -> None:
    publish("docs", sample_dir)
    summary = publish("docs", make_zip(tmp_path / "site.zip", SAMPLE))
    assert (summary.added, summary.changed, summary.unchanged) == ([], [], 5)
    assert summary.bytes_stored == 0


def test_zip_with_directory_entries_and_dot_prefixes(tmp_path: Path) -> None:
    path = tmp_path / "site.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("site/", b"")
        archive.writestr("site/css/", b"")
        archive.writestr("./site/index.html", "home")
        archive.writestr("site/css/a.css", "a{}")
    summary = publish("docs", path, keep_top_folder=True)
    assert sorted(summary.added) == ["/site/css/a.css", "/site/index.html"]
    assert summary.files == 2
    assert summary.top_folder == ""


@pytest.mark.parametrize(
    ("entries", "top", "published"),
    [
        # What zipping a build folder gives, directory entries and all.
        ({"build/": "", "build/index.html": "home", "build/css/a.css": "a{}"}, "build", ["/css/a.css", "/index.html"]),
        ({"./build/index.html": "home", "build/css/a.css": "a{}"}, "build", ["/css/a.css", "/index.html"]),
        # macOS's Finder adds __MACOSX/ beside the folder, and .DS_Store files: skipped, so still one folder.
        (
            {"site/index.html": "home", "__MACOSX/site/._index.html": "fork", ".DS_Store": "x"},
            "site",
            ["/index.html"],
        ),
        # Two folders, or a file beside the folder: nothing stripped.
        ({"a/index.html": "a", "b/index.html": "b"}, "", ["/a/index.html", "/b/index.html"]),
        ({"site/page.html": "p", "index.html": "home"}, "", ["/index.html", "/site/page.html"]),
        # One file at the top: no folder to strip.
        ({"index.html": "home"}, "", ["/index.html"]),
        # .well-known/ is a folder a site serves, never a build folder.
        ({".well-known/security.txt": "c"}, "", ["/.well-known/security.txt"]),
    ],
)
def test_a_zip_s_one_top_folder_is_stripped(
    tmp_path: Path, entries: dict[str, str], top: str, published: list[str]
) -> None:
    """Issue 11 item 16: a zip whose entries all sit in one folder is published without it, and says so."""
    summary = publish("docs", make_zip(tmp_path / "site.zip", entries))
    assert summary.top_folder == top
    assert sorted(summary.added) == published
    assert sorted(site_content("docs")) == published
    note = f"; the zip's top folder {top}/ left out of the paths; "
    assert (note in str(summary)) is bool(top)


def test_keep_top_folder(tmp_path: Path) -> None:
    """Issue 11 item 16: keep_top_folder publishes the folder's name in the paths."""
    archive = make_zip(tmp_path / "site.zip", {"build/index.html": "home", "build/.env": "SECRET=1"})
    summary = publish("docs", archive, keep_top_folder=True, dry_run=True)
    assert (summary.added, summary.skipped, summary.top_folder) == (["/build/index.html"], ["build/.env"], "")
    summary = publish("docs", archive)
    assert (summary.added, summary.skipped, summary.top_folder) == (["/index.html"], ["build/.env"], "build")


def test_exclusion_rules_apply_to_the_paths_within_the_top_folder(tmp_path: Path) -> None:
    """Issue 11 items 15 and 16: a path pattern is anchored at the site's root, under the stripped folder."""
    archive = make_zip(tmp_path / "site.zip", {"build/index.html": "home", "build/drafts/a.html": "draft"})
    summary = publish("docs", archive, exclude=["/drafts"])
    assert summary.added == ["/index.html"]
    assert summary.skipped == ["build/drafts/"]


def test_publish_accepts_a_site_object(site: Site, tmp_path: Path) -> None:
    source = write_tree(tmp_path / "v2", {**SAMPLE, "extra.txt": "more"})
    summary = publish(site, source)
    assert summary.created is False
    assert summary.added == ["/extra.txt"]
    assert site_content("docs")["/extra.txt"] == (sha("more"), "text/plain")


def test_publishing_unchanged_content_again_changes_nothing(site: Site, sample_dir: Path) -> None:
    before = db_state()
    files_before = blob_files()
    summary = publish("docs", sample_dir)
    assert summary.created is False
    assert (summary.added, summary.changed, summary.removed) == ([], [], [])
    assert summary.unchanged == 5
    assert summary.bytes_stored == 0
    assert summary.bytes_deduplicated == 0
    assert db_state() == before  # no Change, same generation, same last_modified
    assert blob_files() == files_before


def test_changed_added_and_kept_files(site: Site, tmp_path: Path) -> None:
    old_css = site_content("docs")["/css/site.css"]
    source = write_tree(
        tmp_path / "v2",
        {**SAMPLE, "css/site.css": "body { color: red }\n", "new.txt": "new file"},
    )
    (source / "404.html").unlink()
    generation_before = generation("docs")

    summary = publish("docs", source)

    assert summary.added == ["/new.txt"]
    assert summary.changed == ["/css/site.css"]
    assert summary.unchanged == 3
    assert summary.removed == []  # without delete=True the missing file stays
    assert summary.bytes_stored == len("body { color: red }\n") + len("new file")
    assert summary.bytes_deduplicated == 0
    content = site_content("docs")
    assert set(content) == {*SAMPLE_PATHS, "/new.txt"}
    assert content["/css/site.css"] == (sha("body { color: red }\n"), "text/css")
    assert content["/css/site.css"] != old_css
    assert content["/404.html"] == (sha(SAMPLE["404.html"]), "text/html")
    assert publish_changes("docs")[-1] == ["/css/site.css", "/new.txt"]
    assert generation("docs") == generation_before + 1
    # The old bytes stay stored (garbage collection is a separate step).
    assert Blob.objects.filter(sha256=old_css[0]).exists()


def test_changed_file_gets_a_new_last_modified(site: Site, tmp_path: Path) -> None:
    Asset.objects.update(last_modified=datetime(2000, 1, 1, tzinfo=UTC))
    source = write_tree(tmp_path / "v2", {**SAMPLE, "index.html": "changed"})
    publish("docs", source)
    years = dict((path, when.year) for path, when in live_assets().values_list("path", "last_modified"))
    assert years.pop("/index.html") > 2000
    assert set(years.values()) == {2000}


def test_delete_removes_assets_not_in_the_source(site: Site, tmp_path: Path) -> None:
    source = write_tree(tmp_path / "v2", {"index.html": SAMPLE["index.html"], "new.txt": "x"})
    summary = publish("docs", source, delete=True)
    assert summary.added == ["/new.txt"]
    assert summary.unchanged == 1
    assert summary.removed == ["/404.html", "/css/site.css", "/guide/index.html", "/img/logo.png"]
    assert set(site_content("docs")) == {"/index.html", "/new.txt"}
    assert publish_changes("docs")[-1] == [
        "/404.html",
        "/css/site.css",
        "/guide/index.html",
        "/img/logo.png",
        "/new.txt",
    ]


def test_delete_with_only_removals(site: Site, tmp_path: Path) -> None:
    files = dict(SAMPLE)
    del files["img/logo.png"]
    summary = publish("docs", write_tree(tmp_path / "v2", files), delete=True)
    assert (summary.added, summary.changed, summary.removed) == ([], [], ["/img/logo.png"])
    assert summary.bytes_stored == 0
    assert publish_changes("docs")[-1] == ["/img/logo.png"]
    assert "/img/logo.png" not in site_content("docs")


def test_same_bytes_in_two_sites_are_stored_once(site: Site, sample_dir: Path) -> None:
    files_before = blob_files()
    summary = publish("blog", sample_dir)
    assert summary.created is True
    assert summary.bytes_stored == 0
    assert summary.bytes_deduplicated == SAMPLE_BYTES
    assert Blob.objects.count() == 5
    assert blob_files() == files_before
    assert site_content("blog") == site_content("docs")
    assert Asset.objects.count() == 10


def test_duplicates_within_one_publish_are_stored_once(tmp_path: Path) -> None:
    same = b"same bytes " * 100
    source = write_tree(tmp_path / "src", {"a.bin": same, "b/c.bin": same, "d.txt": "other"})
    summary = publish("docs", source)
    assert summary.bytes_stored == len(same) + len("other")
    assert summary.bytes_deduplicated == len(same)
    assert Blob.objects.count() == 2
    assert list(blob_files()) == sorted([blob_name(sha(same)), blob_name(sha("other"))])
    content = site_content("docs")
    assert content["/a.bin"][0] == content["/b/c.bin"][0] == sha(same)


def test_a_new_path_with_known_bytes_is_deduplicated(site: Site, tmp_path: Path) -> None:
    source = write_tree(tmp_path / "v2", {**SAMPLE, "copy.html": SAMPLE["index.html"]})
    summary = publish("docs", source)
    assert summary.added == ["/copy.html"]
    assert summary.bytes_stored == 0
    assert summary.bytes_deduplicated == len(SAMPLE["index.html"])
    assert Blob.objects.count() == 5


def test_dry_run_on_a_new_site_changes_nothing(sample_dir: Path) -> None:
    summary = publish("docs", sample_dir, dry_run=True)
    assert summary.dry_run is True
    assert summary.created is True
    assert sorted(summary.added) == SAMPLE_PATHS
    assert summary.bytes_stored == SAMPLE_BYTES  # would store
    assert str(summary).startswith("dry run, nothing changed: docs (new site): 5 added,")
    assert "would store" in str(summary)
    assert not Site.objects.exists()
    assert not Asset.objects.exists()
    assert not Blob.objects.exists()
    assert not Change.objects.exists()
    assert blob_files() == {}


def test_dry_run_on_an_existing_site_reports_the_diff(site: Site, tmp_path: Path) -> None:
    before = db_state()
    files_before = blob_files()
    source = write_tree(tmp_path / "v2", {"index.html": "changed", "css/site.css": SAMPLE["css/site.css"], "n": "x"})
    summary = publish("docs", source, delete=True, dry_run=True)
    assert summary.created is False
    assert summary.added == ["/n"]
    assert summary.changed == ["/index.html"]
    assert summary.unchanged == 1
    assert summary.removed == ["/404.html", "/guide/index.html", "/img/logo.png"]
    assert summary.bytes_stored == len("changed") + len("x")
    assert db_state() == before
    assert blob_files() == files_before


def test_empty_source_creates_an_empty_site(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    summary = publish("docs", tmp_path / "empty")
    assert summary.created is True
    assert summary.files == 0
    site = Site.objects.get(subdomain="docs")
    assert not site.assets.exists()
    # An empty deployment is live: its preview host and history exist.
    assert summary.deployment is not None and site.live_deployment_id == summary.deployment.pk
    assert list(Change.objects.values_list("site_id", "kind")) == [(site.pk, "settings"), (site.pk, "deploy")]


def test_an_empty_file(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {"empty.txt": b""})
    summary = publish("docs", source)
    assert summary.added == ["/empty.txt"]
    assert summary.bytes_stored == 0
    assert Blob.objects.get().size == 0
    assert blob_files() == {blob_name(sha(b"")): b""}


@pytest.mark.parametrize(
    ("name", "content_type"),
    [
        ("style.css", "text/css"),
        ("page.html", "text/html"),
        ("font.woff2", "font/woff2"),
        ("logo.svg", "image/svg+xml"),
        ("app.js", "text/javascript"),
        ("data.json", "application/json"),
        ("photo.png", "image/png"),
        ("notes.txt", "text/plain"),
        ("SHOUT.CSS", "text/css"),
        ("module.wasm", "application/wasm"),
        ("blob.unknownext", "application/octet-stream"),
    ],
)
def test_content_types(tmp_path: Path, name: str, content_type: str) -> None:
    publish("docs", write_tree(tmp_path / "src", {f"dir/{name}": b"x"}))
    assert Asset.objects.get().content_type == content_type
    assert Asset.objects.get().path == f"/dir/{name}"


def test_content_types_setting_overrides_and_a_type_change_is_a_change(settings, tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {"a.xyz": "data", "Makefile": "all:"})
    publish("docs", source)
    assert site_content("docs")["/a.xyz"][1] == "application/octet-stream"
    settings.ASSETCACHE_CONTENT_TYPES = {".xyz": "text/x-xyz", "makefile": "text/x-make"}
    summary = publish("docs", source)
    assert sorted(summary.changed) == ["/Makefile", "/a.xyz"]
    assert summary.bytes_stored == 0
    assert summary.bytes_deduplicated == len("data") + len("all:")
    assert site_content("docs")["/a.xyz"] == (sha("data"), "text/x-xyz")
    assert site_content("docs")["/Makefile"] == (sha("all:"), "text/x-make")


def test_paths_are_normalised(tmp_path: Path) -> None:
    source = write_tree(
        tmp_path / "src",
        {"a b.html": "1", "café/ünï.txt": "2", "deep/er/still/x.js": "3", ".well-known/t": "4"},
    )
    publish("docs", source)
    assert sorted(site_content("docs")) == [
        "/.well-known/t",
        "/a b.html",
        "/café/ünï.txt",
        "/deep/er/still/x.js",
    ]


@pytest.mark.parametrize(
    ("relative", "expected"),
    [("a.html", "/a.html"), ("./a/b.css", "/a/b.css"), ("/x", "/x"), ("a/.b", "/a/.b")],
)
def test_normalize_path(relative: str, expected: str) -> None:
    assert normalize_path(relative) == expected


@pytest.mark.parametrize("relative", ["", ".", "a//b", "a/./b", "a/../b", "..", "a/", "a\\b"])
def test_normalize_path_refuses(relative: str) -> None:
    with pytest.raises(PublishError):
        normalize_path(relative)


def test_ignored_names_are_not_published(tmp_path: Path) -> None:
    """Issue 11 item 15: what a static host skips is not published, .env and .htaccess included."""
    source = write_tree(
        tmp_path / "src",
        {
            "index.html": "home",
            ".git/config": "[core]",
            ".git/objects/ab/cdef": "blob",
            ".DS_Store": b"\x00\x00\x00\x01Bud1",
            "img/.DS_Store": b"\x00",
            "img/Thumbs.db": b"\x00",
            ".svn/entries": "12",
            ".hg/store": "x",
            "__MACOSX/._index.html": "x",
            ".htaccess": "deny",
            ".env": "SECRET_KEY=x",
            "js/.eslintrc": "{}",
            "node_modules/left-pad/index.js": "x",
            "index.html~": "old",
            "css/.site.css.swp": "vim",
            "css/site.css.swp": "vim",
            ".well-known/security.txt": "Contact: x",
        },
    )
    summary = publish("docs", source)
    assert sorted(summary.added) == ["/.well-known/security.txt", "/index.html"]
    assert summary.files == 2
    assert summary.skipped == [
        ".git/",
        ".hg/",
        ".svn/",
        "__MACOSX/",
        "node_modules/",
        ".DS_Store",
        ".env",
        ".htaccess",
        "index.html~",
        "css/.site.css.swp",
        "css/site.css.swp",
        "img/.DS_Store",
        "img/Thumbs.db",
        "js/.eslintrc",
    ]
    assert Blob.objects.count() == 2
    assert str(summary).startswith("docs (new site): 2 added, 0 changed, 0 unchanged, 0 removed, 14 skipped; ")


def test_ignored_names_in_a_zip(tmp_path: Path) -> None:
    """Issue 11 item 15: the same rules for a zip."""
    archive = make_zip(
        tmp_path / "site.zip",
        {
            "index.html": "home",
            "__MACOSX/._index.html": "resource fork",
            "sub/.DS_Store": "x",
            ".git/HEAD": "ref: refs/heads/main",
            ".git/config": "[core]",
            ".env": "SECRET_KEY=x",
            "a.js~": "old",
        },
    )
    summary = publish("docs", archive)
    assert summary.added == ["/index.html"]
    assert summary.skipped == ["__MACOSX/", "sub/.DS_Store", ".git/", ".env", "a.js~"]


RULE_TREE = {
    "index.html": "home",
    "app.js": "js",
    "app.js.map": "map",
    "drafts/post.html": "draft",
    "docs/drafts/x.html": "nested draft",
    "docs/guide.pdf": "pdf",
    "docs/api/ref.pdf": "pdf",
    ".htaccess": "deny",
    ".well-known/security.txt": "contact",
    "node_modules/pkg/index.js": "x",
}


@pytest.mark.parametrize(
    ("exclude", "include", "published"),
    [
        (
            (),
            (),
            [
                "/.well-known/security.txt",
                "/app.js",
                "/app.js.map",
                "/docs/api/ref.pdf",
                "/docs/drafts/x.html",
                "/docs/guide.pdf",
                "/drafts/post.html",
                "/index.html",
            ],
        ),
        # A name pattern is tried on every name in the path: files and folders anywhere.
        (
            ("*.map",),
            (),
            [
                "/.well-known/security.txt",
                "/app.js",
                "/docs/api/ref.pdf",
                "/docs/drafts/x.html",
                "/docs/guide.pdf",
                "/drafts/post.html",
                "/index.html",
            ],
        ),
        (
            ("drafts",),
            (),
            [
                "/.well-known/security.txt",
                "/app.js",
                "/app.js.map",
                "/docs/api/ref.pdf",
                "/docs/guide.pdf",
                "/index.html",
            ],
        ),
        # A pattern with "/" is anchored at the source's root; "*" crosses "/".
        (
            ("drafts/",),
            (),
            [
                "/.well-known/security.txt",
                "/app.js",
                "/app.js.map",
                "/docs/api/ref.pdf",
                "/docs/drafts/x.html",
                "/docs/guide.pdf",
                "/index.html",
            ],
        ),
        (
            ("docs/*.pdf",),
            (),
            [
                "/.well-known/security.txt",
                "/app.js",
                "/app.js.map",
                "/docs/drafts/x.html",
                "/drafts/post.html",
                "/index.html",
            ],
        ),
        (("/docs",), (), ["/.well-known/security.txt", "/app.js", "/app.js.map", "/drafts/post.html", "/index.html"]),
        # Matching is case-sensitive, like the site's paths.
        (
            ("*.HTML",),
            (),
            [
                "/.well-known/security.txt",
                "/app.js",
                "/app.js.map",
                "/docs/api/ref.pdf",
                "/docs/drafts/x.html",
                "/docs/guide.pdf",
                "/drafts/post.html",
                "/index.html",
            ],
        ),
        # --include overrides the defaults...
        (
            (),
            (".htaccess",),
            [
                "/.htaccess",
                "/.well-known/security.txt",
                "/app.js",
                "/app.js.map",
                "/docs/api/ref.pdf",
                "/docs/drafts/x.html",
                "/docs/guide.pdf",
                "/drafts/post.html",
                "/index.html",
            ],
        ),
        (
            (),
            ("node_modules/pkg",),
            [
                "/.well-known/security.txt",
                "/app.js",
                "/app.js.map",
                "/docs/api/ref.pdf",
                "/docs/drafts/x.html",
                "/docs/guide.pdf",
                "/drafts/post.html",
                "/index.html",
                "/node_modules/pkg/index.js",
            ],
        ),
        # ... and --exclude wins over everything.
        (
            ("*.pdf", ".htaccess"),
            (".htaccess", "docs/api"),
            [
                "/.well-known/security.txt",
                "/app.js",
                "/app.js.map",
                "/docs/drafts/x.html",
                "/drafts/post.html",
                "/index.html",
            ],
        ),
        # The defaults' one exception can be excluded too.
        (
            (".well-known",),
            (),
            [
                "/app.js",
                "/app.js.map",
                "/docs/api/ref.pdf",
                "/docs/drafts/x.html",
                "/docs/guide.pdf",
                "/drafts/post.html",
                "/index.html",
            ],
        ),
    ],
)
@pytest.mark.parametrize("kind", ["directory", "zip"])
def test_exclude_and_include_globs(
    tmp_path: Path, kind: str, exclude: tuple[str, ...], include: tuple[str, ...], published: list[str]
) -> None:
    """Issue 11 item 15: --exclude/--include globs, their precedence, the same for a directory and a zip."""
    source = make_zip(tmp_path / "site.zip", RULE_TREE) if kind == "zip" else write_tree(tmp_path / "src", RULE_TREE)
    summary = publish("docs", source, exclude=exclude, include=include)
    assert sorted(summary.added) == published
    assert sorted(site_content("docs")) == published
    assert summary.files == len(published)


@pytest.mark.parametrize("pattern", ["", "/", "  "])
def test_an_empty_pattern_is_refused(tmp_path: Path, pattern: str) -> None:
    """Issue 11 item 15: a pattern that can match nothing is a mistake, said in one line."""
    with pytest.raises(PublishError, match="an empty pattern"):
        publish("docs", write_tree(tmp_path / "src", {"a.txt": "a"}), exclude=[pattern])
    assert not Site.objects.exists()


def test_symlinks_inside_the_source_are_followed(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {"real/a.css": "a{}", "b.txt": "b"})
    (source / "alias.css").symlink_to(source / "real" / "a.css")
    (source / "mirror").symlink_to("real", target_is_directory=True)
    (source / "real" / "loop").symlink_to("..", target_is_directory=True)  # no endless walk
    summary = publish("docs", source)
    content = site_content("docs")
    assert sorted(content) == ["/alias.css", "/b.txt", "/mirror/a.css", "/real/a.css"]
    assert content["/alias.css"] == content["/real/a.css"] == (sha("a{}"), "text/css")
    assert content["/mirror/a.css"] == content["/real/a.css"]
    assert summary.bytes_stored == len("a{}") + len("b")
    assert summary.bytes_deduplicated == 2 * len("a{}")
    assert Blob.objects.count() == 2


def test_symlink_loops_through_two_directories_end(tmp_path: Path) -> None:
    source = write_tree(tmp_path / "src", {"a/1.txt": "1", "b/2.txt": "2"})
    (source / "a" / "to-b").symlink_to("../b", target_is_directory=True)
    (source / "b" / "to-a").symlink_to("../a", target_is_directory=True)
    publish("docs", source)
    assert sorted(site_content("docs")) == [
        "/a/1.txt",
        "/a/to-b/2.txt",
        "/b/2.txt",
        "/b/to-a/1.txt",
    ]


def test_a_source_reached_through_a_symlink(tmp_path: Path) -> None:
    real = write_tree(tmp_path / "real", {"index.html": "home"})
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    summary = publish("docs", tmp_path / "link")
    assert summary.added == ["/index.html"]


def test_zip_symlink_to_a_member_publishes_its_bytes(tmp_path: Path) -> None:
    path = tmp_path / "site.zip"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("css/site.css", "body{}")
        add_symlink(archive, "latest.css", "css/site.css")
        add_symlink(archive, "css/again.css", "./site.css")
    publish("docs", path)
    assert site_content("docs") == {
        "/css/site.css": (sha("body{}"), "text/css"),
        "/latest.css": (sha("body{}"), "text/css"),
        "/css/again.css": (sha("body{}"), "text/css"),
    }


def test_progress_is_written_to_a_terminal(tmp_path: Path) -> None:
    stream = Terminal()
    source = write_tree(tmp_path / "src", {"a.bin": b"a" * 5000, "b.bin": b"b" * 5000})
    publish("docs", source, progress_stream=stream)
    lines = stream.getvalue().split("\r")
    assert lines[1].startswith("hashing docs [")
    assert any(line.startswith("storing docs [") and "100%" in line for line in lines)
    # A second publish stores nothing: no storing bar.
    stream = Terminal()
    publish("docs", source, progress_stream=stream)
    assert "storing" not in stream.getvalue()


def test_no_progress_outside_a_terminal(tmp_path: Path) -> None:
    """Issue 11 item 20: a log or a pipe gets no progress lines (the command prints its summary)."""
    stream = io.StringIO()
    source = write_tree(tmp_path / "src", {f"{i}.bin": bytes([i]) * 5000 for i in range(30)})
    publish("docs", source, progress_stream=stream)
    assert stream.getvalue() == ""


def test_summary_text(site: Site, tmp_path: Path) -> None:
    source = write_tree(tmp_path / "v2", {"index.html": "new"})
    summary = publish("docs", source, delete=True)
    text = str(summary)
    assert text.startswith("docs: 0 added, 1 changed, 0 unchanged, 4 removed; 3 B stored, ")
    assert "0 B deduplicated" in text
    assert "\n" not in text


# --- bad input changes nothing ------------------------------------------------------------


@dataclass
class Ctx:
    tmp: Path
    settings: Any
    monkeypatch: pytest.MonkeyPatch

    def zip_path(self) -> Path:
        return self.tmp / "bad.zip"


#: A file in every bad source whose bytes nobody has: storing it would show.
FRESH = {"fresh.css": "/* only in the bad source */"}


def fail_open(ctx: Ctx, target: Path, *, after: int = 0) -> None:
    """Opening ``target`` raises PermissionError (after ``after`` successful opens)."""
    real_open = builtins.open
    target_real = os.path.realpath(target)
    opened = [0]

    def fake_open(file: Any, *args: Any, **kwargs: Any) -> IO[Any]:
        if os.fspath(file) == target_real:
            if opened[0] >= after:
                raise PermissionError(13, "Permission denied", os.fspath(file))
            opened[0] += 1
        return real_open(file, *args, **kwargs)

    ctx.monkeypatch.setattr(sources_module, "open", fake_open, raising=False)


def bad_zip_entry(name: str) -> Callable[[Ctx], tuple[str, Path]]:
    def build(ctx: Ctx) -> tuple[str, Path]:
        with zipfile.ZipFile(ctx.zip_path(), "w") as archive:
            archive.writestr("fresh.css", FRESH["fresh.css"])
            archive.writestr(name, "x")
        return "docs", ctx.zip_path()

    return build


def zip_link(target: str) -> Callable[[Ctx], tuple[str, Path]]:
    def build(ctx: Ctx) -> tuple[str, Path]:
        with zipfile.ZipFile(ctx.zip_path(), "w") as archive:
            archive.writestr("fresh.css", FRESH["fresh.css"])
            add_symlink(archive, "assets/passwd.txt", target)
        return "docs", ctx.zip_path()

    return build


def dir_link_outside(ctx: Ctx) -> tuple[str, Path]:
    outside = write_tree(ctx.tmp / "outside", {"secret.txt": "secret"})
    source = write_tree(ctx.tmp / "src", FRESH)
    (source / "linked").symlink_to(outside, target_is_directory=True)
    return "docs", source


def file_link_outside(ctx: Ctx) -> tuple[str, Path]:
    outside = write_tree(ctx.tmp / "outside", {"secret.txt": "secret"})
    source = write_tree(ctx.tmp / "src", FRESH)
    (source / "sub").mkdir()
    (source / "sub" / "secret.txt").symlink_to(outside / "secret.txt")
    return "docs", source


def relative_link_outside(ctx: Ctx) -> tuple[str, Path]:
    write_tree(ctx.tmp, {"outside.txt": "secret"})
    source = write_tree(ctx.tmp / "src", FRESH)
    (source / "up.txt").symlink_to("../outside.txt")
    return "docs", source


def dangling_link(ctx: Ctx) -> tuple[str, Path]:
    source = write_tree(ctx.tmp / "src", FRESH)
    (source / "gone.txt").symlink_to(source / "never-there.txt")
    return "docs", source


def fifo_in_source(ctx: Ctx) -> tuple[str, Path]:
    source = write_tree(ctx.tmp / "src", FRESH)
    os.mkfifo(source / "pipe")
    return "docs", source


def missing_source(ctx: Ctx) -> tuple[str, Path]:
    return "docs", ctx.tmp / "does-not-exist"


def not_a_zip(ctx: Ctx) -> tuple[str, Path]:
    path = ctx.tmp / "site.zip"
    path.write_text("this is not a zip file\n")
    return "docs", path


def empty_file_source(ctx: Ctx) -> tuple[str, Path]:
    path = ctx.tmp / "site.zip"
    path.write_bytes(b"")
    return "docs", path


def good_source(ctx: Ctx) -> Path:
    return write_tree(ctx.tmp / "src", {**SAMPLE, **FRESH})


def invalid_subdomain(ctx: Ctx) -> tuple[str, Path]:
    return "Not_Valid", good_source(ctx)


def reserved_subdomain(ctx: Ctx) -> tuple[str, Path]:
    return "www", good_source(ctx)


def file_too_large(ctx: Ctx) -> tuple[str, Path]:
    ctx.settings.ASSETCACHE_MAX_FILE_SIZE = 100
    return "docs", write_tree(ctx.tmp / "src", {**FRESH, "big.bin": b"x" * 101})


def zip_member_too_large(ctx: Ctx) -> tuple[str, Path]:
    ctx.settings.ASSETCACHE_MAX_FILE_SIZE = 100
    return "docs", make_zip(ctx.zip_path(), {**FRESH, "big.bin": b"x" * 101})


def file_grows_past_the_limit(ctx: Ctx) -> tuple[str, Path]:
    """Listed at 10 bytes, read at 200: the limit holds while reading too."""
    ctx.settings.ASSETCACHE_MAX_FILE_SIZE = 100
    source = write_tree(ctx.tmp / "src", {**FRESH, "grows.bin": b"x" * 10})
    target = os.path.realpath(source / "grows.bin")
    real_open = builtins.open

    def fake_open(file: Any, *args: Any, **kwargs: Any) -> IO[Any]:
        if os.fspath(file) == target:
            return io.BytesIO(b"x" * 200)
        return real_open(file, *args, **kwargs)

    ctx.monkeypatch.setattr(sources_module, "open", fake_open, raising=False)
    return "docs", source


def zip_bomb(ctx: Ctx) -> tuple[str, Path]:
    ctx.settings.ASSETCACHE_MAX_SITE_SIZE = 1024 * 1024
    with zipfile.ZipFile(ctx.zip_path(), "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        archive.writestr("fresh.css", FRESH["fresh.css"])
        for i in range(40):
            archive.writestr(f"zeros/{i}.bin", bytes(64 * 1024))
    assert ctx.zip_path().stat().st_size < 64 * 1024  # tiny on disk, 2.5 MiB declared
    return "docs", ctx.zip_path()


def directory_over_site_size(ctx: Ctx) -> tuple[str, Path]:
    ctx.settings.ASSETCACHE_MAX_SITE_SIZE = 1000
    files = {**FRESH, **{f"part{i}.bin": b"y" * 300 for i in range(4)}}
    return "docs", write_tree(ctx.tmp / "src", files)


def duplicate_zip_entries(ctx: Ctx) -> tuple[str, Path]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # zipfile warns "Duplicate name"
        with zipfile.ZipFile(ctx.zip_path(), "w") as archive:
            archive.writestr("fresh.css", FRESH["fresh.css"])
            archive.writestr("index.html", "first")
            archive.writestr("index.html", "second")
    return "docs", ctx.zip_path()


def duplicate_after_normalising(ctx: Ctx) -> tuple[str, Path]:
    with zipfile.ZipFile(ctx.zip_path(), "w") as archive:
        archive.writestr("fresh.css", FRESH["fresh.css"])
        archive.writestr("index.html", "first")
        archive.writestr("./index.html", "second")
    return "docs", ctx.zip_path()


def encrypted_entry(ctx: Ctx) -> tuple[str, Path]:
    with zipfile.ZipFile(ctx.zip_path(), "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("fresh.css", FRESH["fresh.css"])
        archive.writestr("secret.txt", "not really encrypted")
    data = bytearray(ctx.zip_path().read_bytes())
    # Set the "encrypted" flag of secret.txt in its central directory record.
    offset = data.find(b"PK\x01\x02")
    while offset != -1:
        name_length = int.from_bytes(data[offset + 28 : offset + 30], "little")
        if data[offset + 46 : offset + 46 + name_length] == b"secret.txt":
            data[offset + 8] |= 0x1
        offset = data.find(b"PK\x01\x02", offset + 4)
    ctx.zip_path().write_bytes(bytes(data))
    with zipfile.ZipFile(ctx.zip_path()) as archive:
        assert archive.getinfo("secret.txt").flag_bits & 0x1
    return "docs", ctx.zip_path()


def corrupt_zip_member(ctx: Ctx) -> tuple[str, Path]:
    with zipfile.ZipFile(ctx.zip_path(), "w", zipfile.ZIP_STORED) as archive:
        archive.writestr("fresh.css", FRESH["fresh.css"])
        archive.writestr("data.txt", b"A" * 100)
    data = ctx.zip_path().read_bytes().replace(b"A" * 100, b"B" * 100)
    ctx.zip_path().write_bytes(data)
    return "docs", ctx.zip_path()


def zip_of(make: Callable[[], bytes]) -> Callable[[Ctx], tuple[str, Path]]:
    def build(ctx: Ctx) -> tuple[str, Path]:
        ctx.zip_path().write_bytes(make())
        return "docs", ctx.zip_path()

    return build


def non_utf8_file_name(ctx: Ctx) -> tuple[str, Path]:
    source = write_tree(ctx.tmp / "src", {**FRESH, "ok.html": "ok"})
    (source / "img").mkdir()
    (source / "img" / os.fsdecode(b"caf\xe9.png")).write_bytes(b"png")
    return "docs", source


def non_utf8_folder_name(ctx: Ctx) -> tuple[str, Path]:
    source = write_tree(ctx.tmp / "src", FRESH)
    folder = source / os.fsdecode(b"\xff\xfe")
    folder.mkdir()
    (folder / "index.html").write_text("x")
    return "docs", source


def path_too_long(ctx: Ctx) -> tuple[str, Path]:
    ctx.settings.ASSETCACHE_MAX_PATH_LENGTH = 20
    return "docs", write_tree(ctx.tmp / "src", {**FRESH, "a" * 25 + ".txt": "x"})


def unreadable_file(ctx: Ctx) -> tuple[str, Path]:
    source = write_tree(ctx.tmp / "src", {**FRESH, "z-locked.css": "locked {}"})
    fail_open(ctx, source / "z-locked.css")
    return "docs", source


def unreadable_when_storing(ctx: Ctx) -> tuple[str, Path]:
    """Readable while hashing, then not: the failure is still a PublishError."""
    source = write_tree(ctx.tmp / "src", {**FRESH, "z-locked.css": "locked {}"})
    fail_open(ctx, source / "z-locked.css", after=1)
    return "docs", source


@dataclass
class Bad:
    build: Callable[[Ctx], tuple[str, Path]]
    message: str
    #: Blobs may be stored before the failure (nothing refers to them).
    may_store: bool = False
    #: Whether a dry run meets the failure too (a dry run reads each file once).
    in_dry_run: bool = True


BAD_INPUTS: dict[str, Bad] = {
    "zip-parent": Bad(bad_zip_entry("../x.txt"), "'../x.txt' points outside SOURCE"),
    "zip-nested-parent": Bad(bad_zip_entry("a/../../x.txt"), "points outside SOURCE"),
    "zip-absolute": Bad(bad_zip_entry("/etc/x"), "'/etc/x' points outside SOURCE"),
    "zip-drive": Bad(bad_zip_entry("C:/x.txt"), "points outside SOURCE"),
    "zip-backslash": Bad(bad_zip_entry("a\\..\\x.txt"), "backslash"),
    "zip-link-outside": Bad(zip_link("../../etc/passwd"), "link that points outside SOURCE"),
    "zip-link-absolute": Bad(zip_link("/etc/passwd"), "link that points outside SOURCE"),
    "zip-link-nowhere": Bad(zip_link("missing.txt"), "link to no file in the zip"),
    "dir-link-outside": Bad(dir_link_outside, "linked: symbolic link points outside SOURCE"),
    "file-link-outside": Bad(file_link_outside, "secret.txt: symbolic link points outside SOURCE"),
    "relative-link-outside": Bad(relative_link_outside, "up.txt: symbolic link points outside"),
    "dangling-link": Bad(dangling_link, "gone.txt"),
    "fifo": Bad(fifo_in_source, "pipe: not a regular file"),
    "missing-source": Bad(missing_source, "does-not-exist: no such file or directory"),
    "not-a-zip": Bad(not_a_zip, "not a directory or a zip file"),
    "empty-file": Bad(empty_file_source, "not a directory or a zip file"),
    "invalid-subdomain": Bad(invalid_subdomain, "is not a valid subdomain"),
    "reserved-subdomain": Bad(reserved_subdomain, "“www” is reserved"),
    "file-too-large": Bad(file_too_large, "big.bin: 101 B is over ASSETCACHE_MAX_FILE_SIZE"),
    "zip-member-too-large": Bad(zip_member_too_large, "over ASSETCACHE_MAX_FILE_SIZE"),
    "file-grows": Bad(file_grows_past_the_limit, "/grows.bin: over ASSETCACHE_MAX_FILE_SIZE"),
    "zip-bomb": Bad(zip_bomb, "source is over ASSETCACHE_MAX_SITE_SIZE (1.0 MiB)"),
    "dir-over-site-size": Bad(directory_over_site_size, "over ASSETCACHE_MAX_SITE_SIZE"),
    "zip-duplicate": Bad(duplicate_zip_entries, "'index.html' appears twice"),
    "zip-duplicate-normalised": Bad(duplicate_after_normalising, "appears twice"),
    "zip-encrypted": Bad(encrypted_entry, "'secret.txt' is encrypted"),
    "zip-corrupt": Bad(corrupt_zip_member, "zip entry 'data.txt' is damaged and cannot be read (Bad CRC-32"),
    # Issue 11 item 6: each of these was a traceback (or, for the NUL, another name published).
    "zip-name-not-utf8": Bad(
        zip_of(zip_with_bad_utf8_name), "zip entry 'caf\\xe9\\xe9.txt' is marked UTF-8 but its name is not UTF-8"
    ),
    "zip-name-nul": Bad(
        zip_of(zip_with_nul_in_a_name), "zip entry 'evil.txt\\x00.html': file names may not contain NUL"
    ),
    "zip-damaged-deflate": Bad(
        zip_of(lambda: zip_with_damaged_stream(zipfile.ZIP_DEFLATED)),
        "zip entry 'broken.txt' is damaged and cannot be read (Error -3 while decompressing data: invalid block type)",
    ),
    "zip-damaged-lzma": Bad(
        zip_of(lambda: zip_with_damaged_stream(zipfile.ZIP_LZMA)),
        "zip entry 'broken.txt' is damaged and cannot be read (Invalid or unsupported options)",
    ),
    "zip-damaged-bzip2": Bad(
        zip_of(lambda: zip_with_damaged_stream(zipfile.ZIP_BZIP2)),
        "zip entry 'broken.txt' is damaged and cannot be read (Invalid data stream)",
    ),
    "file-name-not-utf8": Bad(non_utf8_file_name, "img/caf\\xe9.png: file name is not UTF-8; rename it"),
    "folder-name-not-utf8": Bad(non_utf8_folder_name, "\\xff\\xfe/index.html: file name is not UTF-8; rename it"),
    "path-too-long": Bad(path_too_long, "longer than ASSETCACHE_MAX_PATH_LENGTH"),
    "unreadable": Bad(unreadable_file, "/z-locked.css: cannot be read (Permission denied)"),
    "unreadable-when-storing": Bad(
        unreadable_when_storing,
        "/z-locked.css: cannot be read (Permission denied)",
        may_store=True,
        in_dry_run=False,
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_input_raises_one_line_and_changes_nothing(
    case: Bad, site: Site, tmp_path: Path, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = Ctx(tmp_path / "case", settings, monkeypatch)
    ctx.tmp.mkdir()
    before = db_state()
    content_before = site_content("docs")
    files_before = blob_files()

    subdomain, source = case.build(ctx)
    for dry_run in (True, False) if case.in_dry_run else (False,):
        with pytest.raises(PublishError) as exc:
            publish(subdomain, source, delete=True, dry_run=dry_run)
        message = str(exc.value)
        assert case.message in message
        assert message.strip() and "\n" not in message

    assert db_state() == before
    assert site_content("docs") == content_before
    files_after = blob_files()
    if case.may_store:
        # Whatever was stored is an unreferenced blob; nothing else changed.
        assert {k: v for k, v in files_after.items() if k in files_before} == files_before
        assert not set(files_after) - set(files_before) - {blob_name(sha(FRESH["fresh.css"]))}
    else:
        assert files_after == files_before


@pytest.mark.parametrize("case", ["zip-parent", "zip-bomb", "file-link-outside", "unreadable"])
def test_bad_input_for_a_new_site_creates_no_site(
    case: str, db, tmp_path: Path, settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx = Ctx(tmp_path / "case", settings, monkeypatch)
    ctx.tmp.mkdir()
    _, source = BAD_INPUTS[case].build(ctx)
    with pytest.raises(PublishError):
        publish("fresh", source)
    assert db_state() == {"sites": [], "assets": [], "blobs": [], "changes": []}
    assert blob_files() == {}


# --- a crash before the commit ------------------------------------------------------------


class Crash(Exception):
    pass


def crash(*args: object, **kwargs: object) -> None:
    raise Crash("the database went away")


@pytest.mark.parametrize("target", ["record_change", "asset_bulk_create", "blob_bulk_create"])
def test_a_crash_before_the_commit_leaves_only_blob_files(
    target: str, site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = db_state()
    source = write_tree(tmp_path / "v2", {**SAMPLE, "index.html": "changed", "new.txt": "new", **FRESH})
    if target == "record_change":
        monkeypatch.setattr(deployments_module, "record_change", crash)
    elif target == "asset_bulk_create":
        monkeypatch.setattr(Asset.objects, "bulk_create", crash)
    else:
        monkeypatch.setattr(Blob.objects, "bulk_create", crash)

    with pytest.raises(Crash):
        publish("docs", source, delete=True)
    assert db_state() == before
    # The new bytes were stored before the transaction; nothing refers to them.
    new_names = {blob_name(sha(b)) for b in ("changed", "new", FRESH["fresh.css"])}
    assert set(blob_files()) - {blob_name(sha(c)) for c in SAMPLE.values()} == new_names

    # Once the database is back, publishing again completes: the stored
    # files are reused and the Blob rows written.
    monkeypatch.undo()
    summary = publish("docs", source, delete=True)
    assert sorted(summary.added) == ["/fresh.css", "/new.txt"]
    assert summary.changed == ["/index.html"]
    assert summary.bytes_stored == 0
    assert summary.bytes_deduplicated == len("changed") + len("new") + len(FRESH["fresh.css"])
    assert Blob.objects.filter(sha256=sha("changed")).exists()
    assert site_content("docs")["/index.html"] == (sha("changed"), "text/html")
    assert publish_changes("docs") == [SAMPLE_PATHS, ["/fresh.css", "/index.html", "/new.txt"]]


def test_a_crash_while_creating_a_site_leaves_no_site(sample_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(deployments_module, "record_change", crash)
    with pytest.raises(Crash):
        publish("docs", sample_dir)
    assert not Site.objects.exists()
    assert not Asset.objects.exists()
    assert not Blob.objects.exists()
    assert not Change.objects.exists()


def test_a_file_changed_between_hashing_and_storing_is_refused(db, tmp_path, monkeypatch) -> None:
    """The bytes stored must be the bytes hashed: a file rewritten after it
    was hashed is not stored under the old hash."""
    from django_assetcache import publish as publish_module

    source = tmp_path / "src"
    source.mkdir()
    target = source / "index.html"
    target.write_bytes(b"<p>first</p>")
    original_hash_files = publish_module._hash_files

    def hash_then_rewrite(files, progress):
        original_hash_files(files, progress)
        target.write_bytes(b"<p>other</p>")  # same size, other bytes

    monkeypatch.setattr(publish_module, "_hash_files", hash_then_rewrite)
    with pytest.raises(publish_module.PublishError, match="changed while being published"):
        publish_module.publish("docs", source)
    assert not stored(sha(b"<p>first</p>"))
    assert not Site.objects.filter(subdomain="docs").exists()


@pytest.mark.parametrize(
    ("count", "noun", "nouns", "expected"),
    [
        (0, "site", "", "0 sites"),
        (1, "site", "", "1 site"),
        (2, "site", "", "2 sites"),
        (1, "entry", "entries", "1 entry"),
        (3, "entry", "entries", "3 entries"),
    ],
)
def test_plural(count: int, noun: str, nouns: str, expected: str) -> None:
    """Issue 11 item 20: counts are printed with the noun's right number."""
    assert plural(count, noun, nouns) == expected
