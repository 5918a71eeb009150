from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...deployments import DeploymentError, promote


class Command(BaseCommand):
    help = "Make a deployment (a draft published with --draft) live. Nothing is copied or stored."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("subdomain", metavar="SUBDOMAIN")
        parser.add_argument("deployment", metavar="DEPLOYMENT", help="A deployment id (see assetcache_deployments).")

    def handle(self, *args: Any, subdomain: str, deployment: str, **options: Any) -> None:
        try:
            made_live = promote(subdomain, deployment)
        except DeploymentError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{subdomain}: deployment {made_live.key} is live")
