"""Site rules and transport settings through every adapter (the ``fetch``
fixture of test_http.py: the middleware, WSGI, ASGI, ASGI with pathsend)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command

from django_assetcache import runtime
from django_assetcache.deployments import promote, rollback
from django_assetcache.models import Deployment, Domain, Site
from django_assetcache.publish import DeploymentInfo, PublishError, publish
from django_assetcache.warmup import warm_up

from .conftest import SAMPLE, write_tree
from .servers import database_gone, gunicorn
from .test_http import HOST, adapter, fetch  # noqa: F401 (fixtures)

REDIRECTS = """\
# line 1 is this comment
/old-guide /guide/ 302
/news/* /blog/:splat
/u/:name/:id /people/:id/:name 307
/search q=:q /find/:q 302
/gone /404.html 410
/missing-page /404.html 404
/css/site.css /index.html 200
/img/logo.png /guide/ 301!
/app/* /index.html 200
/elsewhere https://example.com/x 308
/api/* https://api.example.com/:splat 200
/ /anz 302 Country=au,nz
"""
HEADERS = """\
/*
  X-Frame-Options: DENY
/css/*
  Cache-Control: public, max-age=600
  X-Css: 1
  Content-Length: 3
/css/site.css
  X-Css: 2
"""
FILES = {**SAMPLE, "_redirects": REDIRECTS, "_headers": HEADERS}
INDEX = SAMPLE["index.html"].encode()
NOT_HERE = SAMPLE["404.html"].encode()


@pytest.fixture
def ruled(db, tmp_path: Path):  # type: ignore[no-untyped-def]
    summary = publish("docs", write_tree(tmp_path / "src", FILES))
    Domain.objects.create(site=Site.objects.get(subdomain="docs"), hostname="docs.example.org", state="verified")
    return summary


def test_invalid_lines_are_reported_with_their_numbers(ruled) -> None:
    assert ruled.rule_problems == [
        "_redirects:12: https://api.example.com/:splat: status 200 to another origin would proxy it; "
        "only 3xx may leave the site",
        "_redirects:13: Country=au,nz: conditions (country, language, role, cookie) are not supported",
        "_headers:6: Content-Length: refused, the server sets this header itself",
    ]
    assert "3 rule lines skipped: _redirects:12:" in str(ruled)
    assert "site rules updated" in str(ruled)


def test_strict_refuses_and_changes_nothing(ruled, tmp_path: Path) -> None:
    before = Site.objects.get(subdomain="docs").live_deployment.rules
    source = write_tree(tmp_path / "other", {**FILES, "_redirects": "/a /b\n/broken\n"})
    with pytest.raises(PublishError, match=r"invalid rule lines: _redirects:2: a rule needs FROM and TO"):
        publish("docs", source, strict=True)
    with pytest.raises(CommandError, match="_redirects:2"):
        call_command("assetcache_publish", "docs", str(source), "--strict", verbosity=0)
    assert Site.objects.get(subdomain="docs").live_deployment.rules == before


def test_over_the_limit_is_refused(ruled, tmp_path: Path, settings) -> None:
    settings.ASSETCACHE_MAX_RULES = 2
    source = write_tree(tmp_path / "other", {"_redirects": "/a /b\n/c /d\n/e /f\n"})
    with pytest.raises(PublishError, match=r"_redirects: more than ASSETCACHE_MAX_RULES \(2\) rules"):
        publish("docs", source)


@pytest.mark.parametrize(
    ("target", "status", "location"),
    [
        ("/old-guide", 302, "/guide/"),
        ("/old-guide/", 302, "/guide/"),
        ("/old-guide?ref=mail", 302, "/guide/?ref=mail"),
        ("/news/2024/05/hello", 301, "/blog/2024/05/hello"),
        ("/u/ann/42", 307, "/people/42/ann"),
        ("/search?q=cats", 302, "/find/cats?q=cats"),
        ("/img/logo.png", 301, "/guide/"),  # forced: wins over the file
        ("/elsewhere", 308, "https://example.com/x"),
    ],
)
def test_redirect_rules(fetch, ruled, target: str, status: int, location: str) -> None:
    response = fetch("GET", target)
    assert (response.status, response.headers["Location"], response.body) == (status, location, b"")


FORCED = """\
/css/site.css v=:v /guide/?v=:v 302!
/404.html /guide/ 307!
/nowhere /guide/ 301!
"""


@pytest.mark.parametrize(
    ("targets", "status", "location"),
    [
        # Cached first without the query: a rule asking for one still answers.
        (["/css/site.css", "/css/site.css?v=2"], 302, "/guide/?v=2"),
        # Cached first as the error document of a missing path.
        (["/no/such", "/404.html"], 307, "/guide/"),
        (["/nowhere", "/nowhere"], 301, "/guide/"),
    ],
)
def test_forced_rules_answer_paths_already_cached(
    fetch, db, tmp_path: Path, targets: list[str], status: int, location: str
) -> None:
    publish("docs", write_tree(tmp_path / "forced", {**SAMPLE, "_redirects": FORCED}))
    first, then = targets
    fetch("GET", first)
    response = fetch("GET", then)
    assert (response.status, response.headers["Location"]) == (status, location)
    assert fetch("GET", "/css/site.css").body == SAMPLE["css/site.css"].encode()


@pytest.mark.parametrize("target", ["/search", "/search?other=1", "/u/ann", "/api/x", "/no/such"])
def test_requests_no_rule_matches_get_the_error_document(fetch, ruled, target: str) -> None:
    response = fetch("GET", target)
    assert (response.status, response.body) == (404, NOT_HERE)


def test_an_existing_file_shadows_an_unforced_rule(fetch, ruled) -> None:
    response = fetch("GET", "/css/site.css")
    assert (response.status, response.body) == (200, SAMPLE["css/site.css"].encode())


def test_a_rewrite_serves_the_target_with_its_validators(fetch, ruled) -> None:
    index = fetch("GET", "/index.html")
    rewritten = fetch("GET", "/app/some/route")
    assert (rewritten.status, rewritten.body) == (200, INDEX)
    for name in ("ETag", "Last-Modified", "Content-Type", "X-Frame-Options"):
        assert rewritten.headers[name] == index.headers[name]
    assert "Location" not in rewritten.headers
    again = fetch("GET", "/app/other", if_none_match=index.headers["ETag"])
    assert (again.status, again.body) == (304, b"")
    assert fetch("HEAD", "/app/x").body == b""


@pytest.mark.parametrize(("target", "status"), [("/missing-page", 404), ("/gone", 410), ("/gone/", 410)])
def test_404_and_410_rules_serve_to_with_their_status(fetch, ruled, target: str, status: int) -> None:
    response = fetch("GET", target)
    assert (response.status, response.body) == (status, NOT_HERE)
    assert response.headers["Content-Length"] == str(len(NOT_HERE))
    head = fetch("HEAD", target)
    assert (head.status, head.body) == (status, b"")


@pytest.mark.parametrize("target", ["/_redirects", "/_headers"])
def test_the_rule_files_are_not_served(fetch, ruled, target: str) -> None:
    assert fetch("GET", target).status == 404


def test_header_rules_on_200_and_304(fetch, ruled) -> None:
    css = fetch("GET", "/css/site.css")
    assert css.headers["X-Frame-Options"] == "DENY"
    assert css.headers["X-Css"] == "1, 2"
    assert css.headers["Cache-Control"] == "public, max-age=600"
    assert css.headers["Content-Length"] == str(len(SAMPLE["css/site.css"]))
    cached = fetch("GET", "/css/site.css", if_none_match=css.headers["ETag"])
    assert cached.status == 304
    assert (cached.headers["X-Css"], cached.headers["Cache-Control"]) == ("1, 2", "public, max-age=600")
    page = fetch("GET", "/guide/")
    assert page.headers["X-Frame-Options"] == "DENY" and "X-Css" not in page.headers
    assert page.headers["Cache-Control"] == "public, max-age=0, must-revalidate"


def test_spa_fallback(fetch, db, tmp_path: Path) -> None:
    publish("docs", write_tree(tmp_path / "spa", {**SAMPLE, "_redirects": "/* /index.html 200\n"}))
    for target in ("/", "/deep/link", "/deep/link/", "/users/42?tab=1"):
        response = fetch("GET", target)
        assert (response.status, response.body) == (200, INDEX), target
    assert fetch("GET", "/css/site.css").body == SAMPLE["css/site.css"].encode()
    assert fetch("GET", "/guide").status == 301  # a directory still gets its slash


def test_a_publish_without_rule_files_keeps_them_and_delete_clears_them(
    fetch,
    ruled,
    tmp_path: Path,
    django_capture_on_commit_callbacks,
) -> None:
    assert fetch("GET", "/old-guide").status == 302
    assert fetch("GET", "/").headers["X-Frame-Options"] == "DENY"
    with django_capture_on_commit_callbacks(execute=True):
        publish("docs", write_tree(tmp_path / "more", {"extra.txt": "x"}))
    assert fetch("GET", "/old-guide").status == 302
    with django_capture_on_commit_callbacks(execute=True):
        publish("docs", write_tree(tmp_path / "all", SAMPLE), delete=True)
    assert fetch("GET", "/old-guide").status == 404
    assert "X-Frame-Options" not in fetch("GET", "/").headers


# --- rules belong to a deployment ------------------------------------------------


def versioned(number: int) -> dict[str, str]:
    """The sample site with rules of their own: a redirect, a forced rule
    and a header naming ``number``."""
    return {
        **SAMPLE,
        "_redirects": f"/old /v{number}/ 302\n/css/site.css /index.html?v={number} 307!\n",
        "_headers": f"/*\n  X-Version: {number}\n",
    }


def publish_version(tmp_path: Path, number: int, capture, *, draft: bool = False):  # type: ignore[no-untyped-def]
    with capture(execute=True):
        summary = publish(
            "docs",
            write_tree(tmp_path / f"v{number}", versioned(number)),
            delete=True,
            deployment=DeploymentInfo(draft=draft),
        )
    assert summary.deployment is not None
    return summary.deployment


def preview_host(deployment: Deployment) -> str:
    return f"{deployment.key}--{HOST}"


def test_a_rollback_brings_back_its_rules(fetch, tmp_path: Path, django_capture_on_commit_callbacks) -> None:
    v1 = publish_version(tmp_path, 1, django_capture_on_commit_callbacks)
    assert (fetch("GET", "/old").headers["Location"], fetch("GET", "/").headers["X-Version"]) == ("/v1/", "1")
    # v2 has the same files and other rules: a deployment of its own, whose
    # entries are not v1's (those carry v1's header rules).
    v2 = publish_version(tmp_path, 2, django_capture_on_commit_callbacks)
    assert v2.pk != v1.pk
    assert (fetch("GET", "/old").headers["Location"], fetch("GET", "/").headers["X-Version"]) == ("/v2/", "2")
    assert fetch("GET", "/css/site.css").headers["Location"] == "/index.html?v=2"

    with django_capture_on_commit_callbacks(execute=True):
        rollback("docs")
    moved = fetch("GET", "/old")
    assert (moved.status, moved.headers["Location"]) == (302, "/v1/")
    assert fetch("GET", "/css/site.css").headers["Location"] == "/index.html?v=1"
    page = fetch("GET", "/")
    assert (page.status, page.body, page.headers["X-Version"]) == (200, INDEX, "1")
    assert fetch("GET", "/", if_none_match=page.headers["ETag"]).headers["X-Version"] == "1"


def test_a_drafts_preview_serves_with_its_own_rules(fetch, tmp_path: Path, django_capture_on_commit_callbacks) -> None:
    publish_version(tmp_path, 1, django_capture_on_commit_callbacks)
    assert fetch("GET", "/").headers["X-Version"] == "1"  # the live entry, cached
    draft = publish_version(tmp_path, 2, django_capture_on_commit_callbacks, draft=True)
    moved = fetch("GET", "/old", host=preview_host(draft))
    assert (moved.status, moved.headers["Location"]) == (302, "/v2/")
    assert fetch("GET", "/css/site.css", host=preview_host(draft)).headers["Location"] == "/index.html?v=2"
    page = fetch("GET", "/", host=preview_host(draft))
    assert (page.body, page.headers["X-Version"], page.headers["X-Robots-Tag"]) == (INDEX, "2", "noindex")
    # The live host keeps the live deployment's rules.
    assert fetch("GET", "/old").headers["Location"] == "/v1/"
    assert fetch("GET", "/").headers["X-Version"] == "1"

    with django_capture_on_commit_callbacks(execute=True):
        promote("docs", draft.key)
    assert (fetch("GET", "/old").headers["Location"], fetch("GET", "/").headers["X-Version"]) == ("/v2/", "2")


def test_a_draft_without_rule_files_keeps_the_live_rules(
    fetch, tmp_path: Path, django_capture_on_commit_callbacks
) -> None:
    publish_version(tmp_path, 1, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        summary = publish(
            "docs", write_tree(tmp_path / "more", {"extra.txt": "x"}), deployment=DeploymentInfo(draft=True)
        )
    assert summary.deployment is not None and not summary.rules_changed
    assert fetch("GET", "/old", host=preview_host(summary.deployment)).headers["Location"] == "/v1/"


def test_a_publish_changing_only_rules_makes_a_deployment(
    fetch, tmp_path: Path, django_capture_on_commit_callbacks
) -> None:
    v1 = publish_version(tmp_path, 1, django_capture_on_commit_callbacks)
    with django_capture_on_commit_callbacks(execute=True):
        summary = publish("docs", write_tree(tmp_path / "rules", {"_headers": "/*\n  X-Version: 3\n"}))
    assert summary.deployment is not None and summary.deployment.pk != v1.pk
    assert (summary.added, summary.changed, summary.rules_changed) == ([], [], True)
    assert "site rules updated" in str(summary)
    # The _headers file replaced its rules; _redirects, absent, kept v1's.
    assert (fetch("GET", "/").headers["X-Version"], fetch("GET", "/old").headers["Location"]) == ("3", "/v1/")
    v1.refresh_from_db()
    assert v1.state == "superseded" and "X-Version" in v1.rules


# --- transport --------------------------------------------------------------------

PROXY = ("HTTP_X_FORWARDED_PROTO", "https")
HSTS = "max-age=63072000; includeSubDomains; preload"


@pytest.fixture
def https_site(ruled, settings) -> Site:
    settings.SECURE_PROXY_SSL_HEADER = PROXY
    site = Site.objects.get(subdomain="docs")
    site.https_only = True
    site.hsts_max_age = 63072000
    site.hsts_include_subdomains = site.hsts_preload = True
    site.full_clean()
    site.save()
    return site


@pytest.mark.parametrize("host", [HOST, "docs.example.org"])
def test_https_only_redirects_plain_http(fetch, https_site, host: str) -> None:
    response = fetch("GET", "/guide/?a=1", host=host)
    assert (response.status, response.headers["Location"]) == (308, f"https://{host}/guide/?a=1")
    assert "Strict-Transport-Security" not in response.headers
    assert fetch("POST", "/x", host=host).status == 308


def test_https_responses_carry_hsts_also_on_304(fetch, https_site) -> None:
    response = fetch("GET", "/css/site.css", x_forwarded_proto="https")
    assert response.status == 200
    assert response.headers["Strict-Transport-Security"] == HSTS
    cached = fetch("GET", "/css/site.css", x_forwarded_proto="https", if_none_match=response.headers["ETag"])
    assert (cached.status, cached.headers["Strict-Transport-Security"]) == (304, HSTS)
    moved = fetch("GET", "/old-guide", x_forwarded_proto="https")
    assert (moved.status, moved.headers["Strict-Transport-Security"]) == (302, HSTS)


def test_canonical_host(fetch, https_site) -> None:
    https_site.canonical_host = "docs.example.org"
    https_site.full_clean()
    https_site.save()
    response = fetch("GET", "/guide/?a=1", x_forwarded_proto="https")
    assert (response.status, response.headers["Location"]) == (301, "https://docs.example.org/guide/?a=1")
    # Plain HTTP goes straight to HTTPS on the canonical host.
    plain = fetch("GET", "/guide/")
    assert (plain.status, plain.headers["Location"]) == (308, "https://docs.example.org/guide/")
    served = fetch("GET", "/guide/", host="docs.example.org", x_forwarded_proto="https")
    assert served.status == 200


def test_secure_ssl_redirect_covers_site_hosts_not_in_allowed_hosts(fetch, ruled, settings) -> None:
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = PROXY
    settings.MIDDLEWARE = [m for m in settings.MIDDLEWARE if "AssetCache" not in m]
    settings.MIDDLEWARE.insert(0, "django_assetcache.middleware.AssetCacheMiddleware")
    runtime.reset()
    response = fetch("GET", "/guide/", host="docs.example.org")
    assert (response.status, response.headers["Location"]) == (308, "https://docs.example.org/guide/")
    assert fetch("GET", "/guide/", host="docs.example.org", x_forwarded_proto="https").status == 200


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"hsts_max_age": 60}, "hsts_max_age"),
        ({"https_only": True, "hsts_max_age": 60, "hsts_preload": True}, "hsts_preload"),
        ({"canonical_host": "elsewhere.example.com"}, "canonical_host"),
    ],
)
def test_transport_settings_are_validated(ruled, changes: dict[str, object], field: str) -> None:
    site = Site.objects.get(subdomain="docs")
    for name, value in changes.items():
        setattr(site, name, value)
    with pytest.raises(ValidationError) as raised:
        site.full_clean()
    assert field in raised.value.message_dict  # type: ignore[attr-defined]


def test_rules_are_served_with_the_database_gone(transactional_db, tmp_path: Path, settings) -> None:
    publish("docs", write_tree(tmp_path / "src", FILES))
    draft = publish("docs", write_tree(tmp_path / "v2", versioned(2)), deployment=DeploymentInfo(draft=True))
    assert draft.deployment is not None
    warm_up()
    with gunicorn(tmp_path, env=database_gone(settings.MEDIA_ROOT, tmp_path), workers=1) as server:
        # The draft's preview host, with the draft's rules.
        status, headers, _ = server.request("/old", preview_host(draft.deployment))
        assert (status, headers.get("location")) == (302, "/v2/"), server.log()
        status, headers, _ = server.request("/css/site.css", preview_host(draft.deployment))
        assert (status, headers.get("location")) == (307, "/index.html?v=2")
        status, headers, _ = server.request("/guide/", preview_host(draft.deployment))
        assert (status, headers["x-version"], headers["x-robots-tag"]) == (200, "2", "noindex")
        # The live host, with the live deployment's.
        assert server.request("/old", HOST)[0] == 404
        assert "x-version" not in server.request("/guide/", HOST)[1]
        status, headers, _ = server.request("/old-guide", HOST)
        assert (status, headers.get("location")) == (302, "/guide/"), server.log()
        status, _, body = server.request("/app/route", HOST)
        assert (status, body) == (200, INDEX)
        status, headers, _ = server.request("/css/site.css", HOST)
        assert (status, headers["x-css"], headers["cache-control"]) == (200, "1, 2", "public, max-age=600")
        status, _, body = server.request("/gone", HOST)
        assert (status, body) == (410, NOT_HERE)
