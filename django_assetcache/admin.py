"""The Django admin for sites, their domains, assets and blobs."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.db.models import Count, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext_lazy as _

from .models import Asset, Blob, Change, Domain, Site, record_change
from .progress import human_bytes


class DomainInline(admin.TabularInline):
    model = Domain
    extra = 0


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = [
        "subdomain",
        "name",
        "live_url",
        "file_count",
        "total_size",
        "generation",
        "is_active",
    ]
    list_filter = ["is_active"]
    search_fields = ["subdomain", "name", "domains__hostname"]
    readonly_fields = ["generation", "created_at", "updated_at", "live_url"]
    inlines = [DomainInline]
    fieldsets = [
        (None, {"fields": ["subdomain", "name", "is_active", "live_url"]}),
        (_("Documents"), {"fields": ["index_document", "error_document", "cache_control"]}),
        (_("State"), {"fields": ["generation", "created_at", "updated_at"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Site]:
        # Subqueries, not joins: a search through domains__hostname joins the
        # domains, which would multiply joined counts and sums.
        assets = Asset.objects.filter(site=OuterRef("pk")).order_by().values("site")
        return (
            super()
            .get_queryset(request)
            .annotate(
                asset_count=Coalesce(Subquery(assets.annotate(n=Count("pk")).values("n")), 0),
                asset_bytes=Coalesce(
                    Subquery(assets.annotate(total=Sum("blob__size")).values("total")), 0
                ),
            )
        )

    @admin.display(description=_("live URL"))
    def live_url(self, site: Site) -> str:
        if not site.pk:
            return "-"
        return format_html('<a href="{0}" target="_blank" rel="noopener">{0}</a>', site.url)

    @admin.display(description=_("files"), ordering="asset_count")
    def file_count(self, site: Site) -> int:
        return getattr(site, "asset_count", None) or site.assets.count()

    @admin.display(description=_("total size"), ordering="asset_bytes")
    def total_size(self, site: Site) -> str:
        size = getattr(site, "asset_bytes", None)
        if size is None:
            size = site.assets.aggregate(total=Sum("blob__size"))["total"]
        return human_bytes(size or 0)


@admin.register(Asset)
class AssetAdmin(admin.ModelAdmin):
    list_display = ["path", "site", "content_type", "size", "short_hash", "last_modified", "live"]
    list_filter = ["site"]
    list_select_related = ["site", "blob"]
    search_fields = ["path"]
    readonly_fields = ["site", "path", "blob", "content_type", "last_modified"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Assets are written by publishing; the admin shows them read-only.
        return False

    @admin.display(description=_("size"), ordering="blob__size")
    def size(self, asset: Asset) -> str:
        return human_bytes(asset.blob.size)

    @admin.display(description=_("content hash"), ordering="blob")
    def short_hash(self, asset: Asset) -> str:
        return asset.blob_id[:12]

    @admin.display(description=_("open"))
    def live(self, asset: Asset) -> str:
        url = asset.site.url.rstrip("/") + asset.path
        return format_html('<a href="{}" target="_blank" rel="noopener">{}</a>', url, _("open"))

    def delete_model(self, request: HttpRequest, obj: Asset) -> None:
        with transaction.atomic():
            super().delete_model(request, obj)
            record_change(obj.site_id, Change.Kind.PUBLISH, [obj.path])

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Asset]) -> None:
        with transaction.atomic():
            touched: dict[int, list[str]] = {}
            for site_id, path in queryset.values_list("site_id", "path"):
                touched.setdefault(site_id, []).append(path)
            super().delete_queryset(request, queryset)
            for site_id, paths in touched.items():
                record_change(site_id, Change.Kind.PUBLISH, paths)


@admin.register(Blob)
class BlobAdmin(admin.ModelAdmin):
    list_display = ["sha256", "size", "encoding", "source", "created_at"]
    list_filter = ["encoding"]
    search_fields = ["sha256"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
