"""Private sites under a real gunicorn (two workers, the database change
feed), visited by a cookie-keeping client (``http.cookiejar`` + ``urllib``):
the project and its site hosts answer on one port, each under its own name."""

from __future__ import annotations

import datetime
import http.client
import http.cookiejar
import re
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

import pytest
from django.contrib.auth.models import Group, Permission, User
from django.core.management import call_command

from django_assetcache import access
from django_assetcache.accessdb import create_share_link, revoke_share_link, set_site_password, share_url
from django_assetcache.deployments import DeploymentInfo
from django_assetcache.models import Site
from django_assetcache.publish import publish

from .conftest import SAMPLE, write_tree
from .servers import Server, database_gone, free_port, gunicorn, http_request

TEAM = "team.sites.test"
OTHER = "other.sites.test"
SECRET = "secret.sites.test"
POLL = 0.3
ATTEMPTS = 3


class _Local(http.client.HTTPConnection):
    """Whatever host a URL names, the connection goes to 127.0.0.1 (its
    port kept), so site host names need no DNS."""

    def connect(self) -> None:
        self.sock = socket.create_connection(("127.0.0.1", self.port), self.timeout)


class _LocalHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_Local, req)


@dataclass
class Browser:
    """A cookie-keeping client that follows redirects and records them."""

    jar: http.cookiejar.CookieJar = field(default_factory=http.cookiejar.CookieJar)
    visited: list[str] = field(default_factory=list)
    #: Every response of a site host, as (url, status, Cache-Control).
    site_replies: list[tuple[str, int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        browser = self

        class Recorder(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, req, fp, code, msg, headers, newurl):  # type: ignore[no-untyped-def]
                browser.record(req.full_url, code, headers)
                browser.visited.append(newurl)
                return super().redirect_request(req, fp, code, msg, headers, newurl)

        self.opener = urllib.request.build_opener(
            _LocalHandler(), Recorder(), urllib.request.HTTPCookieProcessor(self.jar)
        )

    def record(self, url: str, status: int, headers: http.client.HTTPMessage) -> None:
        if urlsplit(url).hostname not in (None, "127.0.0.1"):
            self.site_replies.append((url, status, headers.get("Cache-Control", "")))

    def open(self, url: str, data: dict[str, str] | None = None, **headers: str) -> tuple[int, str, bytes, str]:
        """(status, final URL, body, Cache-Control) of a GET, or a POST of ``data``."""
        headers.setdefault("Accept", "text/html,*/*;q=0.8")
        body = urlencode(data).encode() if data is not None else None
        request = urllib.request.Request(url, body, headers)
        try:
            with self.opener.open(request, timeout=30) as response:
                result = (response.status, response.url, response.read(), response.headers.get("Cache-Control", ""))
                self.record(response.url, response.status, response.headers)
        except urllib.error.HTTPError as error:
            result = (error.code, error.url, error.read(), error.headers.get("Cache-Control", ""))
            self.record(error.url, error.code, error.headers)
        return result

    def cookie(self, host: str) -> str:
        (found,) = [c for c in self.jar if c.domain == host and c.name == access.COOKIE_NAME]
        assert found.value is not None
        return f"{found.name}={found.value}"


@dataclass
class Setup:
    server: Server
    member: User
    team: Site
    group: Group

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.server.port}{path}"

    def get(self, host: str, path: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
        return http_request(self.server.port, path, f"{host}:{self.server.port}", headers=headers)


def eventually(check: Callable[[], bool], seconds: float = 10 * POLL + 3) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(POLL / 3)
    return check()


@pytest.fixture
def setup(request: pytest.FixtureRequest, transactional_db, tmp_path: Path, settings) -> Iterator[Setup]:
    """Three private sites under gunicorn: two workers, or ``request.param``."""
    workers = getattr(request, "param", 2)
    port = free_port()
    settings.ASSETCACHE_SITE_URL = f"http://{{host}}:{port}/"  # share links made here
    for subdomain, visibility in (("team", "restricted"), ("other", "login"), ("secret", "password")):
        publish(subdomain, write_tree(tmp_path / subdomain, SAMPLE))
        Site.objects.filter(subdomain=subdomain).update(visibility=visibility)
    team = Site.objects.get(subdomain="team")
    set_site_password(Site.objects.get(subdomain="secret"), "open sesame")
    member = User.objects.create_user("ann", password="ann-password")
    group = Group.objects.create(name="team")
    member.groups.add(group)
    team.allowed_groups.add(group)
    env = {
        "ASSETCACHE_TEST_MEDIA_ROOT": settings.MEDIA_ROOT,
        "ASSETCACHE_TEST_INVALIDATION": "database",
        "ASSETCACHE_TEST_POLL_INTERVAL": str(POLL),
        "ASSETCACHE_TEST_SITE_URL": f"http://{{host}}:{port}/",
        "ASSETCACHE_TEST_PROJECT_URL": f"http://127.0.0.1:{port}",
        "ASSETCACHE_TEST_PASSWORD_ATTEMPTS": str(ATTEMPTS),
    }
    with gunicorn(tmp_path, workers=workers, env=env, port=port) as server:
        yield Setup(server, member, team, group)


def log_in(setup: Setup, browser: Browser, host: str, username: str) -> tuple[int, str, bytes, str]:
    """Anonymous on ``host`` → the project's login as ``username`` (password
    ``<username>-password``) → wherever that leads."""
    status, url, page, _ = browser.open(setup.url(host, "/guide/"))
    assert status == 200 and urlsplit(url).path == "/accounts/login/", setup.server.log()
    token = re.search(rb'name="csrfmiddlewaretoken" value="([^"]+)"', page)
    next_field = re.search(rb'name="next" value="([^"]+)"', page)
    assert token is not None and next_field is not None
    form = {"username": username, "password": f"{username}-password", "csrfmiddlewaretoken": token.group(1).decode()}
    form["next"] = next_field.group(1).decode().replace("&amp;", "&")
    return browser.open(url, form)


def sign_in(setup: Setup, browser: Browser, host: str = TEAM) -> bytes:
    """Anonymous → the project's login → ticket → cookie → the page first asked for."""
    status, url, body, cache_control = log_in(setup, browser, host, "ann")
    assert (status, url) == (200, setup.url(host, "/guide/")), setup.server.log()
    assert cache_control == "private, max-age=0, must-revalidate"
    return body


def test_sign_in_cookies_and_their_limits(setup: Setup) -> None:
    browser = Browser()
    assert sign_in(setup, browser) == SAMPLE["guide/index.html"].encode()
    first = urlsplit(browser.visited[0])
    assert (first.hostname, first.path) == ("127.0.0.1", "/assetcache/access")
    ticket_url = next(url for url in browser.visited if access.AUTH_PATH in url)
    assert urlsplit(ticket_url).hostname == TEAM
    cookie = browser.cookie(TEAM)
    assert setup.get(TEAM, "/", Cookie=cookie)[0] == 200
    # A replayed ticket is refused, on whichever worker it lands.
    assert [Browser().open(ticket_url)[0] for _ in range(2)] == [403, 403]
    # A cookie for one site is refused on another, even one the user may see.
    assert setup.get(OTHER, "/", Cookie=cookie)[0] == 401
    expired = access.make_cookie(("u", setup.member.pk), setup.team.pk, TEAM, time.time() - 1)
    assert setup.get(TEAM, "/", Cookie=f"{access.COOKIE_NAME}={expired}")[0] == 401
    # next naming another host is refused by the ticket view.
    for target in ("https://evil.test/", "//evil.test/x"):
        query = urlencode({"host": TEAM, "next": target})
        assert browser.open(f"http://127.0.0.1:{setup.server.port}/assetcache/access?{query}")[0] == 400
    # 304 and Range only after access.
    ok, headers, _ = setup.get(TEAM, "/img/logo.png", Cookie=cookie)
    assert ok == 200
    etag = headers["etag"]
    assert setup.get(TEAM, "/img/logo.png", **{"If-None-Match": etag})[0] == 401
    assert setup.get(TEAM, "/img/logo.png", Range="bytes=0-3")[0] == 401
    assert setup.get(TEAM, "/img/logo.png", Cookie=cookie, **{"If-None-Match": etag})[0] == 304
    assert setup.get(TEAM, "/img/logo.png", Cookie=cookie, Range="bytes=0-3")[:3:2] == (206, b"\x89PNG")
    assert all(cc.startswith("private") for _, _, cc in browser.site_replies), browser.site_replies


def test_losing_the_group_or_deactivation_cuts_access_within_the_poll_interval(setup: Setup) -> None:
    browser = Browser()
    sign_in(setup, browser)
    cookie = browser.cookie(TEAM)

    def status() -> int:
        return setup.get(TEAM, "/guide/", Cookie=cookie)[0]

    setup.member.groups.remove(setup.group)
    assert eventually(lambda: status() == 403 and status() == 403)
    setup.member.groups.add(setup.group)
    assert eventually(lambda: status() == 200 and status() == 200)
    setup.member.is_active = False
    setup.member.save()
    assert eventually(lambda: status() == 403 and status() == 403)


# One worker: the limit is per process (ASSETCACHE_PASSWORD_ATTEMPTS is per
# worker, documented), and how the kernel spreads connections over several
# workers is not the test's to guess.
@pytest.mark.parametrize("setup", [1], indirect=True)
def test_password_form_and_its_rate_limit(setup: Setup) -> None:
    browser = Browser()
    status, url, page, cache_control = browser.open(setup.url(SECRET, "/guide/"))
    assert (status, urlsplit(url).path) == (200, access.PASSWORD_PATH) and b'value="/guide/"' in page
    assert cache_control == "private, no-store"
    status, url, page, _ = browser.open(url, {"password": "open sesame", "next": "/guide/"})
    assert (status, url, page) == (200, setup.url(SECRET, "/guide/"), SAMPLE["guide/index.html"].encode())
    # ATTEMPTS per minute per address: past them every attempt is refused,
    # the right password too.
    form_url = setup.url(SECRET, access.PASSWORD_PATH)
    statuses = [browser.open(form_url, {"password": "wrong"})[0] for _ in range(ATTEMPTS)]
    assert statuses[0] == 401 and set(statuses) <= {401, 429}
    assert Browser().open(form_url, {"password": "open sesame"})[0] == 429


def test_share_links_and_revocation(setup: Setup) -> None:
    link = create_share_link(setup.team, datetime.timedelta(days=7))
    url = share_url(link)
    assert urlsplit(url).hostname == TEAM
    browser = Browser()
    status, final, body, _ = browser.open(url)
    assert (status, final, body) == (200, setup.url(TEAM, "/"), SAMPLE["index.html"].encode())
    cookie = browser.cookie(TEAM)
    revoke_share_link(link)
    assert eventually(lambda: setup.get(TEAM, "/", Cookie=cookie)[0] == 403 == setup.get(TEAM, "/", Cookie=cookie)[0])
    assert Browser().open(url)[0] == 403


# --- a public site whose previews are private (Site.previews_private) ------------------

OPEN = "open.sites.test"


def guide(version: str) -> dict[str, str | bytes]:
    return {**SAMPLE, "guide/index.html": f"<!doctype html><title>Guide {version}</title>"}


def guide_page(version: str) -> bytes:
    return f"<!doctype html><title>Guide {version}</title>".encode()


@dataclass
class Previews:
    """The preview hosts of the public site ``open``, whose previews are
    private and which allows ann's group: a draft, the same draft under the
    alias ``staging``, and a deployment no longer live."""

    draft: str
    alias: str
    older: str

    @property
    def hosts(self) -> tuple[str, str, str]:
        return (self.draft, self.alias, self.older)


def publish_previews(tmp_path: Path) -> Previews:
    """Publish ``open`` three times (the second live, the third a draft
    aliased ``staging``) and make its previews private."""
    older = publish("open", write_tree(tmp_path / "open-1", guide("one"))).deployment
    publish("open", write_tree(tmp_path / "open-2", guide("two")))
    draft_info = DeploymentInfo(draft=True, alias="staging")
    draft = publish("open", write_tree(tmp_path / "open-3", guide("three")), deployment=draft_info).deployment
    assert older is not None and draft is not None
    site = Site.objects.get(subdomain="open")
    site.previews_private = True
    site.save()
    return Previews(f"{draft.key}--{OPEN}", f"staging--{OPEN}", f"{older.key}--{OPEN}")


@pytest.fixture
def previews(setup: Setup, tmp_path: Path) -> Previews:
    found = publish_previews(tmp_path)
    Site.objects.get(subdomain="open").allowed_groups.add(setup.group)
    return found


def user_cookie(user: User, site: Site, host: str) -> str:
    """The cookie /.assetcache/auth gives ``user`` on ``host`` (its signature made here)."""
    value = access.make_cookie(("u", user.pk), site.pk, host, time.time() + 3600)
    return f"{access.COOKIE_NAME}={value}"


def test_the_live_host_stays_public_and_previews_sign_in(setup: Setup, previews: Previews) -> None:
    status, headers, body = setup.get(OPEN, "/guide/")
    assert (status, body) == (200, guide_page("two"))
    assert headers["cache-control"] == "public, max-age=0, must-revalidate"
    assert "x-robots-tag" not in headers and "Cookie" not in headers.get("vary", "")
    project = f"http://127.0.0.1:{setup.server.port}/assetcache/access"
    for host in previews.hosts:
        status, headers, body = setup.get(host, "/guide/", Accept="text/html")
        assert (status, headers.get("location")) == (302, f"{project}?{urlencode({'host': host, 'next': '/guide/'})}")
        assert headers["cache-control"].startswith("private") and body == b""
        assert setup.get(host, "/guide/", Accept="*/*")[0] == 401

    browser = Browser()
    assert sign_in(setup, browser, previews.draft) == guide_page("three")
    cookie = browser.cookie(previews.draft)
    status, headers, body = setup.get(previews.draft, "/guide/", Cookie=cookie)
    assert (status, body) == (200, guide_page("three"))
    assert headers["cache-control"] == "private, max-age=0, must-revalidate"
    assert headers["vary"].endswith("Cookie") and headers["x-robots-tag"] == "noindex"
    assert all(cc.startswith("private") for _, _, cc in browser.site_replies), browser.site_replies


def test_cookies_of_a_preview_or_a_private_site_stay_on_their_host(setup: Setup, previews: Previews) -> None:
    browser, team_browser = Browser(), Browser()
    sign_in(setup, browser, previews.draft)
    sign_in(setup, team_browser, TEAM)
    # The browser keeps the cookie for its own host only: on the alias of the
    # same deployment the visitor (signed in to the project) is sent for a
    # ticket again.
    before = len(browser.visited)
    status, url, _, _ = browser.open(setup.url(previews.alias, "/guide/"))
    hops = [(urlsplit(hop).hostname, urlsplit(hop).path) for hop in browser.visited[before:]]
    assert hops == [
        ("127.0.0.1", "/assetcache/access"),
        (previews.alias, access.AUTH_PATH),
        (previews.alias, "/guide/"),
    ]
    assert (status, url) == (200, setup.url(previews.alias, "/guide/"))
    # And a cookie sent to another host anyway is refused there: another
    # preview of the site, the alias of the same deployment, another site.
    draft, team = browser.cookie(previews.draft), team_browser.cookie(TEAM)
    for host in (previews.alias, previews.older, TEAM):
        assert setup.get(host, "/guide/", Cookie=draft)[0] == 401, host
    for host in previews.hosts:
        assert setup.get(host, "/guide/", Cookie=team)[0] == 401, host
    assert setup.get(previews.draft, "/guide/", Cookie=draft)[0] == 200


def test_who_may_see_private_previews(setup: Setup, previews: Previews) -> None:
    """Users and groups allowed on the site (ann), superusers, and staff who
    may change sites; not other users (bob), nor staff without that permission."""
    User.objects.create_user("bob", password="bob-password")
    User.objects.create_user("dave", password="dave-password", is_staff=True)
    User.objects.create_superuser("root", password="root-password")
    carol = User.objects.create_user("carol", password="carol-password", is_staff=True)
    carol.user_permissions.add(
        Permission.objects.get(codename="change_site", content_type__app_label="django_assetcache")
    )
    statuses = {name: log_in(setup, Browser(), previews.draft, name)[0] for name in ("bob", "dave", "root", "carol")}
    assert statuses == {"bob": 403, "dave": 403, "root": 200, "carol": 200}
    refused = log_in(setup, Browser(), previews.draft, "bob")
    assert refused[2] == b"You are signed in as bob, who may not see this site.\n"
    # A cookie of someone not allowed (made before they lost access) is refused.
    bob = User.objects.get(username="bob")
    status, headers, body = setup.get(
        previews.draft, "/guide/", Cookie=user_cookie(bob, Site.objects.get(subdomain="open"), previews.draft)
    )
    assert (status, body) == (403, b"You may not see this site.\n")
    assert headers["cache-control"] == "private, no-store"
    # Losing the permission cuts carol off within the poll interval.
    cookie = user_cookie(carol, Site.objects.get(subdomain="open"), previews.draft)
    assert setup.get(previews.draft, "/guide/", Cookie=cookie)[0] == 200
    carol.user_permissions.clear()
    assert eventually(lambda: {setup.get(previews.draft, "/", Cookie=cookie)[0] for _ in range(4)} == {403})
    # A share link of the site opens a preview, on the preview's host.
    link = urlsplit(share_url(create_share_link(Site.objects.get(subdomain="open"), datetime.timedelta(days=1))))
    assert (link.hostname, setup.get(OPEN, f"{link.path}?{link.query}")[0]) == (OPEN, 404)
    status, _, body, _ = Browser().open(setup.url(previews.draft, f"{link.path}?{link.query}"))
    assert (status, body) == (200, SAMPLE["index.html"].encode())


def test_turning_previews_private_on_and_off_reaches_every_worker(setup: Setup, previews: Previews) -> None:
    site = Site.objects.get(subdomain="open")
    cookie = user_cookie(setup.member, site, previews.draft)

    def anonymous() -> set[int]:
        return {setup.get(previews.draft, "/guide/")[0] for _ in range(4)}

    assert anonymous() == {401}
    site.previews_private = False
    site.save()
    assert eventually(lambda: anonymous() == {200})
    status, headers, _ = setup.get(previews.draft, "/guide/")
    assert (status, headers["cache-control"], headers["x-robots-tag"]) == (
        200,
        "public, max-age=0, must-revalidate",
        "noindex",
    )
    site.previews_private = True
    site.save()
    assert eventually(lambda: anonymous() == {401})

    def private_to_the_member() -> bool:
        """The entries built public meanwhile are not served: private again,
        in every worker (four requests may all reach the one that applied
        the change first, so the member asks several times too)."""
        replies = [setup.get(previews.draft, "/guide/", Cookie=cookie) for _ in range(6)]
        expected = (200, guide_page("three"), "private, max-age=0, must-revalidate")
        return all((status, body, headers["cache-control"]) == expected for status, headers, body in replies)

    assert eventually(private_to_the_member)
    assert setup.get(OPEN, "/guide/")[0] == 200


@pytest.mark.parametrize(("subdomain", "host", "bob_sees"), [("team", TEAM, 403), ("other", OTHER, 200)])
def test_previews_private_on_a_private_site_leaves_its_previews_following_it(
    setup: Setup, tmp_path: Path, subdomain: str, host: str, bob_sees: int
) -> None:
    """A restricted site's previews stay restricted (bob is not allowed), a
    login site's stay open to any active user (bob signs in)."""
    User.objects.create_user("bob", password="bob-password")
    draft = publish(subdomain, write_tree(tmp_path / "draft", guide("draft")), deployment=DeploymentInfo(draft=True))
    assert draft.deployment is not None
    site = Site.objects.get(subdomain=subdomain)
    site.previews_private = True
    site.save()
    preview = f"{draft.deployment.key}--{host}"
    assert eventually(lambda: setup.get(preview, "/guide/")[0] == 401)
    assert setup.get(host, "/guide/")[0] == 401
    assert log_in(setup, Browser(), preview, "bob")[0] == bob_sees
    assert sign_in(setup, Browser(), preview) == guide_page("draft")


def test_private_previews_hold_with_the_database_gone(transactional_db, tmp_path: Path, settings) -> None:
    """After assetcache_warmup the snapshot knows the previews are private:
    served without the database, the live host stays public and a preview
    is still refused to anyone without access."""
    previews = publish_previews(tmp_path)
    call_command("assetcache_warmup", verbosity=0)
    env = {**database_gone(settings.MEDIA_ROOT, tmp_path), "ASSETCACHE_TEST_PROJECT_URL": "http://127.0.0.1:9"}
    with gunicorn(tmp_path, env=env, workers=1) as server:
        status, headers, body = server.request("/guide/", OPEN)
        assert (status, body, headers["cache-control"]) == (
            200,
            guide_page("two"),
            "public, max-age=0, must-revalidate",
        )
        for host in previews.hosts:
            status, headers, body = server.request("/guide/", host, headers={"Accept": "text/html"})
            assert (status, headers["cache-control"]) == (302, "private, no-store"), server.log()
            assert headers["location"].startswith("http://127.0.0.1:9/assetcache/access?")
            assert server.request("/guide/", host)[0] == 401
        # Who may see it is the database's to say: unavailable, not served.
        cookie = user_cookie(User.objects.create_user("ann"), Site.objects.get(subdomain="open"), previews.draft)
        assert server.request("/guide/", previews.draft, headers={"Cookie": cookie})[0] == 503
