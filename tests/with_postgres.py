"""Run pytest with PostgreSQL as the database: ``make test-postgres``.

    .venv/bin/python tests/with_postgres.py [PYTEST ARGS...]

Starts a throwaway PostgreSQL server (see tests/databases.py), points
tests.settings at it through ASSETCACHE_TEST_PG_*, runs pytest with the given
arguments, stops the server and exits with pytest's status. Fails (status 2)
when no server can be started: this command exists to run on PostgreSQL.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.databases import ServerUnavailable, start_postgres  # noqa: E402


def main(argv: list[str]) -> int:
    try:
        server = start_postgres()
    except ServerUnavailable as exc:
        print(f"cannot run the suite on PostgreSQL: {exc}", file=sys.stderr)
        return 2
    try:
        env = {**os.environ, **server.django_env("assetcache_test")}
        env.pop("ASSETCACHE_TEST_DB", None)
        print(f"PostgreSQL on 127.0.0.1:{server.port} (throwaway)", flush=True)
        return subprocess.call([sys.executable, "-m", "pytest", *argv], cwd=ROOT, env=env)
    except KeyboardInterrupt:
        return 130
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
