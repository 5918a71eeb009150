"""The Django adapter: site hosts are answered here, all else passes through.

Place it first in MIDDLEWARE, or right after SecurityMiddleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase
from django.http.response import ResponseHeaders

from .bodies import BLOCK_SIZE
from .http import Reply, request_host
from .serve import Body, answer_with_body, answer_with_body_async


def _header_store(reply: Reply) -> dict[str, tuple[str, str]]:
    """The reply's headers as Django keeps them, validated by Django once
    per reply rather than once per response."""
    store = reply.adapter_headers
    if store is None:
        store = reply.adapter_headers = ResponseHeaders(dict(reply.headers))._store
    return store  # type: ignore[return-value]


def to_response(reply: Reply, file: Body | None) -> HttpResponseBase:
    response: HttpResponseBase
    if file is not None:
        # FileResponse hands the file to wsgi.file_wrapper (sendfile) where
        # the server has one, and streams it in blocks otherwise.
        response = FileResponse(file, status=reply.status)
        response.block_size = BLOCK_SIZE
    else:
        response = HttpResponse(reply.body, status=reply.status)
    # Replaces the defaults Django set (a 304 has no Content-Type).
    response.headers._store = _header_store(reply).copy()
    return response


class AssetCacheMiddleware:
    sync_capable = True
    async_capable = True

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest) -> Any:
        if self.is_async:
            return self.__acall__(request)
        answered = answer_with_body(*_request_args(request))
        if answered is None:
            return self.get_response(request)
        return to_response(*answered)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        answered = await answer_with_body_async(*_request_args(request))
        if answered is None:
            response: Awaitable[HttpResponseBase] = self.get_response(request)
            return await response
        return to_response(*answered)


def _request_args(request: HttpRequest) -> tuple[str, str, str, str, Callable[[str], Any]]:
    meta = request.META
    return (
        # gunicorn passes the raw request target on as RAW_URI.
        request_host(meta.get("HTTP_HOST", ""), meta.get("RAW_URI")),
        request.path_info,
        request.method or "GET",
        meta.get("QUERY_STRING", ""),
        meta.get,
    )
