"""Hosts: what the host map holds, and how a raw ``Host`` value is read.

A host map value is a ``SiteInfo`` (what a request needs to know about a site)
or a ``HostMiss``; the hit path tells them apart by identity.
"""

from __future__ import annotations

import enum
import sys

from . import traffic
from .replies import NOINDEX, FixedReplies, fixed_replies
from .ruletables import HeaderTable, RedirectTable, compiled
from .transport import Transport, for_site

#: A slot of the host maps besides its key string: dict slot and SiteInfo share.
HOST_OVERHEAD = 100
#: Share of ASSETCACHE_MEMORY_LIMIT each host map (raw Host values, host
#: names) may take before it is cleared; both count against the limit.
HOST_SHARE = 32
#: The visibility of a preview host of a public site whose previews are
#: private (``Site.previews_private``): only its SiteInfo has it.
PRIVATE_PREVIEWS = "previews"


class SiteInfo:
    """What a request needs to know about a site host, from the host map:
    the site, and the deployment this host serves (its live one, or for a
    preview host ``<key or alias>--<subdomain>``, that one)."""

    __slots__ = (
        "access_tag",
        "active",
        "cache_control",
        "deployment_id",
        "error_path",
        "extra_headers",
        "forced",
        "header_rules",
        "id",
        "index_document",
        "key",
        "preview",
        "private",
        "redirects",
        "replies",
        "rules_text",
        "subdomain",
        "traffic",
        "transport",
        "visibility",
    )

    def __init__(
        self,
        id: int,
        subdomain: str,
        active: bool,
        index_document: str,
        error_document: str,
        cache_control: str,
        https_only: bool = False,
        hsts_max_age: int = 0,
        hsts_include_subdomains: bool = False,
        hsts_preload: bool = False,
        canonical_host: str = "",
        *,
        visibility: str = "public",
        access_tag: str = "",
        force_https: bool = False,
        deployment_id: int | None = None,
        preview: bool = False,
        previews_private: bool = False,
        rules: str = "",
    ) -> None:
        self.id = id
        self.subdomain = subdomain
        self.active = active
        self.index_document = index_document
        self.error_path = "/" + error_document if error_document else ""
        self.cache_control = cache_control
        self.deployment_id = deployment_id
        self.preview = preview
        #: What the cache keys this host's entries by: its deployment, negated
        #: for a preview host (whose replies carry X-Robots-Tag); 0 for a site
        #: with no deployment (every path is missing).
        self.key = entry_scope(deployment_id, preview)
        #: Headers every file reply of this host adds, prepared once.
        self.extra_headers: tuple[tuple[str, str], ...] = (NOINDEX,) if preview else ()
        #: "public", "login", "restricted" or "password", or PRIVATE_PREVIEWS;
        #: the hit path reads ``private`` only.
        self.visibility = host_visibility(visibility, preview, previews_private)
        self.private = self.visibility != "public"
        #: The fixed replies (404, 405, ...) this host sends.
        self.replies: FixedReplies = fixed_replies(preview, self.private)
        #: For password sites: a tag of the password hash, held by the
        #: cookies the password gave (a new password refuses them).
        self.access_tag = access_tag
        # The deployment's site rules (rules.py), compiled once per stored text.
        self.rules_text = rules
        site_rules = compiled(rules)
        self.forced: RedirectTable | None = site_rules.forced if site_rules else None
        self.redirects: RedirectTable | None = site_rules.redirects if site_rules else None
        self.header_rules: HeaderTable | None = site_rules.headers if site_rules else None
        self.transport: Transport | None = for_site(
            https_only or force_https, hsts_max_age, hsts_include_subdomains, hsts_preload, canonical_host
        )
        #: What this process served the site (``traffic.py``), shared by
        #: every SiteInfo of the site: the hit path counts here.
        self.traffic = traffic.counts_for(id)

    def headers_for(self, path: str) -> tuple[tuple[tuple[str, str], ...], str | None]:
        """What the entry served at ``path`` sends besides its own headers:
        its header rules and HSTS, and the Cache-Control rules set (None:
        the site's policy). Called when an entry is built, never per hit."""
        extra: tuple[tuple[str, str], ...] = ()
        cache_control = None
        if self.header_rules is not None:
            extra, cache_control = self.header_rules.for_path(path)
        if self.transport is not None:
            extra += self.transport.hsts
        return extra + self.extra_headers, cache_control

    def __repr__(self) -> str:
        kind = " preview" if self.preview else ""
        return f"<SiteInfo {self.id} {self.subdomain}{kind} deployment={self.deployment_id}>"


def host_visibility(visibility: str, preview: bool, previews_private: bool) -> str:
    """Who may see a host of a site of ``visibility``: its preview hosts
    follow the site, unless the site is public with its previews private."""
    if preview and previews_private and visibility == "public":
        return PRIVATE_PREVIEWS
    return visibility


def entry_scope(deployment_id: int | None, preview: bool) -> int:
    """The first half of a cache key: which deployment's entries, as which host."""
    if deployment_id is None:
        return 0
    return -deployment_id if preview else deployment_id


def preview_label(label: str) -> tuple[str, str] | None:
    """``(key or alias, subdomain)`` of a preview host's label, else None."""
    prefix, separator, subdomain = label.partition("--")
    if not separator or not prefix or not subdomain:
        return None
    return prefix, subdomain


#: Site fields serving reads besides the six SiteInfo starts with, in the
#: order SiteInfo takes them (the rules are the deployment's).
SERVING_FIELDS = ("https_only", "hsts_max_age", "hsts_include_subdomains", "hsts_preload", "canonical_host")
#: A Site's fields a request needs, in SiteInfo's order (its positional
#: arguments, then who may see it): what the loader and the snapshot read.
SITE_FIELDS = (
    "id",
    "subdomain",
    "is_active",
    "index_document",
    "error_document",
    "cache_control",
    *SERVING_FIELDS,
    "visibility",
    "previews_private",
)


class HostMiss(enum.Enum):
    """Host map values for hosts that are not a site; the hit path tells
    them apart by identity (``is``)."""

    #: Not a site host: the request goes to the project.
    PASS = "pass"
    #: A subdomain of ASSETCACHE_DOMAIN that names no site: 404.
    UNKNOWN = "unknown"


HostTarget = SiteInfo | HostMiss


def host_cost(host: str, target: HostTarget | None) -> int:
    """Bytes a host map slot costs: its key, and the SiteInfo a lookup made."""
    cost = HOST_OVERHEAD + sys.getsizeof(host)
    if isinstance(target, SiteInfo):
        cost += sum(
            sys.getsizeof(text)
            for text in (target.subdomain, target.index_document, target.cache_control, target.rules_text)
        )
    return cost


def other_sites(hosts: dict[str, HostTarget], site_id: int | None) -> dict[str, HostTarget]:
    return {host: target for host, target in hosts.items() if isinstance(target, SiteInfo) and target.id != site_id}


def normalize_host(raw_host: str) -> str | None:
    """Lower-case host without port or trailing dot; None when malformed."""
    host = raw_host.strip().lower()
    if host.startswith("["):
        return None  # an IPv6 literal is never a site host
    host = host.rsplit(":", 1)[0] if ":" in host else host
    host = host.rstrip(".")
    if not host or len(host) > 253 or not _HOST_CHARS.issuperset(host):
        return None  # not a host name, so never a site host
    return host


_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789.-")


def request_keys(asset_path: str) -> tuple[str, ...]:
    """Request paths whose answer depends on the asset at ``asset_path``:
    itself, and its directory with and without the slash (index documents
    and their redirects)."""
    directory = asset_path.rsplit("/", 1)[0]
    if not directory:
        return (asset_path, "/")
    return (asset_path, directory + "/", directory)
