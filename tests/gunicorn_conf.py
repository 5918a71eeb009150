"""gunicorn settings for tests: record how each file body left the worker.

Every call of gunicorn's ``Response.sendfile`` (made only for bodies returned
through ``wsgi.file_wrapper``) and the bytes the kernel was asked to send with
``os.sendfile`` are appended, as JSON lines, to $ASSETCACHE_SENDFILE_LOG.
"""

from __future__ import annotations

import json
import os
from typing import Any


def post_worker_init(worker: object) -> None:
    log_path = os.environ.get("ASSETCACHE_SENDFILE_LOG")
    if not log_path:
        return
    from gunicorn.http import wsgi

    original_sendfile = wsgi.Response.sendfile
    original_os_sendfile = os.sendfile
    counted = {"bytes": 0}

    def os_sendfile(out_fd: int, in_fd: int, offset: int | None, count: int, *args: object) -> int:
        sent = original_os_sendfile(out_fd, in_fd, offset, count, *args)
        counted["bytes"] += sent
        return sent

    def sendfile(self: wsgi.Response, respiter: object) -> bool:
        counted["bytes"] = 0
        used = original_sendfile(self, respiter)
        with open(log_path, "a") as log:
            record = {
                "path": self.req.path,
                "range": dict(self.req.headers).get("RANGE"),
                "used": bool(used),
                "content_length": self.response_length,
                "kernel_bytes": counted["bytes"],
            }
            log.write(json.dumps(record) + "\n")
        return used

    os.sendfile = os_sendfile
    wsgi.Response.sendfile = sendfile


def post_fork(server: object, worker: object) -> None:
    if os.environ.get("ASSETCACHE_TEST_WARM"):
        # What docs/deployment.md recommends: each worker loads its cache
        # (and starts its reporting thread) before its first request.
        from django_assetcache import warm

        warm()


def child_exit(server: object, worker: Any) -> None:
    """A worker's live gauges leave the metrics when it exits (docs/observability.md)."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)
