"""URLs for the project's URLconf: ``path("", include("django_assetcache.urls"))``.

They answer on the project's own hosts only: a request for a site host is
answered by AssetCacheMiddleware (or the WSGI/ASGI wrapper) before Django
resolves a URL, so under a site host these paths are files of the site.
"""

from __future__ import annotations

from django.urls import path

from . import access_views, views

app_name = "django_assetcache"

urlpatterns = [
    path("assetcache/tls-ask", views.tls_ask, name="tls-ask"),
    path("assetcache/access", access_views.access_ticket, name="access"),
    path("assetcache/metrics", views.metrics, name="metrics"),
]
