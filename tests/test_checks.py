"""System checks: every ASSETCACHE_* setting validated, no storage location
relative to the working directory."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import pytest
from django.core.checks import run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from django_assetcache import conf
from django_assetcache.checks import VALIDATORS, check_locations, check_settings

# Django 6's model checks ask the database whether it supports JSONField,
# and run_checks() runs them with the package's own.
pytestmark = pytest.mark.django_db


def messages(check_id: str) -> list[str]:
    return [message.msg for message in run_checks() if message.id == check_id]


def test_the_test_settings_pass():
    assert [m for m in run_checks() if m.id.startswith("assetcache.E")] == []


def test_every_setting_has_a_validator():
    assert set(VALIDATORS) == {field.name for field in fields(conf.Settings)}


def test_every_default_is_valid(settings):
    for field in fields(conf.Settings):
        setattr(settings, conf.PREFIX + field.name, getattr(conf.Settings(), field.name))
    settings.ASSETCACHE_SNAPSHOT_PATH = ""
    assert check_settings() == []


BAD_VALUES = [
    ("INVALIDATION", "redsi", "one of 'database', 'local', 'postgres' or 'redis'"),
    ("INVALIDATION", None, "one of 'database'"),
    ("MEMORY_LIMIT", "64MB", "a number of bytes (an integer >= 1)"),
    ("MEMORY_LIMIT", 0, "a number of bytes"),
    ("MEMORY_LIMIT", 64.5 * 1024, "a number of bytes"),
    ("MEMORY_LIMIT", True, "a number of bytes"),
    ("MEMORY_FILE_LIMIT", -1, "a number of bytes (an integer >= 0)"),
    ("MAX_ENTRIES", "200000", "a number of entries"),
    ("MAX_FILE_SIZE", None, "a number of bytes"),
    ("MAX_SITE_SIZE", [1], "a number of bytes"),
    ("MAX_PATH_LENGTH", 0, "a number of characters"),
    ("DOMAIN", "", "a host name"),
    ("DOMAIN", "sites example.com", "a host name"),
    ("DOMAIN", 42, "a host name"),
    ("SITE_URL", "https://example.com/", "'{host}'"),
    ("STORAGE", "", "a non-empty alias of STORAGES"),
    ("STORAGE", None, "a non-empty alias"),
    ("CACHE_CONTROL", 3600, "a Cache-Control header value"),
    ("IMMUTABLE_CACHE_CONTROL", None, "a Cache-Control header value"),
    ("IMMUTABLE_PATTERN", "([a-f", "a regular expression"),
    ("IMMUTABLE_PATTERN", 7, "a regular expression"),
    ("CONTENT_TYPES", [".md", "text/markdown"], "None or a dict"),
    ("CONTENT_TYPES", {".md": None}, "None or a dict"),
    ("RESERVED_SUBDOMAINS", "www", "a list or tuple of strings"),
    ("RESERVED_SUBDOMAINS", ["www", 3], "a list or tuple of strings"),
    ("POLL_INTERVAL", 0, "a number of seconds > 0"),
    ("POLL_INTERVAL", "1", "a number of seconds > 0"),
    ("POLL_INTERVAL", float("nan"), "a number of seconds > 0"),
    ("REDIS_URL", "127.0.0.1:6379", "redis://"),
    ("CHANGE_RETENTION", -1, "a number of seconds >= 0"),
    ("SNAPSHOT_PATH", 5, "an absolute file path"),
    ("LOCAL_DIR", b"/var/cache", "an absolute directory path"),
    ("DISK_LIMIT", 0, "a fraction of the filesystem below 1"),
    ("DISK_LIMIT", "90%", "a fraction of the filesystem"),
    ("DELETE_DELAY", -5, "a number of seconds >= 0"),
    ("COMPRESSIBLE_TYPES", "text/", "a list or tuple of media type prefixes"),
    ("ACCEL", "Nginx", "None, 'nginx', 'apache' or 'lighttpd'"),
    ("ACCEL", True, "None, 'nginx'"),
    ("ACCEL_PREFIX", "_assetcache_blobs/", "a URL path such as '/_assetcache_blobs/'"),
    ("ACCEL_PREFIX", "/blobs?x=1", "a URL path"),
    ("ACCEL_PREFIX", None, "a URL path"),
]


@pytest.mark.parametrize(("name", "value", "accepts"), BAD_VALUES, ids=[f"{n}={v!r}" for n, v, _ in BAD_VALUES])
def test_a_bad_setting_is_an_error_naming_it_and_what_it_accepts(settings, name, value, accepts):
    """Issue 11 item 17: a setting of the wrong type or value fails
    `manage.py check`, with a message naming the setting and what it accepts."""
    setattr(settings, conf.PREFIX + name, value)
    [message] = messages("assetcache.E001")
    assert message.startswith(f"{conf.PREFIX}{name} = ")
    assert accepts in message


def test_manage_py_check_fails_on_a_bad_setting(settings):
    """Issue 11 item 17: the two settings of the report stop `manage.py check`."""
    settings.ASSETCACHE_INVALIDATION = "redsi"
    settings.ASSETCACHE_MEMORY_LIMIT = "64MB"
    with pytest.raises(SystemCheckError) as raised:
        call_command("check")
    assert "ASSETCACHE_INVALIDATION = 'redsi' is not valid" in str(raised.value)
    assert "ASSETCACHE_MEMORY_LIMIT = '64MB' is not valid" in str(raised.value)


class Hostile:
    """A value whose every operation fails."""

    def __repr__(self) -> str:
        raise RuntimeError("repr")

    def __eq__(self, other: object) -> bool:
        raise RuntimeError("eq")

    def __hash__(self) -> int:
        raise RuntimeError("hash")

    def __bool__(self) -> bool:
        raise RuntimeError("bool")

    def __fspath__(self) -> str:
        raise RuntimeError("fspath")


ODD_VALUES = [None, object(), b"bytes", [], {}, (), float("inf"), float("nan"), -(10**100), 10**100, Hostile()]


@pytest.mark.parametrize("name", sorted(VALIDATORS))
def test_the_setting_check_never_crashes(settings, name):
    """Issue 11 item 17: the check answers for a value of any type."""
    for value in ODD_VALUES:  # one setting's values in one test: the point is "never raises"
        setattr(settings, conf.PREFIX + name, value)
        check_settings()
        check_locations()


# --- item 13: storage locations ------------------------------------------------------


@pytest.mark.parametrize("media_root", ["", "media", "./var/media", Path("media")])
def test_a_relative_media_root_is_an_error(settings, media_root):
    """Issue 11 item 13: blobs, the snapshot and the local tier default to
    MEDIA_ROOT: an empty or relative one is an error."""
    settings.MEDIA_ROOT = media_root
    [message] = messages("assetcache.E002")
    assert message.startswith(f"MEDIA_ROOT = {media_root!r} is empty or relative")
    assert "the blobs" in message and "the snapshot" in message and "the local disk tier" in message


def test_media_root_is_not_needed_when_every_location_is_set(settings, tmp_path):
    settings.MEDIA_ROOT = ""
    settings.STORAGES = {**settings.STORAGES, "assetcache": {"BACKEND": "django.core.files.storage.InMemoryStorage"}}
    settings.ASSETCACHE_SNAPSHOT_PATH = str(tmp_path / "snapshot.bin")
    settings.ASSETCACHE_LOCAL_DIR = str(tmp_path / "local")
    assert messages("assetcache.E002") == []
    settings.ASSETCACHE_LOCAL_DIR = ""
    [message] = messages("assetcache.E002")
    assert "the local disk tier (ASSETCACHE_LOCAL_DIR is not set)" in message
    assert "the blobs" not in message


@pytest.mark.parametrize("name", ["ASSETCACHE_LOCAL_DIR", "ASSETCACHE_SNAPSHOT_PATH"])
@pytest.mark.parametrize("value", ["assetcache", "./var/snapshot.bin", "../cache", Path("relative")])
def test_a_relative_location_is_an_error(settings, name, value):
    """Issue 11 item 13: ASSETCACHE_LOCAL_DIR and ASSETCACHE_SNAPSHOT_PATH
    must not depend on the working directory."""
    setattr(settings, name, value)
    [message] = messages("assetcache.E003")
    assert message == f"{name} = {value!r} is relative, so it names another place in every working directory."


def test_absolute_locations_pass(settings, tmp_path):
    settings.ASSETCACHE_LOCAL_DIR = str(tmp_path / "local")
    settings.ASSETCACHE_SNAPSHOT_PATH = tmp_path / "snapshot.bin"
    assert messages("assetcache.E002") == messages("assetcache.E003") == []
