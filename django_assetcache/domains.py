"""Custom-domain ownership: a domain is served once a DNS TXT record at
``_assetcache-challenge.<host>`` holds its token.

The lookup goes through one boundary, a callable ``resolve(name) ->
list[str]`` returning the TXT values of a name (empty when it has none): by
default dnspython with the machine's resolver configuration
(``django-assetcache[dns]``), or the callable ``ASSETCACHE_TXT_RESOLVER``
names, or one passed in (tests pass a stub).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from django.utils import timezone
from django.utils.module_loading import import_string

from . import conf
from .models import Domain

Resolver = Callable[[str], list[str]]


class LookupFailed(Exception):
    """The resolver gave no answer (timeout, no name server): try again later."""


class ResolverUnavailable(Exception):
    """No resolver: dnspython is missing and ASSETCACHE_TXT_RESOLVER is not set."""


def dnspython_resolve(name: str) -> list[str]:
    """The TXT values of ``name`` through dnspython and /etc/resolv.conf."""
    try:
        # Optional extra: only installs that verify domains need dnspython.
        import dns.exception
        import dns.resolver
    except ImportError as exc:
        raise ResolverUnavailable(
            'verifying domains needs dnspython: pip install "django-assetcache[dns]" (or set ASSETCACHE_TXT_RESOLVER)'
        ) from exc
    try:
        answer = dns.resolver.resolve(name, "TXT", lifetime=10)
    except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
        return []
    except dns.exception.DNSException as exc:
        raise LookupFailed(f"{name}: {exc.__class__.__name__}") from exc
    return [b"".join(record.strings).decode("utf-8", "replace") for record in answer]


def default_resolver() -> Resolver:
    path = conf.get().TXT_RESOLVER
    if not path:
        return dnspython_resolve
    try:
        resolver: Resolver = import_string(path)
    except ImportError as exc:
        raise ResolverUnavailable(f"ASSETCACHE_TXT_RESOLVER = {path!r} cannot be imported: {exc}") from exc
    return resolver


@dataclass(frozen=True)
class Outcome:
    hostname: str
    verified: bool
    #: Why not, in a few words; empty when verified.
    reason: str = ""


def verify(domain: Domain, resolve: Resolver | None = None) -> Outcome:
    """Look up the domain's challenge record; mark it verified when one TXT
    value is its token. A verified domain stays verified."""
    if domain.state == Domain.State.VERIFIED:
        return Outcome(domain.hostname, True)
    resolve = resolve or default_resolver()
    try:
        values = [value.strip() for value in resolve(domain.challenge_name)]
    except LookupFailed as exc:
        return Outcome(domain.hostname, False, f"no answer from DNS ({exc})")
    if domain.challenge_value not in values:
        reason = "no TXT record" if not values else "the TXT record holds another value"
        return Outcome(domain.hostname, False, f"{reason} at {domain.challenge_name}")
    domain.state = Domain.State.VERIFIED
    domain.verified_at = timezone.now()
    domain.save(update_fields=["state", "verified_at"])
    return Outcome(domain.hostname, True)


def verify_all(domains: Iterable[Domain], resolve: Resolver | None = None) -> list[Outcome]:
    resolve = resolve or default_resolver()
    return [verify(domain, resolve) for domain in domains]
