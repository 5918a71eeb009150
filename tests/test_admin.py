"""The admin: sites with their domains, read-only assets and blobs, and the change feed."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest
from django.test import Client

from django_assetcache.admin.sites import SiteAdmin
from django_assetcache.models import Asset, Blob, Change, Domain, Site
from django_assetcache.progress import human_bytes
from django_assetcache.publish import publish
from tests.conftest import SAMPLE, write_tree

pytestmark = pytest.mark.django_db

SITES = "/admin/django_assetcache/site/"
ASSETS = "/admin/django_assetcache/asset/"
BLOBS = "/admin/django_assetcache/blob/"
SAMPLE_BYTES = sum(len(c.encode() if isinstance(c, str) else c) for c in SAMPLE.values())


def html(response: Any) -> str:
    return response.content.decode()


def generation(site: Site) -> int:
    return Site.objects.values_list("generation", flat=True).get(pk=site.pk)


def new_changes(after: int) -> list[tuple[int | None, str, list[str] | None]]:
    return list(Change.objects.filter(pk__gt=after).order_by("pk").values_list("site_id", "kind", "paths"))


def last_change_id() -> int:
    return Change.objects.order_by("-pk").values_list("pk", flat=True).first() or 0


def site_form(site: Site | None = None, domains: list[Domain] | None = None, **fields: Any) -> dict[str, Any]:
    """POST data for the site change form, with its Domain inline."""
    data: dict[str, Any] = {
        "subdomain": site.subdomain if site else "",
        "name": site.name if site else "",
        "index_document": site.index_document if site else "index.html",
        "error_document": site.error_document if site else "404.html",
        "cache_control": site.cache_control if site else "",
        "hsts_max_age": str(site.hsts_max_age) if site else "0",
        "domains-TOTAL_FORMS": "0",
        "domains-INITIAL_FORMS": "0",
        "domains-MIN_NUM_FORMS": "0",
        "domains-MAX_NUM_FORMS": "1000",
        "visibility": site.visibility if site else "public",
        "share_links-TOTAL_FORMS": "0",
        "share_links-INITIAL_FORMS": "0",
        "share_links-MIN_NUM_FORMS": "0",
        "share_links-MAX_NUM_FORMS": "1000",
    }
    if site is None or site.is_active:
        data["is_active"] = "on"
    if site is not None and site.previews_private:
        data["previews_private"] = "on"
    for i, domain in enumerate(domains or []):
        data[f"domains-{i}-id"] = domain.pk
        data[f"domains-{i}-site"] = site.pk if site else ""
        data[f"domains-{i}-hostname"] = domain.hostname
    data["domains-TOTAL_FORMS"] = data["domains-INITIAL_FORMS"] = str(len(domains or []))
    data.update(fields)
    return data


@pytest.fixture
def blog(tmp_path: Path) -> Site:
    source = write_tree(tmp_path / "blog", {"index.html": "blog home", "feed.xml": "<rss/>"})
    publish("blog", source)
    return Site.objects.get(subdomain="blog")


# --- sites --------------------------------------------------------------------------------


def test_site_changelist_shows_each_site(admin_client: Client, site: Site, blog: Site) -> None:
    response = admin_client.get(SITES)
    assert response.status_code == 200
    page = html(response)
    assert f'<a href="{SITES}{site.pk}/change/">docs</a>' in page
    assert '<a href="https://docs.sites.test/" target="_blank" rel="noopener">' in page
    assert '<td class="field-file_count">5</td>' in page
    assert f'<td class="field-total_size">{human_bytes(SAMPLE_BYTES)}</td>' in page
    assert '<td class="field-requests_today">0</td>' in page
    assert '<td class="field-bytes_today">0 B</td>' in page
    assert f'<a href="{SITES}{blog.pk}/change/">blog</a>' in page
    assert '<td class="field-file_count">2</td>' in page
    assert f'<td class="field-total_size">{len("blog home") + len("<rss/>")} B</td>' in page


def test_site_changelist_counts_an_empty_site(admin_client: Client) -> None:
    Site.objects.create(subdomain="empty")
    page = html(admin_client.get(SITES))
    assert '<td class="field-file_count">0</td>' in page
    assert '<td class="field-total_size">0 B</td>' in page


def test_site_changelist_sorts_by_file_count_and_size(admin_client: Client, site: Site, blog: Site) -> None:
    Site.objects.create(subdomain="aaa-empty")
    columns = SiteAdmin.list_display
    for column in ("file_count", "total_size"):
        index = columns.index(column) + 1
        ascending = admin_client.get(SITES, {"o": str(index)}).context["cl"].result_list
        assert [s.subdomain for s in ascending] == ["aaa-empty", "blog", "docs"]
        descending = admin_client.get(SITES, {"o": f"-{index}"}).context["cl"].result_list
        assert [s.subdomain for s in descending] == ["docs", "blog", "aaa-empty"]


def test_site_search_by_subdomain(admin_client: Client, site: Site, blog: Site) -> None:
    response = admin_client.get(SITES, {"q": "blog"})
    assert response.status_code == 200
    assert [s.subdomain for s in response.context["cl"].result_list] == ["blog"]
    assert ">docs</a>" not in html(response)


def test_site_search_by_domain_keeps_counts_right(admin_client: Client, site: Site) -> None:
    Domain.objects.create(hostname="docs.example.com", site=site)
    Domain.objects.create(hostname="help.example.com", site=site)
    response = admin_client.get(SITES, {"q": "example.com"})
    assert [s.subdomain for s in response.context["cl"].result_list] == ["docs"]
    page = html(response)
    assert '<td class="field-file_count">5</td>' in page
    assert f'<td class="field-total_size">{human_bytes(SAMPLE_BYTES)}</td>' in page


def test_site_change_page_has_the_domain_inline(admin_client: Client, site: Site) -> None:
    Domain.objects.create(hostname="docs.example.com", site=site)
    response = admin_client.get(f"{SITES}{site.pk}/change/")
    assert response.status_code == 200
    page = html(response)
    assert 'name="domains-TOTAL_FORMS"' in page
    assert 'value="docs.example.com"' in page
    assert "https://docs.sites.test/" in page
    assert [type(f).__name__ for f in response.context["inline_admin_formsets"]] == ["InlineAdminFormSet"] * 2


def test_adding_a_domain_in_the_admin_writes_a_change(admin_client: Client, site: Site) -> None:
    before_generation = generation(site)
    after = last_change_id()
    data = site_form(site)
    data.update(
        {
            "domains-TOTAL_FORMS": "1",
            "domains-0-id": "",
            "domains-0-site": site.pk,
            "domains-0-hostname": "docs.example.com",
        }
    )
    response = admin_client.post(f"{SITES}{site.pk}/change/", data)
    assert response.status_code == 302, response.context and response.context["errors"]
    assert list(Domain.objects.values_list("hostname", "site_id")) == [("docs.example.com", site.pk)]
    changes = new_changes(after)
    assert (site.pk, "domains", None) in changes
    # The form saves the site too: one settings and one domains change.
    assert sorted(kind for _, kind, _ in changes) == ["domains", "settings"]
    assert generation(site) == before_generation + 2


def test_an_invalid_domain_in_the_admin_is_a_form_error(admin_client: Client, site: Site) -> None:
    after = last_change_id()
    data = site_form(site)
    data.update(
        {
            "domains-TOTAL_FORMS": "1",
            "domains-0-id": "",
            "domains-0-site": site.pk,
            "domains-0-hostname": "docs.sites.test",
        }
    )
    response = admin_client.post(f"{SITES}{site.pk}/change/", data)
    assert response.status_code == 200
    assert "already served by subdomain" in html(response)
    assert not Domain.objects.exists()
    assert new_changes(after) == []


def test_removing_a_domain_in_the_admin(admin_client: Client, site: Site) -> None:
    domain = Domain.objects.create(hostname="docs.example.com", site=site)
    after = last_change_id()
    data = site_form(site, [domain])
    data["domains-0-DELETE"] = "on"
    response = admin_client.post(f"{SITES}{site.pk}/change/", data)
    assert response.status_code == 302
    assert not Domain.objects.exists()
    assert sorted(kind for _, kind, _ in new_changes(after)) == ["domains", "settings"]


def test_changing_a_site_in_the_admin_bumps_generation(admin_client: Client, site: Site) -> None:
    before_generation = generation(site)
    after = last_change_id()
    response = admin_client.post(
        f"{SITES}{site.pk}/change/", site_form(site, name="Documentation", cache_control="no-cache")
    )
    assert response.status_code == 302
    site.refresh_from_db()
    assert (site.name, site.cache_control) == ("Documentation", "no-cache")
    assert site.generation == before_generation + 1
    assert new_changes(after) == [(site.pk, "settings", None)]
    # The content is untouched.
    assert site.assets.count() == 5


def test_generation_is_read_only_in_the_admin(admin_client: Client, site: Site) -> None:
    before_generation = generation(site)
    admin_client.post(f"{SITES}{site.pk}/change/", site_form(site, generation="999"))
    assert generation(site) == before_generation + 1


def test_adding_a_site_in_the_admin(admin_client: Client) -> None:
    response = admin_client.post(f"{SITES}add/", site_form(subdomain="fresh"))
    assert response.status_code == 302
    site = Site.objects.get(subdomain="fresh")
    assert site.generation == 1
    assert list(Change.objects.values_list("site_id", "kind")) == [(site.pk, "settings")]


@pytest.mark.parametrize(
    ("subdomain", "error"),
    [
        ("Bad_Name", "is not a valid subdomain"),
        ("-docs", "is not a valid subdomain"),
        ("www", "is reserved and cannot be used as a subdomain"),
        ("admin", "is reserved and cannot be used as a subdomain"),
        ("", "This field is required."),
    ],
)
def test_adding_a_site_with_a_bad_subdomain_is_a_form_error(admin_client: Client, subdomain: str, error: str) -> None:
    response = admin_client.post(f"{SITES}add/", site_form(subdomain=subdomain))
    assert response.status_code == 200
    form = response.context["adminform"].form
    assert list(form.errors) == ["subdomain"]
    assert error in form.errors["subdomain"][0]
    assert error in html(response)
    assert not Site.objects.exists()
    assert not Change.objects.exists()


def test_adding_a_site_with_a_taken_subdomain_is_a_form_error(admin_client: Client, site: Site) -> None:
    after = last_change_id()
    response = admin_client.post(f"{SITES}add/", site_form(subdomain="docs"))
    assert response.status_code == 200
    assert list(response.context["adminform"].form.errors) == ["subdomain"]
    assert Site.objects.count() == 1
    assert new_changes(after) == []


def test_deleting_a_site_in_the_admin(admin_client: Client, site: Site) -> None:
    after = last_change_id()
    site_id = site.pk
    response = admin_client.post(f"{SITES}{site_id}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Site.objects.exists()
    assert not Asset.objects.exists()
    assert Blob.objects.count() == 5  # bytes stay until garbage collection
    assert new_changes(after) == [(site_id, "delete", None)]


# --- assets -------------------------------------------------------------------------------


def test_asset_changelist_filtered_by_site(admin_client: Client, site: Site, blog: Site) -> None:
    response = admin_client.get(ASSETS, {"site__id__exact": site.pk})
    assert response.status_code == 200
    assert sorted(a.path for a in response.context["cl"].result_list) == sorted("/" + name for name in SAMPLE)
    page = html(response)
    assert ">/guide/index.html</a>" in page
    assert "/feed.xml" not in page
    logo = hashlib.sha256(SAMPLE["img/logo.png"]).hexdigest()  # type: ignore[arg-type]
    assert f'<td class="field-short_hash">{logo[:12]}</td>' in page
    assert '<td class="field-content_type">image/png</td>' in page
    assert 'href="https://docs.sites.test/img/logo.png"' in page

    response = admin_client.get(ASSETS, {"site__id__exact": blog.pk})
    assert sorted(a.path for a in response.context["cl"].result_list) == [
        "/feed.xml",
        "/index.html",
    ]


def test_asset_search_by_path(admin_client: Client, site: Site, blog: Site) -> None:
    response = admin_client.get(ASSETS, {"q": "guide"})
    assert response.status_code == 200
    assert [a.path for a in response.context["cl"].result_list] == ["/guide/index.html"]
    response = admin_client.get(ASSETS, {"q": "index.html"})
    assert sorted((a.site.subdomain, a.path) for a in response.context["cl"].result_list) == [
        ("blog", "/index.html"),
        ("docs", "/guide/index.html"),
        ("docs", "/index.html"),
    ]


def test_assets_are_read_only(admin_client: Client, site: Site) -> None:
    changelist = html(admin_client.get(ASSETS))
    assert f'href="{ASSETS}add/"' not in changelist
    assert admin_client.get(f"{ASSETS}add/").status_code == 403
    asset = Asset.objects.get(site=site, path="/index.html")
    page = admin_client.get(f"{ASSETS}{asset.pk}/change/")
    assert page.status_code == 200  # view only
    assert 'name="_save"' not in html(page)
    before = list(Asset.objects.values_list("path", "blob_id"))
    response = admin_client.post(f"{ASSETS}{asset.pk}/change/", {"path": "/hacked.html", "content_type": "text/plain"})
    assert response.status_code == 403
    assert list(Asset.objects.values_list("path", "blob_id")) == before


def test_deleting_an_asset_in_the_admin_writes_a_change(admin_client: Client, site: Site) -> None:
    asset = Asset.objects.get(site=site, path="/css/site.css")
    before_generation = generation(site)
    after = last_change_id()
    response = admin_client.post(f"{ASSETS}{asset.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Asset.objects.filter(pk=asset.pk).exists()
    assert Asset.objects.filter(site=site).count() == 4
    assert new_changes(after) == [(site.pk, "publish", ["/css/site.css"])]
    assert generation(site) == before_generation + 1


def test_deleting_assets_in_bulk_writes_one_change_per_site(admin_client: Client, site: Site, blog: Site) -> None:
    chosen = list(Asset.objects.filter(path__in=["/index.html", "/404.html"]).values_list("pk", flat=True))
    assert len(chosen) == 3  # two in docs, one in blog
    after = last_change_id()
    response = admin_client.post(ASSETS, {"action": "delete_selected", "_selected_action": chosen, "post": "yes"})
    assert response.status_code == 302
    assert not Asset.objects.filter(pk__in=chosen).exists()
    assert sorted(new_changes(after)) == [
        (site.pk, "publish", ["/404.html", "/index.html"]),
        (blog.pk, "publish", ["/index.html"]),
    ]


# --- blobs --------------------------------------------------------------------------------


def test_blob_changelist_is_read_only(admin_client: Client, site: Site) -> None:
    response = admin_client.get(BLOBS)
    assert response.status_code == 200
    page = html(response)
    for content in SAMPLE.values():
        data = content.encode() if isinstance(content, str) else content
        assert hashlib.sha256(data).hexdigest() in page
    assert len(response.context["cl"].result_list) == 5
    assert f'href="{BLOBS}add/"' not in page
    assert 'value="delete_selected"' not in page
    assert admin_client.get(f"{BLOBS}add/").status_code == 403
    blob = Blob.objects.first()
    assert blob is not None
    assert admin_client.post(f"{BLOBS}{blob.pk}/delete/", {"post": "yes"}).status_code == 403
    assert admin_client.post(f"{BLOBS}{blob.pk}/change/", {"size": "1"}).status_code == 403
    assert Blob.objects.count() == 5
    assert Blob.objects.get(pk=blob.pk).size == blob.size
