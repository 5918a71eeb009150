"""Byte ranges of a Range header (RFC 9110 14.1-14.2), as positions in a
representation of known length."""

from __future__ import annotations

import re
from collections.abc import Sequence

_RANGE_UNIT_RE = re.compile(r"\s*bytes\s*=", re.IGNORECASE | re.ASCII)
_RANGE_SPEC_RE = re.compile(r"\s*(\d*)\s*-\s*(\d*)\s*", re.ASCII)
_ASCII_SPACE = " \t\n\r\f\v"

#: Most ranges a request may name; more get 200 with the whole body, as
#: RFC 9110 14.2 allows against requests built to cost the server (Apache's
#: MaxRanges has the same purpose).
MAX_RANGES = 100


UNSATISFIABLE = (-1, -1)

#: Positions past any file's length; longer digit strings are not converted
#: (int() refuses more than 4300 digits, and a header must never be a 500).
_FAR = 10**18


def _position(digits: str) -> tuple[int, str]:
    """A range position, and its digits without leading zeros for comparing."""
    digits = digits.lstrip("0") or "0"
    return (int(digits) if len(digits) < 19 else _FAR), digits


def _range_spec(first: str, last: str, length: int) -> tuple[int, int] | None:
    """One range-spec's digits as (start, end) inclusive, UNSATISFIABLE, or
    None when it is invalid (last before first)."""
    if not first:
        if not last:
            return None
        suffix = _position(last)[0]
        if suffix == 0:
            return UNSATISFIABLE
        return (max(length - suffix, 0), length - 1)
    start, start_digits = _position(first)
    if last:
        end, end_digits = _position(last)
        if (len(end_digits), end_digits) < (len(start_digits), start_digits):
            return None
    else:
        end = length - 1
    if start >= length:
        return UNSATISFIABLE
    return (start, min(end, length - 1))


def _range_specs(header: str) -> list[tuple[str, str]] | None:
    """The (first, last) digits of each range-spec of a ``bytes`` Range
    value, empty list elements skipped (RFC 9110 5.6.1.2); None for another
    unit, bad syntax, no range at all, or more than MAX_RANGES."""
    unit = _RANGE_UNIT_RE.match(header)
    if unit is None:
        return None
    specs: list[tuple[str, str]] = []
    for item in header[unit.end() :].split(","):
        if not item.strip(_ASCII_SPACE):
            continue
        match = _RANGE_SPEC_RE.fullmatch(item)
        if match is None or len(specs) == MAX_RANGES:
            return None
        specs.append((match[1], match[2]))
    return specs or None


def parse_range(header: str, length: int) -> tuple[int, int] | None:
    """(start, end) inclusive for a header naming one byte range,
    UNSATISFIABLE, or None to ignore the header (bad syntax, several ranges,
    an empty representation).

    An empty representation has no range to send, yet a suffix range is
    satisfiable on it (RFC 9110 14.1.1): the whole (empty) body answers.
    """
    if length == 0:
        return None
    specs = _range_specs(header)
    if specs is None or len(specs) != 1:
        return None
    return _range_spec(*specs[0], length)


def parse_ranges(header: str, length: int) -> list[tuple[int, int]] | None:
    """The satisfiable ranges of a Range header, (start, end) inclusive, in
    the order asked; ``[]`` when none is satisfiable (416); None to ignore
    the header (bad syntax, an invalid range, too many ranges, an empty
    representation: see ``parse_range``)."""
    if length == 0:
        return None
    specs = _range_specs(header)
    if specs is None:
        return None
    ranges = []
    for first, last in specs:
        byte_range = _range_spec(first, last, length)
        if byte_range is None:
            return None
        if byte_range is not UNSATISFIABLE:
            ranges.append(byte_range)
    return ranges


def coalesce(ranges: Sequence[tuple[int, int]], length: int) -> list[tuple[int, int]] | None:
    """Ranges sorted, with overlapping and adjacent ones merged (as nginx and
    Go send them); None when those asked add up to more than the file: that
    asks to send bytes several times, and gets the whole file once."""
    if sum(end - start + 1 for start, end in ranges) > length:
        return None
    merged: list[tuple[int, int]] = []
    for start, end in sorted(ranges):
        if merged and start <= merged[-1][1] + 1:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged
