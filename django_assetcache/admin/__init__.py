"""The Django admin: sites with their upload and cache pages, custom domains, assets and blobs."""

from . import domains, files, sites

__all__ = ["domains", "files", "sites"]
