"""What keeping an entry costs in memory, charged against ASSETCACHE_MEMORY_LIMIT."""

from __future__ import annotations

import sys

from .entries import Entry

# An entry keeps only what differs per file (its ETag and its body or file);
# its header tuples are shared (``sharedheaders.SharedHeaders``, counted while
# they live) and the replies a hit sends are assembled per request, kept by
# nobody. The constants are measured with tracemalloc at the worst point of
# dict growth; tests/test_cache.py and tests/test_entry_cost.py measure them
# again and fail when they fall short. Strings whose length varies (the path,
# a redirect's location, a file path) are charged by ``text_cost`` on top.

#: Any entry: its key tuple, its slots in the entries dict and the eviction
#: queue, the entry object.
SMALL_ENTRY_OVERHEAD = 220
#: A file entry besides that: its ETag.
FILE_ENTRY_OVERHEAD = 90
#: A body on disk: the (path, size) pair naming it.
FILE_SOURCE_OVERHEAD = 100
#: Each stored variant (br, gzip) of a file entry: its object, its ETag, and
#: the entry's larger object.
REPRESENTATION_OVERHEAD = 170
#: What the clock keeps of a dropped key until it lets it go: the key tuple.
KEY_OVERHEAD = 64


#: What an empty str costs on this Python.
_EMPTY_TEXT = sys.getsizeof("")


def text_cost(text: str) -> int:
    """What a string costs, the same every time it is asked: a charge made
    when an entry comes must be what is taken back when it goes, whichever
    copy of its path is at hand. ``sys.getsizeof`` would not do: it grows
    once CPython keeps the UTF-8 form of a non-ASCII string (when a
    database driver binds it, say), so for those this is a bound (four bytes
    a character, and the UTF-8 form)."""
    if text.isascii():
        return _EMPTY_TEXT + len(text)
    return _EMPTY_TEXT + 32 + 8 * len(text)


def key_cost(path: str) -> int:
    """What a key ``(scope, path)`` costs wherever it is held."""
    return text_cost(path) + KEY_OVERHEAD


def entry_overhead(path: str, entry: Entry) -> int:
    """Bytes that keeping ``entry`` under ``path`` costs besides its bodies."""
    cost = text_cost(path) + SMALL_ENTRY_OVERHEAD
    if entry.location:
        cost += text_cost(entry.location)
    reps = entry.representations()
    if reps:
        cost += FILE_ENTRY_OVERHEAD + REPRESENTATION_OVERHEAD * (len(reps) - 1)
    for rep in reps:
        file_path = rep.file_path
        if file_path:
            cost += FILE_SOURCE_OVERHEAD + text_cost(file_path)
    return cost


def charge(path: str, entry: Entry) -> int:
    """All that keeping ``entry`` under ``path`` costs: bookkeeping and bodies."""
    return entry_overhead(path, entry) + entry.cost
