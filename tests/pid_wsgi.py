"""The test project's WSGI application, telling which worker answered.

Every response carries ``X-Worker-Pid``, so a test (or benchmarks/soak.py)
can check that each gunicorn worker, not just some, serves what it should,
and ``X-Last-Change``: the id of the last change the worker's cache applied
and the wall-clock time (``time.time()``) it applied it, so the time from a
commit to a worker acting on it is measured where it happens, not guessed
from when a probe happened to reach that worker.
The body iterable is passed through untouched (``wsgi.file_wrapper`` and
sendfile still apply).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from typing import Any

from django.core.wsgi import get_wsgi_application

from django_assetcache.runtime import cache_ready, get_cache

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")
_application = get_wsgi_application()


def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    def start(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        headers.append(("X-Worker-Pid", str(os.getpid())))
        if cache_ready():
            cache = get_cache()
            headers.append(("X-Last-Change", f"{cache.last_change_id} {cache.last_change_at!r}"))
        return start_response(status, headers, exc_info)

    return _application(environ, start)
