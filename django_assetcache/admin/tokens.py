"""The admin of deploy tokens: the secret is shown once, in a message, when
the token is added; the list shows when each was last used."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..deploytokens import set_new_secret
from ..models import DeployToken

if TYPE_CHECKING:
    DeployTokenAdminBase = admin.ModelAdmin[DeployToken]
else:  # Django's classes take no type arguments at run time.
    DeployTokenAdminBase = admin.ModelAdmin


@admin.register(DeployToken)
class DeployTokenAdmin(DeployTokenAdminBase):
    list_display = ["name", "all_sites", "may_create_sites", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["all_sites", "may_create_sites"]
    search_fields = ["name"]
    filter_horizontal = ["sites"]
    fields = [
        "name",
        "sites",
        "all_sites",
        "may_create_sites",
        "expires_at",
        "revoked_at",
        "created_by",
        "last_used_at",
    ]
    readonly_fields = ["created_by", "last_used_at"]
    actions = ["revoke"]

    def save_model(self, request: HttpRequest, obj: DeployToken, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        secret = set_new_secret(obj)
        obj.created_by = request.user if request.user.is_authenticated else None
        super().save_model(request, obj, form, change)
        message = gettext("The secret of token %(name)s, shown this once: %(secret)s")
        self.message_user(request, message % {"name": obj.name, "secret": secret}, messages.WARNING)

    @admin.action(description=_("Revoke the selected tokens"))
    def revoke(self, request: HttpRequest, queryset: QuerySet[DeployToken]) -> None:
        count = queryset.filter(revoked_at__isnull=True).update(revoked_at=timezone.now())
        self.message_user(request, gettext("%(count)d tokens revoked.") % {"count": count})
