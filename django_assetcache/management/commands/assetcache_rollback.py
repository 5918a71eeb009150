from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...deployments import DeploymentError, rollback


class Command(BaseCommand):
    help = (
        "Make the deployment live before the current one (or the one named) live again. "
        "Nothing is copied or stored: every server process switches within the poll interval."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("subdomain", metavar="SUBDOMAIN")
        parser.add_argument(
            "deployment", nargs="?", metavar="DEPLOYMENT", help="A deployment id (see assetcache_deployments)."
        )

    def handle(self, *args: Any, subdomain: str, deployment: str | None, **options: Any) -> None:
        try:
            made_live = rollback(subdomain, deployment)
        except DeploymentError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{subdomain}: deployment {made_live.key} is live again")
