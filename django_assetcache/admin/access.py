"""The admin of private sites: the site form's access fields, share links
(an inline on the site, a button that makes one, a list with revocation)."""

from __future__ import annotations

import datetime
from typing import TYPE_CHECKING, Any

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse, HttpResponseNotAllowed, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from ..accessdb import create_share_link, hash_site_password, revoke_share_link, share_url
from ..forms import SiteForm
from ..models import ShareLink, Site, Visibility

if TYPE_CHECKING:
    ShareLinkInlineBase = admin.TabularInline[ShareLink, Site]
    ShareLinkAdminBase = admin.ModelAdmin[ShareLink]
else:  # Django's classes take no type arguments at run time.
    ShareLinkInlineBase = admin.TabularInline
    ShareLinkAdminBase = admin.ModelAdmin

#: How long a share link made by the admin's button lasts.
BUTTON_DAYS = 7

ACCESS_FIELDSET: Any = (
    _("Access"),
    {"fields": ["visibility", "previews_private", "allowed_users", "allowed_groups", "new_password", "share_button"]},
)


class AccessSiteForm(SiteForm):
    """The site form with who may see the site; the password is written
    hashed, never shown."""

    new_password = forms.CharField(
        label=_("password"),
        required=False,
        strip=False,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "new-password"}),
        help_text=_("For password sites: set a new shared password (stored hashed). Leave blank to keep it."),
    )

    class Meta(SiteForm.Meta):
        fields = [*SiteForm.Meta.fields, "visibility", "previews_private", "allowed_users", "allowed_groups"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        has_password = bool(self.instance.password) or bool(cleaned.get("new_password"))
        if cleaned.get("visibility") == Visibility.PASSWORD and not has_password:
            self.add_error("new_password", gettext("A password site needs a password."))
        return cleaned

    def save(self, commit: bool = True) -> Site:
        if self.cleaned_data.get("new_password"):
            hash_site_password(self.instance, self.cleaned_data["new_password"])
        return super().save(commit)


def share_button(site: Site) -> str:
    if not site.pk:
        return "-"
    url = reverse("admin:django_assetcache_site_share", args=[site.pk])
    label = gettext("Create a share link (valid %(days)d days)") % {"days": BUTTON_DAYS}
    # It posts the change form (and its CSRF token) to the share view, which
    # reads nothing else of it: a form cannot hold another form.
    return format_html('<button type="submit" formaction="{}" formmethod="post">{}</button>', url, label)


def share_view(model_admin: admin.ModelAdmin[Site], request: HttpRequest, object_id: str) -> HttpResponse:
    """Make a share link for the site (a POST), and show it once in a message."""
    site = model_admin.get_object(request, unquote(object_id))
    change_url = reverse("admin:django_assetcache_site_changelist")
    if site is None or not model_admin.has_change_permission(request, site):
        return HttpResponseRedirect(change_url)
    if request.method != "POST":
        return HttpResponseNotAllowed(["POST"])
    change_url = reverse("admin:django_assetcache_site_change", args=[site.pk])
    user = request.user if request.user.is_authenticated else None
    link = create_share_link(site, datetime.timedelta(days=BUTTON_DAYS), gettext("made in the admin"), user)
    model_admin.log_change(request, site, gettext("Created share link #%(id)d.") % {"id": link.pk})
    message = format_html(gettext("Share link, valid until {}: {}"), link.expires_at.isoformat(), share_url(link))
    model_admin.message_user(request, message, messages.SUCCESS)
    return HttpResponseRedirect(change_url)


class ShareLinkInline(ShareLinkInlineBase):
    model = ShareLink
    extra = 0
    fields = ["note", "expires_at", "revoked_at", "link"]
    readonly_fields = ["link"]
    fk_name = "site"

    @admin.display(description=_("link"))
    def link(self, link: ShareLink) -> str:
        if not link.pk:
            return "-"
        return format_html('<input readonly size="60" value="{}">', share_url(link))


@admin.register(ShareLink)
class ShareLinkAdmin(ShareLinkAdminBase):
    list_display = ["__str__", "site", "note", "created_at", "expires_at", "revoked_at", "state"]
    list_filter = ["site"]
    search_fields = ["site__subdomain", "note"]
    raw_id_fields = ["site", "created_by"]
    actions = ["revoke"]

    @admin.display(description=_("state"))
    def state(self, link: ShareLink) -> str:
        if link.revoked_at is not None:
            return gettext("revoked")
        return gettext("active") if link.active else gettext("expired")

    @admin.action(description=_("Revoke the selected share links"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[ShareLink]) -> None:
        links = list(queryset.filter(revoked_at__isnull=True))
        for link in links:
            revoke_share_link(link)
        count = len(links)
        self.message_user(request, ngettext("%d link revoked.", "%d links revoked.", count) % count)
