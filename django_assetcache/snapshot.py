"""The warm snapshot (see ``assetcache_warmup``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .cache import AssetCache


def hydrate(cache: AssetCache) -> bool:
    """Load the snapshot into ``cache``; False when there is none to load."""
    return False
