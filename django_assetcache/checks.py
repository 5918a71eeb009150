"""System checks: every ASSETCACHE_* setting, storage locations, and the
settings a site host needs."""

from __future__ import annotations

import importlib.util
import os
import re
import reprlib
from collections.abc import Callable
from dataclasses import fields
from typing import Any, TypeGuard

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.http.request import validate_host

from . import conf
from .accel import HEADERS
from .invalidation import BACKENDS

MIDDLEWARE_PATH = "django_assetcache.middleware.AssetCacheMiddleware"


@register(Tags.security)
def check_allowed_hosts(app_configs: Any = None, **kwargs: Any) -> list[Warning]:
    """Subdomains of ASSETCACHE_DOMAIN should pass Django's host validation.

    The middleware answers site hosts before Django validates the Host header,
    but anything that does validate it (SecurityMiddleware's HTTPS redirect,
    CSRF checks, error reports) would reject sites that ALLOWED_HOSTS misses.
    """
    domain = getattr(settings, conf.PREFIX + "DOMAIN", conf.Settings().DOMAIN)
    if not _is_host_name(domain):
        return []  # check_settings reports it
    domain = domain.lower().strip(".")
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
                hint=f"Add {MIDDLEWARE_PATH!r} first.",
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
    if before and getattr(settings, "SECURE_SSL_REDIRECT", False):
        return [
            Warning(
                "SecurityMiddleware runs before AssetCacheMiddleware with SECURE_SSL_REDIRECT: a plain-HTTP "
                "request to a custom domain of a site gets 400 (its redirect validates the host).",
                hint="Place AssetCacheMiddleware first: it redirects plain HTTP to HTTPS for site hosts itself.",
                id="assetcache.W004",
            )
        ]
    return []


# --- every setting -------------------------------------------------------------


def _number(value: object) -> TypeGuard[float]:
    return isinstance(value, int | float) and not isinstance(value, bool) and value == value  # NaN is not


def _integer(minimum: int, unit: str) -> tuple[Callable[[object], bool], str]:
    return (
        (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= minimum),
        f"a number of {unit} (an integer >= {minimum})",
    )


def _seconds(minimum_exclusive: bool) -> tuple[Callable[[object], bool], str]:
    if minimum_exclusive:
        return (lambda v: _number(v) and v > 0), "a number of seconds > 0"
    return (lambda v: _number(v) and v >= 0), "a number of seconds >= 0"


def _listed(values: Any) -> str:
    """``'a', 'b' or 'c'``: the accepted values, from where they are defined."""
    shown = [repr(value) for value in values]
    return ", ".join(shown[:-1]) + " or " + shown[-1]


def _strings(value: object) -> bool:
    return isinstance(value, list | tuple) and all(isinstance(item, str) for item in value)


def _is_host_name(value: object) -> bool:
    return isinstance(value, str) and re.fullmatch(r"(?:[A-Za-z0-9-]+\.)*[A-Za-z0-9-]+\.?", value) is not None


def _pattern(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        re.compile(value)
    except (re.error, RecursionError, OverflowError):
        return False
    return True


def _content_types(value: object) -> bool:
    return value is None or (
        isinstance(value, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in value.items())
    )


def _dotted_path(value: object) -> bool:
    return isinstance(value, str) and (
        value == "" or re.fullmatch(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)+", value) is not None
    )


def _path(value: object) -> bool:
    return isinstance(value, str | os.PathLike) and isinstance(os.fspath(value), str)


#: For each setting (without the prefix): a test of its value and what it accepts.
VALIDATORS: dict[str, tuple[Callable[[object], bool], str]] = {
    "DOMAIN": (lambda v: _is_host_name(v) and bool(str(v).strip(".")), "a host name such as 'sites.example.com'"),
    "SITE_URL": (lambda v: isinstance(v, str) and "{host}" in v, "a string containing '{host}'"),
    "STORAGE": (lambda v: isinstance(v, str) and bool(v), "a non-empty alias of STORAGES"),
    "MEMORY_LIMIT": _integer(1, "bytes"),
    "MEMORY_FILE_LIMIT": _integer(0, "bytes"),
    "MAX_ENTRIES": _integer(1, "entries"),
    "MAX_FILE_SIZE": _integer(1, "bytes"),
    "MAX_SITE_SIZE": _integer(1, "bytes"),
    "MAX_PATH_LENGTH": _integer(1, "characters"),
    "MAX_RULES": _integer(0, "rules"),
    "MAX_RULES_FILE_SIZE": _integer(0, "bytes"),
    "CACHE_CONTROL": (lambda v: isinstance(v, str), "a Cache-Control header value (a string)"),
    "IMMUTABLE_CACHE_CONTROL": (lambda v: isinstance(v, str), "a Cache-Control header value (a string)"),
    "IMMUTABLE_PATTERN": (_pattern, "a regular expression (a string)"),
    "CONTENT_TYPES": (_content_types, "None or a dict of extension or file name to media type (strings)"),
    "RESERVED_SUBDOMAINS": (_strings, "a list or tuple of strings"),
    "INVALIDATION": (
        lambda v: isinstance(v, str) and v in BACKENDS,
        "one of " + _listed(BACKENDS),
    ),
    "POLL_INTERVAL": _seconds(minimum_exclusive=True),
    "REDIS_URL": (
        lambda v: isinstance(v, str) and v.startswith(("redis://", "rediss://", "unix://")),
        "a URL starting with redis://, rediss:// or unix://",
    ),
    "CHANGE_RETENTION": _seconds(minimum_exclusive=False),
    "DEPLOYMENT_RETENTION": _integer(0, "deployments"),
    "DEPLOYMENT_RETENTION_DAYS": (lambda v: _number(v) and v >= 0, "a number of days >= 0"),
    "GC_GRACE": _seconds(minimum_exclusive=False),
    "DEPLOY_TTL": _seconds(minimum_exclusive=True),
    "TRUST_ADMIN_DOMAINS": (lambda v: isinstance(v, bool), "True or False"),
    "TXT_RESOLVER": (_dotted_path, "'' or the dotted path of a callable such as 'mysite.dns.resolve_txt'"),
    "PROJECT_URL": (
        lambda v: isinstance(v, str) and (v == "" or re.fullmatch(r"https?://[^/?#\s]+", v) is not None),
        "'' or an origin such as 'https://www.example.com' (no path)",
    ),
    "ACCESS_MAX_AGE": _integer(60, "seconds"),
    "PASSWORD_ATTEMPTS": _integer(1, "attempts per minute"),
    "SNAPSHOT_PATH": (_path, "an absolute file path (a string), or '' for MEDIA_ROOT/assetcache/snapshot.bin"),
    "LOCAL_DIR": (_path, "an absolute directory path (a string), or '' for MEDIA_ROOT/assetcache/local"),
    "DISK_LIMIT": (
        lambda v: _number(v) and v > 0,
        "a fraction of the filesystem below 1 (such as 0.9), or a number of bytes >= 1",
    ),
    "DELETE_DELAY": _seconds(minimum_exclusive=False),
    "ACCEL": (
        lambda v: v is None or (isinstance(v, str) and v in HEADERS),
        _listed([None, *HEADERS]),
    ),
    "ACCEL_PREFIX": (
        lambda v: isinstance(v, str) and re.fullmatch(r"/[A-Za-z0-9._~/-]*", v) is not None,
        "a URL path such as '/_assetcache_blobs/' (starting with '/', no spaces, query or percent signs)",
    ),
    "COMPRESSIBLE_TYPES": (_strings, "a list or tuple of media type prefixes (strings)"),
    "STATS_INTERVAL": _seconds(minimum_exclusive=False),
    "METRICS": (lambda v: isinstance(v, bool), "True or False"),
    "METRICS_TOKEN": (
        lambda v: isinstance(v, str) and v.isascii() and v.isprintable(),
        "a token of printable ASCII (a string)",
    ),
    "METRICS_PER_SITE": (lambda v: isinstance(v, bool), "True or False"),
}


def _shown(value: object) -> str:
    try:
        return reprlib.repr(value)
    except Exception:
        return f"a {type(value).__name__}"


def _valid(name: str, value: object) -> bool:
    test, _ = VALIDATORS[name]
    try:
        return bool(test(value))
    except Exception:
        return False  # whatever the type, an answer and not a crash


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """Every ASSETCACHE_* setting has a value of the type and range it accepts."""
    errors: list[CheckMessage] = []
    for field in fields(conf.Settings):
        name = conf.PREFIX + field.name
        if not hasattr(settings, name):
            continue
        value = getattr(settings, name)
        if not _valid(field.name, value):
            errors.append(
                Error(
                    f"{name} = {_shown(value)} is not valid: it accepts {VALIDATORS[field.name][1]}.",
                    id="assetcache.E001",
                )
            )
    return errors


# --- storage locations -----------------------------------------------------------


def _absolute(value: object) -> bool:
    try:
        return os.path.isabs(os.fspath(value))  # type: ignore[call-overload]  # any value; a non-path raises
    except Exception:
        return False  # not a path at all: check_settings says so


@register()
def check_locations(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """No storage location may depend on the directory a process runs from:
    a relative path means another place for a command run from cron than for
    the server."""
    errors: list[CheckMessage] = []
    under_media = []
    storage = getattr(settings, conf.PREFIX + "STORAGE", conf.Settings().STORAGE)
    storages = getattr(settings, "STORAGES", None) or {}
    if not (isinstance(storage, str) and isinstance(storages, dict) and storage in storages):
        under_media.append("the blobs (no STORAGES alias named by ASSETCACHE_STORAGE)")
    for field, what in (("SNAPSHOT_PATH", "the snapshot"), ("LOCAL_DIR", "the local disk tier")):
        name = conf.PREFIX + field
        value = getattr(settings, name, "")
        if isinstance(value, str) and not value:
            under_media.append(f"{what} ({name} is not set)")
        elif _valid(field, value) and not _absolute(value):
            errors.append(
                Error(
                    f"{name} = {_shown(value)} is relative, so it names another place in every working directory.",
                    hint=f"Set {name} to an absolute path.",
                    id="assetcache.E003",
                )
            )
    media_root = getattr(settings, "MEDIA_ROOT", "")
    if under_media and not _absolute(media_root):
        errors.append(
            Error(
                f"MEDIA_ROOT = {_shown(media_root)} is empty or relative, and django-assetcache keeps "
                + ", ".join(under_media)
                + " under it: they would go to another place in every working directory.",
                hint="Set MEDIA_ROOT to an absolute path (or configure each location with an absolute path).",
                id="assetcache.E002",
            )
        )
    return errors


@register()
def check_metrics(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """ASSETCACHE_METRICS needs prometheus_client (the ``[metrics]`` extra)."""
    if (
        getattr(settings, conf.PREFIX + "METRICS", False) is True
        and importlib.util.find_spec("prometheus_client") is None
    ):
        return [
            Error(
                "ASSETCACHE_METRICS is on, but prometheus_client is not installed.",
                hint="pip install 'django-assetcache[metrics]', or turn ASSETCACHE_METRICS off.",
                id="assetcache.E004",
            )
        ]
    return []
