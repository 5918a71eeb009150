"""The records the data path passes between modules: a site, an asset, a
blob, and a blob located on this machine.

The loader builds them from the database or the snapshot, warmup from the
database, the snapshot writer and reader turn them into the file's format
and back, and entry building turns located blobs into representations.
Nothing here knows of Django.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DeploymentRecord:
    """A deployment as the snapshot keeps it: its id, the key and aliases
    its preview hosts are named by, and its compiled site rules."""

    id: int
    key: str
    aliases: tuple[str, ...] = ()
    #: rules.py's JSON text; "" for none.
    rules: str = ""


@dataclass(frozen=True, slots=True)
class SiteRecord:
    """A site as the snapshot keeps it: what answering for its hosts needs."""

    id: int
    subdomain: str
    is_active: bool
    index_document: str
    error_document: str
    cache_control: str
    #: Its custom host names.
    domains: tuple[str, ...] = ()
    #: Who may see it ("public", "login", "restricted", "password") and,
    #: for password sites, a tag of its password hash (``access.password_tag``).
    visibility: str = "public"
    access_tag: str = ""
    #: A public site whose preview hosts are private (``Site.previews_private``).
    previews_private: bool = False
    #: The change-feed position its assets were read at; None: the one the
    #: snapshot being written is stamped with.
    change_id: int | None = None
    #: The deployment its own hosts serve (None: it has none).
    live_deployment: int | None = None
    #: Its deployments kept in the snapshot (live and retained), with their
    #: preview names.
    deployments: tuple[DeploymentRecord, ...] = ()
    https_only: bool = False
    hsts_max_age: int = 0
    hsts_include_subdomains: bool = False
    hsts_preload: bool = False
    canonical_host: str = ""


@dataclass(frozen=True, slots=True)
class BlobRecord:
    """Stored bytes named by their hash: an asset's own body (``encoding``
    empty) or one of its compressed variants."""

    sha256: str
    size: int
    #: The content coding of a variant ("gzip", "br"); "" for the original.
    encoding: str = ""
    #: Where the snapshot it was read from holds its body, from the start of
    #: the body area; -1 when it holds none (or it was not read from one).
    snapshot_offset: int = -1


@dataclass(frozen=True, slots=True)
class AssetRecord:
    """One path of a site, the blob it serves and that blob's variants."""

    path: str
    content_type: str
    #: Seconds since the epoch.
    last_modified: float
    blob: BlobRecord
    variants: tuple[BlobRecord, ...] = ()

    def blobs(self) -> tuple[BlobRecord, ...]:
        """The asset's blob, then its variants."""
        return (self.blob, *self.variants)


@dataclass(frozen=True, slots=True)
class LocatedBlob:
    """A blob and where its bytes are on this machine: in memory (``body``)
    or in a local file sent from disk (``file_path``), exactly one of them."""

    blob: BlobRecord
    body: bytes | None = None
    file_path: str | None = None

    def __post_init__(self) -> None:
        if (self.body is None) == (self.file_path is None):
            raise ValueError(f"blob {self.blob.sha256}: give its body or its file path, not both or neither")
        if self.body is not None and len(self.body) != self.blob.size:
            raise ValueError(f"blob {self.blob.sha256}: a body of {len(self.body)} bytes, {self.blob.size} expected")
