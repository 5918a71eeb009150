"""``assetcache-deploy`` run as a subprocess against a real gunicorn."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from django_assetcache.deploytokens import create_token
from django_assetcache.models import Deployment, Site
from django_assetcache.store import BlobStore

from .conftest import live_assets, sha, write_tree
from .servers import ROOT, gunicorn


def client_command(port: int, source: Path, token: str, *args: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment of ``assetcache-deploy`` deploying ``source`` to docs."""
    env = {**os.environ, "ASSETCACHE_TOKEN": token, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "django_assetcache.deployclient", str(source)]
    url = f"http://127.0.0.1:{port}/assetcache/"
    return [*command, "--url", url, "--site", "docs", "--message", "ci", *args], env


def run_client(port: int, source: Path, token: str, *args: str) -> subprocess.CompletedProcess[str]:
    command, env = client_command(port, source, token, *args)
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300, check=False)


@pytest.fixture
def thousand_files(tmp_path: Path) -> Path:
    return write_tree(tmp_path / "build", {f"page{n:04}/index.html": f"<p>page {n}</p>" for n in range(1000)})


def test_deploy_redeploy_and_one_change_over_gunicorn(
    transactional_db, tmp_path: Path, settings, thousand_files
) -> None:
    Site.objects.create(subdomain="docs")
    secret = create_token("ci", ["docs"])[1]
    with gunicorn(tmp_path, env={"ASSETCACHE_TEST_MEDIA_ROOT": settings.MEDIA_ROOT}) as server:
        first = run_client(server.port, thousand_files, secret)
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith("deployed docs: 1,000 of 1,000 files uploaded (")
        assert "live at https://docs.sites.test/ in " in first.stdout
        assert live_assets().count() == 1000

        again = run_client(server.port, thousand_files, secret)
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("deployed docs: 0 of 1,000 files uploaded (0 bytes)")
        assert Deployment.objects.filter(site__subdomain="docs").count() == 2

        (thousand_files / "page0007" / "index.html").write_text("<p>changed</p>")
        changed = run_client(server.port, thousand_files, secret)
        assert changed.returncode == 0, changed.stderr
        assert changed.stdout.startswith("deployed docs: 1 of 1,000 files uploaded (14 bytes)")
        status, _, body = server.request("/page0007/", "docs.sites.test")
        assert (status, body) == (200, b"<p>changed</p>")


def stored_blobs() -> set[str]:
    return set(BlobStore().walk())


def settled_blobs() -> set[str]:
    """The stored blobs once no upload in flight lands any more (the server
    finishes, or refuses, what a killed client had sent)."""
    seen, deadline = stored_blobs(), time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.5)
        if (now := stored_blobs()) == seen:
            return now
        seen = now
    raise AssertionError("uploads still landing 10 s after the client was killed")


def test_a_killed_run_resumed_uploads_only_what_is_missing(transactional_db, tmp_path: Path, settings) -> None:
    files = {f"page{n:03}/data.bin": os.urandom(16 * 1024) for n in range(400)}
    source = write_tree(tmp_path / "build", files)
    Site.objects.create(subdomain="docs")
    secret = create_token("ci", ["docs"])[1]
    with gunicorn(tmp_path, env={"ASSETCACHE_TEST_MEDIA_ROOT": settings.MEDIA_ROOT}) as server:
        command, env = client_command(server.port, source, secret)
        client = subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            while len(stored_blobs()) < len(files) // 2 and client.poll() is None:
                time.sleep(0.005)
        finally:
            client.send_signal(signal.SIGKILL)
            client.communicate(timeout=30)
        assert client.returncode == -signal.SIGKILL
        before = settled_blobs()
        assert len(files) // 2 <= len(before) < len(files)
        assert not Deployment.objects.exists()

        resumed = run_client(server.port, source, secret)
        assert resumed.returncode == 0, resumed.stderr
        remaining = len(files) - len(before)
        assert resumed.stdout.startswith(f"deployed docs: {remaining} of 400 files uploaded (")
        assert len(stored_blobs() - before) == remaining
        assert stored_blobs() == {sha(content) for content in files.values()}
        for name, content in files.items():
            status, _, body = server.request(f"/{name}", "docs.sites.test")
            assert (status, body) == (200, content), name


@pytest.mark.parametrize(
    ("token", "error"),
    [
        ("acd_wrong", "assetcache-deploy: 401 from POST sites/docs/deploys: a valid deploy token is required"),
        ("", "assetcache-deploy: set ASSETCACHE_TOKEN to a deploy token (assetcache_token create)"),
    ],
)
def test_a_failure_is_one_line_and_a_non_zero_exit(
    transactional_db, tmp_path: Path, settings, thousand_files, token: str, error: str
) -> None:
    Site.objects.create(subdomain="docs")
    with gunicorn(tmp_path, env={"ASSETCACHE_TEST_MEDIA_ROOT": settings.MEDIA_ROOT}) as server:
        done = run_client(server.port, thousand_files, token)
    assert done.returncode == 1
    assert done.stdout == ""
    assert done.stderr.startswith(error) and done.stderr.count("\n") == 1
    assert not Deployment.objects.exists()


def test_a_server_that_is_not_there_is_retried_then_one_line(tmp_path: Path, thousand_files) -> None:
    done = run_client(1, thousand_files, "acd_x")
    assert done.returncode == 1
    assert done.stderr.startswith("assetcache-deploy: POST sites/docs/deploys: ")
    assert done.stderr.count("\n") == 1


class CannedReply(socketserver.BaseRequestHandler):
    """Answers every request with the server's ``reply`` bytes, as they are."""

    def handle(self) -> None:
        self.request.settimeout(5)
        received = b""
        while b"\r\n\r\n" not in received and (chunk := self.request.recv(65536)):
            received += chunk
        self.server.requests.append(received)  # type: ignore[attr-defined]
        self.request.sendall(self.server.reply)  # type: ignore[attr-defined]


@contextmanager
def canned_server(reply: bytes) -> Iterator[socketserver.ThreadingTCPServer]:
    with socketserver.ThreadingTCPServer(("127.0.0.1", 0), CannedReply) as server:
        server.reply, server.requests = reply, []  # type: ignore[attr-defined]
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield server
        finally:
            server.shutdown()


@pytest.mark.parametrize(
    ("reply", "attempts", "error"),
    [
        (
            b"HTTP/1.1 302 Found\r\nLocation: http://elsewhere.test/steal\r\nContent-Length: 0\r\n\r\n",
            1,
            "302 from POST sites/docs/deploys: redirected to http://elsewhere.test/steal: "
            "give --url the API's own address",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 21\r\n\r\n<html>sign in</html>\n",
            1,
            "200 from POST sites/docs/deploys: not a reply of the deploy API: <html>sign in</html>",
        ),
        (
            b"HTTP/1.1 400 Bad\r\nContent-Type: application/json\r\nContent-Length: 6\r\n\r\n[1, 2]",
            1,
            "400 from POST sites/docs/deploys: not a reply of the deploy API: [1, 2]",
        ),
        (
            b'HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 13\r\n\r\n{"id": false}',
            1,
            "POST sites/docs/deploys: not a reply of the deploy API: {'id': False}",
        ),
        (b"garbage\r\n\r\n", 5, "POST sites/docs/deploys: bad HTTP reply (BadStatusLine: garbage)"),
    ],
)
def test_a_reply_that_is_not_the_apis_is_one_line_and_never_followed(
    tmp_path: Path, reply: bytes, attempts: int, error: str
) -> None:
    source = write_tree(tmp_path / "build", {"index.html": "<p>home</p>"})
    with canned_server(reply) as server:
        done = run_client(server.server_address[1], source, "acd_secret_value")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == f"assetcache-deploy: {error}\n"
    assert len(server.requests) == attempts  # type: ignore[attr-defined]
    assert "acd_secret_value" not in done.stderr


def test_a_link_out_of_source_is_refused_before_anything_is_sent(tmp_path: Path) -> None:
    (tmp_path / "private.key").write_text("secret")
    source = write_tree(tmp_path / "build", {"index.html": "<p>home</p>", "inner.txt": "inner"})
    (source / "key.txt").symlink_to(tmp_path / "private.key")
    (source / "same.txt").symlink_to(source / "inner.txt")
    with canned_server(b"") as server:
        done = run_client(server.server_address[1], source, "acd_x")
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr == "assetcache-deploy: key.txt: symbolic link points outside SOURCE\n"
    assert server.requests == []  # type: ignore[attr-defined]


def api_call(port: int, method: str, path: str, secret: str, body: bytes | dict[str, object] = b"") -> tuple[int, Any]:
    """One API request to gunicorn: (status, the JSON reply)."""
    data = json.dumps(body).encode() if isinstance(body, dict) else body
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        kind = "application/json" if isinstance(body, dict) else "application/octet-stream"
        headers = {"Host": f"127.0.0.1:{port}", "Authorization": f"Bearer {secret}", "Content-Type": kind}
        connection.request(method, f"/assetcache/{path}", data, headers)
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


def test_refusals_over_gunicorn_change_nothing(transactional_db, tmp_path: Path, settings) -> None:
    """Issue 14's refusals through a real server: another site's token 403, bytes that are not
    their hash 422, finish with a blob missing 409, a deploy over the site limit 413; each a JSON
    error, nothing stored, nothing deployed."""
    Site.objects.create(subdomain="docs")
    Site.objects.create(subdomain="other")
    secret = create_token("ci", ["docs"])[1]
    other = create_token("elsewhere", ["other"])[1]
    page, style = b"<h1>home</h1>", b"body{}"
    files = {"files": {"/index.html": {"sha256": sha(page), "size": len(page)}, "/site.css": sha(style)}}
    with gunicorn(tmp_path, env={"ASSETCACHE_TEST_MEDIA_ROOT": settings.MEDIA_ROOT}) as server:
        assert api_call(server.port, "POST", "sites/docs/deploys", other, files)[0] == 403
        status, started = api_call(server.port, "POST", "sites/docs/deploys", secret, files)
        assert status == 201, started
        deploy = started["id"]
        status, refused = api_call(server.port, "PUT", f"deploys/{deploy}/blobs/{sha(page)}", secret, b"<h1>HOME</h1>")
        assert (status, "error" in refused) == (422, True)
        assert stored_blobs() == set()
        status, refused = api_call(server.port, "POST", f"deploys/{deploy}/finish", secret)
        assert status == 409 and sorted(refused["missing"]) == sorted([sha(page), sha(style)])
        huge = {"files": {"/big.bin": {"sha256": "ab" * 32, "size": 5 * 1024**3}}}
        status, refused = api_call(server.port, "POST", "sites/docs/deploys", secret, huge)
        assert status == 413 and "ASSETCACHE_MAX" in refused["error"]
    assert not Deployment.objects.exists()
    assert stored_blobs() == set()
