"""Media types from file names, and which of them are text.

The table is whitenoise's (the types nginx ships, kept current) when
whitenoise is installed (``django-assetcache[mediatypes]``), else the table
built into Python's ``mimetypes`` (without reading the machine's
``/etc/mime.types``, so results do not vary between hosts).
``ASSETCACHE_CONTENT_TYPES`` adds or overrides entries.
"""

from __future__ import annotations

import mimetypes
import posixpath
from functools import lru_cache

from . import conf

DEFAULT_TYPE = "application/octet-stream"

#: Types that are text although they do not start with ``text/``.
TEXT_TYPES = frozenset(
    {
        "application/javascript",
        "application/json",
        "application/ld+json",
        "application/manifest+json",
        "application/xml",
        "application/xhtml+xml",
        "application/rss+xml",
        "application/atom+xml",
        "application/x-javascript",
        "image/svg+xml",
    }
)


@lru_cache(maxsize=1)
def _table() -> dict[str, str]:
    try:
        from whitenoise.media_types import default_types  # optional extra (mediatypes)
    except ImportError:
        python_table = mimetypes.MimeTypes()
        table = dict(python_table.types_map[True])
        table.update(python_table.types_map[False])
    else:
        table = default_types()
    return table


def content_type_for(path: str) -> str:
    """The media type for a file name, without parameters."""
    name = posixpath.basename(path).lower()
    extra = conf.get().CONTENT_TYPES or {}
    extension = posixpath.splitext(name)[1]
    for key in (name, extension):
        if key in extra:
            return extra[key]
    table = _table()
    return table.get(name) or table.get(extension) or DEFAULT_TYPE


def is_text(content_type: str) -> bool:
    return content_type.startswith("text/") or content_type in TEXT_TYPES


def header_value(content_type: str) -> str:
    """The Content-Type header for a stored media type: text gets a charset."""
    if is_text(content_type) and "charset" not in content_type:
        return f"{content_type}; charset=utf-8"
    return content_type


def is_compressible(content_type: str) -> bool:
    return content_type.startswith(conf.get().COMPRESSIBLE_TYPES)
