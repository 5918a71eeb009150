"""The change feed's rows: one per committed change, the clock every
process catches up by (``record_change`` in models.py appends them).

A row names its site by a plain number, so this module imports no model.
"""

from __future__ import annotations

from django.db import models
from django.utils.translation import gettext_lazy as _

#: A change touching more paths than this is recorded as "the whole site":
#: dropping a site's entries is cheaper than shipping a huge list.
MAX_CHANGE_PATHS = 1000


class Change(models.Model):
    """One committed change, appended in the transaction that made it.

    Its id is the clock every process uses to catch up. ``site_id`` is a plain
    number, not a foreign key, so the row outlives a deleted site.
    ``paths`` lists the request paths touched, or is null for "the whole site".
    """

    class Kind(models.TextChoices):
        #: The files of ``paths`` changed (their variants, or a row deleted).
        PUBLISH = "publish", _("publish")
        #: Which deployment the site's hosts (live, previews, aliases) serve
        #: changed: a publish, rollback, promote, draft, alias or expiry.
        DEPLOY = "deploy", _("deploy")
        SETTINGS = "settings", _("settings")
        DOMAINS = "domains", _("domains")
        DELETE = "delete", _("delete")
        PURGE = "purge", _("purge")
        #: Rows up to ``paths[0]`` were pruned: a process behind that drops its cache.
        PRUNE = "prune", _("prune")
        #: Who may see private sites changed (grants, users, groups, share links).
        ACCESS = "access", _("access")

    id = models.BigAutoField(primary_key=True)
    site_id = models.BigIntegerField(_("site id"), null=True, blank=True)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    paths = models.JSONField(_("paths"), null=True, blank=True)
    #: For a publish that made a deployment live: it, and the one live before
    #: (plain numbers too). The paths are what differs between them, so a
    #: process moves the other entries of the one to the other.
    deployment_id = models.BigIntegerField(_("deployment id"), null=True, blank=True)
    previous_id = models.BigIntegerField(_("previous deployment id"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["id"]
        verbose_name = _("change")
        verbose_name_plural = _("changes")

    def __str__(self) -> str:
        return f"#{self.id} {self.kind} site={self.site_id}"
