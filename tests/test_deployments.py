"""Deployments: publish, rollback, promote, drafts, previews, aliases, retention."""

from __future__ import annotations

import json
from datetime import timedelta
from io import StringIO
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.utils import timezone

from django_assetcache import runtime
from django_assetcache.deployments import DeploymentError, move_alias, promote, rollback
from django_assetcache.maintenance import collect_garbage
from django_assetcache.models import Asset, Blob, Change, Deployment, DeploymentAlias, Site
from django_assetcache.publish import DeploymentInfo, PublishError, publish
from django_assetcache.store import BlobStore
from django_assetcache.warmup import warm_up

from .conftest import write_tree

HOST = "docs.sites.test"
V1 = {"index.html": "<title>v1</title>", "css/site.css": "body { color: red }\n", "old.html": "only in v1"}
V2 = {"index.html": "<title>v2</title>", "css/site.css": "body { color: red }\n", "new.html": "only in v2"}
PATHS = ["/", "/css/site.css", "/old.html", "/new.html"]


def fetch(host: str, path: str, **meta: str) -> tuple[int, dict[str, str], bytes]:
    response = Client().get(path, HTTP_HOST=host, **meta)
    body = b"".join(response.streaming_content) if response.streaming else response.content  # type: ignore[arg-type]
    return response.status_code, dict(response.headers), body


def snapshot_of(host: str) -> dict[str, tuple[int, bytes, str | None]]:
    """Per path: status, body and ETag."""
    return {path: (lambda r: (r[0], r[2], r[1].get("ETag")))(fetch(host, path)) for path in PATHS}


def stored(sha256: str) -> bool:
    return sha256 in set(BlobStore().walk())


def preview(deployment: Deployment | None, label: str | None = None) -> str:
    assert deployment is not None
    return f"{label or deployment.key}--docs.sites.test"


def published(tmp_path: Path, name: str, files: dict[str, Any], **info: Any) -> Deployment:
    summary = publish("docs", write_tree(tmp_path / name, files), delete=True, deployment=DeploymentInfo(**info))
    assert summary.deployment is not None
    return summary.deployment


@pytest.fixture
def v1_v2(transactional_db, tmp_path: Path) -> tuple[Deployment, Deployment]:
    return published(tmp_path, "v1", V1), published(tmp_path, "v2", V2)


def test_rollback_serves_v1s_exact_bytes_and_etags_storing_nothing(transactional_db, tmp_path: Path) -> None:
    v1 = published(tmp_path, "v1", V1, message="first", git_commit="abc123", git_branch="main")
    seen_v1 = snapshot_of(HOST)
    assert seen_v1["/"][:2] == (200, V1["index.html"].encode()) and seen_v1["/new.html"][0] == 404
    v2 = published(tmp_path, "v2", V2)
    assert snapshot_of(HOST)["/"][1] == V2["index.html"].encode()
    blobs, assets = Blob.objects.count(), Asset.objects.count()
    files = sorted(BlobStore().walk())

    assert rollback("docs").pk == v1.pk
    assert snapshot_of(HOST) == seen_v1
    # Zero bytes stored, no row copied: a pointer moved.
    assert (Blob.objects.count(), Asset.objects.count(), sorted(BlobStore().walk())) == (blobs, assets, files)
    states = dict(Deployment.objects.values_list("key", "state"))
    assert states == {v1.key: "live", v2.key: "superseded"}
    assert Site.objects.get().live_deployment_id == v1.pk
    assert Change.objects.order_by("-pk").values_list("kind", flat=True)[0] == "deploy"
    v1.refresh_from_db()
    assert (v1.message, v1.git_commit, v1.git_branch, v1.summary["added"]) == ("first", "abc123", "main", 3)


def test_a_publish_keeps_unchanged_rows_and_their_last_modified(transactional_db, tmp_path: Path) -> None:
    v1 = published(tmp_path, "v1", V1)
    css_v1 = fetch(HOST, "/css/site.css")[1]["Last-Modified"]
    v2 = publish("docs", write_tree(tmp_path / "v2", {"index.html": "changed"})).deployment
    assert v2 is not None and v2.pk != v1.pk
    # Without --delete the other files stay, copied from the live deployment.
    assert sorted(v2.assets.values_list("path", flat=True)) == ["/css/site.css", "/index.html", "/old.html"]
    assert fetch(HOST, "/css/site.css")[1]["Last-Modified"] == css_v1
    assert fetch(HOST, "/old.html")[2] == b"only in v1"


def test_a_publish_changing_nothing_makes_no_deployment(transactional_db, tmp_path: Path) -> None:
    v1 = published(tmp_path, "v1", V1)
    again = published(tmp_path, "v1-again", V1)
    assert again.pk == v1.pk and Deployment.objects.count() == 1


def deploy_changes() -> list[tuple[int | None, int | None]]:
    """The site's ``deploy`` changes: (deployment made live, the one before)."""
    rows = Change.objects.filter(kind="deploy").order_by("pk").values_list("deployment_id", "previous_id")
    return list(rows)


def test_a_publish_of_the_tree_a_rollback_made_live_again_switches_nothing(transactional_db, tmp_path: Path) -> None:
    # The order of a rollback racing a publish, round by round, that makes
    # v2's deployment live again just before v2 is published once more.
    trees = [{"index.html": f"version {n}", f"only-{n}.html": str(n)} for n in range(4)]
    v0, v1 = published(tmp_path, "v0", trees[0]), published(tmp_path, "v1", trees[1])
    assert rollback("docs").pk == v0.pk
    v2 = published(tmp_path, "v2", trees[2])
    v3 = published(tmp_path, "v3", trees[3])
    assert rollback("docs").pk == v2.pk
    generation = Site.objects.get().generation

    again = publish("docs", write_tree(tmp_path / "v2-again", trees[2]), delete=True)

    # The live deployment is this publish: it says so, and records no switch.
    assert again.deployment is not None and again.deployment.pk == v2.pk
    assert (again.added, again.changed, again.removed, again.unchanged) == ([], [], [], 2)
    assert Deployment.objects.count() == 4 and Site.objects.get().generation == generation
    assert deploy_changes() == [
        (v0.pk, None),
        (v1.pk, v0.pk),
        (v0.pk, v1.pk),
        (v2.pk, v0.pk),
        (v3.pk, v2.pk),
        (v2.pk, v3.pk),
    ]


def test_a_draft_is_not_live_but_its_preview_serves_it(transactional_db, tmp_path: Path) -> None:
    published(tmp_path, "v1", V1)
    draft = published(tmp_path, "v2", V2, draft=True)
    assert draft.state == "draft"
    assert fetch(HOST, "/")[2] == V1["index.html"].encode()
    status, headers, body = fetch(preview(draft), "/")
    assert (status, body, headers["X-Robots-Tag"]) == (200, V2["index.html"].encode(), "noindex")
    assert "X-Robots-Tag" not in fetch(HOST, "/")[1]
    # Every reply of a preview host says noindex: 404s, redirects, 304s, 405s.
    assert fetch(preview(draft), "/old.html")[0] == 404
    assert fetch(preview(draft), "/old.html")[1]["X-Robots-Tag"] == "noindex"
    etag = fetch(preview(draft), "/css/site.css")[1]["ETag"]
    not_modified = fetch(preview(draft), "/css/site.css", HTTP_IF_NONE_MATCH=etag)
    assert (not_modified[0], not_modified[1]["X-Robots-Tag"]) == (304, "noindex")
    posted = Client().post("/", HTTP_HOST=preview(draft))
    assert (posted.status_code, posted["X-Robots-Tag"]) == (405, "noindex")
    # Live and preview entries of one deployment are kept apart (different headers).
    assert fetch(HOST, "/css/site.css")[1]["ETag"] == etag

    promote("docs", draft.key)
    assert fetch(HOST, "/")[2] == V2["index.html"].encode()
    assert "X-Robots-Tag" not in fetch(HOST, "/")[1]


def test_an_alias_moves_with_each_deploy_that_names_it(transactional_db, tmp_path: Path) -> None:
    first = published(tmp_path, "v1", V1, alias="staging")
    assert fetch(preview(first, "staging"), "/")[2] == V1["index.html"].encode()
    second = published(tmp_path, "v2", V2, alias="staging", draft=True)
    assert fetch(preview(second, "staging"), "/")[2] == V2["index.html"].encode()
    assert fetch(HOST, "/")[2] == V1["index.html"].encode()
    # The old deployment keeps its own preview host.
    assert fetch(preview(first), "/")[2] == V1["index.html"].encode()


@pytest.mark.parametrize(
    ("alias", "message"),
    [
        ("Bad_Name", "not a valid alias"),
        ("a--b", "not a valid alias"),
        ("abcdefgh", "looks like a deployment id"),
        ("x" * 60, "longer than the 63 characters"),
    ],
)
def test_a_bad_alias_is_refused_before_anything_changes(
    transactional_db, tmp_path: Path, alias: str, message: str
) -> None:
    with pytest.raises(PublishError, match=message):
        published(tmp_path, "v1", V1, alias=alias)
    assert not Deployment.objects.exists() and not Blob.objects.exists()


def test_unknown_preview_hosts_are_404(transactional_db, tmp_path: Path) -> None:
    published(tmp_path, "v1", V1)
    for host in (
        "zzzzzzzz--docs.sites.test",
        "staging--docs.sites.test",
        "--docs.sites.test",
        "abc--nosite.sites.test",
    ):
        assert fetch(host, "/")[0] == 404, host


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: rollback("nosite"), "no such site: nosite"),
        (lambda: rollback("docs", "zzzzzzzz"), "docs has no deployment zzzzzzzz"),
        (lambda: promote("docs", Deployment.objects.get(state="live").key), "is already live"),
        (lambda: rollback("docs", Deployment.objects.get(state="draft").key), "is a draft, never live"),
    ],
)
def test_bad_switches_are_refused(v1_v2, tmp_path: Path, call, message: str) -> None:
    published(tmp_path, "v3", {"index.html": "draft"}, draft=True)
    before = list(Change.objects.values_list("pk", flat=True))
    with pytest.raises(DeploymentError, match=message):
        call()
    assert list(Change.objects.values_list("pk", flat=True)) == before


def test_rollback_steps_back_through_what_was_live(v1_v2, tmp_path: Path) -> None:
    v1, v2 = v1_v2
    v3 = published(tmp_path, "v3", {"index.html": "v3"})
    assert rollback("docs").pk == v2.pk
    assert rollback("docs").pk == v1.pk
    with pytest.raises(DeploymentError, match="no earlier deployment"):
        rollback("docs")
    assert rollback("docs", v3.key).pk == v3.pk


def test_retention_expires_old_deployments_and_gc_collects_only_their_blobs(v1_v2, tmp_path: Path, settings) -> None:
    v1, v2 = v1_v2
    only_v1 = Asset.objects.get(deployment=v1, path="/old.html").blob_id
    # Young deployments are kept, whatever their number.
    settings.ASSETCACHE_DEPLOYMENT_RETENTION = 0
    assert collect_garbage().deployments_expired == 0
    assert stored(only_v1)
    Deployment.objects.update(created_at=timezone.now() - timedelta(days=31))
    settings.ASSETCACHE_DEPLOYMENT_RETENTION = 2
    assert collect_garbage().deployments_expired == 0  # old, but among the 2 newest
    settings.ASSETCACHE_DEPLOYMENT_RETENTION = 1
    summary = collect_garbage()
    # v1's own index.html and old.html; site.css, which v2 shares, stays.
    assert (summary.deployments_expired, summary.blobs_deleted) == (1, 2)
    assert not stored(only_v1) and not Blob.objects.filter(pk=only_v1).exists()
    assert all(stored(sha) for sha in v2.assets.values_list("blob_id", flat=True))
    v1.refresh_from_db()
    assert v1.state == "expired" and not v1.assets.exists()
    assert fetch(preview(v1), "/")[0] == 404
    with pytest.raises(DeploymentError, match="assetcache_gc collected its files; publish them again"):
        rollback("docs", v1.key)


def test_an_aliased_deployment_is_kept(v1_v2, tmp_path: Path, settings) -> None:
    v1, _ = v1_v2
    move_alias(Site.objects.get(), "stable", v1)
    Deployment.objects.update(created_at=timezone.now() - timedelta(days=31))
    settings.ASSETCACHE_DEPLOYMENT_RETENTION = 0
    assert collect_garbage().deployments_expired == 0


def test_previews_are_served_from_the_snapshot(v1_v2, tmp_path: Path, django_assert_num_queries) -> None:
    v1, _ = v1_v2
    summary = warm_up()
    assert summary.sites == 1
    runtime.reset()
    live = fetch(HOST, "/")  # the feed position, then nothing from the database
    with django_assert_num_queries(0):
        assert fetch(preview(v1), "/old.html")[2] == b"only in v1"
        assert fetch(preview(v1), "/")[1]["X-Robots-Tag"] == "noindex"
        assert fetch(HOST, "/new.html")[2] == b"only in v2"
    assert live[2] == V2["index.html"].encode()


def test_commands(v1_v2, tmp_path: Path) -> None:
    v1, v2 = v1_v2
    out = StringIO()
    call_command("assetcache_deployments", "docs", "--json", stdout=out)
    listed = json.loads(out.getvalue())
    assert [(item["id"], item["state"]) for item in listed] == [(v2.key, "live"), (v1.key, "superseded")]
    assert listed[0]["preview_url"] == f"https://{v2.key}--docs.sites.test/"
    out = StringIO()
    call_command("assetcache_deployments", "docs", stdout=out)
    assert out.getvalue().splitlines()[0].startswith(f"{v2.key}  live")
    out = StringIO()
    call_command("assetcache_rollback", "docs", stdout=out)
    assert out.getvalue() == f"docs: deployment {v1.key} is live again\n"
    out = StringIO()
    call_command("assetcache_promote", "docs", v2.key, stdout=out)
    assert out.getvalue() == f"docs: deployment {v2.key} is live\n"
    for args, message in [
        (("assetcache_rollback", "nosite"), "no such site: nosite"),
        (("assetcache_promote", "docs", v2.key), "already live"),
        (("assetcache_deployments", "nosite"), "no such site: nosite"),
    ]:
        with pytest.raises(CommandError, match=message):
            call_command(*args)


def test_publish_command_records_draft_alias_message_and_git(transactional_db, tmp_path: Path) -> None:
    source = write_tree(tmp_path / "v1", V1)
    out = StringIO()
    call_command(
        "assetcache_publish", "docs", str(source), "--draft", "--alias", "next", "--message", "hi",
        "--commit", "deadbeef", "--branch", "feature", stdout=out,
    )  # fmt: skip
    deployment = Deployment.objects.get()
    assert f"; draft {deployment.key}, preview at https://{deployment.key}--docs.sites.test/" in out.getvalue()
    assert (deployment.state, deployment.message, deployment.git_commit, deployment.git_branch) == (
        "draft",
        "hi",
        "deadbeef",
        "feature",
    )
    assert deployment.created_by == "assetcache_publish"
    assert list(deployment.aliases.values_list("name", flat=True)) == ["next"]


def test_the_admin_site_list_shows_when_and_by_whom_the_live_deployment_was_published(
    v1_v2, admin_client: Client
) -> None:
    page = admin_client.get("/admin/django_assetcache/site/").content.decode()
    assert '<br><span class="quiet">' in page  # under the live URL
    assert "· assetcache_publish" not in page  # published by the Python API: no name
    Deployment.objects.filter(state="live").update(created_by="ci")
    page = admin_client.get("/admin/django_assetcache/site/").content.decode()
    assert "· ci</span>" in page


# --- the migration ---------------------------------------------------------------------------------


def _migrator(suffix: str = "_deployments") -> tuple[MigrationExecutor, tuple[str, str], list[tuple[str, str]]]:
    executor = MigrationExecutor(connection)
    (after,) = [key for key in executor.loader.disk_migrations if key[1].endswith(suffix)]
    before = [dep for dep in executor.loader.disk_migrations[after].dependencies if dep[0] == "django_assetcache"]
    return executor, after, before


def test_the_migration_makes_each_sites_files_its_first_deployment(transactional_db) -> None:
    executor, after, before = _migrator()
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    site_model, asset_model = apps.get_model("django_assetcache", "Site"), apps.get_model("django_assetcache", "Asset")
    blob = apps.get_model("django_assetcache", "Blob").objects.create(sha256="ab" * 32, size=3)
    docs = site_model.objects.create(subdomain="docs")
    site_model.objects.create(subdomain="empty")
    for path in ("/index.html", "/a.css"):
        asset_model.objects.create(
            site=docs, path=path, blob=blob, content_type="text/html", last_modified=timezone.now()
        )
    executor = MigrationExecutor(connection)
    executor.migrate([after])
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    deployment = Deployment.objects.get()
    assert (deployment.site.subdomain, deployment.state, deployment.created_by, deployment.source) == (
        "docs",
        "live",
        "migration",
        "existing files",
    )
    assert Site.objects.get(subdomain="docs").live_deployment_id == deployment.pk
    assert Site.objects.get(subdomain="empty").live_deployment_id is None
    assert sorted(deployment.assets.values_list("path", flat=True)) == ["/a.css", "/index.html"]
    # And back: one row per path again.
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    assert apps.get_model("django_assetcache", "Asset").objects.count() == 2
    MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())


def test_the_migration_names_subdomains_that_hold_a_double_hyphen(transactional_db) -> None:
    executor, after, before = _migrator()
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    apps.get_model("django_assetcache", "Site").objects.create(subdomain="old--name")
    executor = MigrationExecutor(connection)
    with pytest.raises(RuntimeError, match="rename old--name first"):
        executor.migrate([after])
    apps.get_model("django_assetcache", "Site").objects.filter(subdomain="old--name").update(subdomain="old-name")
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())


def test_the_migration_gives_each_deployment_its_sites_rules(transactional_db) -> None:
    executor, after, before = _migrator("_deployment_rules")
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    site_model, deployment_model = (
        apps.get_model("django_assetcache", "Site"),
        apps.get_model("django_assetcache", "Deployment"),
    )
    rules = '{"redirects": [], "headers": []}'
    docs = site_model.objects.create(subdomain="docs", rules=rules)
    plain = site_model.objects.create(subdomain="plain")
    old, live = (deployment_model.objects.create(site=docs, key=key) for key in ("aaaaaaaa", "bbbbbbbb"))
    other = deployment_model.objects.create(site=plain, key="cccccccc")
    site_model.objects.filter(pk=docs.pk).update(live_deployment=live)
    site_model.objects.filter(pk=plain.pk).update(live_deployment=other)
    executor = MigrationExecutor(connection)
    executor.migrate([after])
    # Every deployment of a site was served with its rules: each keeps them.
    found = dict(Deployment.objects.values_list("key", "rules"))
    assert found == {old.key: rules, live.key: rules, other.key: ""}
    # And back: a site's rules are its live deployment's.
    Deployment.objects.filter(key=old.key).update(rules="")
    Deployment.objects.filter(key=live.key).update(rules=rules.replace("[]", "[ ]", 1))
    executor = MigrationExecutor(connection)
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    back = dict(apps.get_model("django_assetcache", "Site").objects.values_list("subdomain", "rules"))
    assert back == {"docs": rules.replace("[]", "[ ]", 1), "plain": ""}
    MigrationExecutor(connection).migrate(executor.loader.graph.leaf_nodes())


def test_tls_ask_says_yes_to_preview_hosts_of_retained_deployments(v1_v2, tmp_path: Path, settings) -> None:
    v1, _ = v1_v2
    move_alias(Site.objects.get(), "stable", v1)

    def ask(host: str) -> int:
        return Client().get("/assetcache/tls-ask", {"domain": host}).status_code

    assert [ask(preview(v1)), ask(preview(v1, "stable")), ask("zzzzzzzz--docs.sites.test")] == [200, 200, 404]
    Deployment.objects.update(created_at=timezone.now() - timedelta(days=31))
    DeploymentAlias.objects.all().delete()
    settings.ASSETCACHE_DEPLOYMENT_RETENTION = 0
    collect_garbage()
    assert ask(preview(v1)) == 404  # expired: no certificate for it any more


@pytest.mark.parametrize("from_snapshot", [False, True])
def test_a_publish_keeps_the_entries_of_unchanged_paths(
    transactional_db, tmp_path: Path, django_assert_num_queries, from_snapshot: bool
) -> None:
    """Entries (and snapshot rows) of the paths a publish did not touch move
    to the new deployment: only the changed paths are read again."""
    v1 = published(tmp_path, "v1", V1)
    if from_snapshot:
        warm_up()
        runtime.reset()
    seen = snapshot_of(HOST)
    v2 = publish("docs", write_tree(tmp_path / "v2", {"index.html": "changed"})).deployment
    assert v2 is not None
    with django_assert_num_queries(2):  # the host (now v2), then the changed index
        assert fetch(HOST, "/")[2] == b"changed"
    with django_assert_num_queries(0):
        assert fetch(HOST, "/css/site.css")[2] == seen["/css/site.css"][1]
        assert fetch(HOST, "/old.html")[2] == b"only in v1"
        assert fetch(HOST, "/new.html")[0] == 404
    entries = runtime.get_cache().entries
    assert (v2.pk, "/css/site.css") in entries and (v1.pk, "/css/site.css") not in entries


def test_the_admin_files_link_lists_the_live_deployments_files(v1_v2, admin_client: Client) -> None:
    _, v2 = v1_v2
    page = admin_client.get(f"/admin/django_assetcache/asset/?deployment__id__exact={v2.pk}")
    assert page.status_code == 200
    assert page.content.decode().count('<td class="field-content_type">') == 3
