"""A wsgi.py as docs/deployment.md recommends for ``gunicorn --preload``:
the WSGI fast path, and the cache warmed in the master before it forks."""

from __future__ import annotations

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
django_application = get_wsgi_application()

import django_assetcache  # noqa: E402  (after Django is set up)
from django_assetcache.wsgi import AssetCacheWSGI  # noqa: E402

application = AssetCacheWSGI(django_application)
django_assetcache.warm()
