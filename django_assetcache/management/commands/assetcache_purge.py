from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...maintenance import MaintenanceError, purge
from ...progress import plural


class Command(BaseCommand):
    help = (
        "Make every server process drop what it cached for the given sites (or only the given "
        "paths). The next request reads the database again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("subdomains", nargs="*", metavar="SUBDOMAIN")
        parser.add_argument(
            "--path",
            dest="paths",
            action="append",
            metavar="PATH",
            help="Only this path, e.g. /index.html (repeatable).",
        )
        parser.add_argument("--all", action="store_true", help="Every site.")

    def handle(self, *args: Any, subdomains: list[str], paths: list[str] | None, **options: Any) -> None:
        if not subdomains and not options["all"]:
            raise CommandError("name at least one SUBDOMAIN, or --all")
        if subdomains and options["all"]:
            raise CommandError("give SUBDOMAINs or --all, not both")
        try:
            changes = purge(subdomains or None, paths)
        except MaintenanceError as exc:
            raise CommandError(str(exc)) from exc
        what = f"{plural(len(paths), 'path')} of " if paths else ""
        self.stdout.write(
            f"purged {what}{plural(len(changes), 'site')} (change feed at #{changes[-1].id if changes else '-'})"
        )
