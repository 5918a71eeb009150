"""Host many static sites inside one Django project, served from a process-global cache.

``warm()`` and ``stats()`` are the process's cache set-up and counters (see
``runtime.py``); importing them imports no model, so this package and its
WSGI and ASGI wrappers import before Django is set up.
"""

from __future__ import annotations

from .runtime import stats, warm

__all__ = ["stats", "warm"]
__version__ = "0.1.0"
