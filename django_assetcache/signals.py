"""Signals for metrics: connect receivers to them to count what a process does.

They carry no model and import none, so any layer may send or receive them;
the process wiring (``runtime.py``) sends them from the cache's hooks.
"""

from __future__ import annotations

from django.dispatch import Signal

#: Sent when the cache evicts entries: ``reason`` ("memory" or "entries"), ``count``.
evicted = Signal()
#: Sent when a process applies a Change: ``change_id``, ``site_id``, ``paths``.
invalidated = Signal()
