"""Models: validation of subdomains and host names, and the change feed.

Every save or delete of a Site or a Domain bumps the site's generation and
appends exactly one Change, in the same transaction as the edit.
"""

from __future__ import annotations

import io

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.db import IntegrityError, transaction

from django_assetcache.models import (
    MAX_CHANGE_PATHS,
    Change,
    Domain,
    Site,
    record_change,
    validate_hostname,
    validate_subdomain,
)

pytestmark = pytest.mark.django_db


def changes() -> list[tuple[int | None, str, list[str] | None]]:
    return list(Change.objects.order_by("id").values_list("site_id", "kind", "paths"))


def generation(site: Site) -> int:
    return Site.objects.values_list("generation", flat=True).get(pk=site.pk)


def error_codes(exc: pytest.ExceptionInfo[ValidationError], field: str) -> list[str]:
    return [error.code for error in exc.value.error_dict[field]]  # type: ignore[misc]


# --- subdomains ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["docs", "a", "0", "a-b", "a-b-c", "x1-2y", "123", "a" * 63, "a-" * 31 + "b"],
)
def test_valid_subdomains_pass_full_clean(value: str) -> None:
    Site(subdomain=value).full_clean()
    validate_subdomain(value)


@pytest.mark.parametrize(
    "value",
    [
        "Docs",
        "DOCS",
        "-docs",
        "docs-",
        "-",
        "do_cs",
        "do cs",
        "docs.example",
        "dócs",
        "docs\n",
        "a" * 64,
    ],
)
def test_invalid_subdomains_are_rejected(value: str) -> None:
    with pytest.raises(ValidationError) as exc:
        validate_subdomain(value)
    assert exc.value.code == "invalid_subdomain"
    with pytest.raises(ValidationError) as exc:
        Site(subdomain=value).full_clean()
    assert "subdomain" in exc.value.error_dict


@pytest.mark.parametrize("value", ["a--b", "staging--docs", "a" + "-" * 61 + "b"])
def test_subdomains_with_a_double_hyphen_are_kept_for_previews(value: str) -> None:
    """``<deployment>--<subdomain>`` names a preview host: no site may be named so."""
    with pytest.raises(ValidationError) as exc:
        validate_subdomain(value)
    assert exc.value.code == "preview_separator"
    assert "kept for preview hosts" in exc.value.messages[0]
    with pytest.raises(ValidationError) as exc:
        Site(subdomain=value).full_clean()
    assert "subdomain" in exc.value.message_dict


def test_empty_subdomain_is_rejected() -> None:
    with pytest.raises(ValidationError) as exc:
        validate_subdomain("")
    assert exc.value.code == "invalid_subdomain"
    with pytest.raises(ValidationError) as exc:
        Site(subdomain="").full_clean()
    assert "subdomain" in exc.value.error_dict


def test_subdomain_of_64_characters_fails_length_and_label_checks() -> None:
    with pytest.raises(ValidationError) as exc:
        Site(subdomain="a" * 64).full_clean()
    codes = error_codes(exc, "subdomain")
    assert "max_length" in codes
    assert "invalid_subdomain" in codes


@pytest.mark.parametrize("value", ["www", "admin", "static", "media", "api"])
def test_reserved_subdomains_are_rejected(value: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Site(subdomain=value).full_clean()
    assert error_codes(exc, "subdomain") == ["reserved_subdomain"]
    assert value in exc.value.messages[0]


def test_reserved_subdomains_come_from_settings(settings) -> None:
    settings.ASSETCACHE_RESERVED_SUBDOMAINS = ["intranet"]
    with pytest.raises(ValidationError) as exc:
        Site(subdomain="intranet").full_clean()
    assert error_codes(exc, "subdomain") == ["reserved_subdomain"]
    Site(subdomain="www").full_clean()  # no longer reserved


def test_subdomain_is_unique() -> None:
    Site.objects.create(subdomain="docs")
    with pytest.raises(ValidationError) as exc:
        Site(subdomain="docs").full_clean()
    assert error_codes(exc, "subdomain") == ["unique"]
    with pytest.raises(IntegrityError), transaction.atomic():
        Site.objects.create(subdomain="docs")
    assert Site.objects.count() == 1


def test_save_lower_cases_the_subdomain_so_case_cannot_dodge_uniqueness() -> None:
    site = Site.objects.create(subdomain="Blog")
    assert Site.objects.get(pk=site.pk).subdomain == "blog"
    with pytest.raises(IntegrityError), transaction.atomic():
        Site.objects.create(subdomain="BLOG")
    assert Site.objects.count() == 1


def test_site_defaults_host_and_url(settings) -> None:
    site = Site.objects.create(subdomain="docs")
    assert (site.index_document, site.error_document, site.is_active) == (
        "index.html",
        "404.html",
        True,
    )
    assert site.host == "docs.sites.test"
    assert site.url == "https://docs.sites.test/"
    assert str(site) == "docs"
    settings.ASSETCACHE_SITE_URL = "http://{host}:8000/"
    assert site.url == "http://docs.sites.test:8000/"


@pytest.mark.parametrize("value", ["a/b.html", "..", ".", "a\\b", "x\x00"])
def test_document_names_must_be_plain_file_names(value: str) -> None:
    with pytest.raises(ValidationError) as exc:
        Site(subdomain="docs", index_document=value).full_clean()
    assert error_codes(exc, "index_document") == ["invalid_document_name"]


# --- host names ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    ["docs.example.com", "a.b", "x-1.example.org", "a" * 63 + ".com", "sites.test.example.com"],
)
def test_valid_hostnames(value: str) -> None:
    validate_hostname(value)
    site = Site.objects.create(subdomain="docs")
    Domain(hostname=value, site=site).full_clean()


@pytest.mark.parametrize(
    "value",
    [
        "",
        "localhost",
        "Docs.Example.com",
        "docs..example.com",
        "-docs.example.com",
        "docs-.example.com",
        "docs.example.com.",
        ".example.com",
        "docs_1.example.com",
        "docs.example.com/x",
        "docs.example.com:80",
        "docs.example.com\n",
        "a" * 64 + ".com",
        ".".join(["a" * 63] * 4) + ".com",  # 259 characters
    ],
)
def test_invalid_hostnames(value: str) -> None:
    with pytest.raises(ValidationError) as exc:
        validate_hostname(value)
    assert exc.value.code == "invalid_hostname"


@pytest.mark.parametrize("value", ["sites.test", "docs.sites.test", "a.b.sites.test"])
def test_hostnames_under_the_site_domain_are_rejected(value: str) -> None:
    with pytest.raises(ValidationError) as exc:
        validate_hostname(value)
    assert exc.value.code == "hostname_in_domain"


def test_domain_full_clean_reports_the_hostname_field() -> None:
    site = Site.objects.create(subdomain="docs")
    with pytest.raises(ValidationError) as exc:
        Domain(hostname="not a host", site=site).full_clean()
    assert error_codes(exc, "hostname") == ["invalid_hostname"]


def test_domain_hostname_is_unique_and_normalised_on_save() -> None:
    site = Site.objects.create(subdomain="docs")
    domain = Domain.objects.create(hostname="Docs.Example.COM.", site=site)
    assert Domain.objects.get(pk=domain.pk).hostname == "docs.example.com"
    with pytest.raises(ValidationError) as exc:
        Domain(hostname="docs.example.com", site=site).full_clean()
    assert error_codes(exc, "hostname") == ["unique"]
    with pytest.raises(IntegrityError), transaction.atomic():
        Domain.objects.create(hostname="DOCS.example.com", site=site)
    assert Domain.objects.count() == 1


# --- the change feed ----------------------------------------------------------------------


def test_creating_a_site_bumps_generation_and_writes_one_settings_change() -> None:
    site = Site.objects.create(subdomain="docs")
    assert generation(site) == 1
    assert changes() == [(site.pk, "settings", None)]


def test_every_save_of_a_site_bumps_generation_once() -> None:
    site = Site.objects.create(subdomain="docs")
    site.name = "Documentation"
    site.save()
    assert generation(site) == 2
    site.is_active = False
    site.save()
    assert generation(site) == 3
    assert Site.objects.get(pk=site.pk).name == "Documentation"
    assert changes() == [(site.pk, "settings", None)] * 3


def test_a_stale_instance_cannot_move_generation_backwards() -> None:
    site = Site.objects.create(subdomain="docs")
    stale = Site.objects.get(pk=site.pk)
    record_change(site.pk, Change.Kind.PUBLISH, ["/index.html"])
    record_change(site.pk, Change.Kind.PUBLISH, ["/index.html"])
    assert generation(site) == 3
    stale.name = "edited elsewhere"
    stale.save()
    assert generation(site) == 4


def test_deleting_a_site_writes_one_delete_change() -> None:
    site = Site.objects.create(subdomain="docs")
    site_id = site.pk
    Change.objects.all().delete()
    site.delete()
    assert not Site.objects.exists()
    assert changes() == [(site_id, "delete", None)]


def test_domain_save_and_delete_each_bump_generation_and_write_a_domains_change() -> None:
    site = Site.objects.create(subdomain="docs")
    Change.objects.all().delete()
    domain = Domain.objects.create(hostname="docs.example.com", site=site)
    assert generation(site) == 2
    assert changes() == [(site.pk, "domains", None)]
    domain.hostname = "help.example.com"
    domain.save()
    assert generation(site) == 3
    domain.delete()
    assert generation(site) == 4
    assert changes() == [(site.pk, "domains", None)] * 3
    assert not Domain.objects.exists()


def test_moving_a_domain_is_seen_by_the_site_it_lands_on() -> None:
    first = Site.objects.create(subdomain="first")
    second = Site.objects.create(subdomain="second")
    domain = Domain.objects.create(hostname="docs.example.com", site=first)
    Change.objects.all().delete()
    domain.site = second
    domain.save()
    assert changes() == [(second.pk, "domains", None)]
    assert generation(second) == 2


def test_a_rolled_back_save_leaves_no_change() -> None:
    site = Site.objects.create(subdomain="docs")
    before = changes()
    with pytest.raises(RuntimeError), transaction.atomic():
        site.name = "renamed"
        site.save()
        Domain.objects.create(hostname="docs.example.com", site=site)
        assert len(changes()) == len(before) + 2
        raise RuntimeError("roll back")
    assert changes() == before
    assert generation(site) == 1
    assert not Domain.objects.exists()
    assert Site.objects.get(pk=site.pk).name == ""


def test_a_rolled_back_create_leaves_no_site_and_no_change() -> None:
    with pytest.raises(RuntimeError), transaction.atomic():
        Site.objects.create(subdomain="docs")
        raise RuntimeError("roll back")
    assert not Site.objects.exists()
    assert not Change.objects.exists()


class Boom(Exception):
    pass


def _failing_create(*args: object, **kwargs: object) -> Change:
    raise Boom("the change feed is down")


@pytest.mark.django_db(transaction=True)
def test_site_save_and_its_change_commit_together(monkeypatch: pytest.MonkeyPatch) -> None:
    """Outside any transaction, a save whose Change fails is not committed either."""
    site = Site.objects.create(subdomain="docs")
    monkeypatch.setattr(Change.objects, "create", _failing_create)
    with pytest.raises(Boom):
        Site.objects.create(subdomain="blog")
    with pytest.raises(Boom):
        site.name = "renamed"
        site.save()
    with pytest.raises(Boom):
        Domain.objects.create(hostname="docs.example.com", site=site)
    with pytest.raises(Boom):
        site.delete()
    monkeypatch.undo()
    assert list(Site.objects.values_list("subdomain", "name", "generation")) == [("docs", "", 1)]
    assert not Domain.objects.exists()
    assert changes() == [(site.pk, "settings", None)]


def test_record_change_sorts_and_deduplicates_paths() -> None:
    site = Site.objects.create(subdomain="docs")
    change = record_change(site.pk, Change.Kind.PUBLISH, ["/b", "/a", "/b"])
    assert Change.objects.get(pk=change.pk).paths == ["/a", "/b"]
    assert generation(site) == 2


def test_record_change_with_too_many_paths_means_the_whole_site() -> None:
    site = Site.objects.create(subdomain="docs")
    exactly = [f"/{i}" for i in range(MAX_CHANGE_PATHS)]
    assert len(record_change(site.pk, Change.Kind.PUBLISH, exactly).paths) == MAX_CHANGE_PATHS
    over = record_change(site.pk, Change.Kind.PUBLISH, [*exactly, "/one-more"])
    assert Change.objects.get(pk=over.pk).paths is None


def test_record_change_without_site_bumps_nothing() -> None:
    site = Site.objects.create(subdomain="docs")
    change = record_change(None, Change.Kind.PURGE)
    assert (change.site_id, change.kind, change.paths) == (None, "purge", None)
    assert generation(site) == 1


def test_change_ids_increase() -> None:
    site = Site.objects.create(subdomain="docs")
    ids = [record_change(site.pk, Change.Kind.PUBLISH, ["/x"]).pk for _ in range(3)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 3


def test_the_migrations_describe_the_models() -> None:
    """A model change without its migration fails here, not on a user's migrate."""
    out = io.StringIO()
    try:
        call_command("makemigrations", "django_assetcache", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit:
        pytest.fail("models changed without a migration:\n" + out.getvalue())
