"""The admin's custom domains: their DNS proof of control, and verifying it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils.html import format_html
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from ..domains import ResolverUnavailable, verify_all
from ..models import Domain
from ..progress import first_few

if TYPE_CHECKING:
    DomainAdminBase = admin.ModelAdmin[Domain]
else:  # Django's classes take no type arguments at run time.
    DomainAdminBase = admin.ModelAdmin


@admin.register(Domain)
class DomainAdmin(DomainAdminBase):
    list_display = ["hostname", "site", "state", "challenge_record", "verified_at"]
    list_filter = ["state"]
    search_fields = ["hostname", "site__subdomain"]
    list_select_related = ["site"]
    readonly_fields = ["state", "challenge_record", "verified_at"]
    actions = ["verify_domains"]

    @admin.display(description=_("DNS record that proves control"))
    def challenge_record(self, domain: Domain) -> str:
        if not domain.pk:
            return "—"
        return format_html('{} TXT "{}"', domain.challenge_name, domain.challenge_value)

    @admin.action(description=_("Verify the selected domains (look up their DNS TXT record)"))
    def verify_domains(self, request: HttpRequest, queryset: QuerySet[Domain]) -> None:
        try:
            outcomes = verify_all(queryset)
        except ResolverUnavailable as exc:
            self.message_user(request, str(exc), messages.ERROR)
            return
        verified = [outcome.hostname for outcome in outcomes if outcome.verified]
        if verified:
            self.message_user(
                request, gettext("Verified: %(hosts)s.") % {"hosts": first_few(verified)}, messages.SUCCESS
            )
        for outcome in outcomes:
            if not outcome.verified:
                self.message_user(
                    request,
                    gettext("Not verified: %(host)s: %(reason)s.")
                    % {"host": outcome.hostname, "reason": outcome.reason},
                    messages.WARNING,
                )
