from __future__ import annotations

import re
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...maintenance import collect_garbage

UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(value: str) -> float:
    """``7d``, ``12h``, ``30m``, ``45s``, ``2w`` or a number of seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", value)
    if match is None:
        raise CommandError(f"--keep-younger-than {value!r}: give a duration such as 7d, 12h, 30m or 3600")
    return float(match.group(1)) * UNITS[match.group(2) or "s"]


class Command(BaseCommand):
    help = (
        "Delete blobs no asset has used for ASSETCACHE_GC_GRACE (rows and stored files), stored files left by "
        "interrupted publishes, and change-feed rows older than ASSETCACHE_CHANGE_RETENTION."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Report, delete nothing.")
        parser.add_argument(
            "--keep-younger-than",
            metavar="DURATION",
            help=(
                "Keep blobs unused for less than this, and files without a row younger than this (7d, 12h, 30m, "
                "seconds). Default: ASSETCACHE_GC_GRACE. Make it longer than the age of the oldest database "
                "backup you may restore."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        keep = options["keep_younger_than"]
        summary = collect_garbage(
            dry_run=options["dry_run"], keep_younger_than=None if keep is None else parse_duration(keep)
        )
        self.stdout.write(str(summary))
