"""Deploy tokens: made with a secret shown once, found by its hash.

The secret is 32 random bytes, so a plain SHA-256 of it is enough to keep:
slow password hashing (PBKDF2, …) exists to make guessing a low-entropy
password expensive, and no one can guess 256 random bits; it would only
add its cost to every API request. The row is found by the hash, and the
hash compared again in constant time: what the index lookup's timing
could reveal is a part of the hash, which tells nothing of the secret.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from datetime import timedelta
from typing import Any

from django.db import transaction
from django.utils import timezone

from .models import DeployToken, Site, sites_named

#: Starts every secret, so a leaked one is recognisable (secret scanners).
SECRET_PREFIX = "acd_"
#: How often a token's last use is written (the admin shows it to the minute).
LAST_USED_EVERY = timedelta(minutes=1)


class TokenError(Exception):
    """Bad input to a token command: nothing was changed."""


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8", "replace")).hexdigest()


def new_secret() -> str:
    return SECRET_PREFIX + secrets.token_urlsafe(32)


def create_token(
    name: str,
    subdomains: Iterable[str] = (),
    *,
    all_sites: bool = False,
    may_create_sites: bool = False,
    expires_in: timedelta | None = None,
    created_by: Any = None,
) -> tuple[DeployToken, str]:
    """Make a token; return it and its secret, which is kept nowhere."""
    name = name.strip()
    if not name:
        raise TokenError("a token needs a name")
    wanted = list(subdomains)
    if not wanted and not all_sites:
        raise TokenError("name the sites the token may deploy (--site SUB) or give --all-sites")
    sites, unknown = sites_named(wanted)
    if unknown:
        raise TokenError(f"no such site: {', '.join(unknown)}")
    if DeployToken.objects.filter(name=name).exists():
        raise TokenError(f"a token named {name!r} exists already")
    secret = new_secret()
    with transaction.atomic():
        token = DeployToken.objects.create(
            name=name,
            secret_hash=hash_secret(secret),
            all_sites=all_sites,
            may_create_sites=may_create_sites,
            expires_at=timezone.now() + expires_in if expires_in else None,
            created_by=created_by,
        )
        token.sites.set(sites)
    return token, secret


def set_new_secret(token: DeployToken) -> str:
    """Give an unsaved token (the admin's) its secret hash; return the secret."""
    secret = new_secret()
    token.secret_hash = hash_secret(secret)
    return secret


def authenticate(secret: str) -> DeployToken | None:
    """The active token whose secret this is, its use recorded; else None."""
    if not secret.startswith(SECRET_PREFIX):
        return None
    digest = hash_secret(secret)
    token = DeployToken.objects.filter(secret_hash=digest).first()
    if token is None or not hmac.compare_digest(token.secret_hash, digest) or not token.active:
        return None
    now = timezone.now()
    # Once a minute at most: a deploy's uploads come in parallel, and a
    # write per request would queue them behind each other (SQLite).
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_EVERY:
        token.last_used_at = now
        DeployToken.objects.filter(pk=token.pk).update(last_used_at=now)
    return token


def may_deploy(token: DeployToken, site: Site) -> bool:
    return token.all_sites or token.sites.filter(pk=site.pk).exists()


def revoke_token(name: str) -> DeployToken:
    """Revoke a token at once: the next request that gives it is refused."""
    token = DeployToken.objects.filter(name=name.strip()).first()
    if token is None:
        raise TokenError(f"no token named {name!r}")
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        DeployToken.objects.filter(pk=token.pk).update(revoked_at=token.revoked_at)
    return token
