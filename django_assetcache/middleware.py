"""The Django adapter: site hosts are answered here, all else passes through.

Place it first in MIDDLEWARE: site hosts are answered before anything
validates the Host header against ALLOWED_HOSTS (SecurityMiddleware's HTTPS
redirect does), so they never need to be listed there; HTTPS-only sites
redirect plain HTTP themselves.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase

from .access import PREFIX
from .bodies import BLOCK_SIZE
from .http import request_host
from .replies import Reply
from .serve import Body, answer_with_body, answer_with_body_async


def _headers(reply: Reply) -> dict[str, str]:
    """The reply's headers as a dict, made once per reply."""
    headers = reply.adapter_headers
    if headers is None:
        headers = reply.adapter_headers = dict(reply.headers)
    return headers  # type: ignore[return-value]


class AssetResponse(HttpResponse):
    """A reply from memory, with exactly the reply's headers."""

    def __init__(self, reply: Reply) -> None:
        headers = _headers(reply)
        super().__init__(reply.body, status=reply.status, headers=headers)
        if "Content-Type" not in headers:
            # A 304 has none; Django would add its default.
            del self.headers["Content-Type"]


class AssetFileResponse(FileResponse):
    """A reply from a local file: handed to ``wsgi.file_wrapper`` (sendfile)
    where the server has one, streamed in blocks otherwise."""

    block_size = BLOCK_SIZE

    def __init__(self, reply: Reply, body: Body) -> None:
        super().__init__(body, status=reply.status, headers=_headers(reply))

    def set_headers(self, filelike: object) -> None:
        """The reply's headers are already complete: nothing is guessed from the file."""


def to_response(reply: Reply, body: Body | None) -> HttpResponseBase:
    if body is not None:
        return AssetFileResponse(reply, body)
    return AssetResponse(reply)


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


def _request_args(
    request: HttpRequest,
) -> tuple[str, str, str, str, Callable[[str], Any], Callable[[int], bytes] | None]:
    meta = request.META
    if "wsgi.url_scheme" not in meta:
        # Under ASGI: what HTTPS-only sites read when no proxy header says.
        meta["wsgi.url_scheme"] = request.scheme
    return (
        # gunicorn passes the raw request target on as RAW_URI.
        request_host(meta.get("HTTP_HOST", ""), meta.get("RAW_URI")),
        request.path_info,
        request.method or "GET",
        meta.get("QUERY_STRING", ""),
        meta.get,
        # A private site's password form is the only body read.
        request.read if request.method == "POST" and request.path_info.startswith(PREFIX) else None,
    )
