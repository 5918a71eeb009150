"""Host many static sites inside one Django project, served from a process-global cache."""

from __future__ import annotations

__version__ = "0.1.0"
