"""Durations as people type them on a command line: ``45s``, ``30m``, ``12h``,
``7d``, ``2w``, or a bare number of seconds."""

from __future__ import annotations

import datetime
import re

_DURATION_RE = re.compile(r"\s*(\d{1,9}(?:\.\d+)?)\s*([smhdw]?)\s*")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def parse_duration(text: str) -> datetime.timedelta:
    """The duration ``text`` names; ValueError, in words, when it names none."""
    match = _DURATION_RE.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration such as 30m, 12h, 7d, 2w or 3600")
    return datetime.timedelta(seconds=float(match.group(1)) * _UNITS[match.group(2)])
