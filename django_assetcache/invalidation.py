"""How every process learns of committed changes.

The ``Change`` table is the source of truth: a process applies the rows after
the last one it applied, in order. Backends differ only in how soon a process
is told to look (``ASSETCACHE_INVALIDATION``):

- ``database`` (default): the request path reads the feed at most every
  ``ASSETCACHE_POLL_INTERVAL`` seconds; one clock comparison otherwise.
- ``postgres``: ``LISTEN``/``NOTIFY``; the notification is sent inside the
  transaction that writes the Change, so it is delivered exactly at commit.
- ``redis``: pub/sub; published right after the commit.
- ``local``: this process only (tests, ``runserver``): applied at commit.

The push backends keep polling as well, so a lost notification or a backend
outage delays a change by at most the poll interval; it is logged.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable
from typing import Any

from django.db import connection

from . import conf
from .cache import AssetCache

logger = logging.getLogger("django_assetcache")

CHANNEL = "assetcache_changes"
#: Seconds a listener waits before reconnecting after an error.
RECONNECT_DELAY = 1.0


def _nothing() -> None:
    pass


class Backend:
    """Polls the feed on the request path; subclasses add a push channel.

    The process wiring (``runtime.py``) starts it with the cache it serves:
    this module never reaches for the process's cache itself.
    """

    name = "database"
    polls = True

    def __init__(self) -> None:
        self.cache: AssetCache | None = None
        self.release_connections: Callable[[], None] = _nothing

    def start(self, cache: AssetCache, release_connections: Callable[[], None]) -> None:
        """Begin telling ``cache`` of changes (in this process); a listener
        calls ``release_connections`` after reading the feed on its thread."""
        self.cache = cache
        self.release_connections = release_connections

    def stop(self) -> None:
        """Stop listening (tests, shutdown)."""

    def before_commit(self, change_id: int) -> None:
        """Inside the transaction that wrote Change ``change_id``."""

    def after_commit(self) -> None:
        """After that transaction committed, in the process that made it:
        its cache applies the change now rather than at the next poll."""
        cache = self.cache
        if cache is not None:
            cache.poll()


class LocalBackend(Backend):
    name = "local"
    polls = False


class ListeningBackend(Backend):
    """Runs ``listen()`` on a daemon thread, reconnecting after errors."""

    def __init__(self) -> None:
        super().__init__()
        self.thread: threading.Thread | None = None
        self.stopping = threading.Event()
        self.connected = threading.Event()

    def start(self, cache: AssetCache, release_connections: Callable[[], None]) -> None:
        super().start(cache, release_connections)
        self.stopping.clear()
        self.thread = threading.Thread(target=self._run, name=f"assetcache-{self.name}-listener", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()
        thread = self.thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=5)
        self.thread = None

    def _run(self) -> None:
        while not self.stopping.is_set():
            try:
                self.listen()
            except Exception:
                self.connected.clear()
                if self.stopping.is_set():
                    return
                logger.warning(
                    "assetcache: %s listener lost its connection; polling every %s s until it is back",
                    self.name,
                    conf.get().POLL_INTERVAL,
                    exc_info=True,
                )
                self.stopping.wait(RECONNECT_DELAY)

    def notified(self) -> None:
        cache = self.cache
        if cache is not None:
            cache.poll()
            self.release_connections()

    def listen(self) -> None:
        raise NotImplementedError


class PostgresBackend(ListeningBackend):
    name = "postgres"

    def before_commit(self, change_id: int) -> None:
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_notify(%s, %s)", [CHANNEL, str(change_id)])

    def listen(self) -> None:
        import psycopg  # optional extra (postgres): only this backend needs it

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        params.pop("prepare_threshold", None)
        with psycopg.connect(**params, autocommit=True) as conn:
            conn.execute(f"LISTEN {CHANNEL}")
            self.connected.set()
            # Catch up on whatever committed while we were not listening.
            self.notified()
            while not self.stopping.is_set():
                for _ in conn.notifies(timeout=1.0, stop_after=1):
                    self.notified()


class RedisBackend(ListeningBackend):
    name = "redis"

    def __init__(self) -> None:
        super().__init__()
        self._client: Any = None

    def client(self) -> Any:
        import redis  # optional extra (redis): only this backend needs it

        if self._client is None:
            self._client = redis.Redis.from_url(conf.get().REDIS_URL, socket_timeout=5, socket_connect_timeout=5)
        return self._client

    def after_commit(self) -> None:
        super().after_commit()
        try:
            self.client().publish(CHANNEL, b"1")
        except Exception:
            logger.warning(
                "assetcache: cannot publish to redis; other processes learn of the change by polling",
                exc_info=True,
            )

    def listen(self) -> None:
        pubsub = self.client().pubsub(ignore_subscribe_messages=True)
        try:
            pubsub.subscribe(CHANNEL)
            self.connected.set()
            self.notified()
            while not self.stopping.is_set():
                message = pubsub.get_message(timeout=1.0)
                if message is not None:
                    self.notified()
        finally:
            pubsub.close()


BACKENDS: dict[str, type[Backend]] = {
    "database": Backend,
    "local": LocalBackend,
    "postgres": PostgresBackend,
    "redis": RedisBackend,
}

_backend: Backend | None = None
_backend_pid = 0
_lock = threading.Lock()


def get_backend() -> Backend:
    """This process's backend (a new one after a fork: threads do not survive it)."""
    global _backend, _backend_pid
    backend = _backend
    if backend is None or _backend_pid != os.getpid():
        with _lock:
            name = conf.get().INVALIDATION
            if name not in BACKENDS:
                raise ValueError(f"ASSETCACHE_INVALIDATION is {name!r}; expected one of {', '.join(BACKENDS)}")
            _backend = backend = BACKENDS[name]()
            _backend_pid = os.getpid()
    return backend


def reset() -> None:
    global _backend
    with _lock:
        if _backend is not None:
            _backend.stop()
        _backend = None


def before_commit(change_id: int) -> None:
    get_backend().before_commit(change_id)


def committed() -> None:
    """Called after a transaction that wrote a Change commits, in that process."""
    get_backend().after_commit()
