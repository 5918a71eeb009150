from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from ...maintenance import collect_garbage


class Command(BaseCommand):
    help = (
        "Delete blobs no asset uses (rows and stored files), stored files left by interrupted "
        "publishes, and change-feed rows older than ASSETCACHE_CHANGE_RETENTION."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Report, delete nothing.")

    def handle(self, *args: Any, **options: Any) -> None:
        summary = collect_garbage(dry_run=options["dry_run"])
        self.stdout.write(str(summary))
