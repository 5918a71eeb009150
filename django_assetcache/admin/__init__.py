"""The Django admin: sites with their upload and cache pages, custom domains, share links, assets and blobs."""

from . import access, domains, files, sites

__all__ = ["access", "domains", "files", "sites"]
