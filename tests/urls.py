from __future__ import annotations

from django.contrib import admin
from django.contrib.auth.views import LoginView
from django.http import HttpRequest, HttpResponse
from django.urls import include, path


def project_home(request: HttpRequest) -> HttpResponse:
    return HttpResponse(b"project home", content_type="text/plain")


urlpatterns = [
    path("", project_home),
    path("admin/", admin.site.urls),
    path("accounts/login/", LoginView.as_view(template_name="login.html")),
    path("", include("django_assetcache.urls")),
]
