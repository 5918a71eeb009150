"""The project's side of signing in to a private site.

A visitor without access is sent here (``ASSETCACHE_PROJECT_URL`` +
``/assetcache/access?host=…&next=…``). Once signed in to the project (else
Django's ``LOGIN_URL`` first), a user who may see the site gets a ticket:
signed, bound to that host, valid for a minute and once, carried to the
site host's ``/.assetcache/auth``, which trades it for the host's own
cookie. The project's session cookie never reaches a site host.
"""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from . import conf
from .access import AUTH_PATH, SIGN_IN, make_ticket, safe_next
from .accessdb import user_may_see
from .hosts import SiteInfo, normalize_host
from .runtime import get_cache


def _plain(status: int, text: str) -> HttpResponse:
    return HttpResponse(text.encode(), status=status, content_type="text/plain; charset=utf-8")


def private_site(host: str) -> SiteInfo | None:
    """The active site answering at ``host`` whose visitors sign in (login,
    restricted, or a private preview)."""
    cache = get_cache()
    cache.maybe_poll()
    target = cache.site_for(host)
    if isinstance(target, SiteInfo) and target.active and target.visibility in SIGN_IN:
        return target
    return None


@never_cache
@require_safe
def access_ticket(request: HttpRequest) -> HttpResponseBase:
    """Redirect a signed-in user who may see the site to its host with a ticket."""
    raw_host = request.GET.get("host", "")
    host = normalize_host(raw_host)
    next_path = safe_next(request.GET.get("next"))
    if host is None or host != raw_host.lower() or next_path is None:
        return _plain(400, "Give the site's host as ?host= and a path of it as ?next=.\n")
    site = private_site(host)
    if site is None:
        return _plain(404, "No private site answers at this host name.\n")
    user = request.user
    if not user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    if not user_may_see(user.pk, site.id, site.visibility):
        return _plain(403, f"You are signed in as {user.get_username()}, who may not see this site.\n")
    base = conf.get().SITE_URL.format(host=host).rstrip("/")
    ticket = make_ticket(user.pk, host, next_path)
    return HttpResponseRedirect(f"{base}{AUTH_PATH}?{urlencode({'ticket': ticket})}")
