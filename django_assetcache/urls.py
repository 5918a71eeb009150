"""URLs for the project's URLconf: ``path("", include("django_assetcache.urls"))``.

``assetcache/metrics``: Prometheus metrics (docs/observability.md).
"""

from __future__ import annotations

from django.urls import path

from . import views

app_name = "django_assetcache"

urlpatterns = [
    path("assetcache/metrics", views.metrics, name="metrics"),
]
