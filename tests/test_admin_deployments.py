"""A site's deployments in the admin: the list on its page, promote and
rollback through their confirmation pages, who may, and what is refused."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.contrib.admin.models import CHANGE, LogEntry
from django.test import Client
from django.utils import timezone

from django_assetcache.maintenance import collect_garbage
from django_assetcache.models import Deployment, Site
from django_assetcache.publish import publish
from tests.conftest import write_tree
from tests.test_admin_control import html, messages_of, staff, state
from tests.test_deployments import HOST, V1, V2, fetch, published

SITES = "/admin/django_assetcache/site/"
V3 = {"index.html": "<title>v3, a draft</title>", "css/site.css": "body { color: blue }\n"}


@dataclass
class History:
    v1: Deployment
    v2: Deployment
    draft: Deployment
    site: Site

    @property
    def page(self) -> str:
        return f"{SITES}{self.site.pk}/change/"

    def url(self, key: str, switch: str) -> str:
        return f"{SITES}{self.site.pk}/deployments/{key}/{switch}/"


@pytest.fixture
def history(transactional_db: None, tmp_path: Path) -> History:
    """v1 superseded, v2 live, v3 a draft with a message and an alias."""
    v1 = published(tmp_path, "v1", V1, created_by="ci", git_commit="0123456789abcdef", git_branch="main")
    v2 = published(tmp_path, "v2", V2)
    draft = published(tmp_path, "v3", V3, draft=True, alias="next", message="Blue text")
    return History(v1, v2, draft, Site.objects.get(subdomain="docs"))


def everything() -> dict[str, Any]:
    """What a switch could change: the admin's own snapshot, plus which deployment is live."""
    return {
        **state(),
        "live": list(Site.objects.order_by("pk").values_list("pk", "live_deployment_id")),
        "deployments": list(Deployment.objects.order_by("pk").values_list("pk", "state", "live_at")),
    }


def rows(page: str) -> list[tuple[str, str]]:
    """(id, state) of each deployment row, in page order."""
    return re.findall(r'<tr class="deployment state-(\w+)" id="deployment-(\w+)">', page)


def row(page: str, key: str) -> str:
    found = re.search(rf'<tr class="deployment [^"]*" id="deployment-{key}">(.*?)</tr>', page, re.S)
    assert found is not None, key
    return found.group(1)


def test_the_site_page_lists_its_deployments_newest_first(history: History, admin_client: Client) -> None:
    page = html(admin_client.get(history.page))
    assert rows(page) == [("draft", history.draft.key), ("live", history.v2.key), ("superseded", history.v1.key)]
    for deployment in (history.v1, history.v2, history.draft):
        host = f"{deployment.key}--docs.sites.test"
        assert f'<a href="https://{host}/" target="_blank" rel="noopener">{host}</a>' in row(page, deployment.key)
    draft, live, old = row(page, history.draft.key), row(page, history.v2.key), row(page, history.v1.key)
    assert "Blue text" in draft and '<span class="assetcache-alias" title="alias">next</span>' in draft
    assert "0 added, 2 changed, 0 unchanged, 1 removed" in draft  # against v2, with --delete
    assert f'href="{history.url(history.draft.key, "promote")}">Promote</a>' in draft
    assert "<td>ci</td>" in old.replace(' class="by"', "") and "<code>0123456789ab</code> (main)" in old
    assert f'href="{history.url(history.v1.key, "rollback")}">Roll back to this</a>' in old
    assert "/deployments/" not in live  # the live one has no button
    assert 'name="deployments' not in page  # read-only: no form fields


def test_an_expired_deployment_is_listed_without_preview_or_button(
    history: History, admin_client: Client, settings: Any
) -> None:
    Deployment.objects.update(created_at=timezone.now() - timedelta(days=31))
    settings.ASSETCACHE_DEPLOYMENT_RETENTION = 1
    assert collect_garbage().deployments_expired == 1
    old = row(html(admin_client.get(history.page)), history.v1.key)
    assert "expired" in old and "--docs.sites.test" not in old and "/deployments/" not in old


def test_a_viewer_sees_the_list_without_buttons(history: History) -> None:
    page = html(staff("viewer", "view_site").get(history.page))
    assert len(rows(page)) == 3
    assert "/deployments/" not in page


@pytest.mark.parametrize(
    ("switch", "which", "served", "difference", "logged"),
    [
        (
            "rollback",
            "v1",
            V1["index.html"],
            "1 added, 1 changed, 1 unchanged, 1 removed",
            "Rolled back to deployment {key}.",
        ),
        (
            "promote",
            "draft",
            V3["index.html"],
            "0 added, 2 changed, 0 unchanged, 1 removed",
            "Promoted deployment {key}.",
        ),
    ],
)
def test_a_switch_through_its_confirmation_page(
    history: History, admin_client: Client, switch: str, which: str, served: str, difference: str, logged: str
) -> None:
    target: Deployment = getattr(history, which)
    assert fetch(HOST, "/")[2] == V2["index.html"].encode()
    before = everything()
    confirm = admin_client.get(history.url(target.key, switch))
    assert confirm.status_code == 200
    page = html(confirm)
    assert f"Deployment <strong>{target.key}</strong>" in page and "goes live on docs." in page
    assert f"Deployment <strong>{history.v2.key}</strong>, live since " in page and "stops being live" in page
    assert f"Compared with what is live: {difference}." in page
    assert 'name="csrfmiddlewaretoken"' in page
    assert everything() == before  # a GET changes nothing

    response = admin_client.post(history.url(target.key, switch))
    assert (response.status_code, response["Location"]) == (302, history.page)
    assert messages_of(response) == [f"Deployment {target.key} is live on docs."]
    assert fetch(HOST, "/")[2] == served.encode()
    assert Site.objects.get().live_deployment_id == target.pk
    entries = LogEntry.objects.filter(object_id=str(history.site.pk))
    assert list(entries.values_list("action_flag", "change_message")) == [(CHANGE, logged.format(key=target.key))]


@pytest.mark.parametrize("perms", [(), ("view_site",)])
def test_without_the_change_permission_it_is_403_and_nothing_changes(history: History, perms: tuple[str, ...]) -> None:
    client = staff("someone", *perms)
    before = everything()
    for switch, key in (("rollback", history.v1.key), ("promote", history.draft.key)):
        assert client.get(history.url(key, switch)).status_code == 403
        assert client.post(history.url(key, switch)).status_code == 403
    assert everything() == before
    assert fetch(HOST, "/")[2] == V2["index.html"].encode()


def test_a_post_without_the_csrf_token_is_refused(history: History, admin_user: Any) -> None:
    client = Client(enforce_csrf_checks=True)
    client.force_login(admin_user)
    before = everything()
    assert client.post(history.url(history.v1.key, "rollback")).status_code == 403
    assert everything() == before


def another_sites_deployment(tmp_path: Path) -> str:
    summary = publish("blog", write_tree(tmp_path / "blog", {"index.html": "blog"}))
    assert summary.deployment is not None
    return summary.deployment.key


@pytest.mark.parametrize(
    ("switch", "key", "error"),
    [
        ("rollback", "zzzzzzzz", "docs has no deployment zzzzzzzz"),
        ("promote", "blog", "docs has no deployment {key}"),
        ("rollback", "v2", "deployment {key} is already live on docs"),
        ("promote", "v2", "deployment {key} is already live on docs"),
        ("rollback", "draft", "deployment {key} is a draft, never live: promote it instead"),
        (
            "rollback",
            "expired",
            "deployment {key} of docs expired: assetcache_gc collected its files; publish them again",
        ),
    ],
)
@pytest.mark.parametrize("method", ["get", "post"])
def test_refusals_are_admin_errors_that_change_nothing(
    history: History,
    admin_client: Client,
    tmp_path: Path,
    settings: Any,
    switch: str,
    key: str,
    error: str,
    method: str,
) -> None:
    if key == "blog":
        key = another_sites_deployment(tmp_path)
    elif key == "expired":
        Deployment.objects.update(created_at=timezone.now() - timedelta(days=31))
        settings.ASSETCACHE_DEPLOYMENT_RETENTION = 1
        assert collect_garbage().deployments_expired == 1
        key = history.v1.key
    elif key in ("v2", "draft"):
        key = getattr(history, key).key
    before = everything()
    response = getattr(admin_client, method)(history.url(key, switch))
    assert (response.status_code, response["Location"]) == (302, history.page)
    assert messages_of(response) == [f"Nothing changed: {error.format(key=key)}."]
    assert everything() == before
    assert fetch(HOST, "/")[2] == V2["index.html"].encode()


@pytest.mark.parametrize("url", ["{sites}{pk}/deployments/{key}/delete/", "{sites}999/deployments/{key}/rollback/"])
def test_an_unknown_switch_or_site_is_404(history: History, admin_client: Client, url: str) -> None:
    before = everything()
    response = admin_client.post(url.format(sites=SITES, pk=history.site.pk, key=history.v1.key))
    assert response.status_code == 404
    assert everything() == before
