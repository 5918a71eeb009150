"""Which files of a source are published: the exclusion rules, in the
standard library alone.

The publish command reads them through ``sources.py``; the deploy client
(``deployclient.py``), which runs where Django may not be configured, reads
them here, so both skip the same files.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass


class PublishError(Exception):
    """Bad input: the message is one line a person can act on."""


#: Names skipped by default, as static hosts skip them: besides these, every
#: name starting with a dot except ``.well-known`` (see ``_skipped_by_default``).
DEFAULT_EXCLUDES = ("__MACOSX", "node_modules", "Thumbs.db", "*~", "*.swp")
#: The one dot-name a site needs (RFC 8615): ACME challenges, security.txt.
WELL_KNOWN = ".well-known"


def _skipped_by_default(name: str) -> bool:
    if name.startswith(".") and name != WELL_KNOWN:
        return True
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in DEFAULT_EXCLUDES)


def _clean_pattern(pattern: str) -> str:
    """A name pattern as it is; a path pattern (with a ``/``) as ``/path``, anchored at the root."""
    cleaned = pattern.strip()
    body = cleaned.strip("/")
    if not body:
        raise PublishError(f"{pattern!r}: an empty pattern; give a name or a path such as '*.map' or 'drafts/'")
    return "/" + body if "/" in cleaned else body


def _matches(patterns: tuple[str, ...], parts: list[str]) -> bool:
    """Whether a pattern matches the path ``parts`` or one of its folders.

    A pattern without ``/`` is tried on every name in the path; one with
    a ``/`` (anywhere: ``drafts/``, ``/x``, ``a/b``) on the path from the
    source's root and on each of its folders.
    """
    for pattern in patterns:
        if pattern.startswith("/"):
            anchored = pattern[1:]
            if any(fnmatch.fnmatchcase("/".join(parts[:end]), anchored) for end in range(1, len(parts) + 1)):
                return True
        elif any(fnmatch.fnmatchcase(name, pattern) for name in parts):
            return True
    return False


@dataclass(frozen=True)
class SourceRules:
    """Which files of a source are published.

    In order: a path an ``exclude`` pattern matches is skipped; else a path
    an ``include`` pattern matches is published; else a path the defaults
    skip (dot-names but ``.well-known``, ``DEFAULT_EXCLUDES``) is skipped.
    Patterns are ``fnmatch`` globs, case-sensitive, where ``*`` also
    matches ``/``; a pattern matching a folder matches everything in it.
    """

    exclude: tuple[str, ...] = ()
    include: tuple[str, ...] = ()

    @classmethod
    def of(cls, exclude: Iterable[str] = (), include: Iterable[str] = ()) -> SourceRules:
        return cls(tuple(map(_clean_pattern, exclude)), tuple(map(_clean_pattern, include)))

    def skips(self, parts: list[str]) -> bool:
        if _matches(self.exclude, parts):
            return True
        if _matches(self.include, parts):
            return False
        return any(_skipped_by_default(name) for name in parts)

    def skips_folder(self, parts: list[str]) -> bool:
        """Whether every path in the folder ``parts`` is skipped (so it need not be read)."""
        if _matches(self.exclude, parts):
            return True
        # An include pattern may match a name deeper down: walk the folder.
        return not self.include and any(_skipped_by_default(name) for name in parts)

    def shown(self, parts: list[str]) -> str:
        """How a skipped path is listed: its outermost skipped folder, or itself."""
        for end in range(1, len(parts)):
            if self.skips_folder(parts[:end]):
                return "/".join(parts[:end]) + "/"
        return "/".join(parts)
