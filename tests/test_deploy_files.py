"""The files in deploy/ load in the programs that read them, and a real proxy
in front of a real gunicorn passes a site's bytes and headers through."""

from __future__ import annotations

import configparser
import http.client
import os
import re
import shlex
import shutil
import ssl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from string import Template

import pytest
import yaml

from django_assetcache.publish import publish

from .conftest import write_tree
from .servers import ROOT, Server, free_port, gunicorn, stop_process, unavailable, wait_for_port

DEPLOY = ROOT / "deploy"
REPOSITORY = "https://github.com/django-assetcache/django-assetcache/blob/main/"


def program(name: str) -> str:
    path = shutil.which(name) or next((p for p in (f"/usr/sbin/{name}", f"/usr/bin/{name}") if os.path.exists(p)), None)
    if path is None:
        unavailable(f"{name} is not installed")
    return path


# --- nginx -------------------------------------------------------------------


def self_signed_certificate(directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            *(program("openssl"), "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"),
            *("-nodes", "-subj", "/CN=sites.test", "-days", "1"),
            *("-keyout", str(directory / "privkey.pem"), "-out", str(directory / "fullchain.pem")),
        ],
        check=True,
        capture_output=True,
    )
    return directory


def nginx_configuration(prefix: Path, upstream: str, http_port: int, https_port: int) -> Path:
    """deploy/nginx/assetcache.conf.template, filled in as envsubst would,
    inside a minimal nginx.conf whose every path is under ``prefix``."""
    values = {
        "MAIN_HOST": "www.test",
        "ASSETCACHE_DOMAIN": "sites.test",
        "ASSETCACHE_UPSTREAM": upstream,
        "TLS_CERT_DIR": str(self_signed_certificate(prefix / "tls")),
        "ACME_ROOT": str(prefix / "acme"),
        "HTTP_PORT": str(http_port),
        "HTTPS_PORT": str(https_port),
    }
    template = (DEPLOY / "nginx" / "assetcache.conf.template").read_text()
    named = set(re.findall(r"\$\{(\w+)\}", template))
    assert named == set(values), "the template's variables are the ones its header documents"
    (prefix / "assetcache.conf").write_text(Template(template).safe_substitute(values))
    user = "user root;\n" if os.geteuid() == 0 else ""
    main = prefix / "nginx.conf"
    main.write_text(
        f"{user}daemon off;\nworker_processes 1;\npid {prefix}/nginx.pid;\nerror_log {prefix}/error.log;\n"
        "events {}\nhttp {\n"
        f"  access_log {prefix}/access.log;\n"
        + "".join(
            f"  {kind}_temp_path {prefix}/{kind};\n" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
        )
        + f"  include {prefix}/assetcache.conf;\n}}\n"
    )
    return main


def nginx_command(main: Path) -> list[str]:
    return [program("nginx"), "-p", str(main.parent), "-c", str(main), "-e", str(main.parent / "error.log")]


ACCEL_INCLUDE = "# include /etc/nginx/assetcache-accel.conf;"


@pytest.mark.parametrize("accel", [False, True])
def test_nginx_loads_the_configuration(tmp_path: Path, accel: bool) -> None:
    """With the offload location included where the template says, too."""
    main = nginx_configuration(tmp_path / "nginx", "127.0.0.1:8000", free_port(), free_port())
    if accel:
        accel_conf = main.parent / "assetcache-accel.conf"
        template = (DEPLOY / "nginx" / "assetcache-accel.conf.template").read_text()
        accel_conf.write_text(template.replace("${ASSETCACHE_BLOBS}", str(tmp_path / "blobs")))
        site = main.parent / "assetcache.conf"
        assert ACCEL_INCLUDE in site.read_text()
        site.write_text(site.read_text().replace(ACCEL_INCLUDE, f"include {accel_conf};"))
    result = subprocess.run([*nginx_command(main), "-t"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


# --- Caddy -------------------------------------------------------------------


def caddy_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    home = tmp_path / "caddy-home"
    home.mkdir(exist_ok=True)
    return {**os.environ, "HOME": str(home), "XDG_DATA_HOME": str(home), "XDG_CONFIG_HOME": str(home), **extra}


@pytest.mark.parametrize(
    "env",
    [{}, {"MAIN_HOST": "www.example.org", "ASSETCACHE_DOMAIN": "pages.example.org", "ASSETCACHE_UPSTREAM": "web:8000"}],
)
def test_caddy_validates_the_caddyfile(tmp_path: Path, env: dict[str, str]) -> None:
    result = subprocess.run(
        [program("caddy"), "validate", "--adapter", "caddyfile", "--config", str(DEPLOY / "caddy" / "Caddyfile")],
        capture_output=True,
        text=True,
        env=caddy_env(tmp_path, **env),
        cwd=tmp_path,  # the import of proxy.caddy is relative to the Caddyfile, not here
    )
    assert result.returncode == 0, result.stderr
    assert "Valid configuration" in result.stdout + result.stderr


def test_the_caddyfile_asks_the_app_before_an_on_demand_certificate(tmp_path: Path) -> None:
    adapted = subprocess.run(
        [program("caddy"), "adapt", "--adapter", "caddyfile", "--config", str(DEPLOY / "caddy" / "Caddyfile")],
        capture_output=True,
        text=True,
        env=caddy_env(tmp_path, ASSETCACHE_UPSTREAM="web:8000"),
        check=True,
    ).stdout
    assert '"ask":"http://web:8000/assetcache/tls-ask"' in adapted
    assert '"on_demand":true' in adapted
    assert '"*.sites.example.com"' in adapted


# --- compose, Dockerfile, systemd ---------------------------------------------


def test_the_compose_file_names_the_services_and_volumes_the_docs_promise() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert set(compose["services"]) == {"db", "redis", "warmup", "web", "caddy"}
    assert set(compose["volumes"]) == {"postgres", "redis", "media", "snapshot", "caddy"}
    web, warmup = compose["services"]["web"], compose["services"]["warmup"]
    assert web["depends_on"] == {"warmup": {"condition": "service_completed_successfully"}}
    assert "assetcache_warmup" in " ".join(warmup["command"])
    for service in (web, warmup):
        assert set(service["volumes"]) == {"media:/data/media", "snapshot:/data/snapshot"}
        assert service["build"] == {"context": "..", "dockerfile": "deploy/Dockerfile"}
        assert service["environment"]["POSTGRES_HOST"] == "db"
        assert service["environment"]["REDIS_URL"] == "redis://redis:6379/0"
    assert compose["services"]["caddy"]["volumes"][0] == "./caddy:/etc/caddy:ro"
    assert (DEPLOY / "caddy" / "Caddyfile").is_file()
    documented = (ROOT / "docs" / "deployment.md").read_text()
    for name in [*compose["services"], *compose["volumes"]]:
        assert f"`{name}`" in documented


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = (DEPLOY / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [(line.split(None, 1)[0], line.split(None, 1)[1]) for line in lines]


def test_the_dockerfile_copies_files_that_exist_and_runs_what_it_copied() -> None:
    instructions = dockerfile_instructions()
    copied: list[str] = []
    for kind, rest in instructions:
        if kind == "COPY":
            *sources, destination = shlex.split(rest)
            for source in sources:
                assert (ROOT / source).exists(), source
            copied.append(destination)
    settings_module = next(rest for kind, rest in instructions if kind == "ENV")
    module = re.search(r"DJANGO_SETTINGS_MODULE=(\S+)", settings_module)
    assert module is not None
    assert (ROOT / "example_project" / (module.group(1).replace(".", "/") + ".py")).is_file()
    command = next(rest for kind, rest in instructions if kind == "CMD")
    assert "/app/deploy/gunicorn.conf.py" in command and "./deploy/gunicorn.conf.py" in copied


def test_the_production_settings_pass_the_system_checks(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example.settings_production",
        "DJANGO_SECRET_KEY": "x" * 60,
        "ASSETCACHE_DATA_DIR": str(tmp_path),
        "REDIS_URL": "redis://redis:6379/0",
        # This checkout's package, whatever the environment has installed.
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check", "--fail-level", "WARNING"],
        cwd=ROOT / "example_project",
        env=env,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_systemd_verifies_the_units(tmp_path: Path) -> None:
    analyze = program("systemd-analyze")
    project = tmp_path / "srv"
    (project / ".venv" / "bin").mkdir(parents=True)
    for name in ("python", "gunicorn"):
        (project / ".venv" / "bin" / name).symlink_to(sys.executable)
    units = []
    for unit in sorted((DEPLOY / "systemd").iterdir()):
        target = tmp_path / unit.name
        target.write_text(unit.read_text().replace("/srv/mysite", str(project)))
        units.append(str(target))
    result = subprocess.run([analyze, "verify", "--man=no", *units], capture_output=True, text=True)
    assert (result.returncode, result.stdout + result.stderr) == (0, "")
    service = configparser.ConfigParser(strict=False, interpolation=None)
    service.read(tmp_path / "assetcache.service")
    assert service["Unit"]["Requires"] == "assetcache-warmup.service"
    timer = configparser.ConfigParser(interpolation=None)
    timer.read(tmp_path / "assetcache-gc.timer")
    assert timer["Timer"]["Unit"] == "assetcache-gc.service"


# --- the PyPI page -------------------------------------------------------------


def test_the_readme_links_are_absolute_and_name_files_that_exist() -> None:
    links = re.findall(r"\]\(([^)]+)\)", (ROOT / "README.md").read_text())
    assert links
    for link in links:
        assert link.startswith(("https://", "http://")), link
        if link.startswith(REPOSITORY):
            assert (ROOT / link.removeprefix(REPOSITORY).split("#")[0]).is_file(), link


# --- a real proxy in front of a real gunicorn ------------------------------------

SITE_FILES = {
    "index.html": b"<!doctype html><title>proxied</title>\n",
    "big.bin": bytes(range(256)) * 1600,  # 400 KiB: above the memory file limit, sent by sendfile
}
HOST = "proxied.sites.test"


@contextmanager
def running(command: list[str], port: int, log: Path, env: dict[str, str] | None = None) -> Iterator[None]:
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=out, env=env)
    try:
        wait_for_port(port, process)
        yield
    finally:
        stop_process(process)


@contextmanager
def nginx_in_front(app: Server, tmp_path: Path) -> Iterator[tuple[int, bool]]:
    https_port, http_port = free_port(), free_port()
    main = nginx_configuration(tmp_path / "nginx", f"127.0.0.1:{app.port}", http_port, https_port)
    with running(nginx_command(main), https_port, tmp_path / "nginx.log"):
        status, headers, _ = request(http_port, False, "/big.bin")
        assert (status, headers["location"]) == (301, f"https://{HOST}/big.bin")
        yield https_port, True


@contextmanager
def caddy_in_front(app: Server, tmp_path: Path) -> Iterator[tuple[int, bool]]:
    port = free_port()
    caddyfile = tmp_path / "Caddyfile"
    caddyfile.write_text(
        f"{{\n\tauto_https off\n\tadmin off\n}}\nhttp://:{port} {{\n\timport {DEPLOY / 'caddy' / 'proxy.caddy'}\n}}\n"
    )
    command = [program("caddy"), "run", "--adapter", "caddyfile", "--config", str(caddyfile)]
    env = caddy_env(tmp_path, ASSETCACHE_UPSTREAM=f"127.0.0.1:{app.port}")
    with running(command, port, tmp_path / "caddy.log", env):
        yield port, False


def request(port: int, tls: bool, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict, bytes]:
    if tls:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE  # the test's self-signed certificate
        connection: http.client.HTTPConnection = http.client.HTTPSConnection("127.0.0.1", port, context=context)
    else:
        connection = http.client.HTTPConnection("127.0.0.1", port)
    try:
        connection.request("GET", path, headers={"Host": HOST, "Accept-Encoding": "identity", **(headers or {})})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()


PASSED_THROUGH = ("content-type", "content-length", "etag", "last-modified", "cache-control", "accept-ranges")


@pytest.mark.parametrize("proxy", [nginx_in_front, caddy_in_front], ids=["nginx", "caddy"])
def test_a_proxy_passes_bytes_and_headers_through(transactional_db, tmp_path: Path, settings, proxy) -> None:
    publish("proxied", write_tree(tmp_path / "src", SITE_FILES))
    with gunicorn(tmp_path, env={"ASSETCACHE_TEST_MEDIA_ROOT": settings.MEDIA_ROOT}) as app:
        direct = {name: app.request(f"/{name}", HOST) for name in SITE_FILES}
        with proxy(app, tmp_path) as (port, tls):
            for name, data in SITE_FILES.items():
                status, headers, body = request(port, tls, f"/{name}")
                assert (status, body) == (200, data)
                assert {h: headers[h] for h in PASSED_THROUGH} == {h: direct[name][1][h] for h in PASSED_THROUGH}
                assert headers["x-content-type-options"] == "nosniff"
                status, headers, body = request(port, tls, f"/{name}", {"If-None-Match": headers["etag"]})
                assert (status, body) == (304, b"")
            status, headers, body = request(port, tls, "/big.bin", {"Range": "bytes=1000-1999"})
            assert (status, headers["content-range"], body) == (
                206,
                "bytes 1000-1999/409600",
                SITE_FILES["big.bin"][1000:2000],
            )
            status, _, _ = request(port, tls, "/missing")
            assert status == 404
