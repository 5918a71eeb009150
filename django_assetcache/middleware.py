"""The Django adapter: site hosts are answered here, all else passes through.

Place it first in MIDDLEWARE, or right after SecurityMiddleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase
from django.http.response import ResponseHeaders

from .bodies import BLOCK_SIZE, FileRange
from .http import BAD_GATEWAY, Reply
from .serve import answer, answer_async

def _header_store(reply: Reply) -> dict[str, tuple[str, str]]:
    """The reply's headers as Django keeps them, validated by Django once
    per reply rather than once per response."""
    store = reply.adapter_headers
    if store is None:
        store = reply.adapter_headers = ResponseHeaders(dict(reply.headers))._store
    return store  # type: ignore[return-value]


def to_response(reply: Reply) -> HttpResponseBase:
    response: HttpResponseBase
    if reply.file_path is not None:
        try:
            body = FileRange(reply.file_path, reply.offset, reply.length)
        except OSError:
            return to_response(BAD_GATEWAY)
        response = FileResponse(body, status=reply.status)
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
        reply = _answer(request)
        if reply is None:
            return self.get_response(request)
        return to_response(reply)

    async def __acall__(self, request: HttpRequest) -> HttpResponseBase:
        meta = request.META
        reply = await answer_async(
            meta.get("HTTP_HOST", ""),
            request.path_info,
            request.method or "GET",
            meta.get("QUERY_STRING", ""),
            meta.get,
        )
        if reply is None:
            response: Awaitable[HttpResponseBase] = self.get_response(request)
            return await response
        return to_response(reply)


def _answer(request: HttpRequest) -> Reply | None:
    meta = request.META
    return answer(
        meta.get("HTTP_HOST", ""),
        request.path_info,
        request.method or "GET",
        meta.get("QUERY_STRING", ""),
        meta.get,
    )
