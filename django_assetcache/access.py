"""Who may see a private site: signed values, checked once per process.

A private site's visitor holds a host-only cookie whose value is signed
(``django.core.signing``) and names the site, the host, an expiry and a
principal: a user of the project, a share link, or the site's password.
``AccessGate`` verifies a cookie once per process and then remembers it,
and remembers whether a principal may see a site; what the database says
(``AccessBackend``, ``accessdb.py``) is asked only when it does not know.
Changes of kind ``access`` (and ``settings``, ``delete``) in the change feed
forget those answers, so a user deactivated or removed from a group loses
access within the poll interval.

Nothing here knows of requests, models or the ORM.
"""

from __future__ import annotations

import enum
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any, Protocol

from django.core import signing

from .hosts import PRIVATE_PREVIEWS, SiteInfo, normalize_host

COOKIE_NAME = "assetcache_access"
#: Paths under this prefix of a private site are answered by the gate, not
#: by the site's files.
PREFIX = "/.assetcache/"
AUTH_PATH = PREFIX + "auth"
PASSWORD_PATH = PREFIX + "password"
SHARE_PATH = PREFIX + "share"
LOGOUT_PATH = PREFIX + "logout"
#: Seconds a sign-in ticket may take from the project to the site host.
TICKET_SECONDS = 60
#: Largest password form body read, in bytes.
FORM_LIMIT = 4096
#: Bound of each per-process map (verified cookies, answers, rate counts).
MAX_REMEMBERED = 10_000
#: Visibilities of hosts whose visitors sign in through the project (a ticket).
SIGN_IN = frozenset({"login", "restricted", PRIVATE_PREVIEWS})
#: Change kinds after which what a principal may see is asked again.
ACCESS_KINDS = frozenset({"access", "settings", "delete"})

_TICKET_SALT = "django_assetcache.access.ticket"
_COOKIE_SALT = "django_assetcache.access.cookie"
_SHARE_SALT = "django_assetcache.access.share"


def password_tag(password_hash: str) -> str:
    """A short tag of a site's password hash, held in the cookies a password
    gave: a new password changes it and refuses them."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16] if password_hash else ""


def private_cache_control(value: str) -> str:
    """A Cache-Control value made private: ``public``, ``s-maxage`` and
    ``proxy-revalidate`` dropped, ``private`` first."""
    kept = []
    for token in value.split(","):
        token = token.strip()
        name = token.split("=", 1)[0].strip().lower()
        if token and name not in ("public", "private", "s-maxage", "proxy-revalidate"):
            kept.append(token)
    return ", ".join(["private", *kept])


def safe_next(value: str | None) -> str | None:
    """``value`` when it is a path of the host that asked (never another
    host: no scheme, no ``//``, no backslash, no control character), "/"
    when there is none, else None."""
    if not value:
        return "/"
    if not value.startswith("/") or value.startswith("//") or "\\" in value:
        return None
    if any(ord(ch) < 0x21 or ord(ch) == 0x7F for ch in value) or len(value) > 2048:
        return None
    return value


# --- signed values --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ticket:
    id: str
    user_id: int
    host: str
    next: str


def make_ticket(user_id: int, host: str, next_path: str) -> str:
    """A signed ticket for ``host``, valid for TICKET_SECONDS and once."""
    payload = {"t": secrets.token_urlsafe(18), "u": user_id, "h": host, "n": next_path}
    return signing.dumps(payload, salt=_TICKET_SALT)


def read_ticket(value: str, host: str) -> Ticket | None:
    """The ticket if its signature holds, it is young enough and was made
    for ``host``; else None."""
    try:
        payload = signing.loads(value, salt=_TICKET_SALT, max_age=TICKET_SECONDS)
        ticket = Ticket(str(payload["t"]), int(payload["u"]), str(payload["h"]), str(payload["n"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    return ticket if ticket.host == host and safe_next(ticket.next) is not None else None


def make_share_token(link_id: int, site_id: int) -> str:
    """The signed value of a share link; the row it names says until when."""
    return signing.dumps({"l": link_id, "i": site_id}, salt=_SHARE_SALT)


def read_share_token(value: str) -> tuple[int, int] | None:
    """(link id, site id) of a share token whose signature holds."""
    try:
        payload = signing.loads(value, salt=_SHARE_SALT)
        return int(payload["l"]), int(payload["i"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None


#: A principal: ("u", user id), ("s", share link id) or ("p", password tag).
Principal = tuple[str, Any]


@dataclass(frozen=True, slots=True)
class Credential:
    """A verified cookie: whom it names, for which site and host, until when."""

    principal: Principal
    site_id: int
    host: str
    expires: float


def make_cookie(principal: Principal, site_id: int, host: str, expires: float) -> str:
    payload = {"p": list(principal), "i": site_id, "h": host, "e": int(expires)}
    return signing.dumps(payload, salt=_COOKIE_SALT)


def read_cookie(value: str) -> Credential | None:
    try:
        payload = signing.loads(value, salt=_COOKIE_SALT)
        kind, who = payload["p"]
        credential = Credential((str(kind), who), int(payload["i"]), str(payload["h"]), float(payload["e"]))
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    return credential


def cookie_value(header: str) -> str | None:
    """Our cookie's value in a Cookie header, if there is one."""
    for item in header.split(";"):
        name, _, value = item.strip().partition("=")
        if name == COOKIE_NAME:
            return value
    return None


def set_cookie_header(value: str, max_age: int, secure: bool) -> tuple[str, str]:
    """The Set-Cookie of an access cookie: host-only (no Domain), HttpOnly,
    SameSite=Lax, Secure when sites are served over HTTPS."""
    tail = "; Secure" if secure else ""
    return ("Set-Cookie", f"{COOKIE_NAME}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax{tail}")


# --- the per-process gate ----------------------------------------------------------


class Access(enum.Enum):
    GRANTED = "granted"
    #: No valid cookie for this site: sign in (or give the password).
    ANONYMOUS = "anonymous"
    #: A valid cookie whose holder may not see this site.
    FORBIDDEN = "forbidden"


class AccessBackend(Protocol):
    """What only the database knows (``accessdb.DatabaseAccess``)."""

    queries: int

    def may_see(self, user_id: int, site_id: int, visibility: str) -> bool: ...

    def share_link_expiry(self, link_id: int, site_id: int) -> float | None: ...

    def use_ticket(self, ticket_id: str, expires: float) -> bool: ...

    def password_matches(self, site_id: int, password: str) -> bool: ...


class AccessGate:
    """One process's memory of verified cookies and of who may see what."""

    def __init__(self, backend: AccessBackend, password_attempts: int) -> None:
        self.backend = backend
        #: (raw Host, Cookie header) → the credential it holds for that host, or None.
        self.credentials: dict[tuple[str, str], Credential | None] = {}
        #: (principal, site id) → may see it.
        self.answers: dict[tuple[Principal, int], bool] = {}
        self.limiter = RateLimiter(password_attempts, 60.0)

    def check(self, site: SiteInfo, raw_host: str, cookie_header: str | None) -> Access:
        if not cookie_header:
            return Access.ANONYMOUS
        key = (raw_host, cookie_header)
        credentials = self.credentials
        try:
            credential = credentials[key]
        except KeyError:
            credential = self._verify(raw_host, cookie_header)
            if len(credentials) >= MAX_REMEMBERED:
                credentials.clear()
            credentials[key] = credential
        if credential is None or credential.site_id != site.id or credential.expires <= time.time():
            return Access.ANONYMOUS
        if self.may_see(credential.principal, site):
            return Access.GRANTED
        # A password site's only way in is its form (a new password refuses
        # the old cookies): show it again.
        return Access.ANONYMOUS if site.visibility == "password" else Access.FORBIDDEN

    def _verify(self, raw_host: str, cookie_header: str) -> Credential | None:
        value = cookie_value(cookie_header)
        credential = read_cookie(value) if value else None
        if credential is None or credential.host != normalize_host(raw_host):
            return None
        return credential

    def may_see(self, principal: Principal, site: SiteInfo) -> bool:
        kind, who = principal
        if kind == "p":
            return site.visibility == "password" and bool(site.access_tag) and who == site.access_tag
        key = (principal, site.id)
        answer = self.answers.get(key)
        if answer is None:
            if kind == "u":
                answer = self.backend.may_see(int(who), site.id, site.visibility)
            else:
                answer = kind == "s" and self.backend.share_link_expiry(int(who), site.id) is not None
            if len(self.answers) >= MAX_REMEMBERED:
                self.answers.clear()
            self.answers[key] = answer
        return answer

    def forget(self, kind: str) -> None:
        """A change of ``kind`` was applied: forget what it may have changed."""
        if kind in ACCESS_KINDS:
            self.answers = {}


class RateLimiter:
    """At most ``limit`` attempts per ``window`` seconds per client address,
    for up to MAX_REMEMBERED addresses (the oldest is forgotten first)."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.counts: dict[str, tuple[float, int]] = {}

    def allow(self, client: str) -> bool:
        now = time.monotonic()
        start, count = self.counts.pop(client, (now, 0))
        if now - start >= self.window:
            start, count = now, 0
        if count >= self.limit:
            self.counts[client] = (start, count)
            return False
        while len(self.counts) >= MAX_REMEMBERED:
            del self.counts[next(iter(self.counts))]
        self.counts[client] = (start, count + 1)
        return True
