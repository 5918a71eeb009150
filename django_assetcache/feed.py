"""Reading the change feed: which changes a process has applied, and polling.

``FeedReader`` is the part of the process cache that keeps its position in
the feed: it reads new changes through the loader, at most every poll
interval (one clock read on the hit path otherwise), remembers holes a
PostgreSQL transaction left open, and hands each change to ``_apply_one``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from django.core.exceptions import SynchronousOnlyOperation

logger = logging.getLogger("django_assetcache")

#: Seconds a hole in the change feed is looked for before it is given up.
PENDING_SECONDS = 60.0


class ChangeRecord(Protocol):
    id: int
    site_id: int | None
    kind: str
    paths: list[str] | None
    #: For a publish: the deployment it made live and the one live before.
    deployment_id: int | None
    previous_id: int | None


class FeedSource(Protocol):
    def changes_after(self, change_id: int, pending: list[int] | None = None) -> list[Any]: ...

    def last_change_id(self) -> int: ...


class FeedReader:
    """The feed position of a cache; ``AssetCache`` is one."""

    loader: FeedSource
    lock: threading.RLock
    poll_lock: threading.Lock
    poll_again: bool
    polling: bool
    poll_interval: float
    next_poll: float
    last_change_id: int
    last_change_at: float | None
    changes_applied: int
    pending: dict[int, float]
    on_applied: Callable[[ChangeRecord], None]

    def _apply_one(self, change: ChangeRecord) -> None:
        raise NotImplementedError

    def maybe_poll(self) -> None:
        """Apply new changes when a poll is due: one clock read otherwise."""
        if self.polling and time.monotonic() >= self.next_poll:
            self.poll()

    def poll_due(self) -> bool:
        return self.polling and time.monotonic() >= self.next_poll

    def start(self) -> None:
        """Take the change feed's position before the first fill."""
        self.last_change_id = self.loader.last_change_id()
        self.next_poll = time.monotonic() + self.poll_interval

    def poll(self) -> None:
        """Read and apply the changes committed since the last one applied.

        Never waits: when another thread is polling, it reads the feed once
        more before it lets go, since the read it is doing may predate the
        commit this call was told of (a push notification, this process's
        own commit).
        """
        self.poll_again = True
        while self.poll_again:
            if not self.poll_lock.acquire(blocking=False):
                return  # the thread polling now sees poll_again
            try:
                while self.poll_again:
                    self.poll_again = False
                    self._poll_once()
            finally:
                self.poll_lock.release()
            # A request made between our last read and the release is ours
            # to serve, unless another thread has taken the lock meanwhile.

    def _poll_once(self) -> None:
        self.next_poll = time.monotonic() + self.poll_interval
        try:
            changes = self.loader.changes_after(self.last_change_id, list(self.pending))
        except SynchronousOnlyOperation:
            self.next_poll = 0.0  # called on an event loop: poll from a thread instead
            raise
        except Exception:
            logger.warning("assetcache: cannot read the change feed", exc_info=True)
            return
        self.apply(changes)

    def apply(self, changes: Iterable[ChangeRecord]) -> None:
        now = time.monotonic()
        for change in changes:
            with self.lock:
                late = self.pending.pop(change.id, None) is not None
                if change.id <= self.last_change_id and not late:
                    continue
                # Ids are taken at insert and become visible at commit, so
                # on PostgreSQL a lower id can appear after a higher one:
                # remember the holes and look for them again.
                for missing in range(self.last_change_id + 1, min(change.id, self.last_change_id + 1001)):
                    self.pending[missing] = now
                self._apply_one(change)
                self.last_change_id = max(self.last_change_id, change.id)
                self.last_change_at = time.time()
                self.changes_applied += 1
            self.on_applied(change)
        expired = [cid for cid, since in self.pending.items() if now - since > PENDING_SECONDS]
        for cid in expired:
            self.pending.pop(cid, None)  # rolled back, or pruned: never coming
