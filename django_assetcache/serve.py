"""One request, as data: host → site → entry → reply.

The single decision path shared by every adapter (middleware, WSGI, ASGI).
``answer`` returns None for a host that is not a site host, so the adapter
passes the request on to the project.
"""

from __future__ import annotations

import logging
from functools import partial
from typing import Any
from urllib.parse import unquote_to_bytes

from asgiref.sync import sync_to_async
from django.core.exceptions import SynchronousOnlyOperation

from . import traffic
from .accel import offload_for
from .bodies import FileParts, FileRange
from .cache import AssetCache, BlobUnavailable, Unavailable
from .entries import EntryKind
from .gate import BodyReader, answer_private
from .hosts import HostMiss, SiteInfo, normalize_host
from .http import HeaderGetter, clean_path, decide, redirect
from .replies import (
    BAD_GATEWAY,
    SERVICE_UNAVAILABLE,
    SITE_NOT_FOUND,
    SITE_NOT_FOUND_HTML,
    Reply,
    for_method,
)
from .runtime import cache_ready, get_cache, release_connections
from .siterules import fallback_reply, forced_reply, transport_reply

logger = logging.getLogger("django_assetcache")

# Bound once: the hit path compares by identity.
_FILE = EntryKind.FILE
_REDIRECT = EntryKind.REDIRECT
_PASS = HostMiss.PASS
_SENT = traffic.SENT
_NOT_FOUND = traffic.NOT_FOUND
#: Where requests to a host that names no site are counted.
_NO_SITE = traffic.counts_for(traffic.NO_SITE)


def answer(
    host: str, path: str | None, method: str, query_string: str, get: HeaderGetter, read_body: BodyReader | None = None
) -> Reply | None:
    """The reply for a request, or None when the host is not a site host.

    ``path`` is None when the request's path is not UTF-8: a site answers
    that with 400. ``read_body`` reads the request body (a private site's
    password form). Each reply is counted in its site's traffic (``traffic.py``).
    """
    cache = get_cache()
    cache.maybe_poll()
    try:
        site = cache.site_for(host)
    except Unavailable:
        return _host_unavailable(cache.domain_suffix, host, method)
    if not isinstance(site, SiteInfo):
        return None if site is _PASS else _no_site(_NO_SITE, method, get)
    counts = site.traffic
    if not site.active:
        return _no_site(counts, method, get)
    reply = None
    if site.transport is not None:
        reply = transport_reply(site, host, path, query_string, get)
    if reply is None:
        if site.private:
            site_reply = partial(_site_reply, cache, site, host, path, method, query_string, get)
            reply = answer_private(site, host, path, method, query_string, get, read_body, site_reply)
        else:
            reply = _site_reply(cache, site, host, path, method, query_string, get)
    counts[reply.status // 100] += 1
    counts[_SENT] += reply.sent
    return reply


def _site_reply(
    cache: AssetCache, site: SiteInfo, host: str, path: str | None, method: str, query_string: str, get: HeaderGetter
) -> Reply:
    """The reply a site's files give to a request."""
    if method != "GET" and method != "HEAD":
        return site.replies.method_not_allowed
    clean = None if path is None else clean_path(path, cache.max_path)
    if clean is None:
        return for_method(method, site.replies.bad_request)
    try:
        entry = cache.entry(site, clean)
        if entry.forced:
            # A forced rule may answer before the path's own file: only for
            # paths whose entry says so (one memo lookup then).
            ruled = forced_reply(cache, site, host, clean, method, query_string, get)
            if ruled is not None:
                return ruled
        kind = entry.kind
        if kind is _FILE:
            return decide(entry, method, get)
        if kind is _REDIRECT:
            return redirect(entry, query_string)
        return _missing(cache, site, host, clean, method, query_string, get)
    except Unavailable as exc:
        return _unavailable(exc, site, host, path, method)


def _missing(
    cache: AssetCache, site: SiteInfo, host: str, clean: str, method: str, query_string: str, get: HeaderGetter
) -> Reply:
    """A path the site does not have: a rule's answer, else its error
    document or a plain 404 (counted as a 404 of the site)."""
    if site.redirects is not None:
        ruled = fallback_reply(cache, site, host, clean, method, query_string, get)
        if ruled is not None:
            return ruled
    site.traffic[_NOT_FOUND] += 1
    reply = site.replies.not_found
    if site.error_path:
        document = cache.error_document(site)
        if document.kind is _FILE:
            reply = document.not_found()
    return for_method(method, reply)


def _unavailable(exc: Unavailable, site: SiteInfo, host: str, path: str | None, method: str) -> Reply:
    if isinstance(exc, BlobUnavailable):
        logger.error("assetcache: blob unavailable for %s%s", host, path, exc_info=True)
        return for_method(method, site.replies.bad_gateway)
    logger.warning("assetcache: database unavailable for %s%s", host, path, exc_info=True)
    return for_method(method, site.replies.service_unavailable)


def _host_unavailable(domain_suffix: str, host: str, method: str) -> Reply | None:
    """The database cannot say what ``host`` is: 503 under the domain,
    else the project's to answer."""
    logger.warning("assetcache: database unavailable resolving host %r", host, exc_info=True)
    normalized = normalize_host(host) or ""
    if not normalized.endswith(domain_suffix):
        return None
    return _counted(_NO_SITE, for_method(method, SERVICE_UNAVAILABLE))


def _counted(counts: traffic.Counts, reply: Reply) -> Reply:
    """``reply``, counted in the site's traffic (off the hit path)."""
    counts[reply.status // 100] += 1
    counts[_SENT] += reply.sent
    return reply


def _no_site(counts: traffic.Counts, method: str, get: HeaderGetter) -> Reply:
    """The 404 of a host that names no (active) site: a small page for a
    browser, plain text for anything else, both prepared once."""
    accept = get("HTTP_ACCEPT")
    page = SITE_NOT_FOUND_HTML if accept and "text/html" in accept else SITE_NOT_FOUND
    counts[_NOT_FOUND] += 1
    return _counted(counts, for_method(method, page))


Body = FileRange | FileParts
Answer = tuple[Reply, Body | None]


def answer_with_body(
    host: str, path: str | None, method: str, query_string: str, get: HeaderGetter, read_body: BodyReader | None = None
) -> Answer | None:
    """``answer``, with the reply's file opened: what adapters send."""
    reply = answer(host, path, method, query_string, get, read_body)
    if reply is None:
        return None
    return _open(reply, get) or _second_try(method, answer(host, path, method, query_string, get), get)


async def answer_with_body_async(
    host: str, path: str | None, method: str, query_string: str, get: HeaderGetter, read_body: BodyReader | None = None
) -> Answer | None:
    reply = await answer_async(host, path, method, query_string, get, read_body)
    if reply is None:
        return None
    return _open(reply, get) or _second_try(method, await answer_async(host, path, method, query_string, get), get)


def answer_outside_django(
    host: str, path: str | None, method: str, query_string: str, get: HeaderGetter, read_body: BodyReader | None = None
) -> Answer | None:
    """``answer_with_body`` for an adapter that answers without Django's
    request handler: database connections a miss used are released, as
    Django does at the end of each request it handles."""
    loader = get_cache().loader
    queries = loader.queries
    try:
        return answer_with_body(host, path, method, query_string, get, read_body)
    finally:
        if loader.queries != queries:
            release_connections()


def _second_try(method: str, reply: Reply | None, get: HeaderGetter) -> Answer:
    """The answer after the first reply's file could not be opened (its
    entry is dropped by then, so this reply was built afresh): sent if its
    file opens, else a 502, bodiless for HEAD like every fixed reply."""
    opened = _open(reply, get) if reply is not None else None
    return opened if opened is not None else (for_method(method, BAD_GATEWAY), None)


def _open(reply: Reply, get: HeaderGetter) -> Answer | None:
    """The reply with its file open, or None when the file is gone or has
    the wrong size; or, with ``ASSETCACHE_ACCEL``, the reply that hands the
    file to the web server in front (``accel.py``), when it can.

    A cached entry never stats its file on a hit; opening it to send it is
    where a file that went away (another process's local tier evicted it) or
    was cut short on disk shows. Then the entry is dropped so the caller's
    second ``answer`` rebuilds it (the local tier fetches a missing or short
    copy again); a file still wrong then gets 502, never a short body.
    """
    if reply.file_path is None:
        return reply, None
    settings = get_cache().settings
    offload = offload_for(settings.ACCEL, settings.ACCEL_PREFIX)
    if offload is not None:
        offloaded = offload.reply_for(reply, get)
        if offloaded is not None:
            return offloaded, None
    body: Body
    try:
        if reply.parts is not None:
            body = FileParts(reply.file_path, reply.file_size, reply.parts, reply.length)
        else:
            body = FileRange(reply.file_path, reply.offset, reply.length, reply.file_size)
    except OSError as exc:
        logger.warning("assetcache: %s cannot be sent (%s); rebuilding its cache entry", reply.file_path, exc)
        get_cache().forget_files([reply.file_path])
        return None
    return reply, body


def wsgi_body(environ: dict[str, Any]) -> BodyReader | None:
    """A reader of a WSGI request's body, never past its Content-Length;
    None for a request without one. Only a POST (a private site's password
    form) has a body anyone reads: other requests pay one comparison."""
    if environ.get("REQUEST_METHOD") != "POST":
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    stream = environ.get("wsgi.input")
    if length <= 0 or stream is None:
        return None
    return lambda limit: bytes(stream.read(min(limit, length)))


def wsgi_path(path_info: str) -> str | None:
    """A WSGI PATH_INFO (the request's bytes as latin-1) as the UTF-8 text
    sites use; None when it is not UTF-8 (``answer`` gives 400)."""
    if path_info.isascii():
        return path_info
    try:
        return path_info.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return None


def asgi_path(path: str, raw_path: bytes | None) -> str | None:
    """An ASGI path holding U+FFFD, checked against the request's bytes.

    Servers decode the path with replacement characters where its bytes are
    not UTF-8; such a path is None (``answer`` gives 400), as under WSGI. A
    U+FFFD the client really sent (``%EF%BF%BD``) is kept.
    """
    if raw_path is None:
        return path
    try:
        unquote_to_bytes(raw_path.partition(b"?")[0]).decode("utf-8")
    except UnicodeError:
        return None
    return path


async def answer_async(
    host: str, path: str | None, method: str, query_string: str, get: HeaderGetter, read_body: BodyReader | None = None
) -> Reply | None:
    """``answer`` on an event loop: hits run right here; whatever needs the
    database (creating the cache, a due poll, a miss) runs in a thread, as
    Django requires."""
    if not cache_ready() or get_cache().poll_due():
        await sync_to_async(_prepare, thread_sensitive=True)()
    if read_body is not None:
        # A form post to a private site: it asks the database, and must
        # not count twice against its rate limit by trying here first.
        return await sync_to_async(_answer_and_release, thread_sensitive=True)(
            host, path, method, query_string, get, read_body
        )
    try:
        return answer(host, path, method, query_string, get, read_body)
    except SynchronousOnlyOperation:
        return await sync_to_async(_answer_and_release, thread_sensitive=True)(
            host, path, method, query_string, get, read_body
        )


def _prepare() -> None:
    get_cache().maybe_poll()
    release_connections()


def _answer_and_release(
    host: str, path: str | None, method: str, query_string: str, get: HeaderGetter, read_body: BodyReader | None
) -> Reply | None:
    try:
        return answer(host, path, method, query_string, get, read_body)
    finally:
        release_connections()
