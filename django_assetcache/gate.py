"""The request path of a private site: access first, then the site's files.

``serve.answer`` hands a private site's request here (one attribute check
on a public site's hit path). Without access, a request gets the same
reply whatever its path (a redirect to sign in for a browser, 401 or 403
otherwise), so it never learns whether a path exists; with access, the
reply ``serve`` would give, its Cache-Control private. The paths under
``/.assetcache/`` are answered here on every adapter: the ticket exchange,
the password form, share links, signing out.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from urllib.parse import parse_qs, quote, urlencode

from django.urls import NoReverseMatch, reverse

from . import access, conf
from .access import Access, AccessGate
from .cache import Unavailable
from .hosts import SiteInfo, normalize_host
from .http import HeaderGetter
from .replies import NOSNIFF, PRIVATE, VARY_COOKIE, Reply, for_method, plain_reply
from .runtime import get_access

logger = logging.getLogger("django_assetcache")

#: Reads up to n bytes of the request body.
BodyReader = Callable[[int], bytes]

HTML = "text/html; charset=utf-8"


def _plain(status: int, text: str, extra: tuple[tuple[str, str], ...] = ()) -> Reply:
    return plain_reply(status, text, extra, validators=PRIVATE)


UNAUTHORIZED = _plain(401, "Sign in to see this site.\n", (("WWW-Authenticate", 'Cookie realm="site"'),))
FORBIDDEN = _plain(403, "You may not see this site.\n")
NO_LOGIN = _plain(403, "This site is private and signing in is not set up (ASSETCACHE_PROJECT_URL).\n")
BAD_TICKET = _plain(403, "This sign-in link is invalid, expired or used already. Open the site again.\n")
BAD_SHARE = _plain(403, "This share link is invalid, expired or revoked.\n")
UNAVAILABLE = _plain(503, "The site cannot be served right now.\n", (("Retry-After", "5"),))
TOO_LARGE = _plain(413, "The form is too large.\n")
TOO_MANY = _plain(429, "Too many attempts: wait a minute.\n", (("Retry-After", "60"),))
PRIVATE_METHOD_NOT_ALLOWED = _plain(405, "Method not allowed.\n", (("Allow", "GET, HEAD, POST"),))

#: Statuses of replies built from a private site's entry, private already.
_FROM_ENTRY = frozenset({200, 206, 304, 404, 412, 416})

PASSWORD_PAGE = """<!doctype html>
<html lang="en"><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>Password required</title>
<style>body{{font:16px system-ui,sans-serif;max-width:22em;margin:4em auto;padding:0 1em}}
input{{font:inherit;padding:.4em;width:100%;box-sizing:border-box;margin:.3em 0}}</style>
<h1>Password required</h1><p>{message}</p>
<form method="post" action="{action}"><input type="hidden" name="next" value="{next}">
<label>Password <input type="password" name="password" autofocus required></label>
<input type="submit" value="Enter"></form></html>
"""


def answer_private(
    site: SiteInfo,
    host: str,
    path: str | None,
    method: str,
    query_string: str,
    get: HeaderGetter,
    read_body: BodyReader | None,
    inner: Callable[[], Reply],
) -> Reply:
    """The reply to a request for a private site; ``inner`` gives the reply
    the site's files give, asked only once access is granted."""
    gate = get_access()
    try:
        if path is not None and path.startswith(access.PREFIX):
            special = _special(gate, site, host, path, method, query_string, get, read_body)
            if special is not None:
                return for_method(method, special)
        granted = gate.check(site, host, get("HTTP_COOKIE"))
    except Unavailable:
        logger.warning("assetcache: database unavailable checking access to %s", host, exc_info=True)
        return for_method(method, UNAVAILABLE)
    if granted is Access.GRANTED:
        return private_reply(inner())
    return for_method(method, _denied(site, host, granted, path, method, query_string, get))


def private_reply(reply: Reply) -> Reply:
    """``reply`` with a private Cache-Control: replies built from a private
    site's entry and its fixed replies (``hosts.SiteInfo.replies``) are
    already; a redirect or a rule's reply is rebuilt."""
    if reply.status in _FROM_ENTRY or reply.headers[-1] is VARY_COOKIE:
        return reply
    headers = [header for header in reply.headers if header[0] != "Cache-Control" and header[0] != "Vary"]
    return Reply(reply.status, [*headers, *PRIVATE], reply.body)


def _query(query_string: str, name: str) -> str | None:
    values = parse_qs(query_string, max_num_fields=10).get(name)
    return values[0] if values else None


def _special(
    gate: AccessGate,
    site: SiteInfo,
    host: str,
    path: str,
    method: str,
    query_string: str,
    get: HeaderGetter,
    read_body: BodyReader | None,
) -> Reply | None:
    """The answer of a ``/.assetcache/`` path, or None for any other path."""
    if path == access.PASSWORD_PATH and site.visibility == "password":
        if method == "POST":
            return _password_post(gate, site, host, get, read_body)
        if method in ("GET", "HEAD"):
            return _password_page(200, "Enter the password of this site.", safe(_query(query_string, "next")))
        return PRIVATE_METHOD_NOT_ALLOWED
    handler = _HANDLERS.get(path)
    if handler is None:
        return None
    if method != "GET" and method != "HEAD":
        return PRIVATE_METHOD_NOT_ALLOWED
    return handler(gate, site, host, query_string)


def safe(value: str | None) -> str:
    return access.safe_next(value) or "/"


def _auth(gate: AccessGate, site: SiteInfo, host: str, query_string: str) -> Reply:
    """Exchange a ticket from the project for this host's cookie."""
    ticket = access.read_ticket(_query(query_string, "ticket") or "", normalize_host(host) or "")
    if ticket is None or site.visibility not in access.SIGN_IN:
        return BAD_TICKET
    if not gate.backend.use_ticket(ticket.id, time.time() + access.TICKET_SECONDS):
        return BAD_TICKET
    principal = ("u", ticket.user_id)
    if not gate.may_see(principal, site):
        return FORBIDDEN
    return _signed_in(principal, site, host, ticket.next, conf.get().ACCESS_MAX_AGE, 302)


def _share(gate: AccessGate, site: SiteInfo, host: str, query_string: str) -> Reply:
    """A share link: a cookie until the link (or the cookie) expires."""
    token = access.read_share_token(_query(query_string, "token") or "")
    if token is None or token[1] != site.id:
        return BAD_SHARE
    expiry = gate.backend.share_link_expiry(token[0], site.id)
    if expiry is None:
        return BAD_SHARE
    max_age = min(int(expiry - time.time()), conf.get().ACCESS_MAX_AGE)
    return _signed_in(("s", token[0]), site, host, safe(_query(query_string, "next")), max_age, 302)


def _logout(gate: AccessGate, site: SiteInfo, host: str, query_string: str) -> Reply:
    cookie = access.set_cookie_header("", 0, _secure())
    return _plain(200, "Signed out of this site.\n", (cookie,))


_HANDLERS: dict[str, Callable[[AccessGate, SiteInfo, str, str], Reply]] = {
    access.AUTH_PATH: _auth,
    access.SHARE_PATH: _share,
    access.LOGOUT_PATH: _logout,
}


def _secure() -> bool:
    return conf.get().SITE_URL.startswith("https:")


def _signed_in(principal: access.Principal, site: SiteInfo, host: str, target: str, max_age: int, status: int) -> Reply:
    """Redirect to ``target`` with a cookie for ``principal``, ``max_age`` seconds long."""
    value = access.make_cookie(principal, site.id, normalize_host(host) or "", time.time() + max_age)
    cookie = access.set_cookie_header(value, max_age, _secure())
    return _plain(status, "", (("Location", target), cookie))


def _password_post(
    gate: AccessGate, site: SiteInfo, host: str, get: HeaderGetter, read_body: BodyReader | None
) -> Reply:
    try:
        declared = int(get("CONTENT_LENGTH") or 0)
    except ValueError:
        declared = 0
    if declared > access.FORM_LIMIT:
        return TOO_LARGE
    body = read_body(access.FORM_LIMIT + 1) if read_body is not None else b""
    if len(body) > access.FORM_LIMIT:
        return TOO_LARGE
    if not gate.limiter.allow(get("REMOTE_ADDR") or ""):
        return TOO_MANY
    form = parse_qs(body.decode("utf-8", "replace"), max_num_fields=10)
    target = safe((form.get("next") or [""])[0])
    password = (form.get("password") or [""])[0]
    if not password or not gate.backend.password_matches(site.id, password):
        return _password_page(401, "That password is not right. Try again.", target)
    principal = ("p", site.access_tag)
    return _signed_in(principal, site, host, target, conf.get().ACCESS_MAX_AGE, 303)


def _password_page(status: int, message: str, target: str) -> Reply:
    page = PASSWORD_PAGE.format(message=message, action=access.PASSWORD_PATH, next=html.escape(target)).encode()
    headers = [("Content-Type", HTML), ("Content-Length", str(len(page))), NOSNIFF, *PRIVATE]
    return Reply(status, headers, page)


def _denied(
    site: SiteInfo, host: str, granted: Access, path: str | None, method: str, query_string: str, get: HeaderGetter
) -> Reply:
    """The same reply for every path of the site: a browser (HTML in its
    Accept) is sent to sign in, anything else gets 401 or 403."""
    if granted is Access.FORBIDDEN:
        return FORBIDDEN
    wants_html = "text/html" in (get("HTTP_ACCEPT") or "")
    if not wants_html or method not in ("GET", "HEAD") or path is None:
        return UNAUTHORIZED
    target = quote(path, safe="/:@!$&'()*+,;=-._~") + ("?" + query_string if query_string else "")
    if site.visibility == "password":
        location = f"{access.PASSWORD_PATH}?{urlencode({'next': target})}"
    else:
        project = conf.get().PROJECT_URL
        if not project:
            return NO_LOGIN
        location = f"{project}{ticket_view_path()}?{urlencode({'host': normalize_host(host) or '', 'next': target})}"
    return _plain(302, "", (("Location", location),))


_ticket_path: list[str] = []


def ticket_view_path() -> str:
    """Where the project's ticket view is (``django_assetcache.urls``),
    found once per process."""
    if not _ticket_path:
        try:
            _ticket_path.append(reverse("django_assetcache:access"))
        except NoReverseMatch:
            return "/assetcache/access"
    return _ticket_path[0]
