"""The Django adapter: site hosts are answered here, all else passes through.

Place it first in MIDDLEWARE, or right after SecurityMiddleware.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from typing import Any

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import FileResponse, HttpRequest, HttpResponse, HttpResponseBase

from .http import BAD_GATEWAY, Reply
from .serve import answer

#: Chunk size when a server without sendfile streams a file (ASGI, runserver).
STREAM_BLOCK_SIZE = 256 * 1024


class FileRange:
    """The bytes ``offset`` .. ``offset + length`` of an open file.

    ``read`` stops at the end of the range, so servers that iterate the body
    send exactly the range; ``fileno`` with the file positioned at ``offset``
    lets a WSGI server's ``wsgi.file_wrapper`` send the same bytes by
    sendfile (gunicorn sends ``Content-Length`` bytes from the current
    position).
    """

    def __init__(self, path: str, offset: int, length: int) -> None:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            if offset:
                os.lseek(fd, offset, os.SEEK_SET)
            self._file = os.fdopen(fd, "rb", buffering=0)
        except BaseException:
            os.close(fd)
            raise
        self.remaining = length

    def read(self, size: int = -1) -> bytes:
        if self.remaining <= 0:
            return b""
        if size < 0 or size > self.remaining:
            size = self.remaining
        data = self._file.read(size)
        self.remaining -= len(data)
        return data

    def fileno(self) -> int:
        return self._file.fileno()

    def close(self) -> None:
        self._file.close()


def to_response(reply: Reply) -> HttpResponseBase:
    response: HttpResponseBase
    if reply.file_path is not None:
        try:
            body = FileRange(reply.file_path, reply.offset, reply.length)
        except OSError:
            return to_response(BAD_GATEWAY)
        response = FileResponse(body, status=reply.status)
        response.block_size = STREAM_BLOCK_SIZE
    else:
        response = HttpResponse(reply.body, status=reply.status)
        if reply.status == 304:
            del response.headers["Content-Type"]
    headers = response.headers
    for name, value in reply.headers:
        headers[name] = value
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
        # A miss queries the database, which Django allows only off the event
        # loop; the cache lookups themselves are pure CPU and short.
        reply = await sync_to_async(_answer, thread_sensitive=True)(request)
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
