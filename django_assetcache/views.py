"""Views for the project's URLconf (``django_assetcache.urls``).

``metrics``: the Prometheus exposition of every process on this machine.
It answers only requests the project handles, never a site host (those are
answered before the URLconf runs), and asks for ASSETCACHE_METRICS_TOKEN as
a bearer token when one is set.
"""

from __future__ import annotations

import hmac

from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import conf

PROMETHEUS_TEXT = "text/plain; version=0.0.4; charset=utf-8"


def _plain(status: int, text: str, **headers: str) -> HttpResponse:
    return HttpResponse(text, status=status, content_type="text/plain; charset=utf-8", headers=headers)


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
            return _plain(401, "A valid bearer token is required.\n", **{"WWW-Authenticate": 'Bearer realm="metrics"'})
    # prometheus_client is the optional [metrics] extra; ASSETCACHE_METRICS
    # on without it is a system check error.
    from .metrics import exposition

    return HttpResponse(exposition(), content_type=PROMETHEUS_TEXT)
