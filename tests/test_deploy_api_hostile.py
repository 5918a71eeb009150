"""The deploy API against hostile input: every refusal is JSON with a 4xx
and leaves nothing changed; one token never reaches another's deploy."""

from __future__ import annotations

import io
import os
import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from django_assetcache import api_views
from django_assetcache.deploytokens import create_token
from django_assetcache.maintenance import _delete_unused_rows, collect_garbage
from django_assetcache.models import Blob, Deployment, DeployToken, PendingDeploy, Site
from django_assetcache.store import BlobStore, blob_name

from .conftest import live_assets, sha, stored, zip_bytes
from .test_deploy_api import FILES, api, call, deploy, secret, start  # noqa: F401 (fixtures)

ZERO = "0" * 64


def put(client: Client, secret: str, key: str, data: bytes, **extra: Any) -> Any:
    return call(client, "put", f"/assetcache/deploys/{key}/blobs/{sha(data)}", secret, data, **extra)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"files": {"/a": {"sha256": ZERO, "content_type": "text/html\rX-Evil: 1"}}},
            "/a: content_type must be a media type such as text/html",
        ),
        (
            {"files": {"/a": {"sha256": ZERO, "content_type": "text/html\x00"}}},
            "a string of the body has a NUL or a lone surrogate (\\u0000, \\ud800)",
        ),
        (
            {"files": {"/a": {"sha256": ZERO, "content_type": "html"}}},
            "/a: content_type must be a media type such as text/html",
        ),
        (
            {"files": {"/a": {"sha256": ZERO, "content_type": "text/html; charset=é"}}},
            "/a: content_type must be a media type such as text/html",
        ),
        (
            {"files": {"/a": ZERO}, "message": "a\x00b"},
            "a string of the body has a NUL or a lone surrogate (\\u0000, \\ud800)",
        ),
        ({"files": {"/a\ud800": ZERO}}, "a string of the body has a NUL or a lone surrogate (\\u0000, \\ud800)"),
        ({"files": {"/a": ZERO}, "exclude": "*"}, '"exclude" and "include" are lists of patterns'),
        ({"files": {"/a": ZERO}, "include": [1]}, '"exclude" and "include" are lists of patterns'),
        ({"files": {"/a": ZERO, "a": "1" * 64}}, "'a': the path /a appears twice"),
        ({"files": {"/x/a": ZERO, "x//./a": "1" * 64}}, "'x//./a': not a plain relative path"),
        ({"files": {"/a": ZERO, "./a": ZERO}}, "'./a': the path /a appears twice"),
        ({"files": {"/a": "A" * 64}}, "/a: not a sha256 in lower-case hex"),
        ({"files": {"/a": {"sha256": ZERO, "size": -1}}}, "/a: size must be a whole number of bytes"),
        ({"files": {"/a\\b": ZERO}}, "'/a\\\\b': file names may not contain NUL or backslash"),
        (
            {"files": {"/.env": ZERO, "/node_modules/x.js": ZERO}},
            'every file is skipped by the exclusion rules; with "delete" that would remove every file of docs',
        ),
    ],
)
def test_a_hostile_manifest_is_a_json_400(api: Client, secret: str, body: Any, error: str) -> None:
    response = call(api, "post", "/assetcache/sites/docs/deploys", secret, body)
    assert (response.status_code, response.json()) == (400, {"error": error})
    assert not PendingDeploy.objects.exists()


def test_json_nested_past_the_stack_is_a_json_400(api: Client, secret: str) -> None:
    deep = b"[" * 200_000 + b"]" * 200_000
    response = api.post(
        "/assetcache/sites/docs/deploys", deep, content_type="application/json", HTTP_AUTHORIZATION=f"Bearer {secret}"
    )
    assert response.status_code == 400
    assert response.json()["error"].startswith("the body is not JSON: maximum recursion depth exceeded")


def test_a_manifest_larger_than_djangos_upload_limit_is_read(api: Client, secret: str, settings) -> None:
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    files = {f"/page{n:03}/index.html": ZERO for n in range(100)}
    response = call(api, "post", "/assetcache/sites/docs/deploys", secret, {"files": files})
    assert response.status_code == 201
    assert response.json()["required"] == [ZERO]


def test_a_json_body_over_the_apis_limit_is_a_json_413(api: Client, secret: str, monkeypatch) -> None:
    monkeypatch.setattr(api_views, "MAX_JSON_BODY", 1000)
    files = {f"/page{n:03}/index.html": ZERO for n in range(100)}
    response = call(api, "post", "/assetcache/sites/docs/deploys", secret, {"files": files})
    assert (response.status_code, response.json()) == (413, {"error": "the JSON body is over 0 MiB"})
    assert not PendingDeploy.objects.exists()


@pytest.mark.parametrize("length", ["\xb2", "-1", "1e3", ""])
def test_a_content_length_that_is_not_digits_is_a_json_400(api: Client, secret: str, length: str) -> None:
    key = start(api, secret, FILES).json()["id"]
    response = put(api, secret, key, FILES["/index.html"], CONTENT_LENGTH=length)
    assert (response.status_code, response.json()) == (400, {"error": "give the blob's Content-Length"})
    assert not stored(sha(FILES["/index.html"]))


def test_an_upload_longer_than_its_manifest_size_is_422(api: Client, secret: str) -> None:
    key = start(api, secret, FILES).json()["id"]
    wanted = sha(FILES["/index.html"])
    response = call(api, "put", f"/assetcache/deploys/{key}/blobs/{wanted}", secret, FILES["/index.html"] + b"more")
    assert response.status_code == 422
    assert not stored(wanted)


def test_a_token_reaches_only_the_deploys_it_started(api: Client, secret: str) -> None:
    """Both tokens may create sites: B must not upload to, finish (and so
    be given) the site A is creating, nor read A's deploy."""
    creator_a = create_token("a", ["docs"], may_create_sites=True)[1]
    creator_b = create_token("b", ["docs"], may_create_sites=True)[1]
    key = start(api, creator_a, {"/x.txt": b"x"}, subdomain="fresh").json()["id"]
    refused = {"error": f"no deploy {key} (or it expired)"}
    for response in (
        put(api, creator_b, key, b"x"),
        call(api, "post", f"/assetcache/deploys/{key}/finish", creator_b),
        call(api, "get", f"/assetcache/deploys/{key}", creator_b),
        call(api, "get", f"/assetcache/deploys/{key}", secret),
    ):
        assert (response.status_code, response.json()) == (404, refused)
    assert not stored(sha(b"x")) and not Site.objects.filter(subdomain="fresh").exists()
    assert not DeployToken.objects.get(name="b").sites.filter(subdomain="fresh").exists()


def test_upload_after_finish_is_409_and_finish_after_expiry_404(api: Client, secret: str) -> None:
    finished = deploy(api, secret, FILES)[1]
    key = finished.json()["upload"]
    again = put(api, secret, key, FILES["/index.html"])
    assert (again.status_code, again.json()) == (409, {"error": f"deploy {key} is finished"})
    late = start(api, secret, {**FILES, "/new.txt": b"new"}).json()["id"]
    PendingDeploy.objects.filter(key=late).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = call(api, "post", f"/assetcache/deploys/{late}/finish", secret)
    assert (response.status_code, response.json()) == (404, {"error": f"no deploy {late} (or it expired)"})
    assert Deployment.objects.filter(site__subdomain="docs").count() == 2


def test_gc_that_listed_a_blob_before_a_deploy_named_it_keeps_it(api: Client, secret: str, settings) -> None:
    """gc lists unused blobs, then locks and looks again: a manifest that
    named one in between (and so did not ask for it) keeps it."""
    settings.ASSETCACHE_GC_GRACE = 3600
    data = b"old but wanted again"
    BlobStore().save(sha(data), len(data), io.BytesIO(data))
    Blob.objects.create(sha256=sha(data), size=len(data), unused_since=timezone.now() - timedelta(hours=2))
    assert start(api, secret, {"/again.txt": data}).json()["required"] == []
    assert _delete_unused_rows([sha(data)], timezone.now() - timedelta(hours=1)) == set()
    assert Blob.objects.filter(pk=sha(data)).exists()


def test_gc_keeps_an_old_blob_an_unfinished_deploy_uploaded(
    api: Client, secret: str, settings, no_deployment_retention
) -> None:
    """A blob uploaded hours before finish has no row and an old file: the
    unfinished deploy alone keeps it."""
    settings.ASSETCACHE_GC_GRACE = 0
    key = start(api, secret, {"/new.txt": b"new"}).json()["id"]
    put(api, secret, key, b"new")
    hours_ago = time.time() - 3 * 3600
    os.utime(BlobStore().storage.path(blob_name(sha(b"new"))), (hours_ago, hours_ago))
    collect_garbage()
    assert stored(sha(b"new"))
    assert call(api, "post", f"/assetcache/deploys/{key}/finish", secret).status_code == 200
    assert live_assets().filter(path="/new.txt").exists()


def test_two_finishes_at_once_make_one_deployment(transactional_db) -> None:
    Site.objects.create(subdomain="docs")
    secret = create_token("ci", ["docs"])[1]
    client = Client(HTTP_HOST="testserver")
    reply = start(client, secret, FILES).json()
    by_hash = {sha(data): data for data in FILES.values()}
    for wanted in reply["required"]:
        put(client, secret, reply["id"], by_hash[wanted])
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def finish() -> None:
        barrier.wait()
        try:
            statuses.append(
                call(
                    Client(HTTP_HOST="testserver"), "post", f"/assetcache/deploys/{reply['id']}/finish", secret
                ).status_code
            )
        finally:
            connection.close()

    threads = [threading.Thread(target=finish) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [200, 409]
    assert Deployment.objects.filter(site__subdomain="docs").count() == 1


def post_zip(client: Client, secret: str, data: bytes, query: str = "", subdomain: str = "docs", **extra: Any) -> Any:
    return client.post(
        f"/assetcache/sites/{subdomain}/deploys{query}",
        data,
        content_type="application/zip",
        HTTP_AUTHORIZATION=f"Bearer {secret}",
        **extra,
    )


def test_a_zip_deploys_in_one_request(api: Client, secret: str) -> None:
    response = post_zip(
        api, secret, zip_bytes({"build/" + path[1:]: data for path, data in FILES.items()}), "?message=zip"
    )
    assert response.status_code == 201
    body = response.json()
    assert (body["state"], body["url"], body["upload"], body["summary"]["files"]) == (
        "live",
        "https://docs.sites.test/",
        None,
        3,
    )
    deployment = Deployment.objects.get(key=body["id"])
    assert (deployment.message, deployment.created_by, deployment.source) == ("zip", "token ci", "deploy API (zip)")
    assert list(live_assets().values_list("path", flat=True)) == sorted(FILES)
    assert stored(sha(FILES["/index.html"]))


def test_a_zip_as_a_draft_with_an_alias(api: Client, secret: str, site: Site) -> None:
    live = site.live_deployment_id
    response = post_zip(api, secret, zip_bytes({"new.html": "new"}), "?draft=true&alias=staging&delete=false")
    assert (response.status_code, response.json()["state"]) == (201, "draft")
    assert Site.objects.get(pk=site.pk).live_deployment_id == live


@pytest.mark.parametrize(
    ("data", "query", "extra", "status", "error"),
    [
        (b"not a zip", "", {}, 400, "the zip: not a directory or a zip file"),
        (None, "?draft=maybe", {}, 400, '"draft" and "delete" are true or false'),
        (None, "?alias=Bad_Alias", {}, 400, None),
        (None, "?message=a%00b", {}, 400, "a query value has a NUL or a lone surrogate"),
        (None, "", {"CONTENT_LENGTH": "x"}, 400, "give the zip's Content-Length"),
    ],
)
def test_a_bad_zip_deploy_is_a_json_error_and_changes_nothing(
    api: Client,
    secret: str,
    site: Site,
    data: bytes | None,
    query: str,
    extra: dict[str, str],
    status: int,
    error: str | None,
) -> None:
    before = Deployment.objects.count()
    response = post_zip(api, secret, data if data is not None else zip_bytes({"x.html": "x"}), query, **extra)
    assert response.status_code == status
    if error is not None:
        assert response.json() == {"error": error}
    assert Deployment.objects.count() == before


def test_a_zip_with_a_path_out_of_it_is_400(api: Client, secret: str) -> None:
    response = post_zip(api, secret, zip_bytes({"../evil.html": "x"}))
    assert (response.status_code, response.json()) == (400, {"error": "zip entry '../evil.html' points outside SOURCE"})


def test_a_zip_over_the_site_limit_is_413_and_for_another_site_403(api: Client, secret: str, settings) -> None:
    Site.objects.create(subdomain="blog")
    data = zip_bytes({"x.html": "x"})
    assert post_zip(api, secret, data, subdomain="blog").status_code == 403
    settings.ASSETCACHE_MAX_SITE_SIZE = 20
    response = post_zip(api, secret, data)
    assert response.status_code == 413
    assert "ASSETCACHE_MAX_SITE_SIZE" in response.json()["error"]


def test_a_rollback_body_is_read_past_djangos_upload_limit(api: Client, secret: str, site: Site, settings) -> None:
    first = site.live_deployment.key
    deploy(api, secret, FILES)
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 5
    rolled = call(api, "post", "/assetcache/sites/docs/rollback", secret, {"id": first})
    assert (rolled.status_code, rolled.json()["id"]) == (200, first)
