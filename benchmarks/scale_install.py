"""A generated install for benchmarks/scale_bench.py, built in its own process.

    DJANGO_SETTINGS_MODULE=tests.settings ... python benchmarks/scale_install.py \
        --sites 1000 --per-site 100 --workdir DIR

Every site has ``--per-site`` files: many small HTML pages of its own, CSS and
JavaScript drawn from a pool of "framework" bodies every site shares, images
(some shared logos, some of its own) and one large download from a small
pool. ``TEMPLATES`` sites are published for real (``publish()``, through the
blob store) and timed; the other sites are clones of them, written in bulk in
the shape a publish writes (a Site, its live Deployment, one Asset row per
file pointing at the template's blobs, one Change), so the blob store, and the
disk, stay the size of the templates. ``EXTRA`` more sites are then published
for real into the full install, timed again. Then ``assetcache_warmup`` runs,
timed. Prints one JSON line with the numbers and writes ``paths.txt`` (every
``host path``, shuffled) in the working directory for wrk.
"""

from __future__ import annotations

import argparse
import io
import json
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.publish_bench import file_body, text_corpus

#: Sites published for real before the bulk clone, and after it.
TEMPLATES = 30
EXTRA = 3
KIB = 1024
#: (extension, share of a site's files, smallest and largest size, pool):
#: pool "own" means a body of the site's own, otherwise the number of bodies
#: every site draws from.
MIX: list[tuple[str, float, int, int, int | str]] = [
    ("html", 0.55, 1 * KIB, 24 * KIB, "own"),
    ("css", 0.10, 2 * KIB, 80 * KIB, 40),
    ("js", 0.15, 2 * KIB, 200 * KIB, 60),
    ("json", 0.05, 300, 8 * KIB, "own"),
    ("svg", 0.04, 500, 12 * KIB, 30),
    ("png", 0.05, 8 * KIB, 300 * KIB, "own"),
    ("jpg", 0.05, 20 * KIB, 400 * KIB, 30),
]
LARGE: tuple[str, float, int, int, int | str] = ("pdf", 0.0, 1024 * KIB, 4096 * KIB, 6)


def log_uniform(rng: random.Random, low: int, high: int) -> int:
    return int(low * (high / low) ** rng.random())


class Framework:
    """The bodies sites share, made once per install."""

    def __init__(self, rng: random.Random, corpus: str) -> None:
        self.pools: dict[str, list[bytes]] = {}
        for extension, _share, low, high, pool in [*MIX, LARGE]:
            if isinstance(pool, int):
                self.pools[extension] = [
                    shared_body(rng, extension, log_uniform(rng, low, high), corpus, n) for n in range(pool)
                ]
        self.corpus = corpus


def write_site(root: Path, per_site: int, framework: Framework, rng: random.Random, name: str) -> None:
    """One site's tree: ``per_site`` files, the last one the large download."""
    plan = [
        (extension, low, high, pool)
        for extension, share, low, high, pool in MIX
        for _ in range(round(share * per_site))
    ]
    plan = plan[: per_site - 1]
    while len(plan) < per_site - 1:
        plan.append(plan[0])
    for index, (extension, low, high, pool) in enumerate(plan):
        if pool == "own":
            body = file_body(rng, extension, log_uniform(rng, low, high), framework.corpus, f"{name} {index}")
        else:
            body = rng.choice(framework.pools[extension])
        section = ("", "docs/", "blog/", "assets/", "assets/vendor/")[index % 5]
        target = root / f"{section}{extension}{index:04d}.{extension}"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(body)
    (root / f"download.{LARGE[0]}").write_bytes(rng.choice(framework.pools[LARGE[0]]))


def shared_body(rng: random.Random, extension: str, size: int, corpus: str, number: int) -> bytes:
    """A body of a pool; a download is already compressed bytes, as PDFs and archives mostly are."""
    if extension == LARGE[0]:
        return f"%PDF-1.7 {number}\n".encode() + rng.randbytes(size)
    return file_body(rng, extension, size, corpus, f"shared {extension} {number}")


def publish_sites(names: list[str], trees: list[Path]) -> tuple[int, float]:
    """Publish each tree as its site; (files, seconds) over all of them."""
    from django_assetcache.publish import publish

    files, seconds = 0, 0.0
    for name, tree in zip(names, trees, strict=True):
        summary = publish(name, tree)
        files += summary.files
        seconds += summary.seconds
    return files, seconds


def clone_sites(templates: list[str], count: int) -> None:
    """``count`` sites in bulk, each a copy of one of ``templates`` (round robin):
    the rows a publish of the same tree would write, the same blobs."""
    from django.db import connection, transaction
    from django.utils import timezone

    from django_assetcache.models import Asset, Change, Deployment, Site, record_change
    from django_assetcache.validators import new_deployment_key

    now = timezone.now().replace(microsecond=0)
    sources = {
        d.site.subdomain: d for d in Deployment.objects.filter(site__subdomain__in=templates).select_related("site")
    }
    with transaction.atomic():
        sites = Site.objects.bulk_create([Site(subdomain=f"c{n:05d}") for n in range(count)], batch_size=2000)
        deployments = Deployment.objects.bulk_create(
            [
                Deployment(
                    site=site,
                    key=new_deployment_key(),
                    created_at=now,
                    source=f"clone of {templates[n % len(templates)]}",
                    summary=sources[templates[n % len(templates)]].summary,
                    state=Deployment.State.LIVE,
                    live_at=now,
                )
                for n, site in enumerate(sites)
            ],
            batch_size=2000,
        )
        for site, deployment in zip(sites, deployments, strict=True):
            site.live_deployment = deployment
        Site.objects.bulk_update(sites, ["live_deployment"], batch_size=2000)
        asset, deployment_table = Asset._meta.db_table, Deployment._meta.db_table
        with connection.cursor() as cursor:
            for name in templates:
                cursor.execute(
                    f"INSERT INTO {asset} (site_id, deployment_id, path, blob_id, content_type, last_modified) "
                    f"SELECT d.site_id, d.id, a.path, a.blob_id, a.content_type, a.last_modified "
                    f"FROM {deployment_table} d, {asset} a WHERE d.source = %s AND a.deployment_id = %s",
                    [f"clone of {name}", sources[name].pk],
                )
        record_change(None, Change.Kind.DEPLOY)


def write_paths(workdir: Path, rng: random.Random) -> int:
    """Every ``host path`` of every live asset, shuffled, one a line."""
    from django.db.models import F

    from django_assetcache.models import Asset

    rows = list(
        Asset.objects.filter(deployment_id=F("site__live_deployment_id")).values_list("site__subdomain", "path")
    )
    rng.shuffle(rows)
    with open(workdir / "paths.txt", "w") as out:
        out.writelines(f"{subdomain}.sites.test {path}\n" for subdomain, path in rows)
    return len(rows)


def snapshot_format(path: Path) -> int:
    """The format version the snapshot was written in: the last two characters of its magic."""
    with open(path, "rb") as snapshot:
        return int(snapshot.read(8)[-2:])


def build(args: argparse.Namespace) -> dict[str, float]:
    from django.core.management import call_command

    from django_assetcache import conf

    rng = random.Random(args.seed)
    framework = Framework(rng, text_corpus(rng, 5 * 1024 * KIB))
    templates = min(TEMPLATES, args.sites - EXTRA)
    names = [f"t{n:03d}" for n in range(templates + EXTRA)]
    trees = [args.workdir / "trees" / name for name in names]
    for name, tree in zip(names, trees, strict=True):
        write_site(tree, args.per_site, framework, rng, name)

    first_files, first_seconds = publish_sites(names[:templates], trees[:templates])
    started = time.perf_counter()
    clone_sites(names[:templates], args.sites - templates - EXTRA)
    clone_seconds = time.perf_counter() - started
    extra_files, extra_seconds = publish_sites(names[templates:], trees[templates:])
    assets = write_paths(args.workdir, rng)

    started = time.perf_counter()
    call_command("assetcache_warmup", stdout=io.StringIO(), stderr=io.StringIO())
    warmup_seconds = time.perf_counter() - started
    snapshot = Path(conf.get().SNAPSHOT_PATH)
    return {
        "assets": assets,
        "sites": args.sites,
        "publish_empty_files_per_s": first_files / first_seconds,
        "publish_full_files_per_s": extra_files / extra_seconds,
        "clone_seconds": clone_seconds,
        "warmup_seconds": warmup_seconds,
        "snapshot_bytes": snapshot.stat().st_size,
        "snapshot_format": snapshot_format(snapshot),
        "blob_bytes": sum(p.stat().st_size for p in (args.workdir / "media").rglob("*") if p.is_file()),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sites", type=int, required=True)
    parser.add_argument("--per-site", type=int, default=100)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=18)
    args = parser.parse_args()
    import django

    django.setup()
    print("SCALE_JSON " + json.dumps(build(args)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
