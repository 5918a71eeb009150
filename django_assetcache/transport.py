"""Per-site transport: HTTPS only, HSTS and a canonical host.

A ``Transport`` is prepared once per site (when its ``SiteInfo`` is made);
a request of a site that has one asks it whether to redirect first. The HSTS
header is formatted here, once, and merged into the site's cache entries when
they are built: HSTS requires HTTPS only, so every response carrying it goes
out over HTTPS. Nothing here knows of Django's requests.
"""

from __future__ import annotations

from collections.abc import Callable
from urllib.parse import quote

from .replies import NOSNIFF, PLAIN_TEXT, Reply

_SAFE = "/:@!$&'()*+,;=-._~"

#: How a request names the values the decision reads (WSGI names).
Getter = Callable[[str], "str | None"]


def hsts_value(max_age: int, include_subdomains: bool, preload: bool) -> str:
    value = f"max-age={max_age}"
    if include_subdomains:
        value += "; includeSubDomains"
    if preload:
        value += "; preload"
    return value


def is_secure(get: Getter, proxy_header: tuple[str, str] | None) -> bool:
    """Whether the request came over HTTPS, as Django's ``request.is_secure``
    decides it: the proxy's header when ``SECURE_PROXY_SSL_HEADER`` names one
    and the request has it, else the server's URL scheme."""
    if proxy_header:
        name, secure_value = proxy_header
        value = get(name)
        if value is not None:
            return value.split(",", 1)[0].strip() == secure_value
    return get("wsgi.url_scheme") == "https"


def moved(status: int, location: str, extra: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(
        status,
        [
            ("Location", location),
            ("Content-Type", PLAIN_TEXT),
            ("Content-Length", "0"),
            ("Cache-Control", "no-cache"),
            NOSNIFF,
            *extra,
        ],
    )


class Transport:
    """What a site requires of the connection and the host name."""

    __slots__ = ("canonical", "hsts", "https_only")

    def __init__(self, https_only: bool, canonical: str, hsts: tuple[tuple[str, str], ...]) -> None:
        self.https_only = https_only
        self.canonical = canonical
        #: The prepared Strict-Transport-Security header, or ().
        self.hsts = hsts

    def redirect(self, host: str, path: str, query_string: str, secure: bool) -> Reply | None:
        """A 308 to HTTPS for a plain-HTTP request of an HTTPS-only site, a
        301 from another host of the site to its canonical one, else None.
        ``host`` is the normalized request host."""
        https_needed = self.https_only and not secure
        other_host = bool(self.canonical) and host != self.canonical
        if not https_needed and not other_host:
            return None
        scheme = "https" if secure or self.https_only else "http"
        target = f"{scheme}://{self.canonical or host}{quote(path, safe=_SAFE)}"
        if query_string:
            target += "?" + query_string
        # Plain HTTP first (as a browser learns HSTS only over HTTPS), then the host.
        return moved(308 if https_needed else 301, target, () if https_needed else self.hsts)


def for_site(
    https_only: bool, hsts_max_age: int, include_subdomains: bool, preload: bool, canonical: str
) -> Transport | None:
    """A site's Transport, or None when no request of it can be redirected
    (HSTS alone asks nothing of a request: it needs HTTPS only to be sent)."""
    if not (https_only or canonical):
        return None
    hsts = (("Strict-Transport-Security", hsts_value(hsts_max_age, include_subdomains, preload)),)
    return Transport(https_only, canonical, hsts if hsts_max_age and https_only else ())
