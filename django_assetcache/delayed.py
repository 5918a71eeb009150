"""The delayed-delete queue: evicted blobs wait before their files go.

A response already sending a file, or a path already handed out and not yet
opened, must still find it; a blob asked for again meanwhile comes back
without a download. The queue knows nothing of files: its owner deletes what
``due`` returns, and a daemon timer makes sure that happens even when no
further use comes to trigger it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

logger = logging.getLogger("django_assetcache")


@dataclass
class Pending:
    """An evicted blob waiting for its delayed delete."""

    deadline: float  # time.monotonic() after which it may go
    alloc: int
    evicted_at: float  # wall clock, compared with the file's mtime


class DelayedDeletes:
    """Evicted blobs by hash, each with the time it may be deleted.

    Callers hold their own lock around ``add``, ``reclaim``, ``due`` and
    ``waiting_bytes``; the timer runs ``on_due`` outside any lock.
    """

    def __init__(self, delay: float, on_due: Callable[[], object]) -> None:
        self.delay = max(0.0, float(delay))
        self._on_due = on_due
        self.pending: dict[str, Pending] = {}
        self._timer_lock = threading.Lock()
        self._timer: threading.Timer | None = None

    def __len__(self) -> int:
        return len(self.pending)

    def __contains__(self, sha256: str) -> bool:
        return sha256 in self.pending

    def add(self, sha256: str, alloc: int, now: float, now_wall: float) -> None:
        self.pending[sha256] = Pending(now + self.delay, alloc, now_wall)

    def reclaim(self, sha256: str) -> Pending | None:
        """Take a blob back out of the queue (it is wanted again)."""
        return self.pending.pop(sha256, None)

    def due(self, *, force: bool = False) -> list[tuple[str, float]]:
        """Remove and return (hash, eviction wall time) of blobs whose delay passed."""
        now = time.monotonic()
        due = [(sha, p) for sha, p in self.pending.items() if force or p.deadline <= now]
        for sha, _ in due:
            del self.pending[sha]
        return [(sha, pending.evicted_at) for sha, pending in due]

    def waiting_bytes(self) -> int:
        """Disk the waiting blobs still hold (already given up)."""
        return sum(p.alloc for p in self.pending.values())

    def schedule(self) -> None:
        """Run ``on_due`` once the delay has passed, unless a run is already set."""
        with self._timer_lock:
            if self._timer is not None and self._timer.is_alive():
                return
            timer = threading.Timer(self.delay + 0.05, self._fire)
            timer.daemon = True
            self._timer = timer
        timer.start()

    def _fire(self) -> None:
        with self._timer_lock:
            self._timer = None
        try:
            self._on_due()
        except Exception:  # a timer thread must not die noisily
            logger.warning("assetcache: purging the local tier failed", exc_info=True)
        if self.pending:
            self.schedule()

    def close(self) -> None:
        """Stop the timer; what is pending stays pending."""
        with self._timer_lock:
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
