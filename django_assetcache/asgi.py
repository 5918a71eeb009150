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
from django.core.signals import setting_changed

from .access import FORM_LIMIT, PREFIX
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
    b"if-match": "HTTP_IF_MATCH",
    b"if-unmodified-since": "HTTP_IF_UNMODIFIED_SINCE",
    b"if-none-match": "HTTP_IF_NONE_MATCH",
    b"if-modified-since": "HTTP_IF_MODIFIED_SINCE",
    b"range": "HTTP_RANGE",
    b"if-range": "HTTP_IF_RANGE",
    b"accept-encoding": "HTTP_ACCEPT_ENCODING",
    b"accept": "HTTP_ACCEPT",
    b"cookie": "HTTP_COOKIE",
    b"content-length": "CONTENT_LENGTH",
}


#: ``_WANTED`` and the header ``SECURE_PROXY_SSL_HEADER`` names, if any
#: (HTTPS-only sites read it): made on first use, not per request, and
#: made again when that setting changes.
_wanted_now: dict[bytes, str] | None = None


def _wanted() -> dict[bytes, str]:
    global _wanted_now
    wanted = dict(_WANTED)
    proxy = django_settings.SECURE_PROXY_SSL_HEADER
    if proxy and proxy[0].startswith("HTTP_"):
        wanted[proxy[0][5:].lower().replace("_", "-").encode("latin-1")] = proxy[0]
    _wanted_now = wanted
    return wanted


def _forget_wanted(*, setting: str, **kwargs: object) -> None:
    global _wanted_now
    if setting == "SECURE_PROXY_SSL_HEADER":
        _wanted_now = None


setting_changed.connect(_forget_wanted)


class AssetCacheASGI:
    def __init__(self, application: ASGIApp) -> None:
        self.application = application

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.application(scope, receive, send)
        headers: dict[str, str] = {"wsgi.url_scheme": scope.get("scheme") or "http"}
        wanted = _wanted_now or _wanted()
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
        body: list[Message] | None = None
        if scope["method"] == "POST" and scope_path.startswith(PREFIX):
            # A private site's password form: read (up to a limit) before
            # answering, and handed on as it came if the host is no site's.
            # Its rate limit is the only reader of the client's address.
            body = await _read_body(receive, FORM_LIMIT + 1)
            client = scope.get("client")
            if client:
                headers["REMOTE_ADDR"] = str(client[0])
        answered = await answer_with_body_async(
            headers.get("HTTP_HOST", ""),
            path,
            scope["method"],
            scope.get("query_string", b"").decode("latin-1"),
            headers.get,
            None if body is None else _reader(body),
        )
        if answered is None:
            return await self.application(scope, _replay(body, receive) if body else receive, send)
        await respond(*answered, scope, send)


async def _read_body(receive: Receive, limit: int) -> list[Message]:
    """The request's first messages, until the body ends or passes ``limit`` bytes."""
    messages: list[Message] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages
        size += len(message.get("body", b""))
        if not message.get("more_body") or size > limit:
            return messages


def _reader(messages: list[Message]) -> Callable[[int], bytes]:
    data = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.request")
    return lambda limit: data[:limit]


def _replay(messages: list[Message], receive: Receive) -> Receive:
    """``receive`` giving ``messages`` first."""
    queue = list(messages)

    async def replayed() -> Message:
        return queue.pop(0) if queue else await receive()

    return replayed


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
