from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...progress import Unterminated
from ...publish import DeploymentInfo, PublishError, PublishSummary, publish

#: Who a deployment made by this command was created by.
CREATED_BY = "assetcache_publish"


class Command(BaseCommand):
    help = (
        "Publish a directory or a .zip as the content of a site, creating the site if needed. "
        "Unchanged files are not stored again. Dot-files and dot-folders (but .well-known/), "
        "__MACOSX/, node_modules/, Thumbs.db and editor backups (*~, *.swp) are skipped."
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
            "--allow-empty",
            action="store_true",
            help="With --delete, accept a SOURCE with no file to publish (which empties the site).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="List what would be added, changed, removed and skipped; store and change nothing.",
        )
        parser.add_argument(
            "--exclude",
            action="append",
            default=[],
            metavar="GLOB",
            help="Skip the paths GLOB matches (repeatable); wins over --include and the defaults.",
        )
        parser.add_argument(
            "--include",
            action="append",
            default=[],
            metavar="GLOB",
            help="Publish the paths GLOB matches even if a default exclusion skips them (repeatable).",
        )
        parser.add_argument(
            "--keep-top-folder",
            action="store_true",
            help="Publish a zip whose files all sit in one folder with that folder in the paths.",
        )
        parser.add_argument(
            "--strict",
            action="store_true",
            help="Refuse the publish if _redirects or _headers has an invalid line (default: skip it and say so).",
        )
        _add_deployment_arguments(parser)

    def handle(self, *args: Any, subdomain: str, source: str, **options: Any) -> None:
        try:
            summary = publish(
                subdomain,
                source,
                delete=options["delete"],
                dry_run=options["dry_run"],
                allow_empty=options["allow_empty"],
                exclude=options["exclude"],
                include=options["include"],
                keep_top_folder=options["keep_top_folder"],
                strict=options["strict"],
                progress_stream=Unterminated(self.stderr) if options["verbosity"] > 0 else None,
                deployment=DeploymentInfo(
                    draft=options["draft"],
                    alias=options["alias"],
                    created_by=CREATED_BY,
                    message=options["message"],
                    git_commit=options["commit"],
                    git_branch=options["branch"],
                ),
            )
        except PublishError as exc:
            raise CommandError(str(exc)) from exc
        if summary.created and not summary.dry_run:
            self.stdout.write(f"Created site {summary.subdomain}.")
        if options["verbosity"] > 1 or (summary.dry_run and options["verbosity"] > 0):
            self._list_paths(summary)
        self.stdout.write(str(summary))

    def _list_paths(self, summary: PublishSummary) -> None:
        for label, paths in (
            ("added", summary.added),
            ("changed", summary.changed),
            ("removed", summary.removed),
            ("skipped", summary.skipped),
        ):
            for path in paths:
                self.stdout.write(f"  {label:8} {path}")


def _add_deployment_arguments(parser: CommandParser) -> None:
    """What the deployment a publish makes records, and whether it goes live."""
    parser.add_argument(
        "--draft",
        action="store_true",
        help="Store the deployment without making it live; it answers at <id>--SUBDOMAIN.",
    )
    parser.add_argument(
        "--alias",
        default="",
        metavar="NAME",
        help="Point NAME--SUBDOMAIN (for example staging--docs) at this deployment.",
    )
    parser.add_argument("--message", default="", help="A note kept with the deployment.")
    parser.add_argument(
        "--commit", default=None, help="The git commit deployed (default: read from SOURCE's work tree)."
    )
    parser.add_argument(
        "--branch", default=None, help="The git branch deployed (default: read from SOURCE's work tree)."
    )
