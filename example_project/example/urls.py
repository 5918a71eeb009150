from __future__ import annotations

from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

urlpatterns = [
    path("", RedirectView.as_view(url="/admin/", permanent=False)),
    path("admin/", admin.site.urls),
    # /assetcache/tls-ask, which Caddy asks before an on-demand certificate.
    path("", include("django_assetcache.urls")),
]
