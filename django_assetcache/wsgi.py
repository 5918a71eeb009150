"""The WSGI fast path: site hosts are answered before Django's handler runs.

    from django.core.wsgi import get_wsgi_application
    from django_assetcache.wsgi import AssetCacheWSGI

    application = AssetCacheWSGI(get_wsgi_application())

Decisions come from the same code as the middleware (``serve.answer``); this
module only speaks WSGI. Files go out through ``wsgi.file_wrapper``, so
servers such as gunicorn send them with sendfile.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from .bodies import BLOCK_SIZE
from .http import request_host
from .serve import answer_outside_django, wsgi_body, wsgi_path

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class AssetCacheWSGI:
    def __init__(self, application: WSGIApp) -> None:
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        answered = answer_outside_django(
            request_host(environ.get("HTTP_HOST", ""), environ.get("RAW_URI")),
            # An absolute-form target without a path leaves PATH_INFO empty.
            wsgi_path(environ.get("PATH_INFO") or "/"),
            environ["REQUEST_METHOD"],
            environ.get("QUERY_STRING", ""),
            environ.get,
            wsgi_body(environ),
        )
        if answered is None:
            return self.application(environ, start_response)
        reply, file = answered
        start_response(reply.status_line, reply.headers)
        if file is None:
            return (reply.body,)
        file_wrapper = environ.get("wsgi.file_wrapper")
        if file_wrapper is not None:
            wrapped: Iterable[bytes] = file_wrapper(file, BLOCK_SIZE)
            return wrapped
        return file
