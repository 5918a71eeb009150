"""The reporting thread: this process's counts, published off the request path.

Every second it hands the counts to the Prometheus publisher (when
ASSETCACHE_METRICS is on); every ASSETCACHE_STATS_INTERVAL seconds it adds
what each site was served since the last flush to ``SiteTraffic`` (one
upsert statement for every site touched, hour and day rows) and rewrites
this process's ``Heartbeat`` (each one statement). A flush that fails keeps
its counts for the next one and logs once until one succeeds again; nothing
here can slow or break a request.

``runtime.py`` starts one per process, again in a forked child.
"""

from __future__ import annotations

import datetime
import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from typing import Any

from django.db import connections, router
from django.utils import timezone

from . import conf, tiers, traffic
from .cache import AssetCache
from .models import Site
from .usage import Heartbeat, SiteTraffic

logger = logging.getLogger("django_assetcache")

#: Hour rows older than this are deleted (day rows are kept).
HOURS_KEPT = 48

_lags: list[float] = []


def note_applied(change: Any) -> None:
    """Remember how long ``change`` took from its commit to here (runtime's
    ``on_applied`` hook; the reporting thread publishes it)."""
    created = getattr(change, "created_at", None)
    if isinstance(created, datetime.datetime) and len(_lags) < 10_000:
        _lags.append(max(0.0, time.time() - created.timestamp()))


def _take_lags() -> list[float]:
    taken = _lags[:]
    del _lags[: len(taken)]
    return taken


def site_names(site_ids: list[int]) -> dict[int, str]:
    return dict(Site.objects.filter(pk__in=site_ids).values_list("pk", "subdomain"))


class Reporter:
    def __init__(self, cache: AssetCache, release_connections: Callable[[], None]) -> None:
        settings = conf.get()
        self.cache = cache
        self.release_connections = release_connections
        self.interval = settings.STATS_INTERVAL
        self.host = socket.gethostname()[:255]
        self.pid = os.getpid()
        self.started_at = timezone.now()
        self.reader = traffic.Reader()
        self.failing = False
        self.pruned: datetime.datetime | None = None
        self.publisher: Any = None
        if settings.METRICS:
            # prometheus_client is the optional [metrics] extra.
            from .metrics import Publisher

            self.publisher = Publisher(settings.METRICS_PER_SITE, site_names)
        self.stopping = threading.Event()
        self.thread: threading.Thread | None = None

    @property
    def tick(self) -> float:
        return 1.0 if self.publisher is not None else self.interval

    def start(self) -> None:
        if not self.tick:
            return
        self.thread = threading.Thread(target=self._run, name="assetcache-reporting", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.stopping.set()

    def _run(self) -> None:
        next_flush = time.monotonic() + self.interval
        while not self.stopping.wait(self.tick):
            self.publish()
            if self.interval and time.monotonic() >= next_flush:
                next_flush = time.monotonic() + self.interval
                self.flush()

    def publish(self) -> None:
        if self.publisher is None:
            return
        try:
            tier = tiers.current()
            self.publisher.publish(self.cache.stats(), tier.stats() if tier is not None else None, _take_lags())
        except Exception:
            logger.warning("assetcache: cannot publish metrics", exc_info=True)
        finally:
            self.release_connections()

    def flush(self) -> bool:
        """Write what was served since the last flush, and the heartbeat.

        Each write is one statement, committed on its own: no transaction
        holds SQLite's write lock past a statement, so a publish in another
        process is not turned away by this thread.
        """
        deltas = self.reader.take()
        try:
            self._add_traffic(deltas)
            self._beat()
        except Exception:
            self.reader.give_back(deltas)
            if not self.failing:
                logger.warning("assetcache: cannot write traffic and heartbeat; kept for the next flush", exc_info=True)
            self.failing = True
            return False
        finally:
            self.release_connections()
        self.failing = False
        return True

    def _add_traffic(self, deltas: dict[int, traffic.Counts]) -> None:
        deltas.pop(traffic.NO_SITE, None)
        if not deltas:
            return
        now = timezone.now()
        hour = now.replace(minute=0, second=0, microsecond=0)
        day = hour.replace(hour=0)
        existing = set(Site.objects.filter(pk__in=list(deltas)).values_list("pk", flat=True))
        rows = []
        for site_id, delta in deltas.items():
            if site_id not in existing:
                continue  # deleted since: its traffic goes with it
            requests = traffic.requests(delta)
            misses = delta[traffic.MISSES]
            values = (requests, delta[traffic.SENT], requests - misses, misses, delta[traffic.NOT_FOUND], delta[5])
            rows.append((site_id, SiteTraffic.Period.HOUR.value, hour, *values))
            rows.append((site_id, SiteTraffic.Period.DAY.value, day, *values))
        upsert(rows)
        if hour != self.pruned:
            self.pruned = hour
            old = hour - datetime.timedelta(hours=HOURS_KEPT)
            SiteTraffic.objects.filter(period=SiteTraffic.Period.HOUR, start__lt=old).delete()

    def _beat(self) -> None:
        """Insert or rewrite this process's heartbeat, in one statement."""
        stats = self.cache.stats()
        hits = stats["hits"] + stats["negative_hits"]
        beat = Heartbeat(
            host=self.host,
            pid=self.pid,
            started_at=self.started_at,
            updated_at=timezone.now(),
            last_change_id=stats["last_change_id"] or 0,
            entries=stats["entries"],
            bytes_held=stats["bytes_held"],
            hits=hits,
            lookups=hits + stats["misses"],
            snapshot_change_id=stats["snapshot_change_id"],
        )
        Heartbeat.objects.bulk_create(
            [beat], update_conflicts=True, unique_fields=["host", "pid"], update_fields=BEAT_FIELDS
        )


BEAT_FIELDS = [
    "started_at",
    "updated_at",
    "last_change_id",
    "entries",
    "bytes_held",
    "hits",
    "lookups",
    "snapshot_change_id",
]
COUNTED = ("requests", "bytes_sent", "hits", "misses", "not_found", "server_errors")


def upsert(rows: list[tuple[Any, ...]]) -> None:
    """Add counts to traffic rows, creating the rows that do not exist yet:
    ``INSERT … ON CONFLICT … DO UPDATE`` (SQLite 3.24+, PostgreSQL) adding
    to what other processes wrote, in one statement."""
    if not rows:
        return
    alias = router.db_for_write(SiteTraffic)
    connection = connections[alias]
    quote = connection.ops.quote_name
    table = quote(SiteTraffic._meta.db_table)
    columns = ["site_id", "period", "start", *COUNTED]
    placeholders = "(" + ", ".join(["%s"] * len(columns)) + ")"
    additions = ", ".join(f"{quote(name)} = {table}.{quote(name)} + excluded.{quote(name)}" for name in COUNTED)
    sql = (
        f"INSERT INTO {table} ({', '.join(quote(name) for name in columns)}) "
        f"VALUES {', '.join([placeholders] * len(rows))} "
        f"ON CONFLICT ({quote('site_id')}, {quote('period')}, {quote('start')}) DO UPDATE SET {additions}"
    )
    params: list[Any] = []
    for row in rows:
        params.extend([row[0], row[1], connection.ops.adapt_datetimefield_value(row[2]), *row[3:]])
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
