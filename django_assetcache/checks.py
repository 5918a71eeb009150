"""System checks for the settings a site host needs."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.checks import Tags, Warning, register
from django.http.request import validate_host

from . import conf

MIDDLEWARE_PATH = "django_assetcache.middleware.AssetCacheMiddleware"


@register(Tags.security)
def check_allowed_hosts(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Subdomains of ASSETCACHE_DOMAIN should pass Django's host validation.

    The middleware answers site hosts before Django validates the Host header,
    but anything that does validate it (SecurityMiddleware's HTTPS redirect,
    CSRF checks, error reports) would reject sites that ALLOWED_HOSTS misses.
    """
    domain = conf.get().DOMAIN
    allowed = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not allowed:
        allowed = [".localhost", "127.0.0.1", "[::1]"]
    if validate_host(f"example.{domain}", allowed):
        return []
    return [
        Warning(
            f"ALLOWED_HOSTS does not match subdomains of ASSETCACHE_DOMAIN ({domain!r}).",
            hint=f"Add '.{domain}' to ALLOWED_HOSTS.",
            id="assetcache.W001",
        )
    ]


@register()
def check_middleware(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    middleware = list(getattr(settings, "MIDDLEWARE", []))
    if MIDDLEWARE_PATH not in middleware:
        return [
            Warning(
                "AssetCacheMiddleware is not in MIDDLEWARE, so no site is served.",
                hint=f"Add {MIDDLEWARE_PATH!r} right after SecurityMiddleware.",
                id="assetcache.W002",
            )
        ]
    position = middleware.index(MIDDLEWARE_PATH)
    security = "django.middleware.security.SecurityMiddleware"
    before = middleware[:position]
    if any(entry != security for entry in before):
        return [
            Warning(
                "AssetCacheMiddleware runs after other middleware, which costs every site request their work.",
                hint="Place it first, or right after SecurityMiddleware.",
                id="assetcache.W003",
            )
        ]
    return []
