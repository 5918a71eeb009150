from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...progress import Unterminated
from ...warmup import WarmupError, warm_up, warm_up_from_storage


class Command(BaseCommand):
    help = (
        "Prepare server processes to start hot: download blobs of a remote storage to the "
        "local disk tier, build compressed variants and write the snapshot (run at deploy "
        "time, like collectstatic)."
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
        parser.add_argument(
            "--upload-snapshot",
            action="store_true",
            help="Also upload the snapshot to the blob storage, for --from-storage on other machines.",
        )
        parser.add_argument(
            "--from-storage",
            action="store_true",
            help=(
                "Do not query the database: fetch the snapshot uploaded with --upload-snapshot "
                "and fill the local disk tier with the blobs it references."
            ),
        )

    def handle(self, *args: Any, **options: Any) -> None:
        progress_stream = Unterminated(self.stderr) if options["verbosity"] > 0 else None
        if options["from_storage"] and (options["sites"] or options["upload_snapshot"]):
            raise CommandError("--from-storage takes the stored snapshot whole: no --site, no --upload-snapshot")
        try:
            if options["from_storage"]:
                summary = warm_up_from_storage(progress_stream=progress_stream)
            else:
                summary = warm_up(
                    options["sites"],
                    compress=not options["no_compress"],
                    progress_stream=progress_stream,
                    upload=options["upload_snapshot"],
                )
        except WarmupError as exc:
            raise CommandError(str(exc)) from exc
        except OSError as exc:
            raise CommandError(f"cannot write the snapshot: {exc}") from exc
        if options["verbosity"] > 0:
            self.stdout.write(str(summary))
