"""Process wiring: this process's cache, made once, warmed, kept across fork.

``cache.py`` is the cache alone. This module makes the process's one
instance: with the loader the app registers once Django is ready, from the
snapshot when there is one, with its hooks sending the Django signals, and
with the invalidation backend started on it.

The WSGI and ASGI wrappers import this module (through ``serve.py``) before
Django is set up, so it imports no model: ``AppConfig.ready`` hands it the
database loader (``use_loader``).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

import django
from django.apps import apps
from django.core.exceptions import ImproperlyConfigured
from django.db import connections

from . import conf, invalidation, localtier, signals, traffic
from .access import AccessBackend, AccessGate
from .cache import AssetCache, Loader
from .feed import ChangeRecord
from .snapshot import Snapshot, SnapshotError

logger = logging.getLogger("django_assetcache")

_cache: AssetCache | None = None
_cache_lock = threading.Lock()
_make_loader: Callable[[], Loader] | None = None
_access: AccessGate | None = None
_make_access: Callable[[], AccessBackend] | None = None
_make_reporter: Callable[[AssetCache, Callable[[], None]], Any] | None = None
_note_applied: Callable[[ChangeRecord], None] | None = None
_reporter: Any = None


def use_loader(make_loader: Callable[[], Loader]) -> None:
    """How this process's cache reads the database (set by ``AppConfig.ready``)."""
    global _make_loader
    _make_loader = make_loader


def use_access(make_backend: Callable[[], AccessBackend]) -> None:
    """How this process's access gate asks the database (set by ``AppConfig.ready``)."""
    global _make_access
    _make_access = make_backend


def get_access() -> AccessGate:
    """This process's access gate for private sites, made on first use."""
    global _access
    gate = _access
    if gate is None:
        if _make_access is None:
            raise ImproperlyConfigured("django_assetcache is not ready: it must be in INSTALLED_APPS")
        gate = _access = AccessGate(_make_access(), conf.get().PASSWORD_ATTEMPTS)
    return gate


def use_reporter(
    make_reporter: Callable[[AssetCache, Callable[[], None]], Any], note_applied: Callable[[ChangeRecord], None]
) -> None:
    """What reports this process's counts (``reporting.Reporter``, set by
    ``AppConfig.ready``), and what notes each change applied."""
    global _make_reporter, _note_applied
    _make_reporter = make_reporter
    _note_applied = note_applied


def _start_reporter(cache: AssetCache) -> None:
    """The reporting thread of this process (one per process, off the request path)."""
    global _reporter
    if _reporter is not None:
        _reporter.stop()
    _reporter = None
    if _make_reporter is not None:
        try:
            _reporter = _make_reporter(cache, release_connections)
            _reporter.start()
        except Exception:
            logger.warning("assetcache: cannot start reporting", exc_info=True)


def get_cache() -> AssetCache:
    cache = _cache
    if cache is None:
        cache = _create()
    return cache


def cache_ready() -> bool:
    """Whether this process's cache exists (creating it may query the database)."""
    return _cache is not None


def _create() -> AssetCache:
    global _cache
    with _cache_lock:
        if _cache is None:
            if _make_loader is None:
                raise ImproperlyConfigured(
                    "django_assetcache is not ready: it must be in INSTALLED_APPS and Django set up before it serves"
                )
            cache = AssetCache(_make_loader())
            cache.on_evicted = _send_evicted
            cache.on_applied = _send_invalidated
            if hydrate(cache):
                cache.poll()  # replay what changed since the snapshot
            else:
                try:
                    cache.start()
                except Exception:
                    logger.warning("assetcache: cannot read the change feed", exc_info=True)
            invalidation.get_backend().start(cache, release_connections)
            _start_reporter(cache)
            _cache = cache
        return _cache


def hydrate(cache: AssetCache) -> bool:
    """Give ``cache`` the snapshot; False when there is no usable snapshot
    (the cache then fills lazily from the database)."""
    path = cache.settings.SNAPSHOT_PATH
    if not path or not os.path.exists(path):
        return False
    try:
        snapshot = Snapshot(path)
    except SnapshotError as exc:
        logger.warning("assetcache: ignoring snapshot %s: %s", path, exc)
        return False
    if snapshot.domain != cache.settings.DOMAIN:
        logger.warning("assetcache: ignoring snapshot %s made for domain %r", path, snapshot.domain)
        return False
    cache.use_snapshot(snapshot)
    return True


def reset() -> None:
    """Forget the process cache; the next request creates a fresh one."""
    global _cache, _access, _reporter
    with _cache_lock:
        _cache = None
        _access = None
        invalidation.reset()
        if _reporter is not None:
            _reporter.stop()
        _reporter = None


def _after_fork_in_child() -> None:
    # Threads do not survive fork: a cache made before it (gunicorn
    # --preload) keeps its data but needs fresh locks and its own listener.
    global _cache_lock, _reporter
    _cache_lock = threading.Lock()
    traffic.zero()  # the parent reports what it counted
    _reporter = None
    cache = _cache
    if cache is not None:
        cache.renew_locks()
        invalidation.get_backend().start(cache, release_connections)
        _start_reporter(cache)


os.register_at_fork(after_in_child=_after_fork_in_child)


def warm() -> AssetCache:
    """Create this process's cache now, from the snapshot when there is one.

    Call it from gunicorn's ``post_worker_init`` or ``post_fork`` hook (or at
    the end of ``wsgi.py`` under ``--preload``) so the first request does not
    pay for loading. ``post_fork`` runs before a worker loads the application:
    Django is set up here then (DJANGO_SETTINGS_MODULE must be in the
    environment).

    The database connections loading opened are closed again: under
    ``--preload`` this process forks next, and workers sharing one
    connection's socket garble each other's queries.
    """
    if not apps.ready:
        django.setup()
    cache = get_cache()
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close()
    return cache


def reporter() -> Any:
    """This process's reporting thread's owner, if it has one."""
    return _reporter


def stats() -> dict[str, Any]:
    """Counters of this process's cache."""
    return get_cache().stats()


def release_connections() -> None:
    """Close database connections that are broken or past CONN_MAX_AGE.

    Django does this at the end of each request it handles; the WSGI and ASGI
    wrappers answer without Django's handler, and the invalidation listener
    reads the feed on its own thread, so they do it after using the database.
    Connections inside a transaction (as in tests) are left alone.
    """
    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:
            connection.close_if_unusable_or_obsolete()


def _send_evicted(reason: str, count: int) -> None:
    signals.evicted.send(sender=AssetCache, reason=reason, count=count)


def _send_invalidated(change: ChangeRecord) -> None:
    if _note_applied is not None:
        _note_applied(change)
    gate = _access
    if gate is not None:
        gate.forget(change.kind)
    signals.invalidated.send(sender=AssetCache, change_id=change.id, site_id=change.site_id, paths=change.paths)


def _forget_evicted_files(paths: list[str]) -> None:
    """Drop this process's entries that send an evicted tier file.

    A hit never checks that its file still exists (it must not stat), so an
    entry must go before its file does; the next request builds it again and
    the tier brings the blob back (from its delayed-delete list, else by
    downloading it).
    """
    cache = _cache
    if cache is not None:
        cache.forget_files(paths)


localtier.listeners.append(_forget_evicted_files)
