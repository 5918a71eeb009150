"""What every serving process reports to the database: traffic per site per
hour and per day, and one heartbeat row per process.

Each process's reporting thread (``reporting.py``) adds what it served since
its last flush with one upsert statement, and rewrites its heartbeat in the
same transaction; the admin sums rows over every process and machine.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _


class SiteTraffic(models.Model):
    """Requests one site was served in one hour or one day, by every process."""

    class Period(models.TextChoices):
        HOUR = "hour", _("hour")
        DAY = "day", _("day")

    site = models.ForeignKey("django_assetcache.Site", on_delete=models.CASCADE, related_name="traffic")
    period = models.CharField(_("period"), max_length=4, choices=Period.choices)
    start = models.DateTimeField(_("start"))
    requests = models.PositiveBigIntegerField(_("requests"), default=0)
    bytes_sent = models.PositiveBigIntegerField(_("bytes sent"), default=0)
    hits = models.PositiveBigIntegerField(_("hits"), default=0)
    misses = models.PositiveBigIntegerField(_("misses"), default=0)
    not_found = models.PositiveBigIntegerField(_("404s"), default=0)
    server_errors = models.PositiveBigIntegerField(_("5xx"), default=0)

    class Meta:
        verbose_name = _("site traffic")
        verbose_name_plural = _("site traffic")
        constraints = [
            models.UniqueConstraint(fields=["site", "period", "start"], name="assetcache_traffic_bucket"),
        ]
        indexes = [models.Index(fields=["period", "start"], name="assetcache_traffic_start")]

    def __str__(self) -> str:
        return f"{self.site_id} {self.period} {self.start:%Y-%m-%d %H:00}"


class Heartbeat(models.Model):
    """What one serving process last said of itself."""

    host = models.CharField(_("host"), max_length=255)
    pid = models.PositiveIntegerField(_("pid"))
    started_at = models.DateTimeField(_("started"))
    updated_at = models.DateTimeField(_("updated"))
    last_change_id = models.BigIntegerField(_("last change applied"), default=0)
    entries = models.PositiveBigIntegerField(_("entries"), default=0)
    bytes_held = models.PositiveBigIntegerField(_("bytes held"), default=0)
    hits = models.PositiveBigIntegerField(_("hits"), default=0)
    lookups = models.PositiveBigIntegerField(_("lookups"), default=0)
    snapshot_change_id = models.BigIntegerField(_("snapshot stamp"), null=True, blank=True)

    class Meta:
        ordering = ["host", "pid"]
        verbose_name = _("heartbeat")
        verbose_name_plural = _("heartbeats")
        constraints = [models.UniqueConstraint(fields=["host", "pid"], name="assetcache_heartbeat_process")]

    def __str__(self) -> str:
        return f"{self.host}:{self.pid}"

    @property
    def hit_ratio(self) -> float | None:
        return self.hits / self.lookups if self.lookups else None
