"""Validators of model fields and the names they use: subdomains, host
names, header values, document names, deployment keys and aliases."""

from __future__ import annotations

import re
import secrets

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from . import conf

DNS_LABEL_RE = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
HOSTNAME_RE = re.compile(
    r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+$"
)
#: A deployment key: 8 characters of base32's lower-case alphabet (40 bits).
DEPLOYMENT_KEY_ALPHABET = "abcdefghijklmnopqrstuvwxyz234567"
DEPLOYMENT_KEY_RE = re.compile(r"^[a-z2-7]{8}$")
#: What separates a deployment key or alias from the subdomain in a preview host.
PREVIEW_SEPARATOR = "--"


def new_deployment_key() -> str:
    return "".join(secrets.choice(DEPLOYMENT_KEY_ALPHABET) for _ in range(8))


def validate_subdomain(value: str) -> None:
    if not DNS_LABEL_RE.fullmatch(value or ""):
        raise ValidationError(
            _(
                "“%(value)s” is not a valid subdomain: use 1 to 63 lower-case letters, "
                "digits or hyphens, not starting or ending with a hyphen."
            ),
            code="invalid_subdomain",
            params={"value": value},
        )
    if PREVIEW_SEPARATOR in value:
        raise ValidationError(
            _("“%(value)s” contains “--”, which is kept for preview hosts (<deployment>--<subdomain>)."),
            code="preview_separator",
            params={"value": value},
        )
    if value in conf.get().RESERVED_SUBDOMAINS:
        raise ValidationError(
            _("“%(value)s” is reserved and cannot be used as a subdomain."),
            code="reserved_subdomain",
            params={"value": value},
        )


def validate_hostname(value: str) -> None:
    if not HOSTNAME_RE.fullmatch(value or ""):
        raise ValidationError(
            _("“%(value)s” is not a valid lower-case host name such as docs.example.com."),
            code="invalid_hostname",
            params={"value": value},
        )
    domain = conf.get().DOMAIN
    if value == domain or value.endswith("." + domain):
        raise ValidationError(
            _("Host names under %(domain)s are already served by subdomain."),
            code="hostname_in_domain",
            params={"domain": domain},
        )


def validate_header_value(value: str) -> None:
    if any(not (" " <= ch <= "~") for ch in value):
        raise ValidationError(
            _("Use printable ASCII characters only (it is sent as an HTTP header)."),
            code="invalid_header_value",
        )


def validate_document_name(value: str) -> None:
    if value and ("/" in value or "\\" in value or value in {".", ".."} or "\x00" in value):
        raise ValidationError(
            _("Give a plain file name such as index.html, without slashes."),
            code="invalid_document_name",
        )


def validate_alias(value: str) -> None:
    if not DNS_LABEL_RE.fullmatch(value or "") or PREVIEW_SEPARATOR in value:
        raise ValidationError(
            _(
                "“%(value)s” is not a valid alias: use lower-case letters, digits or single hyphens, "
                "not starting or ending with a hyphen."
            ),
            code="invalid_alias",
            params={"value": value},
        )
