"""How processes learn of committed changes (filled in below the cache)."""

from __future__ import annotations


def committed() -> None:
    """Called after a transaction that wrote a Change commits, in that process."""
    from . import cache

    cache.changes_committed()
