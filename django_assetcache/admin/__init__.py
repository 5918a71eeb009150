"""The Django admin: sites with their upload and cache pages, custom domains, share links,
deploy tokens, assets and blobs."""

from . import access, domains, files, sites, tokens

__all__ = ["access", "domains", "files", "sites", "tokens"]
