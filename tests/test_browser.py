"""End to end in a real browser: the admin as a person uses it, against a real server.

Chromium (Debian's, driven by Playwright) logs in to the admin of a gunicorn
started on the test database, creates a site, uploads a zip, opens the live
site and checks it renders with its stylesheet and image and without one
failed request; then uploads a changed zip and sees the change live, a
draft at its preview host, rolls back to the first version, purges,
warms, deactivates and sees 404, and looks at the cache page.

Screenshots of every step go to ``test-artifacts/browser/`` (git-ignored).
The documentation's copies in ``docs/images/`` are written when missing,
and all refreshed with ``ASSETCACHE_UPDATE_DOC_IMAGES=1``: a test run should not
rewrite tracked files (the pictures hold ports and times, so every run
would differ).
"""

from __future__ import annotations

import os
import shutil
import struct
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.servers import ROOT, gunicorn, unavailable

try:
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # pragma: no cover - depends on the environment
    sync_playwright = None  # type: ignore[assignment]

CHROMIUM = os.environ.get("ASSETCACHE_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ARTIFACTS = ROOT / "test-artifacts" / "browser"
DOC_IMAGES = ROOT / "docs" / "images"

USERNAME, PASSWORD = "admin", "correct horse battery staple"


def application() -> Any:
    """gunicorn app factory for this test's server (``tests.test_browser:application()``).

    The project, plus what a person's browser needs that the test settings
    leave out: the admin's static files (DEBUG is off, so Django does not
    serve them) and live-URL links that carry the server's port.
    """
    from django.contrib.staticfiles.handlers import StaticFilesHandler
    from django.core.wsgi import get_wsgi_application
    from django.test.utils import override_settings

    wsgi = get_wsgi_application()
    site_url = os.environ.get("ASSETCACHE_BROWSER_SITE_URL")
    if site_url:
        override_settings(ASSETCACHE_SITE_URL=site_url).enable()
    return StaticFilesHandler(wsgi)


def png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A solid-colour PNG, without an imaging library."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


def site_zip(path: Path, *, version: int, background: str, extra: dict[str, str] | None = None) -> Path:
    files: dict[str, str | bytes] = {
        "index.html": (
            "<!doctype html><html><head><meta charset=utf-8><title>Docs</title>"
            '<link rel="stylesheet" href="/css/site.css"></head>'
            f"<body><h1>Version {version}</h1>"
            '<img id="logo" src="/img/logo.png" alt="logo" width="64" height="64">'
            "<p>Served from the process cache.</p></body></html>"
        ),
        "css/site.css": f"body {{ background-color: {background}; font-family: sans-serif; }}\n",
        "img/logo.png": png(64, 64, (30, 120, 200)),
        "404.html": "<!doctype html><title>Not here</title><h1>Not here</h1>",
        **(extra or {}),
    }
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(name, content)
    return path


class Shots:
    """Numbered screenshots of one run, copied to the docs when asked."""

    def __init__(self) -> None:
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        ARTIFACTS.mkdir(parents=True)
        self.taken: list[Path] = []

    def take(self, page: Any, name: str, *, full_page: bool = False) -> None:
        path = ARTIFACTS / f"{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        self.taken.append(path)

    def publish_to_docs(self) -> None:
        DOC_IMAGES.mkdir(parents=True, exist_ok=True)
        refresh = bool(os.environ.get("ASSETCACHE_UPDATE_DOC_IMAGES"))
        for shot in self.taken:
            target = DOC_IMAGES / f"admin-{shot.name.split('-', 1)[1]}"
            if refresh or not target.exists():
                shutil.copyfile(shot, target)


@pytest.fixture
def requirements() -> None:
    if sync_playwright is None:
        unavailable("Playwright is not installed: pip install -e '.[test]'")
    if not os.access(CHROMIUM, os.X_OK):
        unavailable(f"Chromium not found at {CHROMIUM}: apt-get install chromium (or set ASSETCACHE_CHROMIUM)")


@pytest.fixture
def server(
    requirements: None, transactional_db: None, tmp_path: Path, settings: Any, django_user_model: Any
) -> Iterator[Any]:
    """gunicorn, one worker, on the test database: the admin's uploads and
    actions run in this other process, which also serves the sites."""
    django_user_model.objects.create_superuser(USERNAME, "admin@example.com", PASSWORD)
    env = {
        "ASSETCACHE_TEST_MEDIA_ROOT": settings.MEDIA_ROOT,
        "ASSETCACHE_TEST_INVALIDATION": "database",
        "ASSETCACHE_TEST_POLL_INTERVAL": "0.2",
        "ASSETCACHE_BROWSER_SITE_URL": "http://{host}/",
        "ASSETCACHE_TEST_STATS_INTERVAL": "0.3",
    }
    # Threads: a browser opens connections ahead of need, and a sync worker
    # would sit on an idle one while the page waits for another.
    threads = ["--worker-class", "gthread", "--threads", "16"]
    with gunicorn(tmp_path, env=env, workers=1, app="tests.test_browser:application()", extra_args=threads) as running:
        yield running


@pytest.fixture
def browser(server: Any) -> Iterator[Any]:
    """Chromium with every ``*.sites.test`` host mapped to the server's port,
    so sites are visited at http://docs.sites.test/ as a visitor would.

    It depends on ``server`` so that it starts after and stops before the
    database fixtures: Playwright's sync API runs an event loop in this
    thread, inside which Django refuses database calls.
    """
    assert sync_playwright is not None
    rules = f"--host-resolver-rules=MAP *.sites.test 127.0.0.1:{server.port}"
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, rules])
        try:
            yield launched
        finally:
            launched.close()


class Watch:
    """Requests that failed or got an error status, favicon aside."""

    def __init__(self, context: Any) -> None:
        self.problems: list[str] = []
        context.on("requestfailed", lambda request: self._add(f"failed: {request.url} {request.failure}"))
        context.on("response", self._response)

    def _add(self, text: str) -> None:
        if "favicon.ico" not in text:
            self.problems.append(text)

    def _response(self, response: Any) -> None:
        if response.status >= 400:
            self._add(f"{response.status}: {response.url}")

    def take(self) -> list[str]:
        problems, self.problems = self.problems, []
        return problems


def follow(page: Any, selector: str) -> None:
    """Click something that loads a new page, and wait for that page: the
    old one may hold an element the next step looks for (a message)."""
    with page.expect_navigation():
        page.click(selector)


def message(page: Any) -> str:
    return page.locator("ul.messagelist li").first.inner_text()


def run_action(page: Any, subdomain: str, action: str) -> str:
    page.locator("#result_list tr", has_text=subdomain).locator("input.action-select").check()
    page.select_option("select[name=action]", action)
    follow(page, "button[name=index]")
    return message(page)


def test_the_admin_in_a_browser(server: Any, browser: Any, tmp_path: Path) -> None:
    admin = f"http://127.0.0.1:{server.port}/admin/"
    live = "http://docs.sites.test/"
    shots = Shots()
    context = browser.new_context(viewport={"width": 1440, "height": 900})
    context.set_default_timeout(15_000)
    watch = Watch(context)
    page = context.new_page()

    # Log in.
    page.goto(admin)
    page.fill("#id_username", USERNAME)
    page.fill("#id_password", PASSWORD)
    follow(page, "input[type=submit]")
    assert page.url == admin
    assert watch.take() == []

    # Create a site: a reserved name first, to see the message a person gets.
    page.goto(admin + "django_assetcache/site/add/")
    page.fill("#id_subdomain", "www")
    page.fill("#id_name", "Documentation")
    follow(page, "input[name=_save]")
    error = page.locator(".field-subdomain .errorlist").inner_text()
    assert "“www” is reserved and cannot be used as a subdomain." in error
    shots.take(page, "add-site-error", full_page=True)
    page.fill("#id_subdomain", "docs")
    follow(page, "input[name=_continue]")
    assert "was added successfully" in message(page)

    # Upload the first version.
    follow(page, "a.upload-link")
    v1 = site_zip(tmp_path / "site-v1.zip", version=1, background="rgb(255, 236, 179)", extra={"old.html": "old"})
    page.set_input_files("input[name=files]", str(v1))
    shots.take(page, "upload")
    follow(page, "input[name=_publish]")
    text = message(page)
    assert text.startswith("Published “site-v1.zip” to docs: 5 added, 0 changed, 0 removed, 0 unchanged;"), text
    expect(page.locator(".field-files_link .readonly")).to_have_text("5 files — browse")
    shots.take(page, "upload-done", full_page=True)
    assert watch.take() == []

    # The live site, opened from the admin's link.
    with context.expect_page() as opened:
        page.click(f'.field-live_url a[href="{live}"]')
    site_page = opened.value
    site_page.wait_for_load_state("load")
    assert site_page.url == live
    expect(site_page.locator("h1")).to_have_text("Version 1")
    assert site_page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 236, 179)"
    assert site_page.evaluate("document.getElementById('logo').naturalWidth") == 64
    shots.take(site_page, "live-v1")
    assert watch.take() == []

    # Its files.
    follow(page, ".field-files_link a")
    expect(page.locator("#result_list tbody tr")).to_have_count(5)
    expect(page.locator("#result_list")).to_contain_text("/css/site.css")
    shots.take(page, "files", full_page=True)

    # A changed version, removing what it no longer has.
    page.goto(admin + "django_assetcache/site/")
    follow(page, "#result_list a:text-is('docs')")
    follow(page, "a.upload-link")
    v2 = site_zip(tmp_path / "site-v2.zip", version=2, background="rgb(200, 230, 201)")
    page.set_input_files("input[name=files]", str(v2))
    page.check("input[name=delete]")
    follow(page, "input[name=_publish]")
    text = message(page)
    assert text.startswith("Published “site-v2.zip” to docs: 0 added, 2 changed, 1 removed, 2 unchanged;"), text
    shots.take(page, "upload-changed", full_page=True)
    site_page.reload()
    expect(site_page.locator("h1")).to_have_text("Version 2")
    assert site_page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(200, 230, 201)"
    assert site_page.evaluate("document.getElementById('logo').naturalWidth") == 64
    shots.take(site_page, "live-v2")
    assert watch.take() == []

    # A draft: stored, not live, at its preview host.
    follow(page, "a.upload-link")
    v3 = site_zip(tmp_path / "site-v3.zip", version=3, background="rgb(187, 222, 251)")
    page.set_input_files("input[name=files]", str(v3))
    page.check("input[name=draft]")
    page.fill("input[name=alias]", "next")
    follow(page, "input[name=_publish]")
    assert message(page).startswith("Published “site-v3.zip” to docs:")
    rows = page.locator("#deployments tr.deployment")
    expect(rows).to_have_count(3)
    states = [rows.nth(n).locator("td.state .assetcache-state").inner_text() for n in range(3)]
    assert states == ["draft", "live", "superseded"]
    page.locator("#deployments").scroll_into_view_if_needed()
    shots.take(page, "deployments")
    preview = page.locator("#deployments tr.state-draft td.preview a").get_attribute("href")
    assert preview is not None and preview.endswith("--docs.sites.test/")
    site_page.goto(preview)
    expect(site_page.locator("h1")).to_have_text("Version 3")
    site_page.goto(live)
    expect(site_page.locator("h1")).to_have_text("Version 2")

    # Back to the first version, through the confirmation page.
    follow(page, "#deployments tr.state-superseded a.rollback-link")
    expect(page.locator("#difference")).to_have_text(
        "Compared with what is live: 1 added, 2 changed, 2 unchanged, 0 removed."
    )
    shots.take(page, "rollback-confirm")
    follow(page, "input[name=_confirm]")
    assert message(page).endswith(" is live on docs.")
    expect(page.locator("#deployments tr.state-live td.source")).to_have_text("“site-v1.zip”")
    site_page.reload()
    expect(site_page.locator("h1")).to_have_text("Version 1")
    assert site_page.evaluate("getComputedStyle(document.body).backgroundColor") == "rgb(255, 236, 179)"
    assert watch.take() == []

    # Actions on the site list.
    page.goto(admin + "django_assetcache/site/")
    assert run_action(page, "docs", "purge_cache").startswith("Purged the cache of 1 site")
    shots.take(page, "purge")
    site_page.reload()
    expect(site_page.locator("h1")).to_have_text("Version 1")
    # Every upload is a retained deployment: the snapshot holds the files of each.
    assert run_action(page, "docs", "warm_now").startswith("Warm-up done: warmed 1 site, 5 assets")
    shots.take(page, "warm")
    assert run_action(page, "docs", "deactivate") == "Deactivated 1 site: it answers 404 now."
    shots.take(page, "deactivate")
    assert watch.take() == []
    response = site_page.reload()
    assert response is not None and response.status == 404
    # A browser gets the small page, not plain text.
    expect(site_page.locator("h1")).to_have_text("No site is published at this address.")
    shots.take(site_page, "live-deactivated")
    assert watch.take() == [f"404: {live}"]

    # The cache page of the server process.
    follow(page, "a.cache-link")
    expect(page.locator("#stat-invalidation")).to_contain_text("database")
    # The pages above were each asked once per deployment: misses that
    # filled the cache through the database.
    assert int(page.locator("#stat-misses").inner_text()) > 0
    assert int(page.locator("#stat-db-queries").inner_text()) > 0
    # Every serving process (one here) reported; the page lists it.
    expect(page.locator("#cluster tr.process")).to_have_count(1)
    expect(page.locator("#cluster tr.process td.behind")).to_have_text("up to date")
    shots.take(page, "cache-cluster", full_page=True)
    assert watch.take() == []

    # The site's traffic, as the processes reported it, in a chart.
    page.goto(admin + "django_assetcache/site/")
    assert int(page.locator("#result_list td.field-requests_today").inner_text()) > 0
    follow(page, "#result_list a:text-is('docs')")
    expect(page.locator("#traffic-days svg")).to_be_visible()
    expect(page.locator("#traffic-hours svg rect.bar")).to_have_count(48)
    page.locator("fieldset:has(#traffic-days)").scroll_into_view_if_needed()
    shots.take(page, "site-traffic")

    # At 1280 px every column of the site and asset lists fits.
    page.set_viewport_size({"width": 1280, "height": 800})
    for url, name in (("django_assetcache/site/", "sites-1280"), ("django_assetcache/asset/", "assets-1280")):
        page.goto(admin + url)
        shots.take(page, name, full_page=True)
        widths = "(e => [e.scrollWidth, e.clientWidth])(document.querySelector('#changelist .results'))"
        scrolled, shown = page.evaluate(widths)
        columns = page.evaluate("[...document.querySelectorAll('#result_list thead th')].map(e => e.offsetWidth)")
        assert scrolled <= shown, (url, scrolled, shown, columns)
    # And the deployment list of a site's page.
    page.goto(admin + "django_assetcache/site/")
    follow(page, "#result_list a:text-is('docs')")
    widths = "(e => [e.scrollWidth, e.clientWidth])(document.querySelector('#deployments'))"
    scrolled, shown = page.evaluate(widths)
    assert scrolled <= shown, ("deployments", scrolled, shown)
    assert watch.take() == []

    context.close()
    shots.publish_to_docs()
