"""Import a directory or a zip into a site: diff, dedup, one transaction.

Nothing in the database changes until every file has been read, hashed and
stored; then assets, the site's generation and one Change row commit
together. A failure before the commit leaves, at most, blobs nothing refers
to (``assetcache_gc`` removes them).
"""

from __future__ import annotations

import os
import posixpath
import stat
import time
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TextIO

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from . import conf
from .mediatypes import content_type_for
from .models import Asset, Blob, Change, Site, record_change, validate_subdomain
from .progress import Progress, human_bytes
from .store import BlobChanged, BlobStore, BlobTooLarge, hash_stream

#: Names never published: version-control folders and desktop litter.
IGNORED_NAMES = frozenset({".git", ".hg", ".svn", ".DS_Store", "Thumbs.db", "__MACOSX"})


class PublishError(Exception):
    """Bad input: the message is one line a person can act on."""


@dataclass
class SourceFile:
    path: str
    size: int
    open: Callable[[], IO[bytes]]
    sha256: str = ""
    content_type: str = ""


@dataclass
class PublishSummary:
    subdomain: str
    created: bool = False
    dry_run: bool = False
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    files: int = 0
    bytes_stored: int = 0
    bytes_deduplicated: int = 0
    seconds: float = 0.0

    def __str__(self) -> str:
        prefix = "dry run, nothing changed: " if self.dry_run else ""
        created = " (new site)" if self.created else ""
        stored = "would store" if self.dry_run else "stored"
        return (
            f"{prefix}{self.subdomain}{created}: {len(self.added)} added, "
            f"{len(self.changed)} changed, {self.unchanged} unchanged, "
            f"{len(self.removed)} removed; {human_bytes(self.bytes_stored)} {stored}, "
            f"{human_bytes(self.bytes_deduplicated)} deduplicated; {self.seconds:.2f} s"
        )


def normalize_path(relative: str) -> str:
    """``a/b.html`` → ``/a/b.html``, refusing anything that is not a plain path."""
    if "\x00" in relative or "\\" in relative:
        raise PublishError(f"{relative!r}: file names may not contain NUL or backslash")
    parts = relative.split("/")
    while parts and parts[0] in {"", "."}:
        parts.pop(0)
    if not parts or any(part in {"", ".", ".."} for part in parts):
        raise PublishError(f"{relative!r}: not a plain relative path")
    path = "/" + "/".join(parts)
    if len(path) > conf.get().MAX_PATH_LENGTH:
        raise PublishError(f"{relative[:60]!r}…: path longer than ASSETCACHE_MAX_PATH_LENGTH")
    return path


class _Budget:
    """Enforces the per-file and per-publish size limits."""

    def __init__(self) -> None:
        settings = conf.get()
        self.max_file = settings.MAX_FILE_SIZE
        self.max_total = settings.MAX_SITE_SIZE
        self.total = 0

    def take(self, name: str, size: int) -> None:
        if size > self.max_file:
            raise PublishError(
                f"{name}: {human_bytes(size)} is over ASSETCACHE_MAX_FILE_SIZE ({human_bytes(self.max_file)})"
            )
        self.total += size
        if self.total > self.max_total:
            raise PublishError(f"source is over ASSETCACHE_MAX_SITE_SIZE ({human_bytes(self.max_total)}) uncompressed")


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _directory_files(root: Path) -> list[SourceFile]:
    real_root = os.path.realpath(root)
    budget = _Budget()
    files: list[SourceFile] = []
    # The real paths of each directory's ancestors: a link back to one of
    # them is a loop. (A link to a sibling is not: its files appear twice.)
    ancestors: dict[str, frozenset[str]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=True, onerror=_raise):
        real_dir = os.path.realpath(dirpath)
        relative_dir = os.path.relpath(dirpath, root)
        if not _inside(real_dir, real_root):
            raise PublishError(f"{relative_dir}: symbolic link points outside SOURCE")
        above = ancestors.pop(dirpath, frozenset())
        if real_dir in above:
            dirnames[:] = []
            continue
        dirnames[:] = sorted(d for d in dirnames if d not in IGNORED_NAMES)
        for name in dirnames:
            ancestors[os.path.join(dirpath, name)] = above | {real_dir}
        for name in sorted(filenames):
            if name in IGNORED_NAMES:
                continue
            full = os.path.join(dirpath, name)
            relative = os.path.relpath(full, root)
            try:
                info = os.lstat(full)
                # Only a link needs resolving: a plain file in a directory
                # already known to be inside SOURCE is inside too.
                real = os.path.join(real_dir, name)
                if stat.S_ISLNK(info.st_mode):
                    real = os.path.realpath(full)
                    if not _inside(real, real_root):
                        raise PublishError(f"{relative}: symbolic link points outside SOURCE")
                    info = os.stat(real)
            except OSError as exc:
                raise PublishError(f"{relative}: {exc.strerror or exc}") from exc
            if not stat.S_ISREG(info.st_mode):
                raise PublishError(f"{relative}: not a regular file")
            budget.take(relative, info.st_size)
            path = normalize_path(Path(relative).as_posix())
            files.append(SourceFile(path, info.st_size, _opener(real)))
    return files


def _raise(error: OSError) -> None:
    raise PublishError(f"{error.filename}: {error.strerror or error}")


def _opener(path: str) -> Callable[[], IO[bytes]]:
    return lambda: open(path, "rb")


def _zip_files(archive: zipfile.ZipFile) -> list[SourceFile]:
    budget = _Budget()
    members = {info.filename: info for info in archive.infolist()}
    files: dict[str, SourceFile] = {}
    for info in archive.infolist():
        name = info.filename
        if info.is_dir():
            continue
        if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in name.split("/"):
            raise PublishError(f"zip entry {name!r} points outside SOURCE")
        if any(part in IGNORED_NAMES for part in name.split("/")):
            continue
        target = info
        if stat.S_ISLNK(info.external_attr >> 16):
            target = _zip_link_target(archive, members, info)
        if target.flag_bits & 0x1:
            raise PublishError(f"zip entry {name!r} is encrypted")
        budget.take(name, target.file_size)
        path = normalize_path(name)
        if path in files:
            raise PublishError(f"zip entry {name!r} appears twice")
        files[path] = SourceFile(path, target.file_size, _zip_opener(archive, target))
    return list(files.values())


def _zip_link_target(
    archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], link: zipfile.ZipInfo
) -> zipfile.ZipInfo:
    target = archive.read(link).decode("utf-8", "replace")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link.filename), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise PublishError(f"zip entry {link.filename!r} is a link that points outside SOURCE")
    member = members.get(resolved)
    if member is None or member.is_dir() or stat.S_ISLNK(member.external_attr >> 16):
        raise PublishError(f"zip entry {link.filename!r} is a link to no file in the zip")
    return member


def _zip_opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], IO[bytes]]:
    return lambda: archive.open(info)


@contextmanager
def read_source(source: str | os.PathLike[str]) -> Iterator[list[SourceFile]]:
    """The files of a directory or a zip, validated, not yet read."""
    path = Path(source)
    if path.is_dir():
        yield _directory_files(path)
        return
    if not path.exists():
        raise PublishError(f"{source}: no such file or directory")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise PublishError(f"{source}: not a directory or a zip file") from exc
    except OSError as exc:
        raise PublishError(f"{source}: {exc.strerror or exc}") from exc
    with archive:
        yield _zip_files(archive)


def _hash_files(files: list[SourceFile], progress: Progress | None) -> None:
    max_file = conf.get().MAX_FILE_SIZE
    for source_file in files:
        try:
            with source_file.open() as stream:
                source_file.sha256, source_file.size = hash_stream(stream, max_file)
        except BlobTooLarge as exc:
            raise PublishError(f"{source_file.path}: over ASSETCACHE_MAX_FILE_SIZE") from exc
        except (OSError, zipfile.BadZipFile, RuntimeError, EOFError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            raise PublishError(f"{source_file.path}: cannot be read ({reason})") from exc
        source_file.content_type = content_type_for(source_file.path)
        if progress is not None:
            progress.advance(source_file.size)


def _resolve_site(site: Site | str) -> tuple[Site | None, str]:
    if isinstance(site, Site):
        return site, site.subdomain
    subdomain = site.strip()
    try:
        validate_subdomain(subdomain)
    except ValidationError as exc:
        raise PublishError(" ".join(exc.messages)) from exc
    return Site.objects.filter(subdomain=subdomain).first(), subdomain


def _diff(
    files: list[SourceFile], current: dict[str, tuple[str, str]], delete: bool, summary: PublishSummary
) -> list[SourceFile]:
    """Fill the summary's counts; return the files to write."""
    summary.added, summary.changed, summary.removed, summary.unchanged = [], [], [], 0
    writes = []
    for source_file in files:
        existing = current.get(source_file.path)
        if existing is None:
            summary.added.append(source_file.path)
            writes.append(source_file)
        elif existing != (source_file.sha256, source_file.content_type):
            summary.changed.append(source_file.path)
            writes.append(source_file)
        else:
            summary.unchanged += 1
    if delete:
        wanted = {source_file.path for source_file in files}
        summary.removed = sorted(path for path in current if path not in wanted)
    return writes


def _current_assets(site: Site | None) -> dict[str, tuple[str, str]]:
    if site is None or site.pk is None:
        return {}
    rows = Asset.objects.filter(site=site).values_list("path", "blob_id", "content_type")
    return {path: (blob_id, content_type) for path, blob_id, content_type in rows}


def publish(
    site: Site | str,
    source: str | os.PathLike[str],
    *,
    delete: bool = False,
    dry_run: bool = False,
    progress_stream: TextIO | None = None,
) -> PublishSummary:
    """Make ``site`` serve the files of ``source`` (a directory or a zip).

    ``site`` is a Site or a subdomain; a missing site is created. With
    ``delete``, assets not in ``source`` are removed. With ``dry_run`` the
    diff is computed and nothing is stored or changed.
    Raises PublishError for bad input, having changed nothing.
    """
    started = time.monotonic()
    site_obj, subdomain = _resolve_site(site)
    summary = PublishSummary(subdomain=subdomain, dry_run=dry_run, created=site_obj is None)
    store = BlobStore()
    with read_source(source) as files:
        summary.files = len(files)
        total = sum(source_file.size for source_file in files)
        progress = (
            Progress(f"hashing {subdomain}", total, stream=progress_stream, unit_bytes=True)
            if progress_stream is not None
            else None
        )
        _hash_files(files, progress)
        if progress is not None:
            progress.close()

        writes = _diff(files, _current_assets(site_obj), delete, summary)
        _store_blobs(store, files, writes, summary, dry_run, progress_stream)
        if not dry_run:
            _commit(store, site_obj, subdomain, files, delete, summary)
    summary.seconds = time.monotonic() - started
    return summary


def _store_blobs(
    store: BlobStore,
    files: list[SourceFile],
    writes: list[SourceFile],
    summary: PublishSummary,
    dry_run: bool,
    progress_stream: TextIO | None,
) -> None:
    """Upload the bytes of every file the storage lacks.

    Every file counts, not only the ones written: a blob whose row exists
    but whose file is gone (damage, or a publish before gc was safe) is
    stored again, and the paths serving it heal.
    """
    referenced = {source_file.sha256: source_file for source_file in files}
    missing = store.missing({sha: f.size for sha, f in referenced.items()})
    upload_total = sum(referenced[sha].size for sha in missing)
    progress = (
        Progress(f"storing {summary.subdomain}", upload_total, stream=progress_stream, unit_bytes=True)
        if progress_stream is not None and missing and not dry_run
        else None
    )
    stored: set[str] = set()
    for sha in sorted(missing):
        if dry_run or _save_file(store, referenced[sha]):
            stored.add(sha)
        if progress is not None:
            progress.advance(referenced[sha].size)
    if progress is not None:
        progress.close()
    for source_file in writes:
        if source_file.sha256 in stored:
            summary.bytes_stored += source_file.size
            stored.discard(source_file.sha256)
        else:
            summary.bytes_deduplicated += source_file.size
    # What is left was stored for unchanged paths.
    summary.bytes_stored += sum(referenced[sha].size for sha in stored)


def _save_file(store: BlobStore, source_file: SourceFile) -> bool:
    try:
        stream = source_file.open()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise PublishError(f"{source_file.path}: cannot be read ({reason})") from exc
    with stream:
        try:
            return store.save(source_file.sha256, source_file.size, stream)
        except BlobChanged as exc:
            raise PublishError(f"{source_file.path}: changed while being published; try again") from exc


def _lock_blobs(shas: list[str]) -> set[str]:
    """Lock the existing rows of ``shas`` (in one order, so that two
    publishes sharing blobs cannot deadlock); return their hashes."""
    locked: set[str] = set()
    for start in range(0, len(shas), 500):
        rows = Blob.objects.select_for_update().filter(pk__in=shas[start : start + 500]).order_by("pk")
        locked.update(rows.values_list("pk", flat=True))
    return locked


def _hold_blobs(store: BlobStore, writes: list[SourceFile], summary: PublishSummary) -> None:
    """Make sure the blobs ``writes`` refer to have rows and files until the
    transaction commits.

    A row that exists is locked: gc deletes a file only while no row of its
    hash exists, so the file is there and stays. A row this transaction has
    to create may name a file gc deleted after it was stored (or found
    present): it is checked under the lock and stored again if missing.
    """
    needed = {source_file.sha256: source_file for source_file in writes}
    fresh = sorted(set(needed) - _lock_blobs(sorted(needed)))
    Blob.objects.bulk_create(
        [Blob(sha256=sha, size=needed[sha].size) for sha in fresh], ignore_conflicts=True, batch_size=500
    )
    _lock_blobs(fresh)
    for sha in sorted(store.missing({sha: needed[sha].size for sha in fresh})):
        if _save_file(store, needed[sha]):
            summary.bytes_stored += needed[sha].size


def _commit(
    store: BlobStore,
    site: Site | None,
    subdomain: str,
    files: list[SourceFile],
    delete: bool,
    summary: PublishSummary,
) -> None:
    now = timezone.now().replace(microsecond=0)
    with transaction.atomic():
        if site is None:
            site, summary.created = Site.objects.get_or_create(subdomain=subdomain)
        site = Site.objects.select_for_update().get(pk=site.pk)
        # Re-read under the lock: another publish may have committed since
        # the preview diff, and the result must be exactly ``files``.
        writes = _diff(files, _current_assets(site), delete, summary)
        _hold_blobs(store, writes, summary)
        added = set(summary.added)
        Asset.objects.bulk_create(
            [
                Asset(
                    site=site,
                    path=f.path,
                    blob_id=f.sha256,
                    content_type=f.content_type,
                    last_modified=now,
                )
                for f in writes
                if f.path in added
            ],
            batch_size=500,
        )
        changed = {f.path: f for f in writes if f.path not in added}
        if changed:
            assets = list(Asset.objects.filter(site=site, path__in=list(changed)))
            for asset in assets:
                source_file = changed[asset.path]
                asset.blob_id = source_file.sha256
                asset.content_type = source_file.content_type
                asset.last_modified = now
            Asset.objects.bulk_update(assets, ["blob", "content_type", "last_modified"], batch_size=500)
        for start in range(0, len(summary.removed), 500):
            Asset.objects.filter(site=site, path__in=summary.removed[start : start + 500]).delete()
        touched = [*summary.added, *summary.changed, *summary.removed]
        if touched:
            record_change(site.pk, Change.Kind.PUBLISH, touched)
