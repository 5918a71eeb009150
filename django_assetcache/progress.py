"""A small progress bar on stderr for long management commands, and counts in words.

On a terminal the bar redraws in place a few times a second. Elsewhere (CI
logs, pipes) it prints nothing: a line per update would fill the log, and the
command's summary line says what was done.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def plural(count: int, noun: str, nouns: str = "") -> str:
    """``1 site``, ``2 sites``: a count and its noun (``nouns`` when not noun + "s")."""
    return f"{count} {noun if count == 1 else (nouns or noun + 's')}"


def first_few(names: list[str], shown: int = 5) -> str:
    """The first names of a list, for a message of one line."""
    return ", ".join(names[:shown]) + ("…" if len(names) > shown else "")


class Progress:
    __slots__ = ("_last_draw", "done", "label", "stream", "total", "tty", "unit_bytes")

    def __init__(
        self,
        label: str,
        total: int,
        *,
        stream: TextIO | None = None,
        unit_bytes: bool = False,
    ) -> None:
        self.label = label
        self.total = max(total, 0)
        self.done = 0
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.unit_bytes = unit_bytes
        self._last_draw = 0.0

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        if not self.tty:
            return
        now = time.monotonic()
        if now - self._last_draw >= 0.1 or self.done >= self.total:
            self._last_draw = now
            self.stream.write("\r" + self._line())
            self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\r" + self._line() + "\n")
            self.stream.flush()

    def _line(self) -> str:
        fraction = self.done / self.total if self.total else 1.0
        filled = int(fraction * 30)
        bar = "#" * filled + "-" * (30 - filled)
        if self.unit_bytes:
            count = f"{human_bytes(self.done)}/{human_bytes(self.total)}"
        else:
            count = f"{self.done}/{self.total}"
        return f"{self.label} [{bar}] {fraction:4.0%} {count}"

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
