"""The example project as deploy/Dockerfile and deploy/compose.yaml run it.

Everything that differs between machines comes from the environment:
PostgreSQL (POSTGRES_*), Redis (REDIS_URL), the host names (MAIN_HOST,
ASSETCACHE_DOMAIN), the secret key; blobs and the snapshot live on volumes.
"""

from __future__ import annotations

import os

from .settings import *  # noqa: F403
from .settings import STORAGES

DEBUG = False
SECRET_KEY = os.environ["DJANGO_SECRET_KEY"]

MAIN_HOST = os.environ.get("MAIN_HOST", "www.example.com")
ASSETCACHE_DOMAIN = os.environ.get("ASSETCACHE_DOMAIN", "sites.example.com")
ASSETCACHE_SITE_URL = "https://{host}/"
# The main host, every site, and the container's own name: Caddy asks
# http://web:8000/assetcache/tls-ask before it requests a certificate.
ALLOWED_HOSTS = [MAIN_HOST, "." + ASSETCACHE_DOMAIN, "web", "127.0.0.1", "localhost"]
CSRF_TRUSTED_ORIGINS = [f"https://{MAIN_HOST}"]

# The proxy in front terminates TLS and says so in X-Forwarded-Proto.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True

if os.environ.get("POSTGRES_HOST"):
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ["POSTGRES_HOST"],
            "PORT": os.environ.get("POSTGRES_PORT", "5432"),
            "NAME": os.environ.get("POSTGRES_DB", "assetcache"),
            "USER": os.environ.get("POSTGRES_USER", "assetcache"),
            "PASSWORD": os.environ.get("POSTGRES_PASSWORD", ""),
            "CONN_MAX_AGE": 60,
        }
    }

DATA_DIR = os.environ.get("ASSETCACHE_DATA_DIR", "/data")
MEDIA_ROOT = os.path.join(DATA_DIR, "media")
STORAGES = {
    **STORAGES,
    "assetcache": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": os.path.join(MEDIA_ROOT, "assetcache", "blobs")},
    },
}
ASSETCACHE_SNAPSHOT_PATH = os.path.join(DATA_DIR, "snapshot", "snapshot.bin")
ASSETCACHE_LOCAL_DIR = os.path.join(MEDIA_ROOT, "assetcache", "local")

if os.environ.get("REDIS_URL"):
    ASSETCACHE_INVALIDATION = "redis"
    ASSETCACHE_REDIS_URL = os.environ["REDIS_URL"]
    ASSETCACHE_POLL_INTERVAL = 10.0
