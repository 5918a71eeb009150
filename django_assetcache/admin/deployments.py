"""A site's deployments in the admin: the list on its page, and the
confirmation pages that promote a draft or roll back to an earlier one.

The list is read-only. A switch goes through ``deployments.promote`` and
``deployments.rollback``, as the commands do, and is written to the admin
log in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from django.contrib import admin, messages
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import reverse
from django.utils.translation import gettext

from ..deployments import DeploymentError, check_target, compare, history, promote, rollback
from ..models import Deployment, Site

if TYPE_CHECKING:
    SiteAdminBase = admin.ModelAdmin[Site]
else:  # Django's classes take no type arguments at run time.
    SiteAdminBase = admin.ModelAdmin

Switch = Literal["promote", "rollback"]

#: What each switch is offered for on the list: a draft is promoted, a
#: deployment that was live is rolled back to.
OFFERED: dict[str, Switch] = {Deployment.State.DRAFT: "promote", Deployment.State.SUPERSEDED: "rollback"}


@dataclass
class DeploymentRow:
    """One line of a site's deployment list."""

    deployment: Deployment
    aliases: list[str]
    #: None for an expired deployment: it answers nowhere.
    preview_url: str | None
    switch: Switch | None
    switch_url: str | None


def deployment_rows(site: Site, may_switch: bool) -> list[DeploymentRow]:
    """The site's deployments, newest first; with a promote or roll-back
    link for those it can switch to if ``may_switch``."""
    rows = []
    for deployment in history(site):
        switch = OFFERED.get(deployment.state) if may_switch else None
        rows.append(
            DeploymentRow(
                deployment=deployment,
                aliases=sorted(alias.name for alias in deployment.aliases.all()),
                preview_url=None if deployment.state == Deployment.State.EXPIRED else deployment.preview_url(),
                switch=switch,
                switch_url=switch_url(site, deployment.key, switch) if switch else None,
            )
        )
    return rows


def switch_url(site: Site, key: str, switch: Switch) -> str:
    return reverse("admin:django_assetcache_site_deployment", args=[site.pk, key, switch])


def switch_view(
    model_admin: SiteAdminBase, request: HttpRequest, object_id: str, key: str, switch: str
) -> HttpResponse:
    """The confirmation page of a promote or rollback (GET), and the switch (POST)."""
    if switch not in ("promote", "rollback"):
        raise Http404
    site = model_admin.get_object(request, unquote(object_id))
    if site is None:
        raise Http404
    if not model_admin.has_change_permission(request, site):
        raise PermissionDenied
    change_url = reverse("admin:django_assetcache_site_change", args=[site.pk])
    rolling_back = switch == "rollback"
    try:
        # Asked here for the confirmation page; the switch asks again under the site's lock.
        target = check_target(site, key, site.deployments.filter(key=key).first(), rolling_back)
        if request.method != "POST":
            return confirmation_page(model_admin, request, site, target, rolling_back)
        with transaction.atomic():
            (rollback if rolling_back else promote)(site, target)
            done = (
                gettext("Rolled back to deployment %(key)s.")
                if rolling_back
                else gettext("Promoted deployment %(key)s.")
            )
            model_admin.log_change(request, site, done % {"key": target.key})
    except DeploymentError as exc:
        model_admin.message_user(request, gettext("Nothing changed: %(error)s.") % {"error": exc}, messages.ERROR)
        return HttpResponseRedirect(change_url)
    live = gettext("Deployment %(key)s is live on %(site)s.") % {"key": target.key, "site": site.subdomain}
    model_admin.message_user(request, live, messages.SUCCESS)
    return HttpResponseRedirect(change_url)


def confirmation_page(
    model_admin: SiteAdminBase, request: HttpRequest, site: Site, target: Deployment, rolling_back: bool
) -> HttpResponse:
    """Which deployment goes live, which stops being live, and how their files differ."""
    current = site.live_deployment
    if rolling_back:
        verb, title = gettext("Roll back"), gettext("Roll %(site)s back to deployment %(key)s?")
    else:
        verb, title = gettext("Promote"), gettext("Promote deployment %(key)s of %(site)s?")
    context = {
        **model_admin.admin_site.each_context(request),
        "title": title % {"site": site.subdomain, "key": target.key},
        "subtitle": None,
        "opts": model_admin.opts,
        "original": site,
        "target": target,
        "current": current,
        "difference": compare(current, target),
        "rolling_back": rolling_back,
        "verb": verb,
        "change_url": reverse("admin:django_assetcache_site_change", args=[site.pk]),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "admin/django_assetcache/site/switch_deployment.html", context)
