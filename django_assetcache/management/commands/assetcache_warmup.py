from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...warmup import WarmupError, warm_up


class Command(BaseCommand):
    help = (
        "Prepare server processes to start hot: build compressed variants and write the "
        "snapshot (run at deploy time, like collectstatic)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--site",
            dest="sites",
            action="append",
            metavar="SUBDOMAIN",
            help="Only this site (repeatable). Default: every site.",
        )
        parser.add_argument(
            "--no-compress",
            action="store_true",
            help="Do not build gzip/brotli variants.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        try:
            summary = warm_up(
                options["sites"],
                compress=not options["no_compress"],
                progress_stream=self.stderr._out if options["verbosity"] > 0 else None,
            )
        except WarmupError as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:
            raise CommandError(f"cannot write the snapshot: {exc}") from exc
        if options["verbosity"] > 0:
            self.stdout.write(str(summary))
