"""The admin's asset and blob lists: what each site holds, and purging it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..maintenance import purge
from ..models import Asset, Blob, Change, Site, record_change
from ..progress import human_bytes

if TYPE_CHECKING:
    AssetAdminBase = admin.ModelAdmin[Asset]
    BlobAdminBase = admin.ModelAdmin[Blob]
else:  # Django's classes take no type arguments at run time.
    AssetAdminBase = BlobAdminBase = admin.ModelAdmin


@admin.register(Asset)
class AssetAdmin(AssetAdminBase):
    # What fits a 1280 px window; the rest is on the asset's page.
    list_display = ["path", "site", "content_type", "size", "short_hash", "live"]
    list_filter = ["site"]
    list_select_related = ["site", "blob"]
    search_fields = ["path"]
    readonly_fields = ["site", "path", "blob", "content_type", "last_modified"]
    actions = ["purge_paths"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # Assets are written by publishing; the admin shows them read-only.
        return False

    def has_purge_permission(self, request: HttpRequest) -> bool:
        # Purging changes what sites serve: the same permission as any other
        # change to a site.
        return request.user.has_perm(f"{Site._meta.app_label}.change_site")

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

    @admin.action(description=_("Purge cache for these paths"), permissions=["purge"])
    def purge_paths(self, request: HttpRequest, queryset: QuerySet[Asset]) -> None:
        by_site: dict[Site, list[str]] = {}
        for asset in queryset.select_related("site").order_by("site", "path"):
            by_site.setdefault(asset.site, []).append(asset.path)
        with transaction.atomic():
            for site, paths in by_site.items():
                purge([site.subdomain], paths)
        for site, paths in by_site.items():
            message = gettext("Purged the cache for %(paths)s.") % {"paths": ", ".join(paths)}
            # Logged on the site whose cache changed, not on each asset.
            self.log_change(request, site, message)  # type: ignore[arg-type]
        count = sum(len(paths) for paths in by_site.values())
        self.message_user(
            request,
            ngettext(
                "Purged the cache for %(count)d path: every process reloads it.",
                "Purged the cache for %(count)d paths: every process reloads them.",
                count,
            )
            % {"count": count},
            messages.SUCCESS,
        )

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
class BlobAdmin(BlobAdminBase):
    list_display = ["sha256", "size", "encoding", "source", "created_at"]
    list_filter = ["encoding"]
    search_fields = ["sha256"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False
