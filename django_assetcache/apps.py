from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _

from . import checks, runtime  # noqa: F401  (checks registers itself on import)


class AssetCacheConfig(AppConfig):
    name = "django_assetcache"
    verbose_name = _("Asset cache")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Django requires these imports here, not at the top: they import the
        # models, which exist only once the app registry is ready. receivers
        # connects itself on import.
        from . import accessreceivers, receivers  # noqa: F401
        from .accessdb import DatabaseAccess
        from .loader import DatabaseLoader
        from .reporting import Reporter, note_applied

        runtime.use_loader(DatabaseLoader)
        runtime.use_access(DatabaseAccess)
        runtime.use_reporter(Reporter, note_applied)
