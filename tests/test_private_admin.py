"""Private sites in the admin and in ``assetcache_share``."""

from __future__ import annotations

import io
import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.contrib.auth.hashers import check_password
from django.contrib.auth.models import Group, User
from django.core.management import CommandError, call_command
from django.test import Client

from django_assetcache import access
from django_assetcache.models import Change, ShareLink, Site
from tests.test_admin import SITES, site_form


def test_the_site_list_shows_visibility(admin_client: Client, site: Site) -> None:
    Site.objects.filter(pk=site.pk).update(visibility="restricted")
    page = admin_client.get(SITES).content.decode()
    assert '<td class="field-visibility">restricted: allowed users and groups, and superusers</td>' in page
    assert admin_client.get(SITES, {"visibility__exact": "public"}).context["cl"].result_count == 0


def test_previews_private_is_set_next_to_visibility(admin_client: Client, site: Site) -> None:
    page = admin_client.get(f"{SITES}{site.pk}/change/").content.decode()
    assert page.index('name="visibility"') < page.index('name="previews_private"') < page.index('name="allowed_users"')
    after = Change.objects.order_by("-id").values_list("id", flat=True).first()
    assert admin_client.post(f"{SITES}{site.pk}/change/", site_form(site, previews_private="on")).status_code == 302
    site.refresh_from_db()
    assert (site.visibility, site.previews_private) == ("public", True)
    assert list(Change.objects.filter(id__gt=after).values_list("kind", flat=True)) == ["settings"]


def test_restricting_a_site_with_groups_and_a_password(admin_client: Client, site: Site) -> None:
    group = Group.objects.create(name="staff")
    user = User.objects.create_user("carol")
    after = Change.objects.order_by("-id").values_list("id", flat=True).first()
    data = site_form(site, visibility="restricted", allowed_groups=[group.pk], allowed_users=[user.pk])
    assert admin_client.post(f"{SITES}{site.pk}/change/", data).status_code == 302
    site.refresh_from_db()
    assert (site.visibility, list(site.allowed_groups.all()), list(site.allowed_users.all())) == (
        "restricted",
        [group],
        [user],
    )
    assert set(Change.objects.filter(id__gt=after).values_list("kind", flat=True)) == {"settings", "access"}
    refused = admin_client.post(f"{SITES}{site.pk}/change/", site_form(site, visibility="password"))
    assert refused.status_code == 200 and "A password site needs a password." in refused.content.decode()
    data = site_form(site, visibility="password", new_password="s3cret pass")
    assert admin_client.post(f"{SITES}{site.pk}/change/", data).status_code == 302
    site.refresh_from_db()
    assert site.visibility == "password" and check_password("s3cret pass", site.password)
    page = admin_client.get(f"{SITES}{site.pk}/change/").content.decode()
    assert "s3cret" not in page and site.password not in page


def test_the_share_button_makes_a_link_and_revoking_refuses_it(admin_client: Client, site: Site) -> None:
    assert admin_client.get(f"{SITES}{site.pk}/share/").status_code == 405
    response = admin_client.post(f"{SITES}{site.pk}/share/", follow=True)
    link = ShareLink.objects.get(site=site)
    messages = [str(m) for m in response.context["messages"]]
    url = re.search(r"https://docs\.sites\.test/\.assetcache/share\?token=\S+", messages[0])
    assert url is not None
    token = parse_qs(urlsplit(url.group(0)).query)["token"][0]
    assert access.read_share_token(token) == (link.pk, site.pk)
    page = admin_client.get(f"{SITES}{site.pk}/change/").content.decode()
    assert 'formaction="/admin/django_assetcache/site/' in page and "share_links-TOTAL_FORMS" in page
    changelist = "/admin/django_assetcache/sharelink/"
    admin_client.post(changelist, {"action": "revoke", "_selected_action": [link.pk]})
    link.refresh_from_db()
    assert link.revoked_at is not None and not link.active


def test_assetcache_share_prints_lists_and_revokes(site: Site) -> None:
    out, err = io.StringIO(), io.StringIO()
    call_command("assetcache_share", "docs", "--expires", "7d", "--note", "auditor", stdout=out, stderr=err)
    assert out.getvalue().startswith("https://docs.sites.test/.assetcache/share?token=")
    assert "is public" in err.getvalue()
    link = ShareLink.objects.get()
    assert round((link.expires_at - link.created_at).total_seconds() / 86400) == 7
    out = io.StringIO()
    call_command("assetcache_share", "docs", "--list", stdout=out)
    assert out.getvalue().startswith(f"{link.pk}  active  expires ")
    call_command("assetcache_share", "docs", "--revoke", str(link.pk), stdout=io.StringIO())
    link.refresh_from_db()
    assert link.revoked_at is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nosuch"], "no site with subdomain 'nosuch'"),
        (["docs", "--expires", "soon"], "'soon' is not a duration such as 30m, 12h, 7d, 2w or 3600"),
        (["docs", "--expires", "0d"], "'0d' is not a duration a link can last"),
        (["docs", "--revoke", "999"], "site docs has no share link 999"),
    ],
)
def test_assetcache_share_bad_input(site: Site, args: list[str], message: str) -> None:
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("assetcache_share", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert not ShareLink.objects.exists()
