from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...durations import parse_duration
from ...maintenance import collect_garbage


def keep_younger_than(value: str) -> float:
    """``--keep-younger-than``'s seconds, or one line saying what it takes."""
    try:
        return parse_duration(value).total_seconds()
    except ValueError as exc:
        raise CommandError(f"--keep-younger-than {value!r}: give a duration such as 7d, 12h, 30m or 3600") from exc


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
            dry_run=options["dry_run"], keep_younger_than=None if keep is None else keep_younger_than(keep)
        )
        self.stdout.write(str(summary))
