"""This process's local disk tier, made from the settings on first use.

A tier holds locks, a timer and threads in flight: none of it survives a
fork, so a child process builds its own from the directory.
"""

from __future__ import annotations

import os
import threading

from . import conf
from .localtier import LocalTier

_tier: LocalTier | None = None
_tier_key: tuple[str, float | int, float] | None = None
_tier_lock = threading.Lock()


def get_tier() -> LocalTier:
    """This process's tier, per the current settings (created on first use)."""
    settings = conf.get()
    key = (settings.LOCAL_DIR, settings.DISK_LIMIT, settings.DELETE_DELAY)
    tier = _tier
    if tier is not None and _tier_key == key:
        return tier
    return _create(key)


def _create(key: tuple[str, float | int, float]) -> LocalTier:
    global _tier, _tier_key
    with _tier_lock:
        if _tier is None or _tier_key != key:
            if _tier is not None:
                _tier.close()
            directory, limit, delay = key
            _tier = LocalTier(directory, disk_limit=limit, delete_delay=delay)
            _tier_key = key
        return _tier


def reset() -> None:
    """Forget this process's tier (its files stay); the next use rebuilds it."""
    global _tier, _tier_key
    with _tier_lock:
        if _tier is not None:
            _tier.close()
        _tier = None
        _tier_key = None


def _after_fork_in_child() -> None:
    # Locks, timers and in-flight downloads do not survive fork: the child
    # builds its own tier from the directory on first use.
    global _tier, _tier_key, _tier_lock
    _tier_lock = threading.Lock()
    _tier = None
    _tier_key = None


os.register_at_fork(after_in_child=_after_fork_in_child)


def current() -> LocalTier | None:
    """This process's local tier if one was made, without making one."""
    return _tier
