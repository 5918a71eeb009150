"""The Django admin for sites and their domains: the control room.

Besides the usual pages, a site can be published to by upload, purged, warmed,
activated and deactivated from here, and the cache page shows what the process
serving the admin holds. Every one of those goes through the same functions
the management commands use (publish, purge, warm_up), and writes the admin
log as well as the change feed.
"""

from __future__ import annotations

import os
import time
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.contrib.admin import helpers
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.db.models import Count, Max, OuterRef, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from .. import conf, runtime
from ..forms import UploadForm
from ..maintenance import MaintenanceError, purge
from ..models import Asset, Change, Domain, Site
from ..progress import first_few, human_bytes
from ..publish import PublishSummary
from ..rules import loads
from ..warmup import WarmupError, warm_up
from .access import ACCESS_FIELDSET, AccessSiteForm, ShareLinkInline, share_button, share_view
from .deployments import deployment_rows, switch_view
from .traffic import TrafficColumns, cluster, with_traffic_today

if TYPE_CHECKING:
    DomainInlineBase = admin.TabularInline[Domain, Site]
    SiteAdminBase = admin.ModelAdmin[Site]
else:  # Django's classes take no type arguments at run time.
    DomainInlineBase = admin.TabularInline
    SiteAdminBase = admin.ModelAdmin


class DomainInline(DomainInlineBase):
    model = Domain
    extra = 0
    fields = ["hostname", "state", "challenge"]
    readonly_fields = ["state", "challenge"]

    @admin.display(description=_("DNS record that proves control"))
    def challenge(self, domain: Domain) -> str:
        if not domain.pk or domain.state == Domain.State.VERIFIED:
            return "—"
        return format_html('{} TXT "{}"', domain.challenge_name, domain.challenge_value)


def summary_message(upload: str, summary: PublishSummary) -> str:
    message = gettext(
        "Published %(upload)s to %(site)s: %(added)d added, %(changed)d changed, "
        "%(removed)d removed, %(unchanged)d unchanged; %(stored)s stored, "
        "%(deduplicated)s deduplicated."
    ) % {
        "upload": upload,
        "site": summary.subdomain,
        "added": len(summary.added),
        "changed": len(summary.changed),
        "removed": len(summary.removed),
        "unchanged": summary.unchanged,
        "stored": human_bytes(summary.bytes_stored),
        "deduplicated": human_bytes(summary.bytes_deduplicated),
    }
    if summary.top_folder:
        message += " " + gettext("The zip’s top folder %(folder)s/ is left out of the paths.") % {
            "folder": summary.top_folder
        }
    if summary.skipped:
        message += " " + ngettext(
            "%(count)d skipped by the default exclusions: %(names)s.",
            "%(count)d skipped by the default exclusions: %(names)s.",
            len(summary.skipped),
        ) % {"count": len(summary.skipped), "names": first_few(summary.skipped)}
    return message


@admin.register(Site)
class SiteAdmin(TrafficColumns, SiteAdminBase):
    form = AccessSiteForm
    list_select_related = ["live_deployment"]
    # The name is on the site's page: the list must fit a 1280 px window.
    list_display = [
        "subdomain",
        "live_url",
        "file_count",
        "total_size",
        "requests_today",
        "bytes_today",
        "visibility",
        "is_active",
    ]
    list_filter = ["is_active", "visibility"]
    filter_horizontal = ["allowed_users", "allowed_groups"]
    search_fields = ["subdomain", "name", "domains__hostname"]
    readonly_fields = [
        "generation",
        "created_at",
        "updated_at",
        "live_url",
        "files_link",
        "total_size",
        "rules_summary",
        "share_button",
        "traffic_chart",
    ]
    inlines = [DomainInline, ShareLinkInline]
    fieldsets = [
        (None, {"fields": ["subdomain", "name", "is_active", "live_url"]}),
        (_("Documents"), {"fields": ["index_document", "error_document", "cache_control"]}),
        (
            _("Transport"),
            {"fields": ["https_only", "hsts_max_age", "hsts_include_subdomains", "hsts_preload", "canonical_host"]},
        ),
        ACCESS_FIELDSET,
        (_("Content"), {"fields": ["files_link", "total_size", "generation", "rules_summary"]}),
        (_("Traffic"), {"fields": ["traffic_chart"]}),
        (_("State"), {"fields": ["created_at", "updated_at"]}),
    ]
    #: A site being added has no content or history yet.
    add_fieldsets = [
        (None, {"fields": ["subdomain", "name", "is_active"]}),
        (_("Documents"), {"fields": ["index_document", "error_document", "cache_control"]}),
    ]
    actions = ["purge_cache", "warm_now", "activate", "deactivate"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Site]:
        # Subqueries, not joins: a search through domains__hostname joins the
        # domains, which would multiply joined counts and sums.
        # The live deployment's files: other deployments keep rows of their own.
        assets = Asset.objects.filter(deployment=OuterRef("live_deployment")).order_by().values("deployment")
        return with_traffic_today(
            super()
            .get_queryset(request)
            .annotate(
                asset_count=Coalesce(Subquery(assets.annotate(n=Count("pk")).values("n")), 0),
                asset_bytes=Coalesce(Subquery(assets.annotate(total=Sum("blob__size")).values("total")), 0),
            )
        )

    @admin.display(description=_("site rules"))
    def rules_summary(self, obj: Site) -> str:
        """What the live deployment's _redirects and _headers compiled to."""
        live = obj.live_deployment
        parsed = loads(live.rules if live is not None else "")
        forced = sum(1 for rule in parsed.redirects if rule.force)
        return gettext("%(redirects)d redirect rules (%(forced)d forced), %(headers)d header blocks") % {
            "redirects": len(parsed.redirects),
            "forced": forced,
            "headers": len(parsed.headers),
        }

    def get_fieldsets(self, request: HttpRequest, obj: Site | None = None) -> Any:
        return self.add_fieldsets if obj is None else self.fieldsets

    # --- columns and read-only fields ---------------------------------------------------

    @admin.display(description=_("share links"))
    def share_button(self, site: Site) -> str:
        return share_button(site)

    @admin.display(description=_("live URL"))
    def live_url(self, site: Site) -> str:
        if not site.pk:
            return "-"
        link = format_html('<a href="{0}" target="_blank" rel="noopener">{0}</a>', site.url)
        published = self.published(site)
        if published == "-":
            return link
        # Under the link, so the list keeps its width: when the live
        # deployment went live, and who published it.
        return format_html('{}<br><span class="quiet">{}</span>', link, published)

    @admin.display(description=_("published"), ordering="live_deployment__live_at")
    def published(self, site: Site) -> str:
        """When the live deployment went live, and who made it."""
        live = site.live_deployment
        if live is None or live.live_at is None:
            return "-"
        when = date_format(timezone.localtime(live.live_at), "SHORT_DATETIME_FORMAT")
        return f"{when} · {live.created_by}" if live.created_by else when

    @admin.display(description=_("files"), ordering="asset_count")
    def file_count(self, site: Site) -> int:
        if not site.pk:
            return 0
        count = getattr(site, "asset_count", None)
        return Asset.objects.filter(deployment=site.live_deployment).count() if count is None else count

    @admin.display(description=_("total size"), ordering="asset_bytes")
    def total_size(self, site: Site) -> str:
        if not site.pk:
            return "-"
        size = getattr(site, "asset_bytes", None)
        if size is None:
            live = Asset.objects.filter(deployment=site.live_deployment)
            size = live.aggregate(total=Sum("blob__size"))["total"]
        return human_bytes(size or 0)

    @admin.display(description=_("files"))
    def files_link(self, site: Site) -> str:
        if not site.pk:
            return "-"
        count = self.file_count(site)
        url = reverse("admin:django_assetcache_asset_changelist") + f"?deployment__id__exact={site.live_deployment_id}"
        label = ngettext("%(count)d file", "%(count)d files", count) % {"count": count}
        return format_html('{} — <a href="{}">{}</a>', label, url, gettext("browse"))

    # --- URLs -----------------------------------------------------------------------------

    def get_urls(self) -> list[URLPattern]:
        info = self.opts.app_label, self.opts.model_name
        own = [
            # Before the model's own patterns: "<path:object_id>/" would take "cache/".
            path("cache/", self.admin_site.admin_view(self.cache_view), name="{}_{}_cache".format(*info)),
            path(
                "<path:object_id>/upload/",
                self.admin_site.admin_view(self.upload_view),
                name="{}_{}_upload".format(*info),
            ),
            path(
                "<path:object_id>/deployments/<str:key>/<str:switch>/",
                self.admin_site.admin_view(partial(switch_view, self)),
                name="{}_{}_deployment".format(*info),
            ),
            path(
                "<path:object_id>/share/",
                self.admin_site.admin_view(partial(share_view, self)),
                name="{}_{}_share".format(*info),
            ),
        ]
        return own + super().get_urls()

    def render_change_form(
        self,
        request: HttpRequest,
        context: dict[str, Any],
        add: bool = False,
        change: bool = False,
        form_url: str = "",
        obj: Site | None = None,
    ) -> HttpResponse:
        if obj is not None and obj.pk:
            # Under the site's fields; switching is for those who may change it.
            context["deployments"] = deployment_rows(obj, self.has_change_permission(request, obj))
        return super().render_change_form(request, context, add, change, form_url, obj)

    # --- publish by upload ----------------------------------------------------------------

    def upload_view(self, request: HttpRequest, object_id: str) -> HttpResponse:
        site = self.get_object(request, unquote(object_id))
        if site is None:
            # What the admin's own change view does for a missing object.
            message = gettext("%(name)s with ID “%(key)s” doesn’t exist. Perhaps it was deleted?") % {
                "name": self.opts.verbose_name,
                "key": unquote(object_id),
            }
            self.message_user(request, message, messages.WARNING)
            return HttpResponseRedirect(reverse("admin:index", current_app=self.admin_site.name))
        if not self.has_change_permission(request, site):
            raise PermissionDenied
        # Django's upload handlers stream a file over FILE_UPLOAD_MAX_MEMORY_SIZE
        # to FILE_UPLOAD_TEMP_DIR; the form publishes from there.
        if request.method == "POST":
            form = UploadForm(request.POST, request.FILES)
            if form.is_valid():
                summary = form.publish(site, request.user.get_username())
                if summary is not None:
                    text = summary_message(form.describe(), summary)
                    self.log_change(request, site, text)
                    self.message_user(request, text, messages.SUCCESS)
                    return HttpResponseRedirect(reverse("admin:django_assetcache_site_change", args=[site.pk]))
        else:
            form = UploadForm()
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Upload files to %(site)s") % {"site": site},
            "subtitle": None,
            "opts": self.opts,
            "original": site,
            "form": form,
            # Rendered like any admin form, with the admin's own fieldset template.
            # The admin's fieldset rendering takes any form, not only a ModelForm.
            "adminform": helpers.AdminForm(
                form,  # type: ignore[arg-type]
                [(None, {"fields": ["files", "delete", "keep_top_folder", "draft", "alias"]})],
                {},
            ),
            "has_view_permission": self.has_view_permission(request, site),
            "has_change_permission": True,
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/django_assetcache/site/upload.html", context)

    # --- the cache page -------------------------------------------------------------------

    def cache_view(self, request: HttpRequest) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        stats = runtime.stats()
        now = time.time()
        latest = Change.objects.aggregate(latest=Max("id"))["latest"] or 0
        lookups = stats["hits"] + stats["negative_hits"] + stats["misses"]
        limit = stats["memory_limit"] or 0
        context = {
            **self.admin_site.each_context(request),
            "title": gettext("Cache"),
            **cluster(latest),
            "subtitle": None,
            "opts": self.opts,
            "stats": stats,
            "pid": os.getpid(),
            "lookups": lookups,
            "hit_percent": stats["hit_ratio"] * 100,
            "bytes_held": human_bytes(stats["bytes_held"]),
            "memory_limit": human_bytes(limit),
            "memory_percent": (stats["bytes_held"] / limit * 100) if limit else 0,
            "max_entries": conf.get().MAX_ENTRIES,
            "poll_interval": conf.get().POLL_INTERVAL,
            "snapshot_loaded": _moment(stats["snapshot_loaded_at"], now),
            "last_change": _moment(stats["last_change_at"], now),
            "latest_change_id": latest,
            "changes_behind": max(0, latest - (stats["last_change_id"] or 0)),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/django_assetcache/cache.html", context)

    # --- actions --------------------------------------------------------------------------

    @admin.action(description=_("Purge cache"), permissions=["change"])
    def purge_cache(self, request: HttpRequest, queryset: QuerySet[Site]) -> None:
        sites = list(queryset.order_by())
        try:
            purge([site.subdomain for site in sites])
        except MaintenanceError as exc:  # a site deleted meanwhile
            self.message_user(request, str(exc), messages.ERROR)
            return
        for site in sites:
            self.log_change(request, site, gettext("Purged the cache."))
        self.message_user(
            request,
            ngettext(
                "Purged the cache of %(count)d site: every process reloads its files.",
                "Purged the cache of %(count)d sites: every process reloads their files.",
                len(sites),
            )
            % {"count": len(sites)},
            messages.SUCCESS,
        )

    @admin.action(description=_("Warm now"), permissions=["change"])
    def warm_now(self, request: HttpRequest, queryset: QuerySet[Site]) -> None:
        sites = list(queryset.order_by())
        try:
            summary = warm_up([site.subdomain for site in sites])
        except (WarmupError, OSError) as exc:
            self.message_user(request, gettext("Warm-up failed: %(error)s") % {"error": exc}, messages.ERROR)
            return
        for site in sites:
            self.log_change(request, site, gettext("Warmed: %(summary)s") % {"summary": summary})
        self.message_user(request, gettext("Warm-up done: %(summary)s") % {"summary": summary}, messages.SUCCESS)

    @admin.action(description=_("Activate"), permissions=["change"])
    def activate(self, request: HttpRequest, queryset: QuerySet[Site]) -> None:
        self._set_active(request, queryset, True)

    @admin.action(description=_("Deactivate"), permissions=["change"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[Site]) -> None:
        self._set_active(request, queryset, False)

    def _set_active(self, request: HttpRequest, queryset: QuerySet[Site], active: bool) -> None:
        # Saved one by one, not with queryset.update(): save() fires the
        # post_save receiver that writes the Change every process follows.
        changed = []
        ids = list(queryset.values_list("pk", flat=True))
        with transaction.atomic():
            for site in Site.objects.select_for_update().filter(pk__in=ids):
                if site.is_active == active:
                    continue
                site.is_active = active
                site.save(update_fields=["is_active", "updated_at"])
                changed.append(site)
        text = gettext("Activated.") if active else gettext("Deactivated: its hosts answer 404.")
        for site in changed:
            self.log_change(request, site, text)
        if active:
            message = ngettext("Activated %(count)d site.", "Activated %(count)d sites.", len(changed))
        else:
            message = ngettext(
                "Deactivated %(count)d site: it answers 404 now.",
                "Deactivated %(count)d sites: they answer 404 now.",
                len(changed),
            )
        self.message_user(request, message % {"count": len(changed)}, messages.SUCCESS)


def _moment(timestamp: float | None, now: float) -> dict[str, Any] | None:
    """A Unix time as a datetime and an age, for the templates."""
    if timestamp is None:
        return None
    age = max(0.0, now - timestamp)
    # timesince() would say "0 minutes" for most of what this page shows.
    if age < 90:
        text = gettext("%(n)d s") % {"n": age}
    elif age < 90 * 60:
        text = gettext("%(n)d min") % {"n": age // 60}
    elif age < 48 * 3600:
        text = gettext("%(n)d h") % {"n": age // 3600}
    else:
        text = gettext("%(n)d days") % {"n": age // 86400}
    return {
        "at": datetime.fromtimestamp(timestamp, tz=timezone.get_current_timezone()),
        "age": age,
        "age_text": text,
    }
