from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from ...accessdb import create_share_link, revoke_share_link, share_url
from ...durations import parse_duration
from ...models import ShareLink, Site


class Command(BaseCommand):
    help = (
        "Print a signed link that lets whoever holds it see a private site until it expires; "
        "--list the site's links, --revoke one."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("subdomain", metavar="SUB")
        parser.add_argument("--expires", default="7d", help="How long it lasts: 30m, 12h, 7d, 2w (default 7d).")
        parser.add_argument("--note", default="", help="Who or what it is for.")
        parser.add_argument("--list", action="store_true", help="List the site's share links.")
        parser.add_argument("--revoke", type=int, metavar="ID", help="Revoke the share link with this id.")

    def handle(self, *args: Any, **options: Any) -> None:
        site = Site.objects.filter(subdomain=options["subdomain"].lower()).first()
        if site is None:
            raise CommandError(f"no site with subdomain {options['subdomain']!r}")
        if options["list"]:
            for link in site.share_links.all():
                state = "revoked" if link.revoked_at else ("active" if link.active else "expired")
                self.stdout.write(f"{link.pk}  {state}  expires {link.expires_at.isoformat()}  {link.note}")
            return
        if options["revoke"] is not None:
            revoked = ShareLink.objects.filter(pk=options["revoke"], site=site).first()
            if revoked is None:
                raise CommandError(f"site {site.subdomain} has no share link {options['revoke']}")
            revoke_share_link(revoked)
            self.stdout.write(f"revoked share link {revoked.pk}")
            return
        try:
            expires_in = parse_duration(options["expires"])
            if not expires_in:
                raise ValueError(f"{options['expires']!r} is not a duration a link can last")
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        link = create_share_link(site, expires_in, options["note"])
        if not site.private:
            self.stderr.write(f"note: {site.subdomain} is public; the link matters once it is private")
        self.stdout.write(share_url(link))
