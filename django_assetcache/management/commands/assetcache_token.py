from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...deploytokens import TokenError, create_token, revoke_token
from ...durations import parse_duration
from ...models import DeployToken


class Command(BaseCommand):
    help = "Make, list and revoke the tokens of the deploy API (docs/deploy-api.md)."

    def add_arguments(self, parser: CommandParser) -> None:
        actions = parser.add_subparsers(dest="action", required=True, metavar="create|list|revoke")
        create = actions.add_parser("create", help="Make a token and print its secret, once.")
        create.add_argument("name", metavar="NAME")
        create.add_argument("--site", action="append", default=[], metavar="SUB", help="A site it may deploy.")
        create.add_argument("--all-sites", action="store_true", help="It may deploy every site.")
        create.add_argument(
            "--create-sites", action="store_true", help="A deploy to a site that does not exist creates it."
        )
        create.add_argument("--expires", metavar="DURATION", help="How long it lasts: 12h, 30d, 2w (default: ever).")
        actions.add_parser("list", help="List the tokens.")
        revoke = actions.add_parser("revoke", help="Revoke a token, at once.")
        revoke.add_argument("name", metavar="NAME")

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            if options["action"] == "create":
                self._create(options)
            elif options["action"] == "revoke":
                token = revoke_token(options["name"])
                self.stdout.write(f"revoked token {token.name}")
            else:
                self._list()
        except TokenError as exc:
            raise CommandError(str(exc)) from exc

    def _create(self, options: dict[str, Any]) -> None:
        expires_in = None
        if options["expires"]:
            try:
                expires_in = parse_duration(options["expires"])
            except ValueError as exc:
                raise CommandError(str(exc)) from exc
            if not expires_in:
                raise CommandError(f"{options['expires']!r} is not a duration a token can last")
        token, secret = create_token(
            options["name"],
            options["site"],
            all_sites=options["all_sites"],
            may_create_sites=options["create_sites"],
            expires_in=expires_in,
        )
        self.stderr.write(f"token {token.name} made; its secret is shown this once:")
        self.stdout.write(secret)

    def _list(self) -> None:
        for token in DeployToken.objects.prefetch_related("sites"):
            sites = "all sites" if token.all_sites else ",".join(sorted(s.subdomain for s in token.sites.all()))
            state = "revoked" if token.revoked_at else ("active" if token.active else "expired")
            used = token.last_used_at.isoformat() if token.last_used_at else "never"
            expires = token.expires_at.isoformat() if token.expires_at else "never"
            self.stdout.write(f"{token.name}  {state}  {sites}  last used {used}  expires {expires}")
