"""What keeping an entry costs in memory, charged against ASSETCACHE_MEMORY_LIMIT."""

from __future__ import annotations

import sys

from .entries import Entry, EntryKind

# What an entry costs is charged when it is built, so it must cover what the
# entry holds once every reply it can prepare on use exists (200, HEAD, 304,
# the 404 of an error document, the ASGI header bytes of each): counting less
# would let the real footprint run past ASSETCACHE_MEMORY_LIMIT. The constants
# are measured with tracemalloc at the worst point of dict growth;
# tests/test_cache.py measures them again and fails when they fall short.
# Strings whose length varies (the path, a redirect's location, a file path,
# header values) are charged by their real size on top.

#: A redirect or missing entry: its key tuple, its slots in the entries dict
#: and the clock, the Entry object.
SMALL_ENTRY_OVERHEAD = 300
#: A file entry with its identity representation and every reply of it
#: (header values aside, see HEADER_TEXT_COPIES).
FILE_ENTRY_OVERHEAD = 5_300
#: Each stored variant (br, gzip) of a file entry, with its replies.
REPRESENTATION_OVERHEAD = 5_250
#: Prepared replies of a representation hold its header values several times
#: over (as text and, for ASGI, as bytes).
HEADER_TEXT_COPIES = 5


def entry_overhead(path: str, entry: Entry) -> int:
    """Bytes that keeping ``entry`` under ``path`` costs besides its bodies
    (which ``Entry.cost`` counts when the entry is built)."""
    cost = sys.getsizeof(path)
    if entry.kind is not EntryKind.FILE:
        return cost + SMALL_ENTRY_OVERHEAD + (sys.getsizeof(entry.location) if entry.location else 0)
    cost += FILE_ENTRY_OVERHEAD - REPRESENTATION_OVERHEAD
    for rep in (entry.identity, entry.br, entry.gzip):
        if rep is not None:
            header_text = sum(len(value) for _, value in (*rep.shared.entity, *rep.shared.tail))
            cost += REPRESENTATION_OVERHEAD + HEADER_TEXT_COPIES * header_text
            if rep.file_path:
                cost += sys.getsizeof(rep.file_path)
    return cost
