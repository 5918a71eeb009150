"""Custom-domain ownership (a DNS TXT record, through a stubbed resolver) and
the TLS-ask endpoint Caddy's on-demand TLS consults."""

from __future__ import annotations

import io
import sys

import dns.exception
import dns.resolver
import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.test import Client
from django.urls import reverse

from django_assetcache import domains, runtime
from django_assetcache.models import Change, Domain, Site
from django_assetcache.publish import publish

from .conftest import write_tree

#: The DNS the stub resolver answers from: name → TXT values.
RECORDS: dict[str, list[str]] = {}
LOOKUPS: list[str] = []


def stub_resolve(name: str) -> list[str]:
    """The resolver boundary: ASSETCACHE_TXT_RESOLVER names this in tests."""
    LOOKUPS.append(name)
    if name.endswith(".timeout.example"):
        raise domains.LookupFailed(f"{name}: Timeout")
    return list(RECORDS.get(name, []))


@pytest.fixture(autouse=True)
def stub_dns(settings):
    settings.ASSETCACHE_TXT_RESOLVER = "tests.test_domains.stub_resolve"
    RECORDS.clear()
    LOOKUPS.clear()
    yield
    RECORDS.clear()


@pytest.fixture
def docs(db, tmp_path) -> Site:
    publish("docs", write_tree(tmp_path / "docs", {"index.html": "<h1>docs</h1>"}))
    return Site.objects.get(subdomain="docs")


def prove(domain: Domain, value: str | None = None) -> None:
    RECORDS[f"_assetcache-challenge.{domain.hostname}"] = ["v=spf1 -all", value or domain.challenge_value]


def served(host: str) -> int:
    runtime.reset()  # what a fresh process would answer, not what this one remembers
    return Client(HTTP_HOST=host).get("/").status_code


# --- verification --------------------------------------------------------------------------------


def test_a_new_domain_is_pending_with_a_token_of_its_own(docs: Site) -> None:
    first = Domain.objects.create(hostname="www.customer.com", site=docs)
    second = Domain.objects.create(hostname="customer.com", site=docs)
    assert (first.state, second.state) == ("pending", "pending")
    assert len(first.verification_token) == 32 and first.verification_token != second.verification_token
    assert first.challenge_name == "_assetcache-challenge.www.customer.com"
    assert first.challenge_value == f"assetcache-verification={first.verification_token}"


def test_an_unverified_domain_is_not_served_and_a_verified_one_is(docs: Site) -> None:
    domain = Domain.objects.create(hostname="www.customer.com", site=docs)
    assert served("www.customer.com") != 200  # not a site host: the project answers (400, not allowed)
    assert b"docs" not in Client(HTTP_HOST="www.customer.com").get("/").content
    prove(domain)
    assert domains.verify(domain) == domains.Outcome("www.customer.com", True)
    domain.refresh_from_db()
    assert domain.state == "verified" and domain.verified_at is not None
    assert served("www.customer.com") == 200
    assert b"".join(Client(HTTP_HOST="www.customer.com").get("/")) == b"<h1>docs</h1>"


def test_verifying_reaches_a_running_process_through_the_change_feed(
    docs: Site, django_capture_on_commit_callbacks
) -> None:
    domain = Domain.objects.create(hostname="www.customer.com", site=docs)
    client = Client(HTTP_HOST="www.customer.com")
    assert b"docs" not in client.get("/").content  # remembered as not a site host
    before = Change.objects.count()
    prove(domain)
    with django_capture_on_commit_callbacks(execute=True):
        domains.verify(domain)
    assert Change.objects.count() == before + 1
    assert b"".join(client.get("/")) == b"<h1>docs</h1>"  # same process, no reset


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        ({}, "no TXT record at _assetcache-challenge.www.customer.com"),
        (
            {"_assetcache-challenge.www.customer.com": ["assetcache-verification=someone-elses"]},
            "the TXT record holds another value at _assetcache-challenge.www.customer.com",
        ),
        (  # the token on the host itself, not on the challenge name
            {"www.customer.com": ["assetcache-verification=TOKEN"]},
            "no TXT record at _assetcache-challenge.www.customer.com",
        ),
    ],
)
def test_a_wrong_or_missing_record_leaves_the_domain_pending(docs: Site, records, reason: str) -> None:
    domain = Domain.objects.create(hostname="www.customer.com", site=docs)
    RECORDS.update({name: [v.replace("TOKEN", domain.verification_token) for v in vs] for name, vs in records.items()})
    assert domains.verify(domain) == domains.Outcome("www.customer.com", False, reason)
    assert Domain.objects.get(pk=domain.pk).state == "pending"
    assert served("www.customer.com") != 200


def test_a_resolver_can_be_passed_in(docs: Site) -> None:
    domain = Domain.objects.create(hostname="www.customer.com", site=docs)
    asked: list[str] = []

    def resolve(name: str) -> list[str]:
        asked.append(name)
        return [domain.challenge_value]

    assert domains.verify(domain, resolve).verified
    assert asked == ["_assetcache-challenge.www.customer.com"] and LOOKUPS == []


def test_the_default_resolver_is_dnspython(settings) -> None:
    settings.ASSETCACHE_TXT_RESOLVER = ""
    assert domains.default_resolver() is domains.dnspython_resolve


def test_trusted_admin_domains_need_no_proof(docs: Site, settings) -> None:
    settings.ASSETCACHE_TRUST_ADMIN_DOMAINS = True
    domain = Domain.objects.create(hostname="www.customer.com", site=docs)
    assert domain.state == "verified" and domain.verified_at is not None
    assert served("www.customer.com") == 200
    assert LOOKUPS == []


# --- the command -----------------------------------------------------------------------------------


def run(*args: str) -> str:
    out = io.StringIO()
    call_command("assetcache_domains", *args, stdout=out)
    return out.getvalue()


def test_command_verifies_every_pending_domain_and_fails_for_those_it_cannot(docs: Site) -> None:
    good = Domain.objects.create(hostname="www.customer.com", site=docs)
    Domain.objects.create(hostname="docs.other.org", site=docs)
    Domain.objects.create(hostname="www.timeout.example", site=docs)
    prove(good)
    out = io.StringIO()
    with pytest.raises(CommandError, match=r"^2 of 3 domains not verified$"):
        call_command("assetcache_domains", "verify", stdout=out)
    assert out.getvalue().splitlines() == [
        "not verified docs.other.org: no TXT record at _assetcache-challenge.docs.other.org",
        "verified www.customer.com",
        "not verified www.timeout.example: no answer from DNS (_assetcache-challenge.www.timeout.example: Timeout)",
    ]
    assert dict(Domain.objects.values_list("hostname", "state")) == {
        "docs.other.org": "pending",
        "www.customer.com": "verified",
        "www.timeout.example": "pending",
    }
    # Verified domains are not looked up again.
    LOOKUPS.clear()
    prove(Domain.objects.get(hostname="docs.other.org"))
    assert (
        run("verify", "docs.other.org", "WWW.Customer.com.") == "verified docs.other.org\nverified www.customer.com\n"
    )
    assert LOOKUPS == ["_assetcache-challenge.docs.other.org"]


def test_command_lists_domains_with_their_records(docs: Site) -> None:
    pending = Domain.objects.create(hostname="www.customer.com", site=docs)
    Domain.objects.create(hostname="customer.com", site=docs, state="verified")
    assert run("list").splitlines() == [
        "customer.com  docs  verified",
        f'www.customer.com  docs  pending  _assetcache-challenge.www.customer.com TXT "{pending.challenge_value}"',
    ]


def test_command_with_an_unknown_domain_is_one_line_and_changes_nothing(docs: Site) -> None:
    domain = Domain.objects.create(hostname="www.customer.com", site=docs)
    prove(domain)
    with pytest.raises(CommandError, match=r"^no such domain: nope\.example$"):
        run("verify", "www.customer.com", "nope.example")
    assert Domain.objects.get(pk=domain.pk).state == "pending"
    assert LOOKUPS == []


def test_command_without_a_resolver_is_one_line(docs: Site, settings) -> None:
    settings.ASSETCACHE_TXT_RESOLVER = "tests.no_such_module.resolve"
    Domain.objects.create(hostname="www.customer.com", site=docs)
    with pytest.raises(CommandError, match=r"^ASSETCACHE_TXT_RESOLVER = 'tests.no_such_module.resolve' cannot be"):
        run("verify")


# --- the admin action ------------------------------------------------------------------------------


def test_admin_action_verifies_the_selected_domains(docs: Site) -> None:
    good = Domain.objects.create(hostname="www.customer.com", site=docs)
    bad = Domain.objects.create(hostname="docs.other.org", site=docs)
    prove(good)
    client = Client()
    client.force_login(User.objects.create_superuser("admin", "admin@example.com", "pw"))
    changelist = reverse("admin:django_assetcache_domain_changelist")
    page = client.get(changelist)
    assert page.status_code == 200
    assert f'_assetcache-challenge.www.customer.com TXT "{good.challenge_value}"' in page.text
    response = client.post(changelist, {"action": "verify_domains", "_selected_action": [good.pk, bad.pk]}, follow=True)
    assert response.status_code == 200
    texts = [str(message) for message in response.context["messages"]]
    assert texts == [
        "Verified: www.customer.com.",
        "Not verified: docs.other.org: no TXT record at _assetcache-challenge.docs.other.org.",
    ]
    assert dict(Domain.objects.values_list("hostname", "state")) == {
        "docs.other.org": "pending",
        "www.customer.com": "verified",
    }


# --- the TLS-ask endpoint ------------------------------------------------------------------------------


@pytest.fixture
def hosts(docs: Site, tmp_path) -> dict[str, Site]:
    publish("old", write_tree(tmp_path / "old", {"index.html": "old"}))
    Site.objects.filter(subdomain="old").update(is_active=False)
    Domain.objects.create(hostname="www.customer.com", site=docs, state="verified")
    Domain.objects.create(hostname="pending.customer.com", site=docs)
    Domain.objects.create(hostname="old.customer.com", site=Site.objects.get(subdomain="old"), state="verified")
    runtime.reset()
    return {"docs": docs}


def ask(domain: str | None, host: str = "testserver") -> tuple[int, bytes]:
    query = {} if domain is None else {"domain": domain}
    response = Client(HTTP_HOST=host).get("/assetcache/tls-ask", query)
    return response.status_code, response.content


@pytest.mark.parametrize(
    ("domain", "status"),
    [
        ("docs.sites.test", 200),  # a site's subdomain
        ("DOCS.sites.test.", 200),  # spelt another way
        ("www.customer.com", 200),  # a verified custom domain
        ("pending.customer.com", 404),  # not verified yet
        ("old.sites.test", 404),  # an inactive site
        ("old.customer.com", 404),  # the verified domain of an inactive site
        ("nosuch.sites.test", 404),  # no such site
        ("a.docs.sites.test", 404),  # two labels deep
        ("sites.test", 404),  # the sites' domain itself
        ("testserver", 404),  # the project's own host
        ("example.org", 404),  # anything else
        ("docs.sites.test:443", 404),  # not a bare host name
        ("[::1]", 404),
        ("docs sites test", 404),
        ("x" * 300 + ".example", 404),
    ],
)
def test_tls_ask_answers_for_every_kind_of_host(hosts, domain: str, status: int) -> None:
    assert ask(domain)[0] == status


@pytest.mark.parametrize("domain", [None, ""])
def test_tls_ask_without_a_domain_is_400(hosts, domain: str | None) -> None:
    assert ask(domain) == (400, b"Give the host name as ?domain=.\n")


def test_tls_ask_costs_no_query_on_repeat(hosts, django_assert_num_queries) -> None:
    for domain in ("www.customer.com", "docs.sites.test", "example.org"):
        ask(domain)
    with django_assert_num_queries(0):
        assert [ask(d)[0] for d in ("www.customer.com", "docs.sites.test", "example.org")] == [200, 200, 404]


def test_tls_ask_follows_changes(hosts, django_capture_on_commit_callbacks) -> None:
    assert ask("pending.customer.com")[0] == 404
    domain = Domain.objects.get(hostname="pending.customer.com")
    prove(domain)
    with django_capture_on_commit_callbacks(execute=True):
        domains.verify(domain)
    assert ask("pending.customer.com")[0] == 200
    assert ask("docs.sites.test")[0] == 200
    with django_capture_on_commit_callbacks(execute=True):
        Site.objects.get(subdomain="docs").delete()
    assert ask("docs.sites.test")[0] == 404


def test_tls_ask_is_never_answered_on_a_site_host(hosts, tmp_path, django_capture_on_commit_callbacks) -> None:
    """Under a site host the path belongs to the site: its file, or its 404."""
    status, body = ask("docs.sites.test", host="docs.sites.test")
    assert status == 404 and b"A site answers" not in body
    with django_capture_on_commit_callbacks(execute=True):
        publish("docs", write_tree(tmp_path / "v2", {"index.html": "x", "assetcache/tls-ask": "a file of the site"}))
    assert ask("docs.sites.test", host="docs.sites.test") == (200, b"a file of the site")
    assert ask("docs.sites.test", host="www.customer.com") == (200, b"a file of the site")


@pytest.mark.parametrize("method", ["post", "put", "delete"])
def test_tls_ask_only_reads(hosts, method: str) -> None:
    response = getattr(Client(), method)("/assetcache/tls-ask?domain=docs.sites.test")
    assert response.status_code == 405


# --- the migration ---------------------------------------------------------------------------------


def test_the_migration_keeps_existing_domains_served(transactional_db) -> None:
    """Domains that existed before verification stay verified, each with its own token."""
    executor = MigrationExecutor(connection)
    (after,) = [key for key in executor.loader.disk_migrations if key[1].endswith("_domain_verification")]
    before = [dep for dep in executor.loader.disk_migrations[after].dependencies if dep[0] == "django_assetcache"]
    after = [after]
    executor.migrate(before)
    apps = executor.loader.project_state(before).apps
    site = apps.get_model("django_assetcache", "Site").objects.create(subdomain="docs")
    for hostname in ("www.customer.com", "customer.com"):
        apps.get_model("django_assetcache", "Domain").objects.create(hostname=hostname, site=site)
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(after)
    executor = MigrationExecutor(connection)
    executor.migrate(executor.loader.graph.leaf_nodes())
    rows = list(Domain.objects.values_list("state", "verification_token"))
    assert [state for state, _ in rows] == ["verified", "verified"]
    assert len({token for _, token in rows}) == 2


# --- dnspython, at its boundary (no network) ---------------------------------------------------------


class FakeTXT:
    def __init__(self, *strings: bytes) -> None:
        self.strings = strings


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (
            [FakeTXT(b"assetcache-verification=", b"abc"), FakeTXT(b"v=spf1 -all")],
            ["assetcache-verification=abc", "v=spf1 -all"],
        ),
        (dns.resolver.NXDOMAIN(), []),
        (dns.resolver.NoAnswer(), []),
        (dns.exception.Timeout(), domains.LookupFailed),
    ],
)
def test_dnspython_resolve(monkeypatch: pytest.MonkeyPatch, outcome, expected) -> None:
    asked: list[tuple[str, str]] = []

    def resolve(name: str, kind: str, lifetime: float) -> list[FakeTXT]:
        asked.append((name, kind))
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    monkeypatch.setattr(dns.resolver, "resolve", resolve)
    if isinstance(expected, list):
        assert domains.dnspython_resolve("_assetcache-challenge.a.example") == expected
    else:
        with pytest.raises(expected, match=r"^_assetcache-challenge\.a\.example: "):
            domains.dnspython_resolve("_assetcache-challenge.a.example")
    assert asked == [("_assetcache-challenge.a.example", "TXT")]


def test_without_dnspython_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "dns.resolver", None)
    with pytest.raises(domains.ResolverUnavailable, match=r'pip install "django-assetcache\[dns\]"'):
        domains.dnspython_resolve("_assetcache-challenge.a.example")
