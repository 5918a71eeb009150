"""Settings for the test suite.

Every process of one test run (pytest and the servers it starts) shares one
directory, named by ASSETCACHE_TEST_DIR, holding the SQLite file and media.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

TEST_DIR = Path(os.environ.setdefault("ASSETCACHE_TEST_DIR", tempfile.mkdtemp(prefix="assetcache-test-")))

SECRET_KEY = "tests-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = [".sites.test", "testserver", "localhost", "127.0.0.1"]
USE_TZ = True
TIME_ZONE = "UTC"
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_assetcache",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django_assetcache.middleware.AssetCacheMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [str(Path(__file__).parent / "templates")],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

# A server started by a test may be pointed at another (even a missing) file
# to play a database outage: ASSETCACHE_TEST_DB always means SQLite.
# Otherwise ASSETCACHE_TEST_PG_PORT (with _HOST, _NAME, _USER, _PASSWORD)
# selects PostgreSQL (``make test-postgres`` starts a throwaway server).
# The test database is the configured one itself, so the servers a test
# starts see what the test wrote.
_db_file = os.environ.get("ASSETCACHE_TEST_DB")
_pg_port = os.environ.get("ASSETCACHE_TEST_PG_PORT")
if _pg_port and not _db_file:
    _pg_name = os.environ.get("ASSETCACHE_TEST_PG_NAME", "assetcache_test")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "HOST": os.environ.get("ASSETCACHE_TEST_PG_HOST", "127.0.0.1"),
            "PORT": _pg_port,
            "NAME": _pg_name,
            "USER": os.environ.get("ASSETCACHE_TEST_PG_USER", "postgres"),
            "PASSWORD": os.environ.get("ASSETCACHE_TEST_PG_PASSWORD", ""),
            "TEST": {"NAME": _pg_name},
        }
    }
else:
    _db_file = _db_file or str(TEST_DIR / "db.sqlite3")
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _db_file,
            "TEST": {"NAME": _db_file},
            # Writers in several processes (the admin, every worker's
            # reporting thread) wait for each other instead of failing on a
            # read lock upgraded to a write lock (docs/observability.md).
            "OPTIONS": {"transaction_mode": "IMMEDIATE"},
        }
    }

MEDIA_ROOT = os.environ.get("ASSETCACHE_TEST_MEDIA_ROOT", str(TEST_DIR / "media"))
STATIC_URL = "/static/"

# A server started by a test may keep its blobs in S3 (a moto server,
# tests/test_deploy_s3.py): ASSETCACHE_TEST_S3 holds S3Storage's options as JSON.
if _s3_options := os.environ.get("ASSETCACHE_TEST_S3"):
    STORAGES = {
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
        "assetcache": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": json.loads(_s3_options)},
    }

ASSETCACHE_DOMAIN = "sites.test"
# Servers a test starts are told where the project and its sites answer
# (tests/test_private_server.py: one gunicorn for both, on one port).
ASSETCACHE_SITE_URL = os.environ.get("ASSETCACHE_TEST_SITE_URL", "https://{host}/")
ASSETCACHE_PROJECT_URL = os.environ.get("ASSETCACHE_TEST_PROJECT_URL", "")
ASSETCACHE_PASSWORD_ATTEMPTS = int(os.environ.get("ASSETCACHE_TEST_PASSWORD_ATTEMPTS", "10"))
ASSETCACHE_INVALIDATION = os.environ.get("ASSETCACHE_TEST_INVALIDATION", "local")
ASSETCACHE_POLL_INTERVAL = float(os.environ.get("ASSETCACHE_TEST_POLL_INTERVAL", "1.0"))
ASSETCACHE_ACCEL = os.environ.get("ASSETCACHE_TEST_ACCEL") or None
ASSETCACHE_REDIS_URL = os.environ.get("ASSETCACHE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")

# gc deletes unused blobs at once unless a test sets a grace period (the
# default, 7 days, is tested in tests/test_backups.py).
ASSETCACHE_GC_GRACE = 0

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
ASSETCACHE_MEMORY_LIMIT = int(os.environ.get("ASSETCACHE_TEST_MEMORY_LIMIT", str(64 * 1024 * 1024)))
# Servers a test starts turn these on; in-process tests flush by hand.
ASSETCACHE_STATS_INTERVAL = float(os.environ.get("ASSETCACHE_TEST_STATS_INTERVAL", "0"))
ASSETCACHE_METRICS = os.environ.get("ASSETCACHE_TEST_METRICS", "") == "1"
ASSETCACHE_METRICS_TOKEN = os.environ.get("ASSETCACHE_TEST_METRICS_TOKEN", "")
