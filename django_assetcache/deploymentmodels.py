"""Deployments and their aliases: the rows that make every publish an
immutable manifest (see ``deployments.py``); and the tally of publishes,
promotes and rollbacks the metrics view exports.

Imported by ``models.py`` (Django finds an app's models through that
module); the site is named by string, so this module imports no model.
"""

from __future__ import annotations

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import conf
from .validators import PREVIEW_SEPARATOR, new_deployment_key, validate_alias


class Deployment(models.Model):
    """One publish of a site: an immutable manifest (its Asset rows) and
    where it came from. The site's ``live_deployment`` is the one its host
    serves; every deployment not expired answers at its preview host."""

    class State(models.TextChoices):
        DRAFT = "draft", _("draft")
        LIVE = "live", _("live")
        SUPERSEDED = "superseded", _("superseded")
        #: Removed by retention: its rows are gone, only the record stays.
        EXPIRED = "expired", _("expired")

    site = models.ForeignKey("django_assetcache.Site", on_delete=models.CASCADE, related_name="deployments")
    key = models.CharField(_("id"), max_length=8, unique=True, default=new_deployment_key, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now, db_index=True)
    created_by = models.CharField(_("created by"), max_length=150, blank=True)
    source = models.CharField(_("source"), max_length=1024, blank=True)
    message = models.TextField(_("message"), blank=True)
    git_commit = models.CharField(_("git commit"), max_length=64, blank=True)
    git_branch = models.CharField(_("git branch"), max_length=255, blank=True)
    summary = models.JSONField(_("summary"), default=dict, blank=True)
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.DRAFT)
    #: When it was last made live (None: never).
    live_at = models.DateTimeField(_("made live"), null=True, blank=True)
    #: Seconds the publish that made it took, from reading the source to
    #: its commit (None: made before this was recorded).
    publish_seconds = models.FloatField(_("publish took (s)"), null=True, blank=True)
    #: Its site rules: the _redirects and _headers it was published with
    #: (or kept from the deployment live before), compiled (rules.py's JSON).
    rules = models.TextField(
        _("compiled rules"),
        blank=True,
        editable=False,
        help_text=_("The _redirects and _headers this deployment serves with, compiled (JSON)."),
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = _("deployment")
        verbose_name_plural = _("deployments")

    def __str__(self) -> str:
        return f"{self.site_id}:{self.key}"

    def preview_host(self, label: str | None = None) -> str:
        return f"{label or self.key}{PREVIEW_SEPARATOR}{self.site.subdomain}.{conf.get().DOMAIN}"

    def preview_url(self, label: str | None = None) -> str:
        return conf.get().SITE_URL.format(host=self.preview_host(label))


class DeploymentAlias(models.Model):
    """A name such as ``staging`` pointing at one deployment of a site; it
    answers at ``<name>--<subdomain>.ASSETCACHE_DOMAIN`` and moves with each
    publish that names it."""

    site = models.ForeignKey("django_assetcache.Site", on_delete=models.CASCADE, related_name="aliases")
    name = models.CharField(_("name"), max_length=50, validators=[validate_alias])
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="aliases")

    class Meta:
        ordering = ["name"]
        verbose_name = _("deployment alias")
        verbose_name_plural = _("deployment aliases")
        constraints = [models.UniqueConstraint(fields=["site", "name"], name="assetcache_alias_site_name")]

    def __str__(self) -> str:
        return self.name


class DeployTally(models.Model):
    """How many publishes, drafts, promotes and rollbacks of one site
    committed, and the seconds they took in all: one row per site and kind,
    added to in the transaction of each one, whatever process did it.

    ``site`` is the subdomain, not a foreign key: retention and a deleted
    site leave the tally as it is, so the counters the metrics view exports
    from it never go down."""

    class Kind(models.TextChoices):
        #: A publish made live (one that changed nothing included).
        PUBLISH = "publish", _("publish")
        #: A publish stored as a draft, not made live.
        DRAFT = "draft", _("draft")
        PROMOTE = "promote", _("promote")
        ROLLBACK = "rollback", _("rollback")

    site = models.CharField(_("site"), max_length=63)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    count = models.PositiveBigIntegerField(_("count"), default=0)
    seconds = models.FloatField(_("seconds in all"), default=0.0)

    class Meta:
        ordering = ["site", "kind"]
        verbose_name = _("deploy tally")
        verbose_name_plural = _("deploy tallies")
        constraints = [models.UniqueConstraint(fields=["site", "kind"], name="assetcache_deploy_tally_site_kind")]

    def __str__(self) -> str:
        return f"{self.site} {self.kind}: {self.count}"
