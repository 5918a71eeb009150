"""The deploy API through Django's test client: tokens, the manifest, blob
uploads, finish, and every refusal leaving nothing changed."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_assetcache.deploytokens import create_token, hash_secret
from django_assetcache.maintenance import collect_garbage
from django_assetcache.models import Blob, Deployment, DeployToken, PendingDeploy, Site

from .conftest import live_assets, sha, stored

HOST = "admin.example.com"
FILES = {"/index.html": b"<h1>home</h1>", "/css/site.css": b"body{}", "/about/index.html": b"<h1>about</h1>"}


@pytest.fixture
def api() -> Client:
    return Client(HTTP_HOST="testserver")


@pytest.fixture
def secret(site: Site) -> str:
    return create_token("ci", ["docs"])[1]


def call(client: Client, method: str, path: str, secret: str, body: Any = None, **extra: Any) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {secret}", **extra}
    if isinstance(body, bytes):
        return getattr(client, method)(path, body, content_type="application/octet-stream", **headers)
    data = json.dumps(body) if body is not None else ""
    return getattr(client, method)(path, data, content_type="application/json", **headers)


def manifest(files: dict[str, bytes]) -> dict[str, Any]:
    return {"files": {path: {"sha256": sha(data), "size": len(data)} for path, data in files.items()}}


def start(client: Client, secret: str, files: dict[str, bytes], subdomain: str = "docs", **options: Any) -> Any:
    return call(client, "post", f"/assetcache/sites/{subdomain}/deploys", secret, {**manifest(files), **options})


def deploy(client: Client, secret: str, files: dict[str, bytes], **options: Any) -> tuple[list[str], Any]:
    """A whole deploy: (the hashes the server asked for, the finish reply)."""
    started = start(client, secret, files, **options)
    assert started.status_code == 201, started.content
    reply = started.json()
    by_hash = {sha(data): data for data in files.values()}
    for wanted in reply["required"]:
        put = call(client, "put", f"/assetcache/deploys/{reply['id']}/blobs/{wanted}", secret, by_hash[wanted])
        assert put.status_code == 201, put.content
    return reply["required"], call(client, "post", f"/assetcache/deploys/{reply['id']}/finish", secret)


def test_a_deploy_uploads_what_is_missing_and_goes_live(api: Client, secret: str) -> None:
    required, finished = deploy(api, secret, FILES, message="from CI")
    assert sorted(required) == sorted(sha(data) for data in FILES.values())
    assert finished.status_code == 200
    body = finished.json()
    assert (body["state"], body["url"]) == ("live", "https://docs.sites.test/")
    assert body["preview_url"] == f"https://{body['id']}--docs.sites.test/"
    assert body["summary"]["files"] == 3
    deployment = Deployment.objects.get(key=body["id"])
    assert (deployment.message, deployment.created_by, deployment.source) == ("from CI", "token ci", "deploy API")
    assert list(live_assets().values_list("path", flat=True)) == sorted(FILES)
    assert DeployToken.objects.get(name="ci").last_used_at is not None


def test_deploying_again_unchanged_uploads_nothing_and_records_a_deployment(api: Client, secret: str) -> None:
    first = deploy(api, secret, FILES)[1].json()["id"]
    required, finished = deploy(api, secret, FILES)
    assert required == []
    second = finished.json()["id"]
    assert second != first
    assert Site.objects.get(subdomain="docs").live_deployment.key == second


def test_one_changed_file_asks_for_exactly_one_blob(api: Client, secret: str) -> None:
    deploy(api, secret, FILES)
    changed = {**FILES, "/css/site.css": b"body{color:red}"}
    required, finished = deploy(api, secret, changed)
    assert required == [sha(b"body{color:red}")]
    assert finished.json()["summary"]["changed"] == 1


@pytest.mark.parametrize("given", ["", "Bearer nope", "Bearer acd_wrong", "Basic abc"])
def test_a_wrong_token_is_401_and_changes_nothing(api: Client, secret: str, given: str) -> None:
    response = api.post(
        "/assetcache/sites/docs/deploys",
        json.dumps(manifest(FILES)),
        content_type="application/json",
        HTTP_AUTHORIZATION=given,
    )
    assert response.status_code == 401
    assert response.json() == {"error": "a valid deploy token is required (Authorization: Bearer <token>)"}
    assert response["WWW-Authenticate"] == 'Bearer realm="assetcache deploy"'
    assert not PendingDeploy.objects.exists()


def test_a_revoked_or_expired_token_is_refused_at_once(api: Client, secret: str) -> None:
    assert start(api, secret, FILES).status_code == 201
    call_command("assetcache_token", "revoke", "ci")
    assert start(api, secret, FILES).status_code == 401
    other = create_token("later", ["docs"], expires_in=timedelta(hours=1))
    DeployToken.objects.filter(pk=other[0].pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    assert start(api, other[1], FILES).status_code == 401


def test_a_token_for_another_site_is_403(api: Client, secret: str) -> None:
    Site.objects.create(subdomain="blog")
    response = start(api, secret, FILES, subdomain="blog")
    assert (response.status_code, response.json()) == (403, {"error": "this token may not deploy blog"})
    assert not PendingDeploy.objects.exists()


def test_a_missing_site_is_404_unless_the_token_may_create_it(api: Client, secret: str) -> None:
    assert start(api, secret, FILES, subdomain="fresh").status_code == 404
    creator = create_token("creator", ["docs"], may_create_sites=True)
    finished = deploy(api, creator[1], FILES, subdomain="fresh")[1]
    assert finished.status_code == 200
    assert creator[0].sites.filter(subdomain="fresh").exists()


def test_bytes_that_do_not_match_their_hash_are_422_and_stored_nothing(api: Client, secret: str) -> None:
    reply = start(api, secret, FILES).json()
    wanted = sha(FILES["/index.html"])
    forged = b"<h1>HOME</h1>"  # same length, other bytes
    response = call(api, "put", f"/assetcache/deploys/{reply['id']}/blobs/{wanted}", secret, forged)
    assert response.status_code == 422
    assert "error" in response.json()
    assert not stored(wanted) and not stored(sha(forged))


def test_finish_with_a_blob_missing_is_409_listing_it(api: Client, secret: str) -> None:
    reply = start(api, secret, FILES).json()
    for path in ("/index.html", "/css/site.css"):
        data = FILES[path]
        call(api, "put", f"/assetcache/deploys/{reply['id']}/blobs/{sha(data)}", secret, data)
    before = Deployment.objects.count()
    response = call(api, "post", f"/assetcache/deploys/{reply['id']}/finish", secret)
    assert response.status_code == 409
    assert response.json() == {
        "error": "1 blobs are not uploaded yet",
        "missing": [sha(FILES["/about/index.html"])],
    }
    assert Deployment.objects.count() == before


def test_a_deploy_over_the_site_limit_is_413(api: Client, secret: str, settings) -> None:
    settings.ASSETCACHE_MAX_SITE_SIZE = 20
    response = start(api, secret, FILES)
    assert response.status_code == 413
    assert "ASSETCACHE_MAX_SITE_SIZE" in response.json()["error"]
    assert not PendingDeploy.objects.exists()


def test_an_upload_over_the_file_limit_is_413_and_stores_nothing(api: Client, secret: str, settings) -> None:
    big = {"/big.bin": b"x" * 100}
    reply = call(api, "post", "/assetcache/sites/docs/deploys", secret, {"files": {"/big.bin": sha(big["/big.bin"])}})
    settings.ASSETCACHE_MAX_FILE_SIZE = 50
    response = call(api, "put", f"/assetcache/deploys/{reply.json()['id']}/blobs/{sha(b'x' * 100)}", secret, b"x" * 100)
    assert response.status_code == 413
    assert not stored(sha(b"x" * 100))


@pytest.mark.parametrize(
    ("body", "status", "error"),
    [
        ({"files": {}}, 400, 'give "files": {"/path": "<sha256>", …}, at least one'),
        ({"files": {"/a": "abc"}}, 400, "/a: not a sha256 in lower-case hex"),
        ({"files": {"../x": "0" * 64}}, 400, "'../x': not a plain relative path"),
        ({"files": {"/a": "0" * 64}, "draft": "yes"}, 400, '"draft" and "delete" are true or false'),
        ([1, 2], 400, "the body is a JSON object"),
    ],
)
def test_a_bad_manifest_is_a_json_error(api: Client, secret: str, body: Any, status: int, error: str) -> None:
    response = call(api, "post", "/assetcache/sites/docs/deploys", secret, body)
    assert (response.status_code, response.json()) == (status, {"error": error})
    assert not PendingDeploy.objects.exists()


def test_excluded_paths_are_skipped_as_the_command_skips_them(api: Client, secret: str) -> None:
    files = {**FILES, "/.env": b"SECRET=1", "/node_modules/x.js": b"x"}
    reply = start(api, secret, files).json()
    assert reply["skipped"] == ["/.env", "/node_modules/x.js"]
    assert sha(b"SECRET=1") not in reply["required"]


def test_history_status_and_rollback(api: Client, secret: str, site: Site) -> None:
    first = site.live_deployment.key
    second = deploy(api, secret, FILES)[1].json()["id"]
    listed = call(api, "get", "/assetcache/sites/docs/deploys", secret).json()["deploys"]
    assert [entry["id"] for entry in listed] == [second, first]
    assert call(api, "get", f"/assetcache/deploys/{second}", secret).json()["state"] == "live"
    rolled = call(api, "post", "/assetcache/sites/docs/rollback", secret, {"id": first})
    assert (rolled.status_code, rolled.json()["id"]) == (200, first)
    assert call(api, "post", "/assetcache/sites/docs/rollback", secret, {"id": "zzzzzzzz"}).status_code == 404
    assert call(api, "post", "/assetcache/sites/docs/rollback", secret, {"id": first}).status_code == 409


def test_the_api_never_answers_on_a_site_host(secret: str) -> None:
    client = Client(HTTP_HOST="docs.sites.test")
    response = call(client, "post", "/assetcache/sites/docs/deploys", secret, manifest(FILES))
    assert response.status_code in {404, 405}
    assert response.get("Content-Type") != "application/json"
    assert not PendingDeploy.objects.exists()


def test_gc_keeps_the_blobs_of_an_unfinished_deploy_and_drops_an_expired_one(
    api: Client, secret: str, settings, no_deployment_retention
) -> None:
    settings.ASSETCACHE_GC_GRACE = 0
    reply = start(api, secret, {"/new.txt": b"new"}).json()
    call(api, "put", f"/assetcache/deploys/{reply['id']}/blobs/{sha(b'new')}", secret, b"new")
    Blob.objects.create(sha256=sha(b"new"), size=3)  # unused: gc would take it but for the deploy
    summary = collect_garbage()
    assert stored(sha(b"new")) and Blob.objects.filter(pk=sha(b"new")).exists()
    assert summary.pending_deploys_expired == 0
    PendingDeploy.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    summary = collect_garbage()
    assert summary.pending_deploys_expired == 1
    assert not PendingDeploy.objects.exists()
    assert not stored(sha(b"new"))


def test_token_command_creates_lists_and_revokes(site: Site, capsys) -> None:
    call_command("assetcache_token", "create", "deployer", "--site", "docs", "--expires", "30d")
    secret = capsys.readouterr().out.strip()
    token = DeployToken.objects.get(name="deployer")
    assert token.secret_hash == hash_secret(secret) and secret not in token.secret_hash
    call_command("assetcache_token", "list")
    assert capsys.readouterr().out.startswith("deployer  active  docs  last used never  expires ")
    with pytest.raises(CommandError, match="no such site: nope"):
        call_command("assetcache_token", "create", "other", "--site", "nope")
    call_command("assetcache_token", "revoke", "deployer")
    assert DeployToken.objects.get(name="deployer").revoked_at is not None


def test_the_admin_shows_a_new_tokens_secret_once(admin_client: Client, site: Site) -> None:
    response = admin_client.post(
        "/admin/django_assetcache/deploytoken/add/", {"name": "from-admin", "sites": [site.pk]}, follow=True
    )
    assert response.status_code == 200
    token = DeployToken.objects.get(name="from-admin")
    shown = [str(m) for m in response.context["messages"]]
    assert len(shown) >= 1 and "shown this once: acd_" in shown[0]
    secret = shown[0].rsplit(": ", 1)[1]
    assert token.secret_hash == hash_secret(secret)
    assert list(token.sites.all()) == [site]
    listing = admin_client.get("/admin/django_assetcache/deploytoken/")
    assert b"from-admin" in listing.content and secret.encode() not in listing.content


def test_a_deploy_started_again_after_an_interruption_asks_only_for_what_is_still_missing(
    api: Client, secret: str
) -> None:
    reply = start(api, secret, FILES).json()
    data = FILES["/index.html"]
    call(api, "put", f"/assetcache/deploys/{reply['id']}/blobs/{sha(data)}", secret, data)
    again = start(api, secret, FILES).json()
    assert sorted(again["required"]) == sorted(sha(FILES[path]) for path in ("/css/site.css", "/about/index.html"))


def test_a_blob_upload_reads_neither_the_manifest_nor_writes_the_token(api: Client, secret: str) -> None:
    """Uploads of a large deploy come in parallel: each reads the deploy's
    sizes and required hashes, not its whole manifest, and the token's last
    use is written once a minute, not per request."""
    started = start(api, secret, FILES).json()
    data = FILES["/index.html"]
    with CaptureQueriesContext(connection) as queries:
        put = call(api, "put", f"/assetcache/deploys/{started['id']}/blobs/{sha(data)}", secret, data)
    assert put.status_code == 201, put.content
    statements = [query["sql"].lower() for query in queries.captured_queries]
    pending_reads = [sql for sql in statements if "pendingdeploy" in sql and sql.startswith("select")]
    assert pending_reads and not any('"manifest"' in sql for sql in pending_reads)
    assert not any(sql.startswith("update") and "deploytoken" in sql for sql in statements)
    # A minute on, the next request records the use again.
    DeployToken.objects.filter(name="ci").update(last_used_at=timezone.now() - timedelta(minutes=2))
    assert call(api, "get", f"/assetcache/deploys/{started['id']}", secret).status_code == 200
    assert timezone.now() - DeployToken.objects.get(name="ci").last_used_at < timedelta(seconds=30)
