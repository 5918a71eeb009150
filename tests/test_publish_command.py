"""manage.py assetcache_publish: in process with call_command, and as a real process."""

from __future__ import annotations

import hashlib
import io
import os
import subprocess
import sys
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from django_assetcache.models import Asset, Blob, Change, Site
from tests.conftest import (
    SAMPLE,
    live_assets,
    make_zip,
    write_tree,
    zip_with_bad_utf8_name,
    zip_with_damaged_stream,
    zip_with_nul_in_a_name,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE_PATHS = sorted("/" + name for name in SAMPLE)


def run(*args: str, verbosity: int = 1) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("assetcache_publish", *args, stdout=out, stderr=err, verbosity=verbosity)
    return out.getvalue(), err.getvalue()


def db_state() -> tuple[list[object], ...]:
    return (
        list(Site.objects.order_by("pk").values_list("pk", "subdomain", "generation")),
        list(Asset.objects.order_by("pk").values_list("pk", "site_id", "path", "blob_id")),
        list(Blob.objects.order_by("sha256").values_list("sha256", "size")),
        list(Change.objects.order_by("pk").values_list("pk", "site_id", "kind", "paths")),
    )


@pytest.mark.django_db
def test_publish_prints_created_and_the_summary(sample_dir: Path) -> None:
    out, err = run("docs", str(sample_dir))
    lines = out.splitlines()
    assert lines[0] == "Created site docs."
    assert len(lines) == 2
    assert lines[1].startswith("docs (new site): 5 added, 0 changed, 0 unchanged, 0 removed; ")
    assert "1.2 KiB stored, 0 B deduplicated; " in lines[1]
    assert lines[1].endswith(" s")
    assert err == ""  # not a terminal: no progress lines
    assert sorted(Asset.objects.values_list("path", flat=True)) == SAMPLE_PATHS


@pytest.mark.django_db
def test_publish_again_prints_no_created_line(sample_dir: Path) -> None:
    run("docs", str(sample_dir))
    changes = Change.objects.count()
    out, _ = run("docs", str(sample_dir))
    assert out.splitlines() == [out.strip()]
    assert out.startswith("docs: 0 added, 0 changed, 5 unchanged, 0 removed; 0 B stored, ")
    assert Change.objects.count() == changes


@pytest.mark.django_db
def test_publish_a_zip(tmp_path: Path) -> None:
    out, _ = run("docs", str(make_zip(tmp_path / "site.zip", SAMPLE)), verbosity=0)
    assert out.splitlines()[0] == "Created site docs."
    assert Asset.objects.filter(site__subdomain="docs").count() == 5


@pytest.mark.django_db
def test_verbosity_two_lists_every_path(sample_dir: Path, tmp_path: Path) -> None:
    run("docs", str(sample_dir), verbosity=0)
    source = write_tree(tmp_path / "v2", {"index.html": "changed", "new.txt": "new"})
    out, _ = run("docs", str(source), "--delete", verbosity=2)
    lines = out.splitlines()
    assert lines[:-1] == [
        "  added    /new.txt",
        "  changed  /index.html",
        "  removed  /404.html",
        "  removed  /css/site.css",
        "  removed  /guide/index.html",
        "  removed  /img/logo.png",
    ]
    assert lines[-1].startswith("docs: 1 added, 1 changed, 0 unchanged, 4 removed;")


@pytest.mark.django_db
def test_verbosity_zero_writes_no_progress(sample_dir: Path) -> None:
    out, err = run("docs", str(sample_dir), verbosity=0)
    assert err == ""
    assert "5 added" in out


@pytest.mark.django_db
def test_delete_flag(sample_dir: Path, tmp_path: Path) -> None:
    run("docs", str(sample_dir), verbosity=0)
    source = write_tree(tmp_path / "v2", {"index.html": SAMPLE["index.html"]})
    run("docs", str(source), verbosity=0)
    assert Asset.objects.count() == 5  # without --delete nothing goes
    out, _ = run("docs", str(source), "--delete", verbosity=0)
    assert "0 added, 0 changed, 1 unchanged, 4 removed" in out
    assert list(live_assets().values_list("path", flat=True)) == ["/index.html"]
    assert Change.objects.last().paths == [  # type: ignore[union-attr]
        "/404.html",
        "/css/site.css",
        "/guide/index.html",
        "/img/logo.png",
    ]


@pytest.mark.django_db
def test_dry_run_flag_changes_nothing(sample_dir: Path) -> None:
    out, _ = run("docs", str(sample_dir), "--dry-run", verbosity=0)
    assert out.startswith("dry run, nothing changed: docs (new site): 5 added,")
    assert "would store" in out
    assert "Created site" not in out
    assert db_state() == ([], [], [], [])


@pytest.mark.django_db
def test_dry_run_with_delete_reports_removals(sample_dir: Path, tmp_path: Path) -> None:
    run("docs", str(sample_dir), verbosity=0)
    before = db_state()
    source = write_tree(tmp_path / "v2", {"index.html": SAMPLE["index.html"]})
    out, _ = run("docs", str(source), "--dry-run", "--delete", verbosity=2)
    assert "  removed  /img/logo.png" in out.splitlines()
    assert out.splitlines()[-1].startswith("dry run, nothing changed: docs: 0 added, 0 changed, ")
    assert "4 removed" in out
    assert db_state() == before


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("subdomain", "source_name", "message"),
    [
        ("docs", "missing", "missing: no such file or directory"),
        ("docs", "not-a-zip.txt", "not-a-zip.txt: not a directory or a zip file"),
        ("Bad_Name", "sample", "is not a valid subdomain"),
        ("admin", "sample", "“admin” is reserved and cannot be used as a subdomain."),
        ("docs", "evil.zip", "zip entry '../evil.txt' points outside SOURCE"),
    ],
)
def test_bad_input_is_a_one_line_command_error(
    sample_dir: Path, tmp_path: Path, subdomain: str, source_name: str, message: str
) -> None:
    (tmp_path / "not-a-zip.txt").write_text("plain text")
    make_zip(tmp_path / "evil.zip", {"ok.txt": "ok", "../evil.txt": "evil"})
    with pytest.raises(CommandError) as exc:
        run(subdomain, str(tmp_path / source_name))
    assert message in str(exc.value)
    assert "\n" not in str(exc.value)
    assert db_state() == ([], [], [], [])


# --- as a real process --------------------------------------------------------------------


def manage(*args: str, media_root: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "ASSETCACHE_TEST_DIR": os.environ["ASSETCACHE_TEST_DIR"],
        "ASSETCACHE_TEST_MEDIA_ROOT": media_root,
        "DJANGO_SETTINGS_MODULE": "tests.settings",
        "PYTHONWARNINGS": "error",
    }
    return subprocess.run(
        [sys.executable, "-m", "django", "assetcache_publish", *args, "--settings=tests.settings"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@pytest.mark.django_db(transaction=True)
def test_subprocess_missing_source_exits_non_zero_with_one_line(tmp_path: Path, settings) -> None:
    result = manage("docs", str(tmp_path / "nowhere"), media_root=settings.MEDIA_ROOT)
    assert result.returncode != 0
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"CommandError: {tmp_path / 'nowhere'}: no such file or directory"]
    assert not Site.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_subprocess_publish_succeeds(sample_dir: Path, settings) -> None:
    result = manage("docs", str(sample_dir), media_root=settings.MEDIA_ROOT)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "Created site docs."
    assert lines[1].startswith("docs (new site): 5 added, 0 changed, 0 unchanged, 0 removed;")
    assert result.stderr == ""  # stderr is a pipe: no progress lines
    # The other process committed to the same database.
    site = Site.objects.get(subdomain="docs")
    assert dict(Asset.objects.filter(site=site).values_list("path", "blob_id")) == {
        "/" + name: hashlib.sha256(content.encode() if isinstance(content, str) else content).hexdigest()
        for name, content in SAMPLE.items()
    }
    assert list(Change.objects.filter(site_id=site.pk).values_list("kind", "paths")) == [
        ("settings", None),
        ("deploy", SAMPLE_PATHS),
    ]


# --- issue 11 -----------------------------------------------------------------------------


def non_utf8_directory(tmp_path: Path) -> Path:
    source = write_tree(tmp_path / "src", {"index.html": "home"})
    (source / os.fsdecode(b"caf\xe9.html")).write_text("x")
    return source


def zip_file(make: Callable[[], bytes]) -> Callable[[Path], Path]:
    def build(tmp_path: Path) -> Path:
        path = tmp_path / "site.zip"
        path.write_bytes(make())
        return path

    return build


BAD_SOURCES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "zip name flagged UTF-8, is not": (
        zip_file(zip_with_bad_utf8_name),
        "site.zip: zip entry 'caf\\xe9\\xe9.txt' is marked UTF-8 but its name is not UTF-8",
    ),
    "zip name with NUL": (zip_file(zip_with_nul_in_a_name), "file names may not contain NUL"),
    "damaged deflate": (
        zip_file(lambda: zip_with_damaged_stream(zipfile.ZIP_DEFLATED)),
        "zip entry 'broken.txt' is damaged and cannot be read (Error -3 while decompressing data: invalid block type)",
    ),
    "damaged LZMA": (
        zip_file(lambda: zip_with_damaged_stream(zipfile.ZIP_LZMA)),
        "zip entry 'broken.txt' is damaged and cannot be read (Invalid or unsupported options)",
    ),
    "file name not UTF-8": (non_utf8_directory, "caf\\xe9.html: file name is not UTF-8; rename it"),
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("case", list(BAD_SOURCES))
def test_subprocess_bad_source_is_one_line_without_traceback(tmp_path: Path, settings, case: str) -> None:
    """Issue 11 item 6: a damaged zip, a bad entry name, a non-UTF-8 file name: one line, exit 1, site unchanged."""
    build, message = BAD_SOURCES[case]
    result = manage("docs", str(build(tmp_path)), "--delete", media_root=settings.MEDIA_ROOT)
    assert result.returncode == 1
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("CommandError: ")
    assert message in line
    assert not Site.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("content", [{}, {".env": "SECRET=1", ".DS_Store": "x", "node_modules/a.js": "x"}])
def test_delete_with_an_empty_source_is_refused(sample_dir: Path, tmp_path: Path, content: dict[str, str]) -> None:
    """Issue 11 item 14: --delete with a source that has no file to publish empties nothing without --allow-empty."""
    run("docs", str(sample_dir), verbosity=0)
    before = db_state()
    empty = tmp_path / "empty"
    empty.mkdir()
    write_tree(empty, content)
    with pytest.raises(CommandError) as exc:
        run("docs", str(empty), "--delete")
    message = str(exc.value)
    assert message.startswith(f"{empty}: no files")
    assert message.endswith("with --delete that would remove every file of docs: give --allow-empty to do it")
    assert ("(3 skipped by the exclusion rules)" in message) is bool(content)
    assert "\n" not in message
    assert db_state() == before
    # Without --delete nothing would be removed: an empty source publishes nothing.
    out, _ = run("docs", str(empty), verbosity=0)
    assert out.startswith("docs: 0 added, 0 changed, 0 unchanged, 0 removed")
    assert db_state() == before
    out, _ = run("docs", str(empty), "--delete", "--allow-empty", verbosity=0)
    assert out.startswith("docs: 0 added, 0 changed, 0 unchanged, 5 removed")
    assert not live_assets().exists()


@pytest.mark.django_db
def test_exclude_include_and_dry_run_listing(tmp_path: Path) -> None:
    """Issue 11 item 15: --exclude/--include on the command line; --dry-run lists added, changed, removed, skipped."""
    run("docs", str(write_tree(tmp_path / "v1", {"index.html": "v1", "old.html": "old"})), verbosity=0)
    source = write_tree(
        tmp_path / "v2",
        {
            "index.html": "v2",
            "app.js": "js",
            "app.js.map": "map",
            ".htaccess": "deny",
            ".env": "SECRET=1",
            "drafts/a.html": "draft",
            "index.html~": "backup",
        },
    )
    out, _ = run(
        "docs",
        str(source),
        "--dry-run",
        "--delete",
        "--exclude",
        "*.map",
        "--exclude",
        "drafts",
        "--include",
        ".htaccess",
    )
    assert out.splitlines() == [
        "  added    /.htaccess",
        "  added    /app.js",
        "  changed  /index.html",
        "  removed  /old.html",
        "  skipped  drafts/",
        "  skipped  .env",
        "  skipped  app.js.map",
        "  skipped  index.html~",
        out.splitlines()[-1],
    ]
    assert out.splitlines()[-1].startswith(
        "dry run, nothing changed: docs: 2 added, 1 changed, 0 unchanged, 1 removed, 4 skipped; "
    )


@pytest.mark.django_db
def test_a_zip_s_top_folder_is_stripped_and_said(tmp_path: Path) -> None:
    """Issue 11 item 16: the summary says the top folder was left out; --keep-top-folder keeps it."""
    archive = make_zip(tmp_path / "build.zip", {"build/index.html": "home", "build/css/a.css": "a{}"})
    out, _ = run("docs", str(archive), verbosity=0)
    assert "; the zip's top folder build/ left out of the paths; " in out.splitlines()[-1]
    assert sorted(Asset.objects.values_list("path", flat=True)) == ["/css/a.css", "/index.html"]
    out, _ = run("blog", str(archive), "--keep-top-folder", verbosity=0)
    assert "top folder" not in out
    assert sorted(Asset.objects.filter(site__subdomain="blog").values_list("path", flat=True)) == [
        "/build/css/a.css",
        "/build/index.html",
    ]
