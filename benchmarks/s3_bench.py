"""Remote storage: first-request latency from S3 vs local hits, and warmup throughput.

    .venv/bin/python benchmarks/s3_bench.py [--repeat N] [--blobs N] [--seed S]

An S3-compatible endpoint is played by moto's server, run as a separate
process on the loopback interface (so its work does not share this process's
GIL), reached through django-storages' S3Storage and boto3 over HTTP.

1. Latency of one GET for a 1 MiB and a 50 MiB file, whole body read, through
   the Django test client and the middleware:
   - *first request*: empty local tier and process cache (download, verify,
     serve);
   - *tier hit*: the blob is in the tier, the process cache is empty (one
     database query, a stat, an open);
   - *cache hit*: the steady state.
2. Warmup: ``N`` blobs (default 1,000, 4–128 KiB) downloaded into an empty
   tier, by one thread and by the default pool, and the whole
   ``assetcache_warmup`` command.

Runs in a throwaway directory through ``tests.settings``; prints the tables
and writes docs/benchmarks-s3.md. Loopback moto has no network latency and
no bandwidth limit: against a real object store the first request costs
more (round trips, bandwidth), which is what the warmup is for.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, machine_lines, markdown_table, setup_django, write_doc

MIB = 1024 * 1024
KIB = 1024
HOST = "bench.sites.test"
BUCKET = "assetcache-bench"
LATENCY_FILES = {"/one.bin": 1 * MIB, "/fifty.bin": 50 * MIB}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_moto(port: int, log: Path) -> subprocess.Popen[bytes]:
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            stdout=out,
            stderr=out,
        )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"moto exited with {process.returncode}: {log.read_text()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError("moto did not start")


def fresh(tier_dir: Path) -> None:
    """An empty local tier and process cache: a new machine's first request."""
    from django_assetcache import runtime, tiers

    runtime.reset()
    tiers.reset()
    shutil.rmtree(tier_dir, ignore_errors=True)


def get(path: str) -> tuple[int, float]:
    from django.test import Client

    started = time.perf_counter()
    response = Client(HTTP_HOST=HOST).get(path)
    size = len(b"".join(response.streaming_content)) if response.streaming else len(response.content)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, (path, response.status_code)
    return size, elapsed


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:.1f}"


def latency(source: Path, tier_dir: Path, repeat: int) -> list[list[object]]:
    from django_assetcache import runtime, tiers
    from django_assetcache.publish import publish

    for path, size in LATENCY_FILES.items():
        (source / path.lstrip("/")).write_bytes(os.urandom(size))
    publish("bench", source)
    rows = []
    for path, size in LATENCY_FILES.items():
        first, tier_hit, hit = [], [], []
        for _ in range(repeat):
            fresh(tier_dir)
            got, seconds = get(path)
            assert got == size
            first.append(seconds)
            assert tiers.get_tier().downloads == 1
            runtime.reset()
            tier_hit.append(get(path)[1])
            for _ in range(5):
                hit.append(get(path)[1])
        mib_s = size / MIB / statistics.median(first)
        rows.append(
            [
                f"{size // MIB} MiB",
                ms(first),
                f"{mib_s:.0f}",
                ms(tier_hit),
                ms(hit),
                f"{statistics.median(first) / statistics.median(hit):.1f}×",
            ]
        )
    return rows


def warmup(source: Path, tier_dir: Path, blobs: int, seed: int) -> tuple[list[list[object]], int]:
    from django.core.management import call_command

    from django_assetcache import tiers
    from django_assetcache import warmup as warmup_module
    from django_assetcache.models import Blob
    from django_assetcache.publish import publish
    from django_assetcache.store import BlobStore

    rng = random.Random(seed)
    many = source.parent / "many"
    many.mkdir()
    for i in range(blobs):
        (many / f"f{i:05d}.bin").write_bytes(rng.randbytes(rng.randint(4 * KIB, 128 * KIB)))
    publish("many", many)
    wanted = dict(Blob.objects.filter(assets__site__subdomain="many").values_list("sha256", "size"))
    total = sum(wanted.values())
    rows = []
    for workers in (1, warmup_module.DOWNLOAD_WORKERS):
        fresh(tier_dir)
        store = BlobStore()
        summary = warmup_module.WarmupSummary()
        started = time.perf_counter()
        warmup_module.fill_tier(store, wanted, summary, None, workers=workers)
        seconds = time.perf_counter() - started
        assert summary.downloaded == len(wanted) and not summary.missing_blobs, summary
        rows.append(
            [
                f"download phase, {workers} thread{'s' if workers > 1 else ''}",
                f"{len(wanted):,}",
                f"{total / MIB:.1f}",
                f"{seconds:.2f}",
                f"{total / MIB / seconds:.1f}",
                f"{len(wanted) / seconds:.0f}",
            ]
        )
    fresh(tier_dir)
    started = time.perf_counter()
    call_command("assetcache_warmup", "--site", "many", "--no-compress", verbosity=0)
    seconds = time.perf_counter() - started
    assert tiers.get_tier().downloads == len(wanted)
    rows.append(
        [
            "`assetcache_warmup --no-compress` (8 threads + snapshot)",
            f"{len(wanted):,}",
            f"{total / MIB:.1f}",
            f"{seconds:.2f}",
            f"{total / MIB / seconds:.1f}",
            f"{len(wanted) / seconds:.0f}",
        ]
    )
    return rows, total


def report(latency_rows: list[list[object]], warmup_rows: list[list[object]], args: Any, total: int) -> str:
    latency_table = markdown_table(
        [
            "File",
            "First request (ms)",
            "First request (MiB/s)",
            "Tier hit, cache miss (ms)",
            "Cache hit (ms)",
            "First / hit",
        ],
        latency_rows,
    )
    speedup = float(str(warmup_rows[1][4])) / float(str(warmup_rows[0][4]))
    warmup_table = markdown_table(
        ["Run", "Blobs", "MiB", "Seconds", "MiB/s", "Blobs/s"],
        warmup_rows,
    )
    return "\n".join(
        [
            "# Benchmark: remote storage (S3) and the local disk tier",
            "",
            "Sites stored in S3-compatible object storage through django-storages' `S3Storage`, served from",
            "the local disk tier. The endpoint is moto's S3 server (`python -m moto.server`) in its own",
            "process on the loopback interface: no network latency, no bandwidth limit, an in-memory",
            "object store. Real S3 adds round trips (tens of milliseconds for the first byte) and",
            "bandwidth limits to the *first request* and *download* numbers; hits do not change.",
            "",
            "## First request vs hits",
            "",
            "One GET through the Django test client and `AssetCacheMiddleware`, whole body read, median of",
            f"{args.repeat} runs ({args.repeat * 5} for cache hits). *First request*: empty tier and process",
            "cache, so the blob is downloaded (streamed GET, SHA-256 while writing, `fdatasync`, rename)",
            "and then served by `FileResponse` from the tier file. *Tier hit*: the file is in the tier, the process",
            "cache is empty (one database query, one `stat`). *Cache hit*: the steady state.",
            "",
            latency_table,
            "",
            "## Warmup",
            "",
            f"{args.blobs:,} blobs of 4–128 KiB ({total / MIB:.1f} MiB, seed {args.seed}) downloaded into an",
            "empty tier by `warmup.fill_tier` (what `assetcache_warmup` runs first), with one thread and with",
            "the default pool, then the whole command (download, snapshot written).",
            "",
            warmup_table,
            "",
            "## Reading the numbers",
            "",
            "- The first request pays for the download once per machine; every later request for the file",
            "  is a local hit. Run `assetcache_warmup` (or `--from-storage`) at deploy time so no visitor",
            "  pays it.",
            f"- Warmup with the pool ran at {speedup:.1f}× the speed of one thread here. Small blobs cost one",
            "  GET each (plus a temporary file, an `fdatasync` and a rename); on loopback that cost is",
            f"  mostly the CPU of moto's Python server, which shares this machine's {os.cpu_count()} CPUs with the",
            "  client, so threads can only overlap so much. Against a real endpoint a GET is mostly",
            "  waiting for the network (tens of milliseconds), which is what the threads overlap.",
            "- The 50 MiB *cache hit* is the test client reading the body in Python, 256 KiB at a time.",
            "  Under gunicorn the same response goes out by `sendfile` from the tier file (see",
            "  [benchmarks-serving.md](benchmarks-serving.md)); what this table shows is the gap between",
            "  the first request and the next ones.",
            "",
            "## Machine",
            "",
            *machine_lines(["Django", "django-storages", "boto3", "moto"]),
            "- Load average (1 min) at the start and the end of the run: "
            f"{args.load_before:.2f}, {os.getloadavg()[0]:.2f} (other work on the machine shows here).",
            "- Settings: `tests.settings` (`ASSETCACHE_TEST_DIR` set to a temporary directory),",
            "  `STORAGES['assetcache']` = `storages.backends.s3.S3Storage` on the moto endpoint.",
            "- Command: `.venv/bin/python benchmarks/s3_bench.py"
            f" --repeat {args.repeat} --blobs {args.blobs} --seed {args.seed}`",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--blobs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    args.load_before = os.getloadavg()[0]

    workdir = Path(tempfile.mkdtemp(prefix="assetcache-s3-bench-"))
    port = free_port()
    moto = start_moto(port, workdir / "moto.log")
    try:
        setup_django("tests.settings", {"ASSETCACHE_TEST_DIR": str(workdir)})
        import boto3
        from django.test import override_settings

        from django_assetcache import conf, tiers

        endpoint = f"http://127.0.0.1:{port}"
        boto3.client(
            "s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test", region_name="us-east-1"
        ).create_bucket(Bucket=BUCKET)
        storage = {
            "BACKEND": "storages.backends.s3.S3Storage",
            "OPTIONS": {
                "bucket_name": BUCKET,
                "endpoint_url": endpoint,
                "access_key": "test",
                "secret_key": "test",
                "region_name": "us-east-1",
            },
        }
        from django.conf import settings

        with override_settings(
            STORAGES={**settings.STORAGES, "assetcache": storage},
            ASSETCACHE_DISK_LIMIT=1 << 40,
            ASSETCACHE_DELETE_DELAY=0,
        ):
            tier_dir = Path(conf.get().LOCAL_DIR)
            source = workdir / "bench-site"
            source.mkdir()
            latency_rows = latency(source, tier_dir, args.repeat)
            warmup_rows, total = warmup(source, tier_dir, args.blobs, args.seed)
            tiers.reset()
    finally:
        moto.terminate()
        moto.wait(timeout=10)
    text = report(latency_rows, warmup_rows, args, total)
    print(text)
    print(f"\nwrote {write_doc('benchmarks-s3.md', text).relative_to(ROOT)}")
    shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
