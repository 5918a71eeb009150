"""The access core alone: signed values, the gate's memory, the limiter,
and what a private site answers when the database or the set-up is missing."""

from __future__ import annotations

import io
import time
from pathlib import Path

import pytest
from django.db import DatabaseError

from django_assetcache import access, gate, runtime
from django_assetcache.access import Access, AccessGate, RateLimiter
from django_assetcache.asgi import AssetCacheASGI
from django_assetcache.cache import Unavailable
from django_assetcache.hosts import SiteInfo
from django_assetcache.serve import answer, wsgi_body
from tests.conftest import SAMPLE, write_tree


@pytest.mark.parametrize(
    ("value", "private"),
    [
        ("public, max-age=0, must-revalidate", "private, max-age=0, must-revalidate"),
        ("public, s-maxage=600, max-age=60, proxy-revalidate", "private, max-age=60"),
        ("no-store", "private, no-store"),
        ("private", "private"),
        ("", "private"),
    ],
)
def test_private_cache_control(value: str, private: str) -> None:
    assert access.private_cache_control(value) == private


@pytest.mark.parametrize(
    ("value", "safe"),
    [
        (None, "/"),
        ("", "/"),
        ("/guide/?q=1", "/guide/?q=1"),
        ("https://evil.test/", None),
        ("//evil.test", None),
        ("/\\evil.test", None),
        ("/a\nb", None),
        ("/a b", None),
        ("/" + "a" * 3000, None),
        ("guide", None),
    ],
)
def test_safe_next(value: str | None, safe: str | None) -> None:
    assert access.safe_next(value) == safe


def test_cookie_value_reads_our_cookie_only() -> None:
    assert access.cookie_value("theme=dark; assetcache_access=abc:1; x=2") == "abc:1"
    assert access.cookie_value("xassetcache_access=abc") is None


def test_signed_values_do_not_stand_for_one_another() -> None:
    share = access.make_share_token(1, 2)
    cookie = access.make_cookie(("u", 1), 2, "a.sites.test", time.time() + 60)
    assert access.read_cookie(share) is None
    assert access.read_share_token(cookie) is None
    assert access.read_ticket(cookie, "a.sites.test") is None
    assert access.read_share_token(share) == (1, 2)


class Backend:
    def __init__(self) -> None:
        self.queries = 0

    def may_see(self, user_id: int, site_id: int, visibility: str) -> bool:
        self.queries += 1
        return user_id == 1

    def share_link_expiry(self, link_id: int, site_id: int) -> float | None:
        self.queries += 1
        return None

    def use_ticket(self, ticket_id: str, expires: float) -> bool:
        return True

    def password_matches(self, site_id: int, password: str) -> bool:
        return False


SITE = SiteInfo(5, "a", True, "index.html", "", "", visibility="restricted")


def cookie_header(user_id: int, site_id: int = 5, host: str = "a.sites.test") -> str:
    return f"{access.COOKIE_NAME}={access.make_cookie(('u', user_id), site_id, host, time.time() + 60)}"


def test_the_gate_remembers_and_forgets_on_access_changes(monkeypatch) -> None:
    backend = Backend()
    checker = AccessGate(backend, 3)
    header = cookie_header(1)
    assert checker.check(SITE, "a.sites.test:8000", header) is Access.GRANTED
    assert checker.check(SITE, "a.sites.test:8000", header) is Access.GRANTED
    assert backend.queries == 1
    checker.forget("publish")
    assert checker.check(SITE, "a.sites.test:8000", header) is Access.GRANTED and backend.queries == 1
    checker.forget("access")
    assert checker.check(SITE, "a.sites.test:8000", header) is Access.GRANTED and backend.queries == 2
    assert checker.check(SITE, "a.sites.test", cookie_header(2)) is Access.FORBIDDEN
    assert checker.check(SITE, "b.sites.test", header) is Access.ANONYMOUS  # another host
    assert checker.check(SITE, "a.sites.test", "") is Access.ANONYMOUS
    share = f"{access.COOKIE_NAME}={access.make_cookie(('s', 9), 5, 'a.sites.test', time.time() + 60)}"
    assert checker.check(SITE, "a.sites.test", share) is Access.FORBIDDEN
    odd = f"{access.COOKIE_NAME}={access.make_cookie(('x', 9), 5, 'a.sites.test', time.time() + 60)}"
    assert checker.check(SITE, "a.sites.test", odd) is Access.FORBIDDEN
    monkeypatch.setattr(access, "MAX_REMEMBERED", 2)
    for user_id in (1, 2, 3):
        checker.check(SITE, "a.sites.test", cookie_header(user_id) + "; z=1")
    assert len(checker.credentials) <= 2 and len(checker.answers) <= 2


def test_the_limiter_counts_per_address_and_window(monkeypatch) -> None:
    now = [100.0]
    monkeypatch.setattr(access.time, "monotonic", lambda: now[0])
    limiter = RateLimiter(2, 60.0)
    assert [limiter.allow("a") for _ in range(3)] == [True, True, False]
    assert limiter.allow("b")
    now[0] += 61
    assert limiter.allow("a")
    monkeypatch.setattr(access, "MAX_REMEMBERED", 2)
    assert limiter.allow("c") and list(limiter.counts) == ["a", "c"]  # b, the least recent, went


@pytest.fixture
def private_site(db, tmp_path: Path, settings):
    from django_assetcache.models import Site
    from django_assetcache.publish import publish

    publish("team", write_tree(tmp_path / "team", SAMPLE))
    Site.objects.filter(subdomain="team").update(visibility="login")
    runtime.reset()
    return Site.objects.get(subdomain="team")


def test_without_a_project_url_a_browser_gets_403(private_site, settings) -> None:
    settings.ASSETCACHE_PROJECT_URL = ""
    headers = {"HTTP_ACCEPT": "text/html"}
    reply = answer("team.sites.test", "/", "GET", "", headers.get)
    assert reply is gate.NO_LOGIN


def test_a_database_outage_checking_access_is_a_private_503(private_site, monkeypatch) -> None:
    def down(*args: object) -> bool:
        raise Unavailable("down")

    monkeypatch.setattr(runtime.get_access().backend, "may_see", down)
    headers = {"HTTP_COOKIE": cookie_header(1, private_site.pk, "team.sites.test")}
    reply = answer("team.sites.test", "/", "GET", "", headers.get)
    assert reply is gate.UNAVAILABLE and ("Cache-Control", "private, no-store") in reply.headers


def test_the_backend_turns_database_errors_into_unavailable(private_site, monkeypatch) -> None:
    from django.db.models import QuerySet

    backend = runtime.get_access().backend

    def broken(*args: object, **kwargs: object) -> None:
        raise DatabaseError("gone")

    monkeypatch.setattr(QuerySet, "_fetch_all", broken)
    for call in (
        lambda: backend.may_see(1, private_site.pk, "login"),
        lambda: backend.share_link_expiry(1, private_site.pk),
        lambda: backend.password_matches(private_site.pk, "x"),
    ):
        with pytest.raises(Unavailable):
            call()


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        (access.AUTH_PATH, "POST", 405),
        (access.PASSWORD_PATH, "DELETE", 401),  # not a password site: the path is a site path
        ("/.assetcache/other", "GET", 401),
    ],
)
def test_special_paths_and_methods(private_site, path: str, method: str, status: int) -> None:
    no_headers: dict[str, str] = {}
    reply = answer("team.sites.test", path, method, "", no_headers.get)
    assert reply is not None and reply.status == status


def test_a_password_post_with_a_bad_length_reads_nothing(private_site) -> None:
    from django_assetcache.models import Site

    Site.objects.filter(pk=private_site.pk).update(visibility="password")
    runtime.reset()
    headers = {"CONTENT_LENGTH": "junk", "REMOTE_ADDR": "10.0.0.1"}
    reply = answer("team.sites.test", access.PASSWORD_PATH, "POST", "", headers.get, None)
    assert reply is not None and reply.status == 401
    assert answer("team.sites.test", access.PASSWORD_PATH, "PUT", "", headers.get).status == 405  # type: ignore[union-attr]


def test_wsgi_body_reads_no_further_than_content_length() -> None:
    stream = io.BytesIO(b"password=x&next=%2F" + b"TRAILING")
    post = {"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "19", "wsgi.input": stream}
    reader = wsgi_body(post)
    assert reader is not None and reader(4096) == b"password=x&next=%2F"
    assert wsgi_body({**post, "REQUEST_METHOD": "GET"}) is None  # only a form's POST is read
    assert wsgi_body({"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "x"}) is None
    assert wsgi_body({"REQUEST_METHOD": "POST"}) is None


def test_asgi_hands_a_post_body_on_to_the_project(db) -> None:
    """A POST under /.assetcache/ to the project's own host reaches the
    project with its whole body, though the wrapper read it first."""
    from asgiref.sync import async_to_sync

    received: list[bytes] = []

    async def project(scope, receive, send) -> None:  # type: ignore[no-untyped-def]
        while True:
            message = await receive()
            received.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    chunks = [b"a" * 3000, b"b" * 3000, b"c"]
    messages = [{"type": "http.request", "body": c, "more_body": i < 2} for i, c in enumerate(chunks)]

    async def receive() -> dict[str, object]:
        return messages.pop(0)

    sent: list[dict[str, object]] = []

    async def send(message: dict[str, object]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": access.PASSWORD_PATH,
        "headers": [(b"host", b"www.example.test")],
        "query_string": b"",
        "client": ("127.0.0.1", 1),
    }
    async_to_sync(AssetCacheASGI(project))(scope, receive, send)
    assert b"".join(received) == b"".join(chunks) and sent[0]["status"] == 204
