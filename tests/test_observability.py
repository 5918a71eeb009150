"""Observability: traffic per site, the reporting thread, Prometheus metrics,
and the cluster on the admin's cache page."""

from __future__ import annotations

import datetime
import importlib.util
import os
import re
import time
from collections import Counter
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_assetcache import checks, runtime, traffic
from django_assetcache.admin.sites import SiteAdmin
from django_assetcache.deployments import expire_deployments, expired_deployment_ids, rollback
from django_assetcache.models import Deployment, Heartbeat, Site, SiteTraffic, record_change
from django_assetcache.publish import DeploymentInfo, publish
from django_assetcache.reporting import Reporter

from .conftest import write_tree
from .servers import gunicorn

HOST = "docs.sites.test"
CACHE_PAGE = "/admin/django_assetcache/site/cache/"


def sums(period: str = "day") -> dict[str, dict[str, int]]:
    totals: dict[str, dict[str, int]] = {}
    for row in SiteTraffic.objects.filter(period=period).select_related("site"):
        into = totals.setdefault(row.site.subdomain, Counter())
        for name in ("requests", "bytes_sent", "hits", "misses", "not_found", "server_errors"):
            into[name] += getattr(row, name)
    return {site: dict(values) for site, values in totals.items()}


def reporter() -> Reporter:
    found = runtime.reporter()
    assert isinstance(found, Reporter)
    return found


@pytest.fixture
def counted(site: Site, site_client: Client) -> Client:
    """Start from no traffic: counts are process-wide, tests share a process."""
    traffic.zero()
    site_client.get("/", headers={"host": HOST})  # creates the cache and its reporter
    reporter().reader.take()
    return site_client


def test_a_flush_writes_each_sites_requests_bytes_hits_misses_and_404s(counted: Client) -> None:
    # "/" was cached by the fixture; the second "/missing" is a negative hit.
    pages = [counted.get(path, headers={"host": HOST}) for path in ("/", "/", "/css/site.css", "/missing", "/missing")]
    assert [page.status_code for page in pages] == [200, 200, 200, 404, 404]
    sent = sum(len(page.content) for page in pages)
    assert reporter().flush()
    expected = {"requests": 5, "bytes_sent": sent, "hits": 3, "misses": 2, "not_found": 2, "server_errors": 0}
    assert sums("day") == {"docs": expected}
    assert sums("hour") == {"docs": expected}
    # The next flush adds to the same rows.
    counted.get("/", headers={"host": HOST})
    assert reporter().flush()
    assert sums("day")["docs"]["requests"] == 6
    assert SiteTraffic.objects.count() == 2


def test_a_hit_makes_no_query_with_counting_on(counted: Client) -> None:
    counted.get("/", headers={"host": HOST})
    with CaptureQueriesContext(connection) as queries:
        assert counted.get("/", headers={"host": HOST}).status_code == 200
    assert len(queries) == 0


def test_a_failed_flush_keeps_its_counts_for_the_next_and_logs_once(
    counted: Client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    for _ in range(3):
        counted.get("/", headers={"host": HOST})

    def broken(rows: object) -> None:
        raise RuntimeError("database down")

    monkeypatch.setattr("django_assetcache.reporting.upsert", broken)
    assert not reporter().flush()
    counted.get("/", headers={"host": HOST})
    assert not reporter().flush()
    assert [r.message for r in caplog.records].count(
        "assetcache: cannot write traffic and heartbeat; kept for the next flush"
    ) == 1
    assert not SiteTraffic.objects.exists()
    monkeypatch.undo()
    assert reporter().flush()
    assert sums()["docs"]["requests"] == 4


def test_the_heartbeat_says_what_the_process_holds(counted: Client) -> None:
    counted.get("/css/site.css", headers={"host": HOST})
    assert reporter().flush()
    beat = Heartbeat.objects.get()
    stats = runtime.stats()
    assert (beat.pid, beat.entries, beat.bytes_held) == (os.getpid(), stats["entries"], stats["bytes_held"])
    assert beat.lookups == stats["hits"] + stats["misses"] + stats["negative_hits"]


def test_unknown_and_deleted_sites_are_counted_but_not_written(counted: Client, site: Site) -> None:
    no_site = traffic.counts_for(traffic.NO_SITE)
    before = traffic.requests(no_site)
    assert counted.get("/", headers={"host": "nobody.sites.test"}).status_code == 404
    assert traffic.requests(no_site) == before + 1  # counted in this process
    assert counted.get("/", headers={"host": HOST}).status_code == 200
    Site.objects.filter(pk=site.pk).delete()  # its counts have no row to go to
    assert reporter().flush()
    assert sums() == {}
    assert not SiteTraffic.objects.exists()


# --- the metrics view ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({}, 401),
        ({"authorization": "Bearer wrong"}, 401),
        ({"authorization": "secret"}, 401),
        ({"authorization": "Bearer secret"}, 200),
    ],
)
def test_the_metrics_view_asks_for_its_token(
    db, settings, client: Client, headers: dict[str, str], status: int
) -> None:
    settings.ASSETCACHE_METRICS = True
    settings.ASSETCACHE_METRICS_TOKEN = "secret"
    response = client.get("/assetcache/metrics", headers=headers)
    assert response.status_code == status
    if status == 401:
        assert response["WWW-Authenticate"] == 'Bearer realm="metrics"'
        assert b"assetcache_" not in response.content
    else:
        assert response["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert b"# TYPE assetcache_requests_total counter" in response.content


def test_the_metrics_view_is_404_when_metrics_are_off(db, client: Client) -> None:
    response = client.get("/assetcache/metrics")
    assert (response.status_code, response.content) == (404, b"Metrics are off (ASSETCACHE_METRICS).\n")


def test_the_metrics_view_is_never_on_a_site_host(settings, site: Site, site_client: Client) -> None:
    settings.ASSETCACHE_METRICS = True
    response = site_client.get("/assetcache/metrics", headers={"host": HOST})
    assert response.status_code == 404
    assert b"assetcache_" not in response.content


# --- many processes -------------------------------------------------------------------

WORKERS = 3


def scrape(server, token: str) -> dict[tuple[str, str], float]:
    status, _, body = server.request("/assetcache/metrics", "localhost", headers={"Authorization": f"Bearer {token}"})
    assert status == 200, server.log()
    found = {}
    for match in re.finditer(
        r'^assetcache_requests_total\{site="([^"]*)",status="(\dxx)"\} (\S+)$', body.decode(), re.M
    ):
        found[(match[1], match[2])] = float(match[3])
    return found


def test_three_gunicorn_workers_report_every_request(transactional_db, tmp_path: Path, settings, admin_user) -> None:
    publish("docs", write_tree(tmp_path / "docs", {"index.html": "<p>docs</p>", "a.css": "a{}"}))
    publish("blog", write_tree(tmp_path / "blog", {"index.html": "<p>blog</p>"}))
    env = {
        "ASSETCACHE_TEST_MEDIA_ROOT": settings.MEDIA_ROOT,
        "ASSETCACHE_TEST_STATS_INTERVAL": "0.5",
        "ASSETCACHE_TEST_METRICS": "1",
        "ASSETCACHE_TEST_METRICS_TOKEN": "t0ken",
        "ASSETCACHE_TEST_WARM": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
    }
    (tmp_path / "prometheus").mkdir()
    requests = [("docs.sites.test", "/")] * 40 + [("docs.sites.test", "/a.css")] * 20
    requests += [("blog.sites.test", "/")] * 30 + [("blog.sites.test", "/nothing")] * 10
    with gunicorn(tmp_path, workers=WORKERS, env=env) as server:
        statuses = Counter(server.request(path, host)[0] for host, path in requests)
        assert statuses == {200: 90, 404: 10}
        # Metrics publish every second and flushes run every 0.5 s: wait
        # until every worker's counts arrived, under a deadline.
        expected = {("docs", "2xx"): 60, ("blog", "2xx"): 30, ("blog", "4xx"): 10}
        deadline = time.monotonic() + 20
        while (metrics := scrape(server, "t0ken")) != expected and time.monotonic() < deadline:
            time.sleep(0.2)

        def written() -> bool:
            return Heartbeat.objects.count() == WORKERS and sum(v["requests"] for v in sums().values()) == 100

        while not written() and time.monotonic() < deadline:
            time.sleep(0.2)
        status, _, _ = server.request("/assetcache/metrics", "localhost")
        assert status == 401
    assert metrics == expected
    assert {site: values["requests"] for site, values in sums().items()} == {"docs": 60, "blog": 40}
    assert sums()["blog"]["not_found"] == 10
    assert Heartbeat.objects.count() == WORKERS
    client = Client()
    client.force_login(admin_user)
    page = client.get(CACHE_PAGE).content.decode()
    assert len(re.findall(r'<tr class="process[^"]*" data-pid="\d+">', page)) == WORKERS


# --- the admin ----------------------------------------------------------------------


def test_the_site_page_charts_its_traffic(counted: Client, admin_client: Client, site: Site) -> None:
    for _ in range(3):
        counted.get("/missing", headers={"host": HOST})
    assert reporter().flush()
    page = admin_client.get(f"/admin/django_assetcache/site/{site.pk}/change/").content.decode()
    assert '<figure class="assetcache-chart" id="traffic-days">' in page
    assert '<figure class="assetcache-chart" id="traffic-hours">' in page
    today = timezone.localtime().strftime("%b %d")
    # One miss, then two negative hits; every one a 404 with the site's 404.html.
    assert re.search(rf"<title>{today}: 3 requests, 67% hits, \d+ B, 3 404s</title>", page)
    assert page.count('class="bar"/>') == 30 + 48


@pytest.mark.parametrize(
    ("order", "expected"), [("-requests_today", ["blog", "docs"]), ("requests_today", ["docs", "blog"])]
)
def test_the_site_list_sorts_by_requests_today(
    counted: Client, admin_client: Client, sample_dir: Path, order: str, expected: list[str]
) -> None:
    publish("blog", sample_dir)
    for _ in range(3):
        counted.get("/", headers={"host": "blog.sites.test"})
    assert reporter().flush()
    columns = SiteAdmin.list_display
    index = columns.index(order.lstrip("-")) + 1
    page = admin_client.get(
        f"/admin/django_assetcache/site/?o={'-' if order.startswith('-') else ''}{index}"
    ).content.decode()
    names = re.findall(r'<th class="field-subdomain"><a href="[^"]+">(\w+)</a>', page)
    assert names == expected
    assert '<td class="field-requests_today">3</td>' in page


def test_the_cache_page_marks_stale_processes_and_their_lag(counted: Client, admin_client: Client, site: Site) -> None:
    assert reporter().flush()
    Heartbeat.objects.create(
        host="gone.example",
        pid=4242,
        started_at=timezone.now(),
        updated_at=timezone.now() - datetime.timedelta(hours=1),
    )
    record_change(site.pk, "purge")
    page = admin_client.get(CACHE_PAGE).content.decode()
    assert re.search(r'<tr class="process stale" data-pid="4242">', page)
    assert re.search(rf'<tr class="process" data-pid="{os.getpid()}">', page)
    assert page.count("1 change, ") >= 1


@pytest.mark.parametrize(("installed", "ids"), [(True, []), (False, ["assetcache.E004"])])
def test_metrics_on_without_prometheus_client_is_a_check_error(
    settings, monkeypatch: pytest.MonkeyPatch, installed: bool, ids: list[str]
) -> None:
    settings.ASSETCACHE_METRICS = True
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: real(name, *a) if installed or name != "prometheus_client" else None,
    )
    assert [message.id for message in checks.check_metrics()] == ids


# --- publishes, promotes and rollbacks ------------------------------------------------

DEPLOY_LINE = re.compile(
    r"^assetcache_(deploys_total|deploy_seconds_count|deploy_seconds_sum)(\{[^}]*\})? (\S+)$", re.M
)


def deploy_metrics(body: bytes) -> dict[str, dict[str, float]]:
    """``assetcache_deploys_total`` and its summary's count and sum, each by
    its labels as written (``{kind="publish",site="docs"}``)."""
    found: dict[str, dict[str, float]] = {}
    for match in DEPLOY_LINE.finditer(body.decode()):
        found.setdefault(match[1], {})[match[2] or ""] = float(match[3])
    return found


def deploy_a_lot(tmp_path: Path) -> None:
    """Through the commands and the Python API: docs gets 3 publishes, a
    draft, a promote and 2 rollbacks; blog one publish. A dry run and a
    refused rollback count for nothing."""
    for number in (1, 2):
        call_command("assetcache_publish", "docs", str(write_tree(tmp_path / f"v{number}", {"i.html": f"v{number}"})))
    call_command("assetcache_publish", "blog", str(write_tree(tmp_path / "blog", {"i.html": "blog"})))
    call_command("assetcache_publish", "docs", str(tmp_path / "v1"), "--dry-run")
    with pytest.raises(CommandError, match="no earlier deployment"):
        call_command("assetcache_rollback", "blog")
    call_command("assetcache_rollback", "docs")
    publish("docs", write_tree(tmp_path / "v3", {"i.html": "v3"}))
    draft = publish("docs", write_tree(tmp_path / "v4", {"i.html": "v4"}), deployment=DeploymentInfo(draft=True))
    assert draft.deployment is not None
    call_command("assetcache_promote", "docs", draft.deployment.key)
    rollback("docs")


PER_SITE = {
    '{kind="draft",site="docs"}': 1,
    '{kind="promote",site="docs"}': 1,
    '{kind="publish",site="blog"}': 1,
    '{kind="publish",site="docs"}': 3,
    '{kind="rollback",site="docs"}': 2,
}
ALL_SITES = {'{kind="draft"}': 1, '{kind="promote"}': 1, '{kind="publish"}': 4, '{kind="rollback"}': 2}


@pytest.mark.parametrize(("per_site", "expected"), [(True, PER_SITE), (False, ALL_SITES)])
def test_the_metrics_view_counts_publishes_and_rollbacks_by_site_and_kind(
    db, settings, client: Client, tmp_path: Path, per_site: bool, expected: dict[str, int]
) -> None:
    settings.ASSETCACHE_METRICS = True
    settings.ASSETCACHE_METRICS_PER_SITE = per_site
    deploy_a_lot(tmp_path)
    response = client.get("/assetcache/metrics")
    assert response.status_code == 200
    found = deploy_metrics(response.content)
    assert found["deploys_total"] == expected
    assert found["deploy_seconds_count"] == expected
    assert set(found["deploy_seconds_sum"]) == set(expected)
    assert all(seconds > 0 for seconds in found["deploy_seconds_sum"].values())
    # A publish's seconds are kept on the deployment it made.
    made = Deployment.objects.values_list("publish_seconds", flat=True)
    publishes = sum(seconds for labels, seconds in found["deploy_seconds_sum"].items() if "publish" in labels)
    drafts = sum(seconds for labels, seconds in found["deploy_seconds_sum"].items() if "draft" in labels)
    assert sum(made) == pytest.approx(publishes + drafts)
    assert b"# TYPE assetcache_deploy_seconds summary" in response.content


def test_deploy_counters_never_go_down_when_deployments_expire_or_the_site_goes(
    db, settings, client: Client, tmp_path: Path, no_deployment_retention: None
) -> None:
    settings.ASSETCACHE_METRICS = True
    deploy_a_lot(tmp_path)
    before = deploy_metrics(client.get("/assetcache/metrics").content)
    assert expire_deployments(expired_deployment_ids()) == 3  # all of docs but the live one
    Site.objects.filter(subdomain="docs").delete()
    assert not Deployment.objects.filter(site__subdomain="docs").exists()
    assert deploy_metrics(client.get("/assetcache/metrics").content) == before
    assert before["deploys_total"] == PER_SITE


def test_a_rollback_in_another_process_shows_in_every_workers_metrics(
    transactional_db, tmp_path: Path, settings
) -> None:
    env = {
        "ASSETCACHE_TEST_MEDIA_ROOT": settings.MEDIA_ROOT,
        "ASSETCACHE_TEST_METRICS": "1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus"),
    }
    (tmp_path / "prometheus").mkdir()
    with gunicorn(tmp_path, workers=2, env=env) as server:
        deploy_a_lot(tmp_path)
        # Whichever worker answers (each scrape may be another) says the same.
        for _ in range(4):
            status, _, body = server.request("/assetcache/metrics", "localhost")
            assert status == 200, server.log()
            found = deploy_metrics(body)
            assert (found["deploys_total"], found["deploy_seconds_count"]) == (PER_SITE, PER_SITE)
