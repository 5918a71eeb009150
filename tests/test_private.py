"""Private sites through every adapter (the ``fetch`` fixture of test_http):
the gate before the files, the ticket exchange, the password form, share
links, and what a request without access may learn."""

from __future__ import annotations

import datetime
import time
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from django.contrib.auth.models import Group, User
from django.test import Client

from django_assetcache import access, runtime
from django_assetcache.accessdb import create_share_link, revoke_share_link, set_site_password, share_url
from django_assetcache.deployments import DeploymentInfo
from django_assetcache.models import Site
from django_assetcache.publish import publish
from django_assetcache.warmup import warm_up
from tests.conftest import SAMPLE, write_tree
from tests.test_http import Fetch, fetch  # noqa: F401  (the fixture)

HOST = "team.sites.test"
OTHER = "other.sites.test"
PROJECT = "https://www.example.test"
HTML = {"Accept": "text/html,application/xhtml+xml"}


@pytest.fixture(autouse=True)
def _project(settings) -> None:
    settings.ASSETCACHE_PROJECT_URL = PROJECT
    settings.ASSETCACHE_PASSWORD_ATTEMPTS = 2


def make_site(tmp_path: Path, subdomain: str, visibility: str) -> Site:
    publish(subdomain, write_tree(tmp_path / subdomain, SAMPLE))
    site = Site.objects.get(subdomain=subdomain)
    site.visibility = visibility
    site.save()
    runtime.reset()
    return site


@pytest.fixture
def team(db, tmp_path: Path) -> Site:
    return make_site(tmp_path, "team", "restricted")


@pytest.fixture
def member(team: Site) -> User:
    user = User.objects.create_user("ann", password="pw")
    group = Group.objects.create(name="team")
    user.groups.add(group)
    team.allowed_groups.add(group)
    runtime.reset()
    return user


def cookie_of(headers: object) -> str:
    set_cookie = headers["Set-Cookie"]  # type: ignore[index]
    return set_cookie.split(";", 1)[0]


def sign_in(fetch: Fetch, user: User, host: str = HOST, next_path: str = "/guide/") -> str:
    ticket = access.make_ticket(user.pk, host, next_path)
    result = fetch("GET", f"{access.AUTH_PATH}?{urlencode({'ticket': ticket})}", host)
    assert (result.status, result.headers["Location"]) == (302, next_path)
    return cookie_of(result.headers)


def test_anonymous_gets_the_same_reply_for_every_path(fetch: Fetch, team: Site) -> None:
    """A request without access never learns whether a path exists."""
    existing = fetch("GET", "/guide/", HOST)
    missing = fetch("GET", "/no/such/file.js", HOST)
    assert (existing.status, existing.body) == (missing.status, missing.body) == (401, b"Sign in to see this site.\n")
    assert existing.headers["Cache-Control"] == "private, no-store"
    assert existing.headers["Vary"] == "Cookie"
    assert existing.headers["WWW-Authenticate"] == 'Cookie realm="site"'
    head = fetch("HEAD", "/guide/", HOST)
    assert (head.status, head.body) == (401, b"")
    browser = fetch("GET", "/guide/?q=1", HOST, **HTML)
    assert browser.status == 302 and browser.headers["Cache-Control"] == "private, no-store"
    location = urlsplit(browser.headers["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == PROJECT + "/assetcache/access"
    assert parse_qs(location.query) == {"host": [HOST], "next": ["/guide/?q=1"]}
    assert fetch("GET", "/nothing-here", HOST, **HTML).headers["Location"].startswith(PROJECT)


def test_ticket_cookie_page_and_replay(fetch: Fetch, member: User) -> None:
    ticket = access.make_ticket(member.pk, HOST, "/guide/")
    exchanged = fetch("GET", f"{access.AUTH_PATH}?{urlencode({'ticket': ticket})}", HOST)
    assert exchanged.status == 302 and exchanged.headers["Location"] == "/guide/"
    set_cookie = exchanged.headers["Set-Cookie"]
    assert set_cookie.startswith(access.COOKIE_NAME + "=")
    assert set_cookie.endswith("; Path=/; Max-Age=43200; HttpOnly; SameSite=Lax; Secure")
    assert "Domain" not in set_cookie  # host-only
    cookie = cookie_of(exchanged.headers)
    page = fetch("GET", "/guide/", HOST, Cookie=cookie)
    assert (page.status, page.body) == (200, SAMPLE["guide/index.html"].encode())
    assert page.headers["Cache-Control"] == "private, max-age=0, must-revalidate"
    assert "Cookie" in page.headers["Vary"]
    replay = fetch("GET", f"{access.AUTH_PATH}?{urlencode({'ticket': ticket})}", HOST)
    assert (replay.status, replay.body) == (403, access_body("BAD_TICKET"))
    assert "Set-Cookie" not in replay.headers


def access_body(name: str) -> bytes:
    from django_assetcache import gate

    return getattr(gate, name).body  # type: ignore[no-any-return]


@pytest.mark.parametrize(
    "ticket",
    [
        pytest.param(lambda user: access.make_ticket(user.pk, OTHER, "/"), id="for-another-host"),
        pytest.param(lambda user: "garbage", id="unsigned"),
        pytest.param(lambda user: access.make_ticket(user.pk, HOST, "https://evil.test/"), id="next-elsewhere"),
    ],
)
def test_bad_tickets_are_refused(fetch: Fetch, member: User, ticket) -> None:
    result = fetch("GET", f"{access.AUTH_PATH}?{urlencode({'ticket': ticket(member)})}", HOST)
    assert result.status == 403 and "Set-Cookie" not in result.headers


def test_expired_ticket_is_refused(fetch: Fetch, member: User, monkeypatch) -> None:
    ticket = access.make_ticket(member.pk, HOST, "/")
    later = time.time() + access.TICKET_SECONDS + 5
    monkeypatch.setattr("django.core.signing.time.time", lambda: later)
    assert fetch("GET", f"{access.AUTH_PATH}?ticket={ticket}", HOST).status == 403


def test_cookies_bind_site_host_and_expiry(fetch: Fetch, member: User, team: Site, tmp_path: Path) -> None:
    other = make_site(tmp_path, "other", "login")
    cookie = sign_in(fetch, member)
    assert fetch("GET", "/", OTHER, Cookie=cookie).status == 401  # site A's cookie on site B
    value = cookie.split("=", 1)[1]
    forged_host = access.make_cookie(("u", member.pk), other.pk, HOST, time.time() + 60)
    assert fetch("GET", "/", OTHER, Cookie=f"{access.COOKIE_NAME}={forged_host}").status == 401
    expired = access.make_cookie(("u", member.pk), team.pk, HOST, time.time() - 1)
    assert fetch("GET", "/", HOST, Cookie=f"{access.COOKIE_NAME}={expired}").status == 401
    tampered = value[:-2] + ("AA" if not value.endswith("AA") else "BB")
    assert fetch("GET", "/", HOST, Cookie=f"{access.COOKIE_NAME}={tampered}").status == 401
    assert fetch("GET", "/", HOST, Cookie=f"theme=dark; {cookie}").status == 200


def test_conditional_and_range_only_after_access(fetch: Fetch, member: User) -> None:
    cookie = sign_in(fetch, member)
    full = fetch("GET", "/img/logo.png", HOST, Cookie=cookie)
    etag = full.headers["ETag"]
    assert fetch("GET", "/img/logo.png", HOST, if_none_match=etag).status == 401
    assert fetch("GET", "/img/logo.png", HOST, range="bytes=0-3").status == 401
    not_modified = fetch("GET", "/img/logo.png", HOST, if_none_match=etag, Cookie=cookie)
    assert not_modified.status == 304 and not_modified.headers["Cache-Control"].startswith("private")
    part = fetch("GET", "/img/logo.png", HOST, range="bytes=0-3", Cookie=cookie)
    assert (part.status, part.body) == (206, b"\x89PNG")
    assert part.headers["Cache-Control"].startswith("private")


def test_every_reply_with_access_is_private(fetch: Fetch, member: User, settings) -> None:
    settings.ASSETCACHE_CACHE_CONTROL = "public, s-maxage=600, max-age=60"
    cookie = sign_in(fetch, member)
    replies = {
        "/": fetch("GET", "/", HOST, Cookie=cookie),
        "/guide": fetch("GET", "/guide", HOST, Cookie=cookie),  # the 301 to /guide/
        "/missing": fetch("GET", "/missing", HOST, Cookie=cookie),  # the error document
        "/bad/../path": fetch("GET", "/bad/%2E%2E/path", HOST, Cookie=cookie),
        "POST /": fetch("POST", "/", HOST, Cookie=cookie),
    }
    assert {path: r.status for path, r in replies.items()} == {
        "/": 200,
        "/guide": 301,
        "/missing": 404,
        "/bad/../path": 400,
        "POST /": 405,
    }
    assert replies["/"].headers["Cache-Control"] == "private, max-age=60"
    for result in replies.values():
        assert result.headers["Cache-Control"].startswith("private"), result


def test_losing_the_group_or_deactivation_cuts_access(
    fetch: Fetch, member: User, team: Site, django_capture_on_commit_callbacks
) -> None:
    cookie = sign_in(fetch, member)
    assert fetch("GET", "/", HOST, Cookie=cookie).status == 200
    with django_capture_on_commit_callbacks(execute=True):
        member.groups.clear()
    assert fetch("GET", "/", HOST, Cookie=cookie).status == 403
    with django_capture_on_commit_callbacks(execute=True):
        team.allowed_users.add(member)
    assert fetch("GET", "/", HOST, Cookie=cookie).status == 200
    with django_capture_on_commit_callbacks(execute=True):
        member.is_active = False
        member.save()
    assert fetch("GET", "/", HOST, Cookie=cookie).status == 403


def test_a_sign_in_changes_nobodys_access(member: User, django_capture_on_commit_callbacks) -> None:
    from django.contrib.auth.models import update_last_login

    from django_assetcache.models import Change

    before = Change.objects.count()
    update_last_login(None, member)
    assert Change.objects.count() == before


def test_hits_with_a_verified_cookie_ask_nothing(fetch: Fetch, member: User) -> None:
    cookie = sign_in(fetch, member)
    fetch("GET", "/", HOST, Cookie=cookie)
    backend = runtime.get_access().backend
    queries, loads = backend.queries, runtime.get_cache().loader.queries
    for _ in range(3):
        assert fetch("GET", "/", HOST, Cookie=cookie).status == 200
    assert (backend.queries, runtime.get_cache().loader.queries) == (queries, loads)


def test_password_form_and_rate_limit(fetch: Fetch, db, tmp_path: Path) -> None:
    site = make_site(tmp_path, "secret", "password")
    set_site_password(site, "open sesame")
    runtime.reset()
    host = "secret.sites.test"
    asked = fetch("GET", "/guide/", host, **HTML)
    assert (asked.status, asked.headers["Location"]) == (
        302,
        "/.assetcache/password?next=%2Fguide%2F",
    )
    form = fetch("GET", asked.headers["Location"], host)
    assert form.status == 200 and b'name="next" value="/guide/"' in form.body
    assert form.headers["Cache-Control"] == "private, no-store"
    wrong = fetch("POST", access.PASSWORD_PATH, host, body=b"password=nope&next=%2Fguide%2F")
    assert wrong.status == 401 and b"not right" in wrong.body and "Set-Cookie" not in wrong.headers
    right = fetch("POST", access.PASSWORD_PATH, host, body=b"password=open+sesame&next=%2Fguide%2F")
    assert (right.status, right.headers["Location"]) == (303, "/guide/")
    cookie = cookie_of(right.headers)
    assert fetch("GET", "/guide/", host, Cookie=cookie).status == 200
    limited = fetch("POST", access.PASSWORD_PATH, host, body=b"password=open+sesame")
    assert (limited.status, limited.headers["Retry-After"]) == (429, "60")
    too_big = fetch("POST", access.PASSWORD_PATH, host, body=b"password=" + b"x" * access.FORM_LIMIT)
    assert too_big.status == 413
    # A new password refuses the cookies the old one gave.
    set_site_password(Site.objects.get(pk=site.pk), "another")
    runtime.reset()
    assert fetch("GET", "/guide/", host, Cookie=cookie).status == 401


def test_share_links_and_revocation(fetch: Fetch, team: Site, django_capture_on_commit_callbacks) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        link = create_share_link(team, datetime.timedelta(days=7), note="auditor")
    url = urlsplit(share_url(link))
    assert url.netloc == HOST
    opened = fetch("GET", f"{url.path}?{url.query}", HOST)
    assert (opened.status, opened.headers["Location"]) == (302, "/")
    cookie = cookie_of(opened.headers)
    assert "Max-Age=43200;" in opened.headers["Set-Cookie"]  # the shorter of the link's and the cookie's
    assert fetch("GET", "/guide/", HOST, Cookie=cookie).status == 200
    with django_capture_on_commit_callbacks(execute=True):
        revoke_share_link(link)
    assert fetch("GET", "/guide/", HOST, Cookie=cookie).status == 403
    assert fetch("GET", f"{url.path}?{url.query}", HOST).status == 403
    forged = access.make_share_token(link.pk, team.pk + 1)
    assert fetch("GET", f"{access.SHARE_PATH}?token={forged}", HOST).status == 403


def test_public_sites_serve_their_own_dot_assetcache_paths(fetch: Fetch, site: Site) -> None:
    result = fetch("GET", access.AUTH_PATH, "docs.sites.test")
    assert result.status == 404 and result.headers["Cache-Control"] == "no-cache"
    assert fetch("GET", "/", "docs.sites.test").headers["Cache-Control"] == "public, max-age=0, must-revalidate"


def test_logout_clears_the_cookie(fetch: Fetch, member: User) -> None:
    result = fetch("GET", access.LOGOUT_PATH, HOST)
    assert result.status == 200
    assert result.headers["Set-Cookie"].startswith(f"{access.COOKIE_NAME}=; Path=/; Max-Age=0;")


def test_the_snapshot_keeps_sites_private(fetch: Fetch, member: User) -> None:
    warm_up()
    runtime.reset()
    cache = runtime.get_cache()
    assert cache.loader.snapshot is not None
    queries = cache.loader.queries
    assert fetch("GET", "/guide/", HOST).status == 401
    assert cache.loader.queries == queries  # the host from the snapshot
    cookie = sign_in(fetch, member)
    page = fetch("GET", "/guide/", HOST, Cookie=cookie)
    assert page.status == 200 and page.headers["Cache-Control"].startswith("private")


# --- the ticket view on the project's host ------------------------------------------


@pytest.mark.parametrize(
    ("query", "status"),
    [
        ({"host": HOST, "next": "https://evil.test/"}, 400),
        ({"host": HOST, "next": "//evil.test/"}, 400),
        ({"host": HOST, "next": "/\\evil.test"}, 400),
        ({"host": "evil.test", "next": "/"}, 404),
        ({"host": "docs.sites.test", "next": "/"}, 404),  # a public site
    ],
)
def test_ticket_view_refuses_other_hosts(member: User, site: Site, query: dict[str, str], status: int) -> None:
    client = Client()
    client.force_login(member)
    assert client.get("/assetcache/access", query).status_code == status


def test_ticket_view_sends_anonymous_to_login_then_issues_a_ticket(member: User) -> None:
    client = Client()
    query = {"host": HOST, "next": "/guide/"}
    anonymous = client.get("/assetcache/access", query)
    assert anonymous.status_code == 302 and anonymous["Location"].startswith("/accounts/login/?next=")
    outsider = User.objects.create_user("bob", password="pw")
    client.force_login(outsider)
    assert client.get("/assetcache/access", query).status_code == 403
    client.force_login(member)
    issued = client.get("/assetcache/access", query)
    assert issued.status_code == 302 and "no-store" in issued["Cache-Control"]
    location = urlsplit(issued["Location"])
    assert (location.scheme, location.netloc, location.path) == ("https", HOST, access.AUTH_PATH)
    ticket = access.read_ticket(parse_qs(location.query)["ticket"][0], HOST)
    assert ticket is not None and (ticket.user_id, ticket.next) == (member.pk, "/guide/")


def test_a_header_rules_cache_control_is_made_private_too(fetch: Fetch, member: User, tmp_path: Path) -> None:
    """A `_headers` rule may set Cache-Control for some paths: on a private
    site that policy is made private like the site's own."""
    files = {**SAMPLE, "_headers": "/css/*\n  Cache-Control: public, max-age=3600\n"}
    publish("team", write_tree(tmp_path / "ruled", files))
    runtime.reset()
    cookie = sign_in(fetch, member)
    result = fetch("GET", "/css/site.css", HOST, Cookie=cookie)
    assert result.status == 200
    assert result.headers["Cache-Control"] == "private, max-age=3600"


def test_a_preview_of_a_private_site_answers_privately(fetch: Fetch, member: User, tmp_path: Path) -> None:
    """A preview host of a private site sends its fixed replies (404, 405,
    400) private too, X-Robots-Tag kept: never a shared cache's to keep."""
    # No error document: a missing path gets the host's fixed 404.
    files = {name: content for name, content in SAMPLE.items() if name != "404.html"}
    summary = publish("team", write_tree(tmp_path / "draft", files), delete=True, deployment=DeploymentInfo(draft=True))
    assert summary.deployment is not None
    runtime.reset()
    preview = f"{summary.deployment.key}--{HOST}"
    cookie = sign_in(fetch, member, host=preview)
    replies = {
        "missing": fetch("GET", "/no-such-file.txt", preview, Cookie=cookie),
        "post": fetch("PUT", "/", preview, Cookie=cookie),
        "bad": fetch("GET", "/bad/%2E%2E/path", preview, Cookie=cookie),
    }
    assert {name: r.status for name, r in replies.items()} == {"missing": 404, "post": 405, "bad": 400}
    for result in replies.values():
        assert result.headers["Cache-Control"] == "private, no-store", result
        assert result.headers["Vary"] == "Cookie", result
        assert result.headers["X-Robots-Tag"] == "noindex", result
