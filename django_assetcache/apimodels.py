"""The rows of the deploy API: tokens, and the deploys being uploaded.

Imported by ``models.py`` (Django finds an app's models through that
module); the site is named by string, so this module imports no other.
"""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


class DeployToken(models.Model):
    """A bearer token that may deploy some sites (or all) through the API.

    Only the SHA-256 of its secret is kept (``deploytokens.py`` says why
    that hash suffices); the secret itself is shown once, when it is made.
    """

    name = models.CharField(_("name"), max_length=100, unique=True)
    secret_hash = models.CharField(_("secret hash"), max_length=64, unique=True, editable=False)
    sites = models.ManyToManyField(
        "django_assetcache.Site", blank=True, related_name="deploy_tokens", verbose_name=_("sites")
    )
    all_sites = models.BooleanField(_("all sites"), default=False, help_text=_("May deploy every site."))
    may_create_sites = models.BooleanField(
        _("may create sites"), default=False, help_text=_("A deploy to a site that does not exist creates it.")
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    revoked_at = models.DateTimeField(_("revoked"), null=True, blank=True)

    class Meta:
        ordering = ["name"]
        verbose_name = _("deploy token")
        verbose_name_plural = _("deploy tokens")

    def __str__(self) -> str:
        return self.name

    @property
    def active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())


def new_upload_key() -> str:
    return secrets.token_hex(8)


class PendingDeploy(models.Model):
    """A deploy whose manifest the API accepted and whose blobs are being
    uploaded. ``finish`` makes it a Deployment; one left unfinished past
    ``expires_at`` is deleted by ``assetcache_gc``, and until then gc keeps
    every blob its manifest names."""

    key = models.CharField(_("id"), max_length=16, unique=True, default=new_upload_key, editable=False)
    subdomain = models.CharField(_("subdomain"), max_length=63)
    token = models.ForeignKey(DeployToken, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    #: path → [sha256, content type ("" to guess)]
    manifest = models.JSONField(_("manifest"), default=dict)
    #: sha256 → size, of the blobs whose size is known.
    sizes = models.JSONField(_("sizes"), default=dict)
    #: The hashes the storage lacked when the manifest arrived.
    required = models.JSONField(_("required"), default=list)
    #: draft, alias, message, delete.
    options = models.JSONField(_("options"), default=dict)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"), db_index=True)
    #: The deployment ``finish`` made (None while uploading).
    deployment = models.ForeignKey(
        "django_assetcache.Deployment", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]
        verbose_name = _("pending deploy")
        verbose_name_plural = _("pending deploys")

    def __str__(self) -> str:
        return f"{self.subdomain}:{self.key}"
