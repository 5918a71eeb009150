"""``assetcache-deploy``: deploy a built site from CI through the deploy API.

Only the standard library: a CI step needs the package installed and
nothing else running. It hashes the files (in parallel), sends the
manifest, uploads the blobs the server lacks (a few at a time, retrying
5xx replies and connection errors with backoff), and finishes the deploy.
The token comes from ``ASSETCACHE_TOKEN``, never the command line.
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from .sourcerules import PublishError, SourceRules

CHUNK = 1024 * 1024
RETRIES = 5


class DeployFailed(Exception):
    """The one line printed before exiting non-zero."""


@dataclass(frozen=True)
class LocalFile:
    path: str
    file: Path
    sha256: str
    size: int


def list_files(root: Path, rules: SourceRules) -> list[tuple[str, Path]]:
    """(site path, file) of every file of ``root`` the rules publish. A
    link to a file outside ``root`` is refused, as ``assetcache_publish``
    refuses it: a build must not upload what lies beside it."""
    found: list[tuple[str, Path]] = []
    real_root = root.resolve()
    for directory, folders, names in os.walk(root):
        parts = Path(directory).relative_to(root).parts
        folders[:] = sorted(name for name in folders if not rules.skips_folder([*parts, name]))
        for name in sorted(names):
            file = Path(directory, name)
            if not file.is_file() or rules.skips([*parts, name]):
                continue
            if file.is_symlink() and not file.resolve().is_relative_to(real_root):
                raise DeployFailed(f"{'/'.join([*parts, name])}: symbolic link points outside SOURCE")
            found.append(("/" + "/".join([*parts, name]), file))
    return found


def hash_file(site_path: str, file: Path) -> LocalFile:
    digest, size = hashlib.sha256(), 0
    with open(file, "rb") as stream:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return LocalFile(site_path, file, digest.hexdigest(), size)


class Api:
    """Requests to the deploy API, each on a connection of its thread's own."""

    def __init__(self, base_url: str, token: str) -> None:
        parsed = urllib.parse.urlsplit(base_url.rstrip("/") + "/")
        if parsed.scheme not in {"http", "https"} or not parsed.netloc:
            raise DeployFailed(f"--url {base_url!r} is not an http(s) URL")
        self.parsed = parsed
        self.token = token

    def _connection(self) -> http.client.HTTPConnection:
        if self.parsed.scheme == "https":
            return http.client.HTTPSConnection(self.parsed.netloc, timeout=120)
        return http.client.HTTPConnection(self.parsed.netloc, timeout=120)

    def call(self, method: str, path: str, body: Any = None, *, upload: Path | None = None) -> Any:
        """The reply's JSON; DeployFailed with the server's error otherwise.
        5xx replies and connection errors are retried with backoff."""
        for attempt in range(RETRIES):
            try:
                status, reply = self._once(method, path, body, upload)
            except OSError as exc:  # refused, reset, timed out, TLS
                if attempt == RETRIES - 1:
                    raise DeployFailed(f"{method} {path}: {exc}") from exc
            except http.client.HTTPException as exc:  # not HTTP, cut short: not an OSError
                if attempt == RETRIES - 1:
                    garbled = " ".join(str(exc).split())
                    raise DeployFailed(f"{method} {path}: bad HTTP reply ({type(exc).__name__}: {garbled})") from exc
            else:
                if status < 500 or attempt == RETRIES - 1:
                    break
            time.sleep(min(0.5 * 2**attempt, 8))
        # A reply of the API is a JSON object without "error": anything else
        # (a proxy's page, a redirect, which is never followed with the
        # token) is a failure.
        if status >= 300 or "error" in reply:
            raise DeployFailed(f"{status} from {method} {path}: {reply.get('error', reply)}")
        return reply

    def _once(self, method: str, path: str, body: Any, upload: Path | None) -> tuple[int, Any]:
        headers = {"Authorization": f"Bearer {self.token}", "Accept": "application/json"}
        connection = self._connection()
        try:
            target = self.parsed.path + path
            if upload is not None:
                headers["Content-Type"] = "application/octet-stream"
                headers["Content-Length"] = str(upload.stat().st_size)
                with open(upload, "rb") as stream:
                    connection.request(method, target, body=stream, headers=headers)
            else:
                data = None if body is None else json.dumps(body).encode()
                if data is not None:
                    headers["Content-Type"] = "application/json"
                connection.request(method, target, body=data, headers=headers)
            response = connection.getresponse()
            raw = response.read()
        finally:
            connection.close()
        if 300 <= response.status < 400:
            where = response.getheader("Location") or "nowhere"
            return response.status, {"error": f"redirected to {where}: give --url the API's own address"}
        try:
            reply = json.loads(raw) if raw else {}
        except ValueError:
            reply = None
        if not isinstance(reply, dict):
            shown = " ".join(raw[:200].decode("utf-8", "replace").split())
            reply = {"error": f"not a reply of the deploy API: {shown or response.reason}"}
        return response.status, reply


class Bar:
    """A progress line on a terminal; nothing elsewhere (CI logs)."""

    def __init__(self, label: str, total: int, out: TextIO) -> None:
        self.label, self.total, self.done, self.out = label, total, 0, out
        self.shown = out.isatty() and total > 0

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        if self.shown:
            width = 30
            filled = width * self.done // self.total
            self.out.write(f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {self.done}/{self.total}")
            self.out.flush()

    def close(self) -> None:
        if self.shown:
            self.out.write("\r\033[K")
            self.out.flush()


def human_bytes(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}".replace(".0 ", " ")
        n /= 1024
    return f"{n} GiB"


def git_subject(source: Path) -> str:
    """The subject of the commit checked out where ``source`` is; "" outside git."""
    try:
        done = subprocess.run(
            ["git", "-C", str(source), "log", "-1", "--format=%s"], capture_output=True, text=True, timeout=10
        )
    except (OSError, subprocess.SubprocessError):
        return ""
    return done.stdout.strip() if done.returncode == 0 else ""


def _parallel(work: Callable[[Any], Any], items: Sequence[Any], workers: int, bar: Bar) -> list[Any]:
    results = []
    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        try:
            for result in pool.map(work, items):
                results.append(result)
                bar.advance()
        finally:
            bar.close()
    return results


def deploy(options: argparse.Namespace, token: str, out: TextIO) -> str:
    """Deploy; return the summary line."""
    started = time.monotonic()
    source = Path(options.source)
    if not source.is_dir():
        raise DeployFailed(f"{source}: not a directory")
    try:
        rules = SourceRules.of(options.exclude, options.include)
    except PublishError as exc:
        raise DeployFailed(str(exc)) from exc
    api = Api(options.url, token)
    listed = list_files(source, rules)
    if not listed:
        raise DeployFailed(f"{source}: no files to deploy")
    files = _parallel(lambda item: hash_file(*item), listed, options.jobs, Bar("hashing", len(listed), out))
    message = options.message if options.message is not None else git_subject(source)
    manifest = {f.path: {"sha256": f.sha256, "size": f.size} for f in files}
    body = {"files": manifest, "draft": options.draft, "alias": options.alias, "message": message}
    site = urllib.parse.quote(options.site, safe="")
    started_deploy = api.call("POST", f"sites/{site}/deploys", body)
    key, required = started_deploy.get("id"), started_deploy.get("required")
    if not isinstance(key, str) or not isinstance(required, list):
        raise DeployFailed(f"POST sites/{site}/deploys: not a reply of the deploy API: {started_deploy}")
    key, required = urllib.parse.quote(key, safe=""), set(required)
    uploads = sorted({f.sha256: f for f in files if f.sha256 in required}.values(), key=lambda f: f.path)
    _parallel(
        lambda f: api.call("PUT", f"deploys/{key}/blobs/{f.sha256}", upload=f.file),
        uploads,
        options.connections,
        Bar("uploading", len(uploads), out),
    )
    done = api.call("POST", f"deploys/{key}/finish")
    where = f"preview at {done.get('preview_url')}" if done.get("state") == "draft" else f"live at {done.get('url')}"
    sent = human_bytes(sum(f.size for f in uploads))
    return (
        f"deployed {options.site}: {len(uploads):,} of {len(files):,} files uploaded ({sent}), "
        f"{where} in {time.monotonic() - started:.1f} s"
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="assetcache-deploy",
        description="Deploy a directory to a django-assetcache site; the token is read from ASSETCACHE_TOKEN.",
    )
    p.add_argument("source", metavar="SOURCE", help="The built site's directory.")
    p.add_argument("--url", required=True, help="The API's base URL, e.g. https://admin.example.com/assetcache/")
    p.add_argument("--site", required=True, metavar="SUB", help="The site's subdomain.")
    p.add_argument("--draft", action="store_true", help="Store the deployment without making it live.")
    p.add_argument("--alias", default=None, help="Point this alias (e.g. staging) at the deployment.")
    p.add_argument("--message", default=None, help="Default: the git commit's subject, in a git work tree.")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB", help="Also skip these paths.")
    p.add_argument("--include", action="append", default=[], metavar="GLOB", help="Publish these despite the defaults.")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 2, help="Files hashed at once.")
    p.add_argument("--connections", type=int, default=4, help="Uploads at once (default 4).")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    options = parser().parse_args(argv)
    token = os.environ.get("ASSETCACHE_TOKEN", "").strip()
    try:
        if not token:
            raise DeployFailed("set ASSETCACHE_TOKEN to a deploy token (assetcache_token create)")
        line = deploy(options, token, sys.stderr)
    except DeployFailed as exc:
        print(f"assetcache-deploy: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("assetcache-deploy: interrupted", file=sys.stderr)
        return 130
    print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
