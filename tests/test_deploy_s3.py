"""``assetcache-deploy`` against a real gunicorn that keeps its blobs in S3.

The bucket is served by moto's real server (tests/test_s3.py's fixtures),
reached by gunicorn through django-storages' ``S3Storage`` and boto3.
"""

from __future__ import annotations

import json
from pathlib import Path

from django_assetcache.deploytokens import create_token
from django_assetcache.models import Deployment, Site

from .conftest import sha, write_tree
from .servers import gunicorn
from .test_deploy_client import run_client
from .test_s3 import S3, moto_endpoint, s3  # noqa: F401 (fixtures)

FILES = {f"page{n:03}/index.html": f"<p>page {n}</p>" for n in range(200)}


def blob_puts(bucket: S3) -> int:
    return sum('"PUT /' in line for line in bucket.log.lines)


def test_deploy_redeploy_and_one_change_with_blobs_in_s3(s3: S3, transactional_db, tmp_path: Path) -> None:
    source = write_tree(tmp_path / "build", FILES)
    Site.objects.create(subdomain="docs")
    secret = create_token("ci", ["docs"])[1]
    env = {"ASSETCACHE_TEST_MEDIA_ROOT": str(tmp_path / "media"), "ASSETCACHE_TEST_S3": json.dumps(s3.options)}
    with gunicorn(tmp_path, env=env) as server:
        first = run_client(server.port, source, secret)
        assert first.returncode == 0, first.stderr
        assert first.stdout.startswith("deployed docs: 200 of 200 files uploaded (")
        assert s3.blob_keys() == {sha(content) for content in FILES.values()}
        puts = blob_puts(s3)

        again = run_client(server.port, source, secret)
        assert again.returncode == 0, again.stderr
        assert again.stdout.startswith("deployed docs: 0 of 200 files uploaded (0 bytes)")
        assert Deployment.objects.filter(site__subdomain="docs").count() == 2

        (source / "page007" / "index.html").write_text("<p>changed</p>")
        changed = run_client(server.port, source, secret)
        assert changed.returncode == 0, changed.stderr
        assert changed.stdout.startswith("deployed docs: 1 of 200 files uploaded (14 bytes)")
        assert s3.blob_keys() == {sha(content) for content in FILES.values()} | {sha("<p>changed</p>")}
        assert s3.puts(sha("<p>changed</p>")) == 1
        assert blob_puts(s3) == puts + 1
        served = {name: server.request(f"/{name}", "docs.sites.test") for name in FILES}
    expected = {**FILES, "page007/index.html": "<p>changed</p>"}
    assert {name: (status, body) for name, (status, _, body) in served.items()} == {
        name: (200, content.encode()) for name, content in expected.items()
    }
