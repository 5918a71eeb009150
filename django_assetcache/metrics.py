"""Prometheus metrics, published from the counts every second.

Nothing here runs per request: the request path counts in plain integers
(``traffic.py``, the cache's own counters), and the reporting thread calls
``Publisher.publish`` once a second to add what grew to ``prometheus_client``
counters and set its gauges. In prometheus_client's multiprocess mode
(``PROMETHEUS_MULTIPROC_DIR``) every worker writes its own file and the
metrics view sums them; gauges of processes that exited drop out once the
server calls ``multiprocess.mark_process_dead`` (docs/observability.md).

Publishes, drafts, promotes and rollbacks run in other processes (commands,
the admin, on any machine): ``DeployCollector`` reads their tally from the
database at scrape time instead, so every machine exports the cluster's
totals (docs/observability.md says how to aggregate them).

This module imports prometheus_client (the ``[metrics]`` extra): only
``reporting.py`` and the metrics view import it, when ASSETCACHE_METRICS is on.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess
from prometheus_client.core import CounterMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from . import traffic

PREFIX = "assetcache_"
ALL_SITES = "*"

REQUESTS = Counter(PREFIX + "requests", "Requests answered on site hosts, by site and status class", ["site", "status"])
SENT = Counter(PREFIX + "sent_bytes", "Body bytes sent on site hosts, by site", ["site"])
LOOKUPS = Counter(PREFIX + "cache_lookups", "Cache lookups: hit, negative_hit (a known 404), miss", ["result"])
EVICTIONS = Counter(PREFIX + "cache_evictions", "Entries evicted for room, by the bound that was hit", ["reason"])
CHANGES = Counter(PREFIX + "changes_applied", "Changes from the change feed applied")
DOWNLOADS = Counter(PREFIX + "local_tier_downloads", "Blobs the local disk tier downloaded")
DOWNLOAD_BYTES = Counter(PREFIX + "local_tier_download_bytes", "Bytes the local disk tier downloaded")
HELD = Gauge(PREFIX + "cache_bytes", "Bytes the caches hold", multiprocess_mode="livesum")
ENTRIES = Gauge(PREFIX + "cache_entries", "Entries the caches hold", multiprocess_mode="livesum")
TIER_BYTES = Gauge(PREFIX + "local_tier_bytes", "Bytes of the local disk tier", multiprocess_mode="livemax")
SNAPSHOT_AGE = Gauge(
    PREFIX + "snapshot_age_seconds", "Age of the oldest snapshot a process serves from", multiprocess_mode="livemax"
)
BEHIND = Gauge(
    PREFIX + "change_lag_seconds",
    "Seconds from the commit of the last change a process applied to its application",
    multiprocess_mode="livemax",
)
LAG = Histogram(
    PREFIX + "change_apply_seconds",
    "Seconds from a change's commit to its application in a process",
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)

#: Label of each status class index (``status // 100``).
STATUS_LABELS = {index: f"{index}xx" for index in traffic.STATUS_CLASSES}


class Publisher:
    """Adds what grew since the last call to the registry's counters."""

    def __init__(self, per_site: bool, site_names: Any) -> None:
        self.per_site = per_site
        #: Site id → label (``subdomain``); called with the ids it lacks.
        self.site_names = site_names
        self.names: dict[int, str] = {traffic.NO_SITE: "-"}
        self.reader = traffic.Reader()
        self.seen: dict[str, int] = {}

    def publish(self, stats: dict[str, Any], tier: dict[str, Any] | None, lags: list[float]) -> None:
        self._traffic(self.reader.take())
        self._grew(LOOKUPS.labels("hit"), "hits", stats["hits"])
        self._grew(LOOKUPS.labels("negative_hit"), "negative_hits", stats["negative_hits"])
        self._grew(LOOKUPS.labels("miss"), "misses", stats["misses"])
        self._grew(EVICTIONS.labels("memory"), "evictions_memory", stats["evictions_memory"])
        self._grew(EVICTIONS.labels("entries"), "evictions_entries", stats["evictions_entries"])
        self._grew(CHANGES, "changes", stats["changes_applied"])
        HELD.set(stats["bytes_held"])
        ENTRIES.set(stats["entries"])
        loaded = stats.get("snapshot_loaded_at")
        SNAPSHOT_AGE.set(time.time() - loaded if loaded else 0)
        for lag in lags:
            LAG.observe(lag)
        if lags:
            BEHIND.set(lags[-1])
        if tier is not None:
            TIER_BYTES.set(tier["bytes"])
            self._grew(DOWNLOADS, "downloads", tier["downloads"])
            self._grew(DOWNLOAD_BYTES, "download_bytes", tier["download_bytes"])

    def _grew(self, counter: Any, key: str, value: int) -> None:
        delta = value - self.seen.get(key, 0)
        self.seen[key] = value
        if delta > 0:
            counter.inc(delta)

    def _traffic(self, deltas: dict[int, traffic.Counts]) -> None:
        if not deltas:
            return
        unknown = [site_id for site_id in deltas if site_id not in self.names]
        if unknown and self.per_site:
            self.names.update(self.site_names(unknown))
        for site_id, delta in deltas.items():
            site = self.names.get(site_id, str(site_id)) if self.per_site else ALL_SITES
            for index, label in STATUS_LABELS.items():
                if delta[index]:
                    REQUESTS.labels(site, label).inc(delta[index])
            if delta[traffic.SENT]:
                SENT.labels(site).inc(delta[traffic.SENT])


#: The kinds of the deploy tally, each exported (at 0 when none) without the site label.
DEPLOY_KINDS = ("publish", "draft", "promote", "rollback")

#: One row of the deploy tally: site, kind, count, seconds in all.
TallyRow = tuple[str, str, int, float]


class DeployCollector(Collector):
    """The deploy tally (read by ``rows`` at each scrape) as a counter and a
    summary by site and kind; by kind alone without ``per_site``."""

    def __init__(self, rows: Callable[[], Iterable[TallyRow]], per_site: bool) -> None:
        self.rows = rows
        self.per_site = per_site

    def collect(self) -> Iterator[Metric]:
        labels = ["site", "kind"] if self.per_site else ["kind"]
        totals: dict[tuple[str, ...], tuple[int, float]] = {}
        if not self.per_site:
            totals = {(kind,): (0, 0.0) for kind in DEPLOY_KINDS}
        for site, kind, count, seconds in self.rows():
            key: tuple[str, ...] = (site, kind) if self.per_site else (kind,)
            had_count, had_seconds = totals.get(key, (0, 0.0))
            totals[key] = (had_count + count, had_seconds + seconds)
        counts = CounterMetricFamily(
            PREFIX + "deploys", "Publishes, drafts, promotes and rollbacks committed, by kind", labels=labels
        )
        durations = SummaryMetricFamily(
            PREFIX + "deploy_seconds", "Seconds a publish, draft, promote or rollback took", labels=labels
        )
        for key, (count, seconds) in sorted(totals.items()):
            counts.add_metric(key, count)
            durations.add_metric(key, count, seconds)
        yield counts
        yield durations


def exposition(*collectors: Collector) -> bytes:
    """The metrics of every process on this machine (multiprocess mode), or
    of this process alone; then those of ``collectors``."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]  # untyped in the library
        processes = generate_latest(registry)
    else:
        processes = generate_latest()
    extra = CollectorRegistry()
    for collector in collectors:
        extra.register(collector)
    return processes + generate_latest(extra)
