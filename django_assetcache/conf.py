"""Every setting of django-assetcache, with its default, read once.

Settings are read from ``django.conf.settings`` the first time they are needed
and kept in a frozen object, so the request path never goes through Django's
settings machinery. Changing a setting in tests (``override_settings``) resets
the object through the ``setting_changed`` signal.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields, replace
from pathlib import Path

from django.conf import settings as django_settings
from django.core.signals import setting_changed

PREFIX = "ASSETCACHE_"

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB


@dataclass(frozen=True, slots=True)
class Settings:
    #: Sites answer at ``<subdomain>.<DOMAIN>``.
    DOMAIN: str = "localhost"
    #: How links to a site are written in the admin; ``{host}`` is the site's host.
    SITE_URL: str = "https://{host}/"
    #: Alias in ``STORAGES`` where blobs are kept. When the alias is not
    #: configured, a FileSystemStorage under ``MEDIA_ROOT/assetcache`` is used.
    STORAGE: str = "assetcache"
    #: Bytes of bodies and metadata the process-global cache may hold.
    MEMORY_LIMIT: int = 64 * MIB
    #: Files up to this size are answered from memory, larger ones by sendfile.
    MEMORY_FILE_LIMIT: int = 256 * KIB
    #: Upper bound on cached entries (positive and negative) per process.
    MAX_ENTRIES: int = 200_000
    #: Largest single file a publish accepts.
    MAX_FILE_SIZE: int = 512 * MIB
    #: Largest total (uncompressed) size of one publish.
    MAX_SITE_SIZE: int = 4 * GIB
    #: Longest request path (after percent-decoding) a site host accepts.
    MAX_PATH_LENGTH: int = 1024
    #: Cache-Control for sites that do not set their own.
    CACHE_CONTROL: str = "public, max-age=0, must-revalidate"
    #: Cache-Control for files whose name carries a content hash.
    IMMUTABLE_CACHE_CONTROL: str = "public, max-age=31536000, immutable"
    #: A file name matching this pattern carries a content hash
    #: (``app.3f2a9c1b.js``, ``main-BvL2x8aQ.js``).
    IMMUTABLE_PATTERN: str = (
        r"[.-](?:[0-9a-f]{8,64}|(?=[A-Za-z0-9_]*[0-9])(?=[A-Za-z0-9_]*[A-Z])[A-Za-z0-9_]{8})"
        r"\.[A-Za-z0-9]+$"
    )
    #: Extra or overriding media types, by extension (".ext") or file name.
    CONTENT_TYPES: dict[str, str] | None = None
    #: Subdomains nobody may take.
    RESERVED_SUBDOMAINS: tuple[str, ...] = ("www", "admin", "static", "media", "api")
    #: How processes learn of changes: "database", "postgres", "redis", "local".
    INVALIDATION: str = "database"
    #: Seconds between two reads of the change feed. The push backends poll
    #: too, as a safety net for lost notifications.
    POLL_INTERVAL: float = 1.0
    #: The Redis server of the ``redis`` backend.
    REDIS_URL: str = "redis://127.0.0.1:6379/0"
    #: Change rows younger than this many seconds are never pruned.
    CHANGE_RETENTION: float = 7 * 24 * 3600
    #: ``assetcache_gc`` keeps at least this many of each site's newest
    #: deployments (besides the live one and those an alias names).
    DEPLOYMENT_RETENTION: int = 20
    #: ... and every deployment younger than this many days.
    DEPLOYMENT_RETENTION_DAYS: float = 30.0
    #: assetcache_gc deletes a blob only once it has been unused this many
    #: seconds (and a stored file without a row only once it is this old), so
    #: restoring a database backup younger than this finds all its blobs.
    GC_GRACE: float = 7 * 24 * 3600
    #: Seconds a deploy started through the API may take to finish; past
    #: that, ``assetcache_gc`` deletes it and what only it uploaded.
    DEPLOY_TTL: float = 24 * 3600
    #: Custom domains added in the admin (or by code) are verified at once,
    #: without the DNS TXT proof.
    TRUST_ADMIN_DOMAINS: bool = False
    #: Dotted path of ``resolve(name) -> list[str]``, the TXT values of a
    #: name; "" uses dnspython with the machine's resolver configuration.
    TXT_RESOLVER: str = ""
    #: Most rules one ``_redirects`` file (rules) or ``_headers`` file
    #: (header lines) may hold; a publish over it is refused.
    MAX_RULES: int = 10_000
    #: Largest ``_redirects`` or ``_headers`` file a publish accepts.
    MAX_RULES_FILE_SIZE: int = 1 * MIB
    #: The project's own origin (``https://www.example.com``), where visitors
    #: of login and restricted sites sign in; "" leaves them a 403.
    PROJECT_URL: str = ""
    #: Seconds a private site's access cookie lasts.
    ACCESS_MAX_AGE: int = 12 * 3600
    #: Password attempts a client address may make per minute, per process.
    PASSWORD_ATTEMPTS: int = 10
    #: Where ``assetcache_warmup`` writes the snapshot and processes read it.
    SNAPSHOT_PATH: str = ""
    #: The local disk tier: where blobs of a storage without local paths
    #: (S3 and the like) are copied to be served. Default:
    #: ``MEDIA_ROOT/assetcache/local``.
    LOCAL_DIR: str = ""
    #: Bound of the local disk tier. A float below 1: the largest fraction of
    #: the filesystem holding it that may be in use (other files count too,
    #: measured with statvfs); otherwise bytes the tier's files may occupy
    #: (allocated blocks, not apparent sizes).
    DISK_LIMIT: float | int = 0.9
    #: Seconds an evicted blob stays on disk before it is deleted, so that
    #: responses already sending it (or about to open it) finish.
    DELETE_DELAY: float = 60.0
    #: Seconds between two writes of this process's traffic per site and its
    #: heartbeat to the database (by a background thread); 0 turns both off.
    STATS_INTERVAL: float = 10.0
    #: Publish Prometheus metrics (needs the ``[metrics]`` extra), every second.
    METRICS: bool = False
    #: Bearer token the ``/assetcache/metrics`` view asks for; "" leaves it
    #: open to whoever reaches it (then protect it by the network).
    METRICS_TOKEN: str = ""
    #: Label request and byte counters with the site; off for very many sites.
    METRICS_PER_SITE: bool = True
    #: Hand bodies on the local disk to the web server in front: "nginx"
    #: (X-Accel-Redirect), "apache" or "lighttpd" (X-Sendfile); None sends
    #: them from the worker.
    ACCEL: str | None = None
    #: The nginx ``internal`` location the blob directory is mapped to.
    ACCEL_PREFIX: str = "/_assetcache_blobs/"
    #: Build gzip/brotli variants for these media types (prefixes).
    COMPRESSIBLE_TYPES: tuple[str, ...] = (
        "text/",
        "application/javascript",
        "application/json",
        "application/manifest+json",
        "application/xml",
        "application/wasm",
        "image/svg+xml",
        "image/x-icon",
        "image/vnd.microsoft.icon",
        "font/ttf",
        "font/otf",
        "application/vnd.ms-fontobject",
    )

    @property
    def immutable_re(self) -> re.Pattern[str]:
        # re keeps its own cache of compiled patterns; this runs when an
        # entry is built, never per request.
        return re.compile(self.IMMUTABLE_PATTERN)


_current: Settings | None = None


def _default_snapshot_path() -> str:
    base = getattr(django_settings, "MEDIA_ROOT", "") or "."
    return str(Path(base) / "assetcache" / "snapshot.bin")


def _default_local_dir() -> str:
    base = getattr(django_settings, "MEDIA_ROOT", "") or "."
    return str(Path(base) / "assetcache" / "local")


def get() -> Settings:
    """The current settings, read from Django's settings on first use."""
    global _current
    if _current is None:
        values = {}
        for field in fields(Settings):
            name = PREFIX + field.name
            if hasattr(django_settings, name):
                value = getattr(django_settings, name)
                if isinstance(field.default, tuple) and isinstance(value, list):
                    value = tuple(value)
                values[field.name] = value
        current = Settings(**values)
        if not current.SNAPSHOT_PATH:
            current = replace(current, SNAPSHOT_PATH=_default_snapshot_path())
        if not current.LOCAL_DIR:
            current = replace(current, LOCAL_DIR=_default_local_dir())
        _current = replace(current, DOMAIN=current.DOMAIN.lower().strip("."))
    return _current


def reset(**kwargs: object) -> None:
    global _current
    _current = None


def _on_setting_changed(*, setting: str, **kwargs: object) -> None:
    if setting.startswith(PREFIX) or setting in {"MEDIA_ROOT", "STORAGES"}:
        reset()


setting_changed.connect(_on_setting_changed)
