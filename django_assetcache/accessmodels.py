"""The rows private sites need beside ``Site``: share links and used tickets.

Imported by ``models.py`` (Django finds an app's models through that
module); the site is named by string, so this module imports no other.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class ShareLink(models.Model):
    """A signed link that lets whoever holds it see one site until it
    expires or is revoked. The signed value names this row, so revoking
    (or deleting) the row refuses the link and the cookies it gave."""

    site = models.ForeignKey("django_assetcache.Site", on_delete=models.CASCADE, related_name="share_links")
    note = models.CharField(_("note"), max_length=200, blank=True, help_text=_("Who or what it is for."))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    expires_at = models.DateTimeField(_("expires"))
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("share link")
        verbose_name_plural = _("share links")

    def __str__(self) -> str:
        return f"share link #{self.pk}"

    @property
    def active(self) -> bool:
        return self.revoked_at is None and self.expires_at > timezone.now()


class UsedTicket(models.Model):
    """A sign-in ticket already exchanged: its id is the primary key, so the
    insert that marks it used fails for a replay, on any process. Rows are
    deleted once the ticket would have expired anyway."""

    id = models.CharField(primary_key=True, max_length=64)
    expires_at = models.DateTimeField(db_index=True)

    class Meta:
        verbose_name = _("used sign-in ticket")
        verbose_name_plural = _("used sign-in tickets")

    def __str__(self) -> str:
        return f"ticket {self.id[:8]}…"
