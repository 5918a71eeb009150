"""Source readers: the files of a directory or a zip, validated, not yet read.

What a source offers for publishing is decided here (names, paths, links,
size limits); hashing, storing and committing them is the publish pipeline's
part (publish.py).
"""

from __future__ import annotations

import os
import posixpath
import stat
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from . import conf
from .progress import human_bytes

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
