"""Change rows of kind ``access``: who may see private sites changed.

A user saved (deactivated, made superuser or staff…) or deleted, a user's
groups or permissions, a group's permissions or a site's allowed users and
groups changed, a group deleted, a share link
created, revoked or deleted: every process forgets what it remembered of
who may see what (``AccessGate.forget``), within its poll interval.
Connected when ``AppConfig.ready`` imports this module.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db.models.signals import m2m_changed, post_delete, post_save

from .models import Change, ShareLink, Site, record_change

User = get_user_model()
_M2M_ACTIONS = frozenset({"post_add", "post_remove", "post_clear"})


def _record(site_id: int | None) -> None:
    record_change(site_id, Change.Kind.ACCESS, [])


def _user_saved(sender: Any, instance: Any, **kwargs: Any) -> None:
    update_fields = kwargs.get("update_fields")
    if (
        kwargs.get("raw")
        or kwargs.get("created")
        or (update_fields is not None and set(update_fields) <= {"last_login"})
    ):
        return  # a sign-in, or a new user: nobody's access shrank
    _record(None)


def _removed(sender: Any, instance: Any, **kwargs: Any) -> None:
    _record(None)


def _memberships(sender: Any, instance: Any, action: str, **kwargs: Any) -> None:
    if action in _M2M_ACTIONS:
        _record(instance.pk if isinstance(instance, Site) else None)


def _share_link_changed(sender: Any, instance: ShareLink, **kwargs: Any) -> None:
    if not kwargs.get("raw"):
        _record(instance.site_id)


post_save.connect(_user_saved, sender=User, dispatch_uid="assetcache_access_user_saved")
post_delete.connect(_removed, sender=User, dispatch_uid="assetcache_access_user_deleted")
post_delete.connect(_removed, sender=Group, dispatch_uid="assetcache_access_group_deleted")
# Permissions too: staff who may change sites see private previews.
_MEMBERSHIPS = (
    User.groups.through,
    User.user_permissions.through,
    Group.permissions.through,
    Site.allowed_users.through,
    Site.allowed_groups.through,
)
for _through in _MEMBERSHIPS:
    m2m_changed.connect(_memberships, sender=_through, dispatch_uid=f"assetcache_access_{_through.__name__}")
post_save.connect(_share_link_changed, sender=ShareLink, dispatch_uid="assetcache_access_link_saved")
post_delete.connect(_share_link_changed, sender=ShareLink, dispatch_uid="assetcache_access_link_deleted")
