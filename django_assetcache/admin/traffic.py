"""Traffic in the admin: columns for the site list, a chart per site, and
the cluster of serving processes for the cache page.

Everything is read from the rows every process's reporting thread writes
(``usage.py``): sums over every process and machine. Charts are SVG made
here on the server; the page loads nothing from elsewhere.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any

from django.contrib import admin
from django.db.models import Min, OuterRef, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .. import conf
from ..models import Change, Site
from ..progress import human_bytes
from ..usage import Heartbeat, SiteTraffic

#: A process whose heartbeat is older than this many flush intervals is stale.
STALE_INTERVALS = 3
DAYS_SHOWN = 30
HOURS_SHOWN = 48


def today() -> datetime.datetime:
    return timezone.now().replace(hour=0, minute=0, second=0, microsecond=0)


def with_traffic_today(queryset: QuerySet[Site]) -> QuerySet[Site]:
    """Sites annotated with today's requests and bytes (subqueries, so a
    join elsewhere in the query multiplies nothing)."""
    rows = SiteTraffic.objects.filter(site=OuterRef("pk"), period=SiteTraffic.Period.DAY, start=today())
    return queryset.annotate(
        requests_today=Coalesce(Subquery(rows.values("requests")[:1]), 0),
        bytes_today=Coalesce(Subquery(rows.values("bytes_sent")[:1]), 0),
    )


class TrafficColumns:
    """Site admin columns and the chart field, by the reporting threads' rows."""

    @admin.display(description=_("requests today"), ordering="requests_today")
    def requests_today(self, site: Site) -> int:
        value = getattr(site, "requests_today", None)
        return int(value) if value is not None else 0

    @admin.display(description=_("bytes today"), ordering="bytes_today")
    def bytes_today(self, site: Site) -> str:
        value = getattr(site, "bytes_today", None)
        return human_bytes(int(value or 0))

    @admin.display(description=_("traffic"))
    def traffic_chart(self, site: Site) -> str:
        if not site.pk:
            return "-"
        return site_charts(site.pk)


@dataclass
class Bar:
    label: str
    requests: int
    bytes_sent: int
    hits: int
    not_found: int


def _bars(site_id: int, period: str, starts: list[datetime.datetime], label: str) -> list[Bar]:
    rows = {
        row.start: row
        for row in SiteTraffic.objects.filter(
            site_id=site_id, period=period, start__gte=starts[0], start__lte=starts[-1]
        )
    }
    bars = []
    for start in starts:
        row = rows.get(start)
        text = timezone.localtime(start).strftime(label)
        if row is None:
            bars.append(Bar(text, 0, 0, 0, 0))
        else:
            bars.append(Bar(text, row.requests, row.bytes_sent, row.hits, row.not_found))
    return bars


def site_charts(site_id: int) -> SafeString:
    """Requests per day (30 days) and per hour (48 hours), as SVG bar charts."""
    day = today()
    days = [day - datetime.timedelta(days=n) for n in range(DAYS_SHOWN - 1, -1, -1)]
    hour = timezone.now().replace(minute=0, second=0, microsecond=0)
    hours = [hour - datetime.timedelta(hours=n) for n in range(HOURS_SHOWN - 1, -1, -1)]
    daily = _bars(site_id, SiteTraffic.Period.DAY, days, "%b %d")
    hourly = _bars(site_id, SiteTraffic.Period.HOUR, hours, "%H:00")
    return format_html(
        '<div class="assetcache-charts">{}{}</div>',
        chart(daily, gettext("Requests per day, last %(n)d days") % {"n": DAYS_SHOWN}, "traffic-days"),
        chart(hourly, gettext("Requests per hour, last %(n)d hours") % {"n": HOURS_SHOWN}, "traffic-hours"),
    )


WIDTH, HEIGHT, TOP, BOTTOM, LEFT = 640, 150, 16, 22, 44


def chart(bars: list[Bar], title: str, element_id: str) -> SafeString:
    """One SVG bar chart: a bar per period, its 404s in a darker band, a
    tooltip with requests, hit ratio and bytes."""
    peak = max((bar.requests for bar in bars), default=0) or 1
    step = (WIDTH - LEFT) / len(bars)
    plot = HEIGHT - TOP - BOTTOM
    every = max(1, len(bars) // 6)
    parts = []
    for index, bar in enumerate(bars):
        x = LEFT + index * step
        height = plot * bar.requests / peak
        missing = plot * bar.not_found / peak
        ratio = f"{bar.hits / bar.requests:.0%}" if bar.requests else "-"
        tip = gettext("%(label)s: %(requests)d requests, %(ratio)s hits, %(bytes)s, %(nf)d 404s") % {
            "label": bar.label,
            "requests": bar.requests,
            "ratio": ratio,
            "bytes": human_bytes(bar.bytes_sent),
            "nf": bar.not_found,
        }
        parts.append(
            format_html(
                '<g><title>{}</title><rect x="{}" y="{}" width="{}" height="{}" class="bar"/>'
                '<rect x="{}" y="{}" width="{}" height="{}" class="nf"/></g>',
                tip,
                *(_n(value) for value in (x + 1, TOP + plot - height, max(step - 2, 1), height)),
                *(_n(value) for value in (x + 1, TOP + plot - missing, max(step - 2, 1), missing)),
            )
        )
        if index % every == 0:
            parts.append(format_html('<text x="{}" y="{}" class="tick">{}</text>', _n(x + 1), HEIGHT - 6, bar.label))
    return format_html(
        '<figure class="assetcache-chart" id="{}"><figcaption>{}</figcaption>'
        '<svg viewBox="0 0 {} {}" width="{}" height="{}" role="img" aria-label="{}">'
        '<text x="0" y="{}" class="tick">{}</text><text x="0" y="{}" class="tick">0</text>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>{}</svg></figure>',
        element_id,
        title,
        WIDTH,
        HEIGHT,
        WIDTH,
        HEIGHT,
        title,
        TOP + 4,
        peak if any(bar.requests for bar in bars) else 0,
        TOP + plot,
        LEFT,
        TOP + plot,
        WIDTH,
        TOP + plot,
        format_html_join("", "{}", ((part,) for part in parts)),
    )


def _n(value: float) -> str:
    """A coordinate as SVG takes it (format_html escapes its arguments to text)."""
    return f"{value:.1f}"


def cluster(newest: int) -> dict[str, Any]:
    """Every process's heartbeat, stale ones marked, with its lag behind the
    ``newest`` change (in changes and in seconds since the first it lacks:
    one query per distinct position, however many processes share it)."""
    now = timezone.now()
    interval = conf.get().STATS_INTERVAL
    stale_after = datetime.timedelta(seconds=max(interval, 1) * STALE_INTERVALS)
    first_missing: dict[int, datetime.datetime | None] = {}
    processes = []
    for beat in Heartbeat.objects.all():
        behind = max(0, newest - beat.last_change_id)
        since = None
        if behind:
            if beat.last_change_id not in first_missing:
                after = Change.objects.filter(id__gt=beat.last_change_id)
                first_missing[beat.last_change_id] = after.aggregate(at=Min("created_at"))["at"]
            first = first_missing[beat.last_change_id]
            since = (now - first).total_seconds() if first else None
        processes.append(
            {
                "beat": beat,
                "stale": now - beat.updated_at > stale_after,
                "behind": behind,
                "lag_seconds": since,
                "bytes_held": human_bytes(beat.bytes_held),
                "hit_percent": beat.hit_ratio * 100 if beat.hit_ratio is not None else None,
                "seen_ago": (now - beat.updated_at).total_seconds(),
            }
        )
    return {"processes": processes, "newest_change": newest, "stats_interval": interval}
