"""Change rows for edits made outside publish(): receivers of model signals.

A Site or Domain saved or deleted anywhere (the admin, a shell, a data
migration) bumps the site's generation and appends a Change in the same
transaction, so every process drops what it cached for the site.
Connected when ``AppConfig.ready`` imports this module.
"""

from __future__ import annotations

from typing import Any

from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver

from .models import Change, Domain, Site, record_change


@receiver(post_save, sender=Site, dispatch_uid="assetcache_site_saved")
def _site_saved(sender: type[Site], instance: Site, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return
    record_change(instance.pk, Change.Kind.SETTINGS)


@receiver(post_delete, sender=Site, dispatch_uid="assetcache_site_deleted")
def _site_deleted(sender: type[Site], instance: Site, **kwargs: Any) -> None:
    record_change(instance.pk, Change.Kind.DELETE)


@receiver(post_save, sender=Domain, dispatch_uid="assetcache_domain_saved")
@receiver(post_delete, sender=Domain, dispatch_uid="assetcache_domain_deleted")
def _domain_changed(sender: type[Domain], instance: Domain, **kwargs: Any) -> None:
    if kwargs.get("raw"):
        return
    record_change(instance.site_id, Change.Kind.DOMAINS)
