"""URLs for the project's URLconf: ``path("", include("django_assetcache.urls"))``.

They answer on the project's own hosts only: a request for a site host is
answered by AssetCacheMiddleware (or the WSGI/ASGI wrapper) before Django
resolves a URL, so under a site host these paths are files of the site.
"""

from __future__ import annotations

from django.urls import path

from . import access_views, api_views, views

app_name = "django_assetcache"

urlpatterns = [
    path("assetcache/tls-ask", views.tls_ask, name="tls-ask"),
    path("assetcache/access", access_views.access_ticket, name="access"),
    path("assetcache/metrics", views.metrics, name="metrics"),
    # The deploy API (docs/deploy-api.md).
    path("assetcache/sites/<str:subdomain>/deploys", api_views.site_deploys, name="api-site-deploys"),
    path("assetcache/sites/<str:subdomain>/rollback", api_views.site_rollback, name="api-rollback"),
    path("assetcache/deploys/<str:key>", api_views.deploy, name="api-deploy"),
    path("assetcache/deploys/<str:key>/blobs/<str:sha256>", api_views.blob, name="api-blob"),
    path("assetcache/deploys/<str:key>/finish", api_views.finish, name="api-finish"),
]
