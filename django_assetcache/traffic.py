"""What this process served, per site, counted in plain integers.

The hit path pays two list increments: the request's status class and the
bytes its reply sends, on the counts list its ``SiteInfo`` already holds
(``SiteInfo.traffic``). Nothing here locks, formats or calls a library per
request; a background thread (``reporting.py``) reads the counts every
second and publishes what changed. Under the GIL an increment racing
another thread's may be lost, an accepted error; a reader never resets the
counts, it keeps its own baseline, so reading loses nothing.

A site's counts are one list: ``REQUESTS_1XX`` .. ``REQUESTS_5XX`` at the
status class (``status // 100``), then ``SENT`` (body bytes), ``MISSES``
(requests that reached the loader) and ``NOT_FOUND`` (404s).
"""

from __future__ import annotations

from collections.abc import Iterable

#: Index of each count in a site's list; statuses are at ``status // 100``.
SENT = 6
MISSES = 7
NOT_FOUND = 8
WIDTH = 9
STATUS_CLASSES = range(1, 6)

Counts = list[int]

#: Site id → its counts, for the life of the process (a SiteInfo made again
#: after a change finds the same list).
_sites: dict[int, Counts] = {}

#: Requests to a host under ASSETCACHE_DOMAIN that names no site (site id 0).
NO_SITE = 0


def counts_for(site_id: int) -> Counts:
    """The counts of ``site_id``, made on first use (when a host is resolved)."""
    counts = _sites.get(site_id)
    if counts is None:
        counts = _sites.setdefault(site_id, [0] * WIDTH)
    return counts


def requests(counts: Counts) -> int:
    return sum(counts[1:6])


def zero() -> None:
    """Start from nothing (in a forked child: its parent reports its own)."""
    for counts in list(_sites.values()):
        counts[:] = [0] * WIDTH


class Reader:
    """One consumer of the counts, with its own baseline: ``take`` gives what
    grew since the last ``take``; ``give_back`` returns a delta that could
    not be delivered, so the next ``take`` includes it again."""

    def __init__(self) -> None:
        self.seen: dict[int, Counts] = {}

    def take(self) -> dict[int, Counts]:
        deltas: dict[int, Counts] = {}
        for site_id, counts in list(_sites.items()):
            now = list(counts)
            before = self.seen.get(site_id)
            if before is None:
                before = [0] * WIDTH
            delta = [a - b for a, b in zip(now, before, strict=True)]
            if any(delta):
                deltas[site_id] = delta
                self.seen[site_id] = now
        return deltas

    def give_back(self, deltas: dict[int, Counts]) -> None:
        for site_id, delta in deltas.items():
            seen = self.seen[site_id]
            self.seen[site_id] = [a - b for a, b in zip(seen, delta, strict=True)]

    def forget(self) -> None:
        """Forget the baseline (after ``zero``)."""
        self.seen = {}


def total(deltas: Iterable[Counts]) -> Counts:
    summed = [0] * WIDTH
    for delta in deltas:
        for index, value in enumerate(delta):
            summed[index] += value
    return summed
