"""Django settings for benchmarks/run.py: benchmarks/bench_settings.py, plus a
bounded entry count so that requests for many distinct paths miss the cache.

``BENCH_MAX_ENTRIES`` sets ``ASSETCACHE_MAX_ENTRIES`` (entries per process):
a few dozen hold every path the hit cases ask for, while the miss case's
random paths over a large site evict each other.
"""

from __future__ import annotations

import os

from benchmarks.bench_settings import *  # noqa: F403

ASSETCACHE_MAX_ENTRIES = int(os.environ.get("BENCH_MAX_ENTRIES", "64"))
