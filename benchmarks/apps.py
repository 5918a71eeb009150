"""The applications benchmarks/run.py serves, as factories for gunicorn, uvicorn and granian.

Each factory is called once per worker process, after the server has loaded
this module, so nothing here sets Django up at import time. With
``BENCH_CPROFILE`` naming a directory, each factory's app is wrapped in a
profiler (benchmarks/profile_workers.py --cprofile).
"""

from __future__ import annotations

import cProfile
import os
import time
from typing import Any

#: Seconds of requests a profiled worker records before writing its profile.
PROFILE_SECONDS = float(os.environ.get("BENCH_CPROFILE_SECONDS", "5"))


class Recording:
    """cProfile, in CPU time of the thread that serves requests, from a
    worker's first request for ``PROFILE_SECONDS``; then written to
    ``$BENCH_CPROFILE/profile-<pid>.prof``."""

    def __init__(self) -> None:
        self.profile = cProfile.Profile(time.thread_time)
        self.until: float | None = None

    def start(self) -> None:
        if self.until is None:
            self.until = time.monotonic() + PROFILE_SECONDS
            self.profile.enable()

    def check(self) -> None:
        if self.until is not None and self.until != float("inf") and time.monotonic() > self.until:
            self.profile.disable()
            self.until = float("inf")
            self.profile.dump_stats(os.path.join(os.environ["BENCH_CPROFILE"], f"profile-{os.getpid()}.prof"))


class ProfiledASGI:
    def __init__(self, app: Any) -> None:
        self.app, self.recording = app, Recording()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.recording.start()
        await self.app(scope, receive, send)
        self.recording.check()


class ProfiledWSGI:
    def __init__(self, app: Any) -> None:
        self.app, self.recording = app, Recording()

    def __call__(self, environ: Any, start_response: Any) -> Any:
        self.recording.start()
        try:
            return self.app(environ, start_response)
        finally:
            self.recording.check()


def maybe_profiled(app: Any, wrapper: type[ProfiledASGI] | type[ProfiledWSGI]) -> Any:
    return wrapper(app) if os.environ.get("BENCH_CPROFILE") else app


def wsgi_fast() -> Any:
    """django-assetcache's WSGI fast path around Django's handler."""
    from django.core.wsgi import get_wsgi_application

    django_app = get_wsgi_application()  # sets Django up before the app's models are imported
    from django_assetcache.wsgi import AssetCacheWSGI

    return maybe_profiled(AssetCacheWSGI(django_app), ProfiledWSGI)


def asgi_assetcache() -> Any:
    """django-assetcache's ASGI fast path around Django's ASGI handler."""
    from django.core.asgi import get_asgi_application

    django_app = get_asgi_application()  # sets Django up before the app's models are imported
    from django_assetcache.asgi import AssetCacheASGI

    return maybe_profiled(AssetCacheASGI(django_app), ProfiledASGI)


def asgi_servestatic() -> Any:
    """servestatic's ASGI app over the published source directory, alone
    (no Django behind it: a path it does not know gets its own 404)."""
    from servestatic import ServeStaticASGI

    return maybe_profiled(ServeStaticASGI(None, root=os.environ["BENCH_SITE_DIR"], max_age=0), ProfiledASGI)
