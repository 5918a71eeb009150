"""The Django admin: sites with their domains, upload and cache pages; assets and blobs."""

from . import files, sites

__all__ = ["files", "sites"]
