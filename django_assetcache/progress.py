"""A small progress bar on stderr for long management commands, and counts in words.

On a terminal the bar redraws in place a few times a second. Elsewhere (CI
logs, pipes), or without a stream (the Python API, the admin), it prints
nothing: a line per update would fill the log, and the command's summary line
says what was done. Callers always make one and advance it.
"""

from __future__ import annotations

import time
from typing import Protocol, TextIO


class CommandOutput(Protocol):
    """What a management command's ``self.stderr`` offers (an OutputWrapper)."""

    def write(self, msg: str = "", style_func: None = None, ending: str | None = None) -> None: ...

    def flush(self) -> None: ...

    def isatty(self) -> bool: ...


class Unterminated:
    """A command's output as a stream: what is written goes out as it is, where
    the command's own ``write`` would end each piece with a new line."""

    __slots__ = ("out",)

    def __init__(self, out: CommandOutput) -> None:
        self.out = out

    def write(self, text: str) -> None:
        self.out.write(text, ending="")

    def flush(self) -> None:
        self.out.flush()

    def isatty(self) -> bool:
        return self.out.isatty()


#: Where a bar may be drawn: a text stream, or a command's output.
Stream = TextIO | Unterminated


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
    """A bar drawn on ``stream`` when it is a terminal; silent otherwise."""

    __slots__ = ("_last_draw", "done", "label", "stream", "total", "tty", "unit_bytes")

    def __init__(
        self,
        label: str,
        total: int,
        *,
        stream: Stream | None = None,
        unit_bytes: bool = False,
    ) -> None:
        self.label = label
        self.total = max(total, 0)
        self.done = 0
        self.stream = stream
        self.tty = stream is not None and stream.isatty()
        self.unit_bytes = unit_bytes
        self._last_draw = 0.0

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        if not self.tty:
            return
        now = time.monotonic()
        if now - self._last_draw >= 0.1 or self.done >= self.total:
            self._last_draw = now
            self._draw("\r" + self._line())

    def close(self) -> None:
        if self.tty:
            self._draw("\r" + self._line() + "\n")

    def _draw(self, text: str) -> None:
        assert self.stream is not None
        self.stream.write(text)
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
