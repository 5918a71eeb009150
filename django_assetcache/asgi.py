"""The ASGI fast path: site hosts are answered before Django's handler runs.

    from django.core.asgi import get_asgi_application
    from django_assetcache.asgi import AssetCacheASGI

    application = AssetCacheASGI(get_asgi_application())

Decisions come from the same code as the middleware (``serve.answer_async``);
this module only speaks ASGI. A body in memory goes out in one message. A
file goes out by ``http.response.pathsend`` when the server offers it and the
whole file is wanted; otherwise it is read in bounded chunks in a thread, so
the event loop never blocks and memory stays flat.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from django.conf import settings as django_settings

from .bodies import BLOCK_SIZE
from .replies import Reply
from .serve import Body, answer_with_body_async, asgi_path

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Request headers the decision reads, by their ASGI name, with WSGI names.
_WANTED = {
    b"host": "HTTP_HOST",
    b"accept": "HTTP_ACCEPT",
    b"if-match": "HTTP_IF_MATCH",
    b"if-unmodified-since": "HTTP_IF_UNMODIFIED_SINCE",
    b"if-none-match": "HTTP_IF_NONE_MATCH",
    b"if-modified-since": "HTTP_IF_MODIFIED_SINCE",
    b"range": "HTTP_RANGE",
    b"if-range": "HTTP_IF_RANGE",
    b"accept-encoding": "HTTP_ACCEPT_ENCODING",
}


_wanted_by_proxy: dict[object, dict[bytes, str]] = {}


def _wanted() -> dict[bytes, str]:
    """``_WANTED`` and the header ``SECURE_PROXY_SSL_HEADER`` names, if any
    (HTTPS-only sites read it), made once per value of that setting."""
    proxy = django_settings.SECURE_PROXY_SSL_HEADER
    wanted = _wanted_by_proxy.get(proxy)
    if wanted is None:
        wanted = dict(_WANTED)
        if proxy and proxy[0].startswith("HTTP_"):
            wanted[proxy[0][5:].lower().replace("_", "-").encode("latin-1")] = proxy[0]
        _wanted_by_proxy[proxy] = wanted
    return wanted


class AssetCacheASGI:
    def __init__(self, application: ASGIApp) -> None:
        self.application = application

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.application(scope, receive, send)
        headers: dict[str, str] = {"wsgi.url_scheme": scope.get("scheme") or "http"}
        wanted = _wanted()
        for name, value in scope["headers"]:
            key = wanted.get(name)
            if key is not None:
                text = value.decode("latin-1")
                # Repeated fields combine into one list, as in WSGI.
                headers[key] = f"{headers[key]}, {text}" if key in headers else text
        scope_path: str = scope["path"]
        path: str | None = scope_path
        if not scope_path.isascii() and "\ufffd" in scope_path:
            path = asgi_path(scope_path, scope.get("raw_path"))
        answered = await answer_with_body_async(
            headers.get("HTTP_HOST", ""),
            path,
            scope["method"],
            scope.get("query_string", b"").decode("latin-1"),
            headers.get,
        )
        if answered is None:
            return await self.application(scope, receive, send)
        await respond(*answered, scope, send)


async def respond(reply: Reply, body: Body | None, scope: Scope, send: Send) -> None:
    if body is None:
        await send({"type": "http.response.start", "status": reply.status, "headers": reply.raw_headers})
        await send({"type": "http.response.body", "body": reply.body})
        return
    loop = asyncio.get_running_loop()
    try:
        await send({"type": "http.response.start", "status": reply.status, "headers": reply.raw_headers})
        whole_file = reply.offset == 0 and reply.status == 200
        if whole_file and "http.response.pathsend" in scope.get("extensions", {}):
            await send({"type": "http.response.pathsend", "path": reply.file_path})
            return
        while True:
            chunk = await loop.run_in_executor(None, body.read, BLOCK_SIZE)
            more = body.remaining > 0 and bool(chunk)
            await send({"type": "http.response.body", "body": chunk, "more_body": more})
            if not more:
                return
    finally:
        body.close()
