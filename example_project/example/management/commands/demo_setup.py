"""Prepare the demo: an admin login and the sample sites, published."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand

from django_assetcache.models import Site

SITES_DIR = Path(__file__).resolve().parents[3] / "sites"
ADMIN_USER = "admin"
ADMIN_PASSWORD = "admin"


class Command(BaseCommand):
    help = "Create the demo admin user and publish the sample sites."

    def handle(self, *args: Any, **options: Any) -> None:
        User = get_user_model()
        if not User.objects.filter(username=ADMIN_USER).exists():
            User.objects.create_superuser(ADMIN_USER, "admin@example.com", ADMIN_PASSWORD)
        for source in sorted(p for p in SITES_DIR.iterdir() if p.is_dir()):
            call_command("assetcache_publish", source.name, str(source), delete=True)
        call_command("assetcache_warmup", verbosity=options["verbosity"])
        self.stdout.write("")
        self.stdout.write("Admin:  http://127.0.0.1:8000/admin/  (login admin / admin)")
        for site in Site.objects.all():
            self.stdout.write(f"Site:   {site.url}")
        self.stdout.write("")
