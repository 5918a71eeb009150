from __future__ import annotations

import json
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db.models import Max

from ... import conf
from ...models import Change
from ...progress import human_bytes, plural
from ...snapshot import SnapshotError, load


class Command(BaseCommand):
    help = "Show what the warm snapshot holds and how far behind the change feed it is."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="Print JSON.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = conf.get().SNAPSHOT_PATH
        try:
            snapshot = load(path)
        except SnapshotError as exc:
            raise CommandError(f"no usable snapshot at {path}: {exc}") from exc
        stats = snapshot.stats()
        latest = Change.objects.aggregate(latest=Max("id"))["latest"] or 0
        stats["changes_behind"] = Change.objects.filter(id__gt=snapshot.change_id).count()
        stats["latest_change_id"] = latest
        if options["json"]:
            self.stdout.write(json.dumps(stats, indent=2, sort_keys=True))
            return
        self.stdout.write(f"snapshot:       {stats['path']} ({human_bytes(stats['file_bytes'])})")
        self.stdout.write(f"sites:          {stats['sites']}")
        self.stdout.write(f"assets:         {stats['assets']}")
        self.stdout.write(f"bodies:         {stats['bodies']} ({human_bytes(stats['body_bytes'])})")
        self.stdout.write(f"age:            {stats['age_seconds']:.0f} s")
        self.stdout.write(
            f"change feed:    stamped at #{stats['change_id']}, latest #{latest} "
            f"({plural(stats['changes_behind'], 'newer change')} replayed on load)"
        )
