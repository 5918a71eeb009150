"""Host many static sites inside one Django project, served from a process-global cache."""

from __future__ import annotations

__version__ = "0.1.0"


def warm() -> object:
    """Create this process's cache now, from the warm snapshot when there is one.

    Call it from gunicorn's ``post_fork`` hook (or at import under
    ``--preload``) so the first request does not pay for loading.
    """
    from .cache import warm as warm_cache

    return warm_cache()
