from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...domains import ResolverUnavailable, verify_all
from ...models import Domain
from ...progress import plural


class Command(BaseCommand):
    help = (
        "List custom domains with their state and the TXT record that proves control of each, or verify "
        "pending domains by looking that record up."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="{list,verify}")
        actions.add_parser("list", help="Every domain, its site, its state and its challenge record.")
        verify = actions.add_parser("verify", help="Verify the named domains, or every pending one.")
        verify.add_argument("hosts", nargs="*", metavar="HOST")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["action"] == "list":
            self._list()
        else:
            self._verify(options["hosts"])

    def _list(self) -> None:
        for domain in Domain.objects.select_related("site"):
            line = f"{domain.hostname}  {domain.site.subdomain}  {domain.state}"
            if domain.state == Domain.State.PENDING:
                line += f'  {domain.challenge_name} TXT "{domain.challenge_value}"'
            self.stdout.write(line)

    def _verify(self, hosts: list[str]) -> None:
        names = [host.lower().rstrip(".") for host in hosts]
        if names:
            domains = list(Domain.objects.filter(hostname__in=names))
            unknown = sorted(set(names) - {domain.hostname for domain in domains})
            if unknown:
                raise CommandError(f"no such domain: {', '.join(unknown)}")
        else:
            domains = list(Domain.objects.filter(state=Domain.State.PENDING))
        try:
            outcomes = verify_all(domains)
        except ResolverUnavailable as exc:
            raise CommandError(str(exc)) from exc
        for outcome in outcomes:
            if outcome.verified:
                self.stdout.write(f"verified {outcome.hostname}")
            else:
                self.stdout.write(f"not verified {outcome.hostname}: {outcome.reason}")
        failed = sum(not outcome.verified for outcome in outcomes)
        if failed:
            raise CommandError(f"{failed} of {plural(len(outcomes), 'domain')} not verified")
