"""Django settings for benchmarks/serve_bench.py: one static-file middleware, nothing else.

``BENCH_DIR`` (required) holds the SQLite database, MEDIA_ROOT (the blob store
and the warm snapshot) and ``site/``, the files whitenoise serves.
``BENCH_MIDDLEWARE`` picks the contender: ``assetcache`` or ``whitenoise``.
``BENCH_METRICS=1`` turns ASSETCACHE_METRICS on (benchmarks/metrics_serve_bench.py).
``BENCH_ACCEL`` sets ASSETCACHE_ACCEL (``nginx``: benchmarks/accel_bench.py).
This module is also the URLconf (no URL patterns): every request the
middleware does not answer is a 404.
"""

from __future__ import annotations

import os
from pathlib import Path

BENCH_DIR = Path(os.environ["BENCH_DIR"])
CONTENDERS = {
    "assetcache": "django_assetcache.middleware.AssetCacheMiddleware",
    "whitenoise": "whitenoise.middleware.WhiteNoiseMiddleware",
}

SECRET_KEY = "benchmark-only-not-secret"
DEBUG = False
ALLOWED_HOSTS = ["*"]
USE_TZ = True
ROOT_URLCONF = __name__
urlpatterns: list[object] = []
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
# Private sites keep their allowed users and groups in django.contrib.auth.
INSTALLED_APPS = ["django.contrib.contenttypes", "django.contrib.auth", "django_assetcache"]
MIDDLEWARE = [CONTENDERS[os.environ.get("BENCH_MIDDLEWARE", "assetcache")]]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": str(BENCH_DIR / "db.sqlite3")}}
MEDIA_ROOT = str(BENCH_DIR / "media")
STATIC_URL = "/static/"

ASSETCACHE_DOMAIN = "sites.bench"
ASSETCACHE_METRICS = os.environ.get("BENCH_METRICS") == "1"
ASSETCACHE_ACCEL = os.environ.get("BENCH_ACCEL") or None

# whitenoise: the same files from a directory, served at "/", no compressed
# variants on disk, the file list read once at start-up, and a Cache-Control
# comparable to django-assetcache's default ("public, max-age=0, must-revalidate").
WHITENOISE_ROOT = str(BENCH_DIR / "site")
WHITENOISE_AUTOREFRESH = False
WHITENOISE_USE_FINDERS = False
WHITENOISE_MAX_AGE = 0
