"""Source readers: the files of a directory or a zip, filtered, validated, not yet read.

What a source offers for publishing is decided here: which names are skipped
(SourceRules), how paths are spelled, links, size limits, a zip's one top
folder; hashing, storing and committing the files is the publish pipeline's
part (publish.py). Every bad source is a PublishError with one line.
"""

from __future__ import annotations

import io
import lzma
import os
import posixpath
import stat
import zipfile
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, cast

from . import conf
from .progress import human_bytes
from .sourcerules import WELL_KNOWN, PublishError, SourceRules

__all__ = ["PublishError", "Source", "SourceFile", "SourceRules", "normalize_path", "read_source"]


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


@dataclass
class Source:
    """What a source offers: the files to publish, what the rules skipped
    (source paths, a folder as ``name/``) and the zip's stripped top folder."""

    files: list[SourceFile]
    skipped: list[str] = field(default_factory=list)
    top_folder: str = ""


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _utf8_name(relative: str) -> str:
    """``relative`` if it is UTF-8; os.walk gives a name that is not with surrogate escapes."""
    try:
        relative.encode("utf-8")
    except UnicodeEncodeError as exc:
        shown = os.fsencode(relative).decode("utf-8", "backslashreplace")
        raise PublishError(f"{shown}: file name is not UTF-8; rename it") from exc
    return relative


def _directory_files(root: Path, rules: SourceRules) -> Source:
    real_root = os.path.realpath(root)
    budget = _Budget()
    source = Source([])
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
        prefix = [] if relative_dir == "." else relative_dir.split(os.sep)
        kept = []
        for name in sorted(dirnames):
            if rules.skips_folder([*prefix, name]):
                source.skipped.append("/".join([*prefix, name]) + "/")
                continue
            kept.append(name)
            ancestors[os.path.join(dirpath, name)] = above | {real_dir}
        dirnames[:] = kept
        for name in sorted(filenames):
            parts = [*prefix, name]
            if rules.skips(parts):
                source.skipped.append("/".join(parts))
                continue
            source.files.append(_directory_file(dirpath, real_dir, real_root, parts, budget))
    return source


def _directory_file(dirpath: str, real_dir: str, real_root: str, parts: list[str], budget: _Budget) -> SourceFile:
    relative = _utf8_name("/".join(parts))
    full = os.path.join(dirpath, parts[-1])
    try:
        info = os.lstat(full)
        # Only a link needs resolving: a plain file in a directory
        # already known to be inside SOURCE is inside too.
        real = os.path.join(real_dir, parts[-1])
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
    return SourceFile(normalize_path(relative), info.st_size, _opener(real))


def _raise(error: OSError) -> None:
    raise PublishError(f"{error.filename}: {error.strerror or error}")


def _opener(path: str) -> Callable[[], IO[bytes]]:
    return lambda: open(path, "rb")


def _zip_parts(info: zipfile.ZipInfo) -> list[str]:
    """An entry's path as names, refusing a name that is not a plain path inside the zip."""
    # zipfile cuts ``filename`` at a NUL; ``orig_filename`` is what the zip says.
    if "\x00" in info.orig_filename:
        raise PublishError(f"zip entry {info.orig_filename!r}: file names may not contain NUL")
    name = info.filename
    if name.startswith("/") or (len(name) > 1 and name[1] == ":") or ".." in name.split("/"):
        raise PublishError(f"zip entry {name!r} points outside SOURCE")
    parts = name.split("/")
    while len(parts) > 1 and parts[0] in {"", "."}:
        parts.pop(0)
    return parts


def _top_folder(entries: list[list[str]], rules: SourceRules) -> str:
    """The one folder every published entry sits in (what zipping a build folder gives), or ""."""
    tops = set()
    for parts in entries:
        if len(parts) == 1:
            if not rules.skips(parts):
                return ""
        elif not rules.skips_folder(parts[:1]):
            tops.add(parts[0])
    if len(tops) != 1:
        return ""
    (top,) = tops
    return "" if top == WELL_KNOWN else top


def _zip_files(archive: zipfile.ZipFile, rules: SourceRules, keep_top_folder: bool) -> Source:
    entries = [(info, _zip_parts(info)) for info in archive.infolist() if not info.is_dir()]
    top = "" if keep_top_folder else _top_folder([parts for _, parts in entries], rules)
    source = Source([], top_folder=top)
    members = {info.filename: info for info in archive.infolist()}
    budget = _Budget()
    files: dict[str, SourceFile] = {}
    for info, parts in entries:
        if top and parts[0] != top:
            source.skipped.append(rules.shown(parts))
            continue
        inner = parts[1:] if top else parts
        if rules.skips(inner):
            source.skipped.append("/".join([top, rules.shown(inner)]) if top else rules.shown(inner))
            continue
        name = info.filename
        target = info
        if stat.S_ISLNK(info.external_attr >> 16):
            target = _zip_link_target(archive, members, info)
        if target.flag_bits & 0x1:
            raise PublishError(f"zip entry {name!r} is encrypted")
        budget.take(name, target.file_size)
        path = normalize_path("/".join(inner))
        if path in files:
            raise PublishError(f"zip entry {name!r} appears twice")
        files[path] = SourceFile(path, target.file_size, _zip_opener(archive, target))
    source.files = list(files.values())
    # A folder is listed once, however many of its entries were skipped.
    source.skipped = list(dict.fromkeys(source.skipped))
    return source


def _zip_link_target(
    archive: zipfile.ZipFile, members: dict[str, zipfile.ZipInfo], link: zipfile.ZipInfo
) -> zipfile.ZipInfo:
    with _ZipMember(archive, link) as stream:
        target = stream.read().decode("utf-8", "replace")
    resolved = posixpath.normpath(posixpath.join(posixpath.dirname(link.filename), target))
    if target.startswith("/") or resolved == ".." or resolved.startswith("../"):
        raise PublishError(f"zip entry {link.filename!r} is a link that points outside SOURCE")
    member = members.get(resolved)
    if member is None or member.is_dir() or stat.S_ISLNK(member.external_attr >> 16):
        raise PublishError(f"zip entry {link.filename!r} is a link to no file in the zip")
    return member


#: What reading a damaged member raises: a CRC mismatch or a bad header
#: (BadZipFile), a broken deflate, LZMA or bzip2 (OSError) stream, a
#: truncated one (EOFError), an unknown compression method.
_ZIP_DAMAGE = (zipfile.BadZipFile, zlib.error, lzma.LZMAError, EOFError, OSError, NotImplementedError)


class _ZipMember(io.BufferedIOBase):
    """A zip member's bytes: damage found while reading is a PublishError naming the entry."""

    def __init__(self, archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> None:
        super().__init__()
        self._name = info.filename
        try:
            self._stream = archive.open(info)
        except _ZIP_DAMAGE as exc:
            raise self._damaged(exc) from exc

    def readable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        try:
            return self._stream.read(-1 if size is None else size)
        except _ZIP_DAMAGE as exc:
            raise self._damaged(exc) from exc

    def close(self) -> None:
        self._stream.close()
        super().close()

    def _damaged(self, exc: Exception) -> PublishError:
        reason = str(exc) or type(exc).__name__
        return PublishError(f"zip entry {self._name!r} is damaged and cannot be read ({reason})")


def _zip_opener(archive: zipfile.ZipFile, info: zipfile.ZipInfo) -> Callable[[], IO[bytes]]:
    return lambda: cast(IO[bytes], _ZipMember(archive, info))


@contextmanager
def read_source(
    source: str | os.PathLike[str], rules: SourceRules | None = None, *, keep_top_folder: bool = False
) -> Iterator[Source]:
    """The files of a directory or a zip, filtered by ``rules``, validated, not yet read.

    A zip whose every published entry sits in one folder is read without
    that folder unless ``keep_top_folder``.
    """
    rules = rules or SourceRules()
    path = Path(source)
    if path.is_dir():
        yield _directory_files(path, rules)
        return
    if not path.exists():
        raise PublishError(f"{source}: no such file or directory")
    try:
        archive = zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise PublishError(f"{source}: not a directory or a zip file") from exc
    except UnicodeDecodeError as exc:
        # Raised for an entry flagged UTF-8 (bit 11) whose name is not.
        name = bytes(exc.object).decode("utf-8", "backslashreplace")
        raise PublishError(f"{source}: zip entry '{name}' is marked UTF-8 but its name is not UTF-8") from exc
    except OSError as exc:
        raise PublishError(f"{source}: {exc.strerror or exc}") from exc
    with archive:
        yield _zip_files(archive, rules, keep_top_folder)
