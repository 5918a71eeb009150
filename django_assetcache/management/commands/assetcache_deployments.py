from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...deployments import DeploymentError, describe, history


class Command(BaseCommand):
    help = "List a site's deployments, newest first: id, state, when, who, source and summary."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("subdomain", metavar="SUBDOMAIN")
        parser.add_argument("--json", action="store_true", help="One JSON array, for scripts.")

    def handle(self, *args: Any, subdomain: str, **options: Any) -> None:
        try:
            deployments = [describe(deployment) for deployment in history(subdomain)]
        except DeploymentError as exc:
            raise CommandError(str(exc)) from exc
        if options["json"]:
            self.stdout.write(json.dumps(deployments, indent=2))
            return
        for item in deployments:
            summary = item["summary"]
            counts = ", ".join(f"{summary[name]} {name}" for name in ("added", "changed", "removed") if name in summary)
            aliases = f" [{', '.join(item['aliases'])}]" if item["aliases"] else ""
            self.stdout.write(
                f"{item['id']}  {item['state']:10} {item['created_at'][:19].replace('T', ' ')}  "
                f"{item['created_by'] or '-'}  {item['source'] or '-'}{aliases}  {counts}"
            )
