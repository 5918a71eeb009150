from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...publish import PublishError, publish


class Command(BaseCommand):
    help = (
        "Publish a directory or a .zip as the content of a site, creating the site if needed. "
        "Unchanged files are not stored again."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("subdomain", help="The site's subdomain (created if missing).")
        parser.add_argument("source", help="A directory or a .zip file.")
        parser.add_argument(
            "--delete",
            action="store_true",
            help="Remove the site's files that are not in SOURCE.",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Show what would change; store and change nothing.",
        )

    def handle(self, *args: Any, subdomain: str, source: str, **options: Any) -> None:
        try:
            summary = publish(
                subdomain,
                source,
                delete=options["delete"],
                dry_run=options["dry_run"],
                progress_stream=self.stderr._out if options["verbosity"] > 0 else None,
            )
        except PublishError as exc:
            raise CommandError(str(exc)) from exc
        if summary.created and not summary.dry_run:
            self.stdout.write(f"Created site {summary.subdomain}.")
        if options["verbosity"] > 1:
            for label, paths in (
                ("added", summary.added),
                ("changed", summary.changed),
                ("removed", summary.removed),
            ):
                for path in paths:
                    self.stdout.write(f"  {label:8} {path}")
        self.stdout.write(str(summary))
