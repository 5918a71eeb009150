"""Deployments across processes: v1 → v2 → rollback through gunicorn with
two workers; a rollback racing a publish on PostgreSQL (the site's row lock
orders them, so exactly one deployment is live and the change feed has one
``deploy`` change per switch)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .conftest import write_tree
from .databases import (  # noqa: F401  (fixtures)
    MigratedDatabases,
    django_command,
    django_environ,
    postgres_databases,
    postgres_server,
    sqlite_databases,
    suite_uses_postgres,
)
from .servers import Server, gunicorn, http_request

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 6
HOST = "docs.sites.test"
WORKERS = 2
PATHS = ["/", "/css/site.css", "/old.html", "/new.html"]
V1 = {"index.html": "<title>v1</title>", "css/site.css": "body { color: red }\n" * 50, "old.html": "only in v1"}
V2 = {"index.html": "<title>v2</title>", "css/site.css": "body { color: blue }\n" * 50, "new.html": "only in v2"}

Seen = dict[str, tuple[int, bytes, str]]


def every_worker(server: Server, timeout: float = 20.0) -> dict[str, Seen]:
    """Per worker pid, what it answers for PATHS (status, body, ETag):
    requests on fresh connections until each worker has answered every path."""
    answers: dict[str, Seen] = {}
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for path in PATHS:
            status, headers, body = http_request(server.port, path, HOST)
            answers.setdefault(headers["x-worker-pid"], {})[path] = (status, body, headers.get("etag", ""))
        if len(answers) == WORKERS and all(len(seen) == len(PATHS) for seen in answers.values()):
            return answers
    raise AssertionError(f"not every worker answered: {sorted(answers)}\n{server.log()}")


def until_served(server: Server, expected: Seen, timeout: float = 10.0) -> float:
    """Seconds until every worker answers ``expected``."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        answers = every_worker(server)
        if all(seen == expected for seen in answers.values()):
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"workers still differ: {answers}")


def stored_files(media: Path) -> dict[str, int]:
    return {str(path): path.stat().st_size for path in (media / "assetcache").rglob("*") if path.is_file()}


@pytest.fixture
def databases(request: pytest.FixtureRequest) -> MigratedDatabases:
    name = "postgres_databases" if suite_uses_postgres() else "sqlite_databases"
    return request.getfixturevalue(name)  # type: ignore[no-any-return]


def test_rollback_through_gunicorn_serves_v1s_bytes_and_etags_storing_nothing(
    databases: MigratedDatabases, tmp_path: Path
) -> None:
    media = tmp_path / "media"
    env = databases.env(tmp_path)
    env.update(
        {
            "ASSETCACHE_TEST_MEDIA_ROOT": str(media),
            "ASSETCACHE_TEST_INVALIDATION": "database",
            "ASSETCACHE_TEST_POLL_INTERVAL": "0.2",
        }
    )
    django_command(env, "assetcache_publish", "docs", str(write_tree(tmp_path / "v1", V1)))
    with gunicorn(tmp_path, workers=WORKERS, app="tests.pid_wsgi:application", env=env) as server:
        v1 = every_worker(server)
        seen_v1 = next(iter(v1.values()))
        assert all(seen == seen_v1 for seen in v1.values())
        assert seen_v1["/"][:2] == (200, V1["index.html"].encode()) and seen_v1["/new.html"][0] == 404
        django_command(env, "assetcache_publish", "docs", str(write_tree(tmp_path / "v2", V2)), "--delete")
        seen_v2 = {
            "/": (200, V2["index.html"].encode()),
            "/css/site.css": (200, V2["css/site.css"].encode()),
            "/new.html": (200, V2["new.html"].encode()),
        }
        started = time.monotonic()
        while time.monotonic() - started < 10:
            answers = every_worker(server)
            if all(seen[path][:2] == want for seen in answers.values() for path, want in seen_v2.items()):
                break
        else:
            raise AssertionError(f"v2 not served: {answers}")
        files = stored_files(media)
        django_command(env, "assetcache_rollback", "docs")
        until_served(server, seen_v1)
        assert stored_files(media) == files  # zero bytes stored


RACE = r"""
import json, sys, threading
import django
django.setup()
from django.db import connection
from django_assetcache.deployments import DeploymentError, rollback
from django_assetcache.models import Deployment
from django_assetcache.publish import publish

sources, rounds = sys.argv[1:-1], int(sys.argv[-1])
outcomes = []

def rolled_back():
    return {"call": "rollback", "live": rollback("docs").pk, "switched": True}

def published(source, existing):
    summary = publish("docs", source, delete=True)
    changed = [*summary.added, *summary.changed, *summary.removed]
    # A publish of the tree live already (a rollback can make the other
    # one live) makes no deployment: the live one is this publish.
    made = summary.deployment.pk not in existing
    return {"call": "publish", "live": summary.deployment.pk, "switched": made, "changed": changed}

def run(barrier, name, action):
    barrier.wait()
    try:
        outcomes.append(action())
    except DeploymentError as exc:
        outcomes.append({"call": name, "refused": str(exc), "switched": False})
    finally:
        connection.close()

for index in range(rounds):
    barrier = threading.Barrier(2)
    source = sources[index % len(sources)]
    existing = set(Deployment.objects.values_list("pk", flat=True))
    threads = [
        threading.Thread(target=run, args=(barrier, "rollback", rolled_back)),
        threading.Thread(target=run, args=(barrier, "publish", lambda: published(source, existing))),
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
    "switches": list(
        Change.objects.filter(site_id=site.pk, kind="deploy").order_by("pk").values_list("previous_id", "deployment_id")
    ),
    "deployments": Deployment.objects.count(),
    "live_at_order": list(Deployment.objects.exclude(live_at=None).order_by("live_at").values_list("pk", flat=True)),
}))
"""


def test_a_rollback_racing_a_publish_leaves_one_live_and_the_feed_consistent(
    postgres_databases: MigratedDatabases,
    tmp_path: Path,
) -> None:
    env = postgres_databases.env(tmp_path)
    sources = [
        write_tree(tmp_path / f"v{n}", {"index.html": f"version {n}", f"only-{n}.html": str(n)}) for n in range(4)
    ]
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
    assert sorted(outcome["call"] for outcome in outcomes) == ["publish"] * ROUNDS + ["rollback"] * ROUNDS
    # What each call returned says whether it switched the live deployment:
    # a rollback that was not refused did; a publish did when it made a
    # deployment, and otherwise changed no file.
    publishes = [outcome for outcome in outcomes if outcome["call"] == "publish"]
    assert [bool(outcome["changed"]) for outcome in publishes] == [outcome["switched"] for outcome in publishes]
    switched = [outcome["live"] for outcome in outcomes if outcome["switched"]]
    state = json.loads(
        subprocess.run(
            [sys.executable, "-c", STATE], cwd=ROOT, env=django_environ(env), capture_output=True, text=True, check=True
        ).stdout
    )
    assert len(state["live"]) == 1
    assert state["live"] == [state["site_live"]]
    # The site's creation, then one deploy change per switch: two set-up
    # publishes and every switch a call of the race returned.
    assert state["changes"] == ["settings"] + ["deploy"] * (2 + len(switched))
    assert state["generation"] == len(state["changes"])
    # Each change made live what its call returned, starting from the one
    # live before it: one chain from the first publish to the live one.
    raced = state["switches"][2:]
    assert sorted(made for _, made in raced) == sorted(switched)
    made_live = [made for _, made in state["switches"]]
    assert [previous for previous, _ in state["switches"]] == [None, *made_live[:-1]]
    assert made_live[-1] == state["site_live"]
    # The deployment made live last is the live one.
    assert state["live_at_order"][-1] == state["site_live"]
