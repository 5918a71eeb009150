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

from .bodies import BLOCK_SIZE, FileRange
from .cache import get_cache
from .http import BAD_GATEWAY, Reply
from .serve import answer, release_connections, wsgi_path

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


class AssetCacheWSGI:
    def __init__(self, application: WSGIApp) -> None:
        self.application = application

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        cache = get_cache()
        queries = cache.loader.queries
        reply = answer(
            environ.get("HTTP_HOST", ""),
            wsgi_path(environ.get("PATH_INFO", "/")),
            environ["REQUEST_METHOD"],
            environ.get("QUERY_STRING", ""),
            environ.get,
        )
        if cache.loader.queries != queries:
            release_connections()
        if reply is None:
            return self.application(environ, start_response)
        return send(reply, environ, start_response)


def send(reply: Reply, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if reply.file_path is None:
        start_response(reply.status_line, reply.headers)
        return (reply.body,)
    try:
        body = FileRange(reply.file_path, reply.offset, reply.length)
    except OSError:
        return send(BAD_GATEWAY, environ, start_response)
    start_response(reply.status_line, reply.headers)
    file_wrapper = environ.get("wsgi.file_wrapper")
    if file_wrapper is not None:
        return file_wrapper(body, BLOCK_SIZE)
    return body
