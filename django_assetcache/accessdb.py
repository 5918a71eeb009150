"""What the database says about private sites: who may see one, tickets
used, share links, passwords. The access gate (``access.py``) asks it only
what it has not remembered; the ticket view, the admin and
``assetcache_share`` use the rest.
"""

from __future__ import annotations

import datetime

from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.hashers import check_password, make_password
from django.db import DatabaseError, IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from . import conf
from .access import SHARE_PATH, make_share_token
from .cache import Unavailable
from .hosts import PRIVATE_PREVIEWS
from .models import ShareLink, Site, UsedTicket, Visibility

#: The permission whose staff holders see a public site's private previews.
CHANGE_SITE = "django_assetcache.change_site"


def user_may_see(user_id: int, site_id: int, visibility: str) -> bool:
    """Whether an active user may see a host of ``visibility``: any active
    user a login site, superusers and the users and groups a restricted
    site allows that one; a private preview (PRIVATE_PREVIEWS) those too,
    and staff who may change sites; nobody signs in to a password site."""
    user = get_user_model().objects.filter(pk=user_id, is_active=True).first()
    if user is None:
        return False
    if visibility == Visibility.LOGIN:
        return True
    if visibility != Visibility.RESTRICTED and visibility != PRIVATE_PREVIEWS:
        return False
    if user.is_superuser:
        return True
    allowed = Q(allowed_users=user_id) | Q(allowed_groups__user=user_id)
    if Site.objects.filter(allowed, pk=site_id).exists():
        return True
    # Staff who may change sites could add themselves to the allowed users:
    # refusing them a preview would protect nothing.
    return visibility == PRIVATE_PREVIEWS and user.is_staff and user.has_perm(CHANGE_SITE)


class DatabaseAccess:
    """The access gate's backend; a database error is ``Unavailable``."""

    def __init__(self) -> None:
        self.queries = 0

    def may_see(self, user_id: int, site_id: int, visibility: str) -> bool:
        self.queries += 1
        try:
            return user_may_see(user_id, site_id, visibility)
        except DatabaseError as exc:
            raise Unavailable(str(exc)) from exc

    def share_link_expiry(self, link_id: int, site_id: int) -> float | None:
        self.queries += 1
        links = ShareLink.objects.filter(pk=link_id, site_id=site_id, revoked_at__isnull=True)
        try:
            expiry = links.filter(expires_at__gt=timezone.now()).values_list("expires_at", flat=True).first()
        except DatabaseError as exc:
            raise Unavailable(str(exc)) from exc
        return None if expiry is None else expiry.timestamp()

    def use_ticket(self, ticket_id: str, expires: float) -> bool:
        """Mark a ticket used; False when it was already (a replay)."""
        self.queries += 1
        now = timezone.now()
        try:
            with transaction.atomic():
                UsedTicket.objects.filter(expires_at__lt=now).delete()
            with transaction.atomic():
                UsedTicket.objects.create(
                    id=ticket_id, expires_at=datetime.datetime.fromtimestamp(expires, datetime.UTC)
                )
        except IntegrityError:
            return False
        except DatabaseError as exc:
            raise Unavailable(str(exc)) from exc
        return True

    def password_matches(self, site_id: int, password: str) -> bool:
        self.queries += 1
        try:
            stored = Site.objects.filter(pk=site_id).values_list("password", flat=True).first()
        except DatabaseError as exc:
            raise Unavailable(str(exc)) from exc
        return stored is not None and bool(stored) and check_password(password, stored)


def hash_site_password(site: Site, password: str) -> None:
    """Set a site's password, hashed with Django's hashers ("" clears it), unsaved."""
    site.password = make_password(password) if password else ""


def set_site_password(site: Site, password: str) -> None:
    """Store a site's password hashed; "" clears it."""
    hash_site_password(site, password)
    site.save(update_fields=["password"])


def share_url(link: ShareLink) -> str:
    """The link to give: the site's address, then its share path and token."""
    base = conf.get().SITE_URL.format(host=link.site.host).rstrip("/")
    return f"{base}{SHARE_PATH}?token={make_share_token(link.pk, link.site_id)}"


def create_share_link(
    site: Site, expires_in: datetime.timedelta, note: str = "", created_by: AbstractBaseUser | None = None
) -> ShareLink:
    link = ShareLink(site=site, note=note, expires_at=timezone.now() + expires_in)
    if created_by is not None and created_by.pk is not None:
        link.created_by_id = created_by.pk
    link.save()
    return link


def revoke_share_link(link: ShareLink) -> None:
    if link.revoked_at is None:
        link.revoked_at = timezone.now()
        link.save(update_fields=["revoked_at"])
