"""A rollback racing a publish on PostgreSQL: the site's row lock orders
them, so exactly one deployment is live and the change feed has one
``deploy`` change per switch, in the order they committed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .conftest import write_tree
from .databases import (  # noqa: F401  (fixtures)
    MigratedDatabases,
    django_command,
    django_environ,
    postgres_databases,
    postgres_server,
)

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 6

RACE = r"""
import json, sys, threading
import django
django.setup()
from django.db import connection
from django_assetcache.deployments import DeploymentError, rollback
from django_assetcache.publish import publish

sources, rounds = sys.argv[1:-1], int(sys.argv[-1])
outcomes = []

def run(barrier, name, action):
    barrier.wait()
    try:
        action()
        outcomes.append(name)
    except DeploymentError as exc:
        outcomes.append(f"{name} refused: {exc}")
    finally:
        connection.close()

for index in range(rounds):
    barrier = threading.Barrier(2)
    source = sources[index % len(sources)]
    threads = [
        threading.Thread(target=run, args=(barrier, "rollback", lambda: rollback("docs"))),
        threading.Thread(target=run, args=(barrier, "publish", lambda: publish("docs", source, delete=True))),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
print(json.dumps(outcomes))
"""

STATE = r"""
import json
import django
django.setup()
from django_assetcache.models import Change, Deployment, Site
site = Site.objects.get(subdomain="docs")
print(json.dumps({
    "live": list(Deployment.objects.filter(state="live").values_list("pk", flat=True)),
    "site_live": site.live_deployment_id,
    "generation": site.generation,
    "changes": list(Change.objects.filter(site_id=site.pk).order_by("pk").values_list("kind", flat=True)),
    "deployments": Deployment.objects.count(),
    "live_at_order": list(Deployment.objects.exclude(live_at=None).order_by("live_at").values_list("pk", flat=True)),
}))
"""


def test_a_rollback_racing_a_publish_leaves_one_live_and_the_feed_consistent(
    postgres_databases: MigratedDatabases,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = postgres_databases.env(tmp_path)
    sources = [write_tree(tmp_path / f"v{n}", {"index.html": f"version {n}", f"only-{n}.html": str(n)}) for n in range(4)]
    django_command(env, "assetcache_publish", "docs", str(sources[0]))
    django_command(env, "assetcache_publish", "docs", str(sources[1]), "--delete")
    race = subprocess.run(
        [sys.executable, "-c", RACE, *map(str, sources[2:]), str(ROUNDS)],
        cwd=ROOT,
        env=django_environ(env),
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    outcomes = json.loads(race.stdout)
    assert sorted(name.split()[0] for name in outcomes) == ["publish"] * ROUNDS + ["rollback"] * ROUNDS
    switches = sum(1 for name in outcomes if "refused" not in name)
    state = json.loads(
        subprocess.run(
            [sys.executable, "-c", STATE], cwd=ROOT, env=django_environ(env), capture_output=True, text=True, check=True
        ).stdout
    )
    assert len(state["live"]) == 1
    assert state["live"] == [state["site_live"]]
    # The site's creation, then one deploy change per switch: two set-up
    # publishes and every rollback or publish that went through.
    assert state["changes"] == ["settings"] + ["deploy"] * (2 + switches)
    assert state["generation"] == len(state["changes"])
    # The deployment made live last is the live one.
    assert state["live_at_order"][-1] == state["site_live"]
