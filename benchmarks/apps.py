"""The applications benchmarks/run.py serves, as factories for gunicorn, uvicorn and granian.

Each factory is called once per worker process, after the server has loaded
this module, so nothing here sets Django up at import time.
"""

from __future__ import annotations

import os
from typing import Any


def wsgi_fast() -> Any:
    """django-assetcache's WSGI fast path around Django's handler."""
    from django.core.wsgi import get_wsgi_application

    django_app = get_wsgi_application()  # sets Django up before the app's models are imported
    from django_assetcache.wsgi import AssetCacheWSGI

    return AssetCacheWSGI(django_app)


def asgi_assetcache() -> Any:
    """django-assetcache's ASGI fast path around Django's ASGI handler."""
    from django.core.asgi import get_asgi_application

    django_app = get_asgi_application()  # sets Django up before the app's models are imported
    from django_assetcache.asgi import AssetCacheASGI

    return AssetCacheASGI(django_app)


def asgi_servestatic() -> Any:
    """servestatic's ASGI app over the published source directory, alone
    (no Django behind it: a path it does not know gets its own 404)."""
    from servestatic import ServeStaticASGI

    return ServeStaticASGI(None, root=os.environ["BENCH_SITE_DIR"], max_age=0)
