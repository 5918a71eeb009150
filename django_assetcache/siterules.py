"""Site rules on the request path: transport redirects, forced rules before a
path's own file, the other redirect rules when it has none.

Everything here was prepared when the site's ``SiteInfo`` was made (tables,
the HSTS header); a request only looks up. A 200 rule serves the target's own
cache entry (its ETag and validators, its header rules); 404 and 410 rules
serve TO with that status.
"""

from __future__ import annotations

from typing import Protocol
from urllib.parse import unquote

from django.conf import settings as django_settings

from .entries import Entry, EntryKind
from .hosts import SiteInfo, normalize_host
from .http import HeaderGetter, clean_path, decide, redirect
from .replies import NOT_FOUND, Reply, for_method, plain_reply
from .ruletables import Match
from .transport import is_secure, moved

GONE = plain_reply(410, "Gone.\n")
_FILE = EntryKind.FILE
_REDIRECT = EntryKind.REDIRECT


class EntrySource(Protocol):
    max_path: int

    def entry(self, site: SiteInfo, path: str) -> Entry: ...


def transport_reply(site: SiteInfo, host: str, path: str | None, query_string: str, get: HeaderGetter) -> Reply | None:
    """The site's HTTPS or canonical-host redirect for this request, if any."""
    transport = site.transport
    if transport is None or path is None:
        return None
    secure = is_secure(get, django_settings.SECURE_PROXY_SSL_HEADER)
    if secure and not transport.canonical:
        return None  # an HTTPS-only site asked over HTTPS: nothing to read
    return transport.redirect(normalize_host(host) or "", path, query_string, secure)


def rule_reply(
    cache: EntrySource, site: SiteInfo, match: Match, method: str, query_string: str, get: HeaderGetter
) -> Reply | None:
    """The reply of a rule that matched the request (``RedirectTable.lookup``),
    or None when it is a 200 rule whose target is missing."""
    status = match.status
    if status < 300 or status >= 400:
        return _serve(cache, site, match, method, query_string, get)
    location = match.target
    if query_string and "?" not in location:
        location += "?" + query_string
    return moved(status, location, site.transport.hsts if site.transport is not None else ())


def forced_reply(
    cache: EntrySource, site: SiteInfo, host: str, path: str, method: str, query_string: str, get: HeaderGetter
) -> Reply | None:
    """The reply of the site's first forced rule matching the request, or None."""
    table = site.forced
    match = table.lookup(host, path, query_string) if table is not None else None
    return rule_reply(cache, site, match, method, query_string, get) if match is not None else None


def fallback_reply(
    cache: EntrySource, site: SiteInfo, host: str, path: str, method: str, query_string: str, get: HeaderGetter
) -> Reply | None:
    """The reply of the site's first unforced rule matching a request whose
    path has no content, or None."""
    table = site.redirects
    match = table.lookup(host, path, query_string) if table is not None else None
    return rule_reply(cache, site, match, method, query_string, get) if match is not None else None


def _serve(
    cache: EntrySource, site: SiteInfo, match: Match, method: str, query_string: str, get: HeaderGetter
) -> Reply | None:
    target = clean_path(unquote(match.target.partition("?")[0]), cache.max_path)
    entry = cache.entry(site, target) if target is not None else None
    kind = entry.kind if entry is not None else None
    if match.status == 200:
        if entry is None or (kind is not _FILE and kind is not _REDIRECT):
            return None
        return decide(entry, method, get) if kind is _FILE else redirect(entry, query_string)
    if entry is not None and kind is _FILE:
        reply = entry.not_found()
        if match.status != 404:
            reply = Reply(
                match.status, reply.headers, reply.body, reply.file_path, length=reply.length, file_size=reply.file_size
            )
    else:
        reply = NOT_FOUND if match.status == 404 else GONE
    return for_method(method, reply)
