"""Views for the project's URLconf (``django_assetcache.urls``).

``tls_ask``, the TLS-ask endpoint: may a certificate be requested for this
host name?

Caddy's on-demand TLS asks it before it requests a certificate for a name
it has none for (docs/tls-and-domains.md). The answer comes from the
process's host map, the one that routes requests, so a repeated question
costs no database query.

``metrics``: the Prometheus exposition of every process on this machine,
and the cluster's deploy tally from the database, asking for
ASSETCACHE_METRICS_TOKEN as a bearer token when one is set.
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import conf
from .deployments import tallies
from .hosts import SiteInfo, normalize_host
from .runtime import get_cache


def _plain(status: int, text: str) -> HttpResponse:
    response = HttpResponse(text.encode(), status=status, content_type="text/plain; charset=utf-8")
    response["Cache-Control"] = "no-store"
    return response


def is_site_host(host: str) -> bool:
    """An active site answers at ``host``: a subdomain of ASSETCACHE_DOMAIN
    naming a site, a verified custom domain of one, or a preview host
    (``<deployment-id or alias>--<subdomain>``) of a retained deployment of
    one: the host map resolves them all."""
    cache = get_cache()
    cache.maybe_poll()
    target = cache.site_for(host)
    if target.__class__ is SiteInfo:
        assert isinstance(target, SiteInfo)
        return target.active
    return False


@require_safe
def tls_ask(request: HttpRequest) -> HttpResponse:
    """200 when ``?domain=`` is an active site host, else 404 (400 without
    a ``domain``)."""
    domain = request.GET.get("domain")
    if not domain:
        return _plain(400, "Give the host name as ?domain=.\n")
    host = normalize_host(domain)
    if host is None or host != domain.lower().rstrip(".") or not is_site_host(host):
        return _plain(404, "No site answers at this host name.\n")
    return _plain(200, "A site answers at this host name.\n")


PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


@never_cache
@require_safe
def metrics(request: HttpRequest) -> HttpResponse:
    settings = conf.get()
    if not settings.METRICS:
        return _plain(404, "Metrics are off (ASSETCACHE_METRICS).\n")
    token = settings.METRICS_TOKEN
    if token:
        given = request.headers.get("Authorization", "")
        expected = f"Bearer {token}"
        if not hmac.compare_digest(given.encode("latin-1", "replace"), expected.encode()):
            refused = _plain(401, "A valid bearer token is required.\n")
            refused["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return refused
    # prometheus_client is the optional [metrics] extra; ASSETCACHE_METRICS
    # on without it is a system check error.
    from .metrics import DeployCollector, exposition

    deploys = DeployCollector(tallies, settings.METRICS_PER_SITE)
    return HttpResponse(exposition(deploys), content_type=PROMETHEUS_TEXT)
