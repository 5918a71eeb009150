"""Sites, their domains, content-addressed blobs, assets, and the change feed."""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from django.conf import settings
from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import models, router, transaction
from django.db.models import F
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from . import conf, invalidation
from .changemodels import MAX_CHANGE_PATHS as MAX_CHANGE_PATHS
from .changemodels import Change as Change
from .validators import (
    validate_document_name,
    validate_header_value,
    validate_hostname,
    validate_subdomain,
)

#: The TXT record that proves control of a custom domain:
#: ``_assetcache-challenge.<host> TXT "assetcache-verification=<token>"``.
CHALLENGE_PREFIX = "_assetcache-challenge"
CHALLENGE_VALUE_PREFIX = "assetcache-verification="
#: The max-age the HSTS preload list asks for (a year).
HSTS_PRELOAD_MAX_AGE = 31_536_000


class Visibility(models.TextChoices):
    PUBLIC = "public", _("public: anyone")
    LOGIN = "login", _("login: any active user of the project")
    RESTRICTED = "restricted", _("restricted: allowed users and groups, and superusers")
    PASSWORD = "password", _("password: one shared password")


class Site(models.Model):
    subdomain = models.CharField(
        _("subdomain"),
        max_length=63,
        unique=True,
        validators=[validate_subdomain],
        help_text=_("The site answers at <subdomain>.ASSETCACHE_DOMAIN."),
    )
    name = models.CharField(_("name"), max_length=200, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    index_document = models.CharField(
        _("index document"),
        max_length=255,
        default="index.html",
        validators=[validate_document_name],
        help_text=_("Served for a path ending in a slash."),
    )
    error_document = models.CharField(
        _("error document"),
        max_length=255,
        default="404.html",
        blank=True,
        validators=[validate_document_name],
        help_text=_("Served with status 404 for a missing path; blank for a plain 404."),
    )
    cache_control = models.CharField(
        _("Cache-Control"),
        max_length=255,
        blank=True,
        validators=[validate_header_value],
        help_text=_("Blank uses ASSETCACHE_CACHE_CONTROL."),
    )
    https_only = models.BooleanField(
        _("HTTPS only"),
        default=False,
        help_text=_("A plain-HTTP request gets a 308 redirect to https://."),
    )
    hsts_max_age = models.PositiveIntegerField(
        _("HSTS max-age"),
        default=0,
        help_text=_("Seconds of Strict-Transport-Security sent on HTTPS responses; 0 sends none. Needs HTTPS only."),
    )
    hsts_include_subdomains = models.BooleanField(_("HSTS includeSubDomains"), default=False)
    hsts_preload = models.BooleanField(
        _("HSTS preload"), default=False, help_text=_("Needs includeSubDomains and a max-age of a year or more.")
    )
    canonical_host = models.CharField(
        _("canonical host"),
        max_length=253,
        blank=True,
        help_text=_("Every other host of the site redirects here (301), path and query kept. Blank: none."),
    )
    visibility = models.CharField(_("visibility"), max_length=16, choices=Visibility.choices, default=Visibility.PUBLIC)
    previews_private = models.BooleanField(
        _("previews private"),
        default=False,
        help_text=_(
            "On a public site: its preview and alias hosts are seen only by superusers, its allowed users and"
            " groups, and staff who may change sites; its own hosts stay public. A private site's previews"
            " follow the site."
        ),
    )
    allowed_users = models.ManyToManyField(
        settings.AUTH_USER_MODEL, blank=True, related_name="assetcache_sites", verbose_name=_("allowed users")
    )
    allowed_groups = models.ManyToManyField(
        Group, blank=True, related_name="assetcache_sites", verbose_name=_("allowed groups")
    )
    #: Django's password hash (make_password), for password sites; "" when unset.
    password = models.CharField(_("password"), max_length=128, blank=True, editable=False)
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    live_deployment = models.ForeignKey(
        "Deployment",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.SET_NULL,
        related_name="+",
        verbose_name=_("live deployment"),
    )
    generation = models.PositiveBigIntegerField(
        _("generation"),
        default=0,
        editable=False,
        help_text=_("Bumped on every change to the site's content or settings."),
    )

    class Meta:
        ordering = ["subdomain"]
        verbose_name = _("site")
        verbose_name_plural = _("sites")

    def __str__(self) -> str:
        return self.subdomain

    def save(self, *args: object, **kwargs: object) -> None:
        self.subdomain = (self.subdomain or "").lower()
        if (
            not self._state.adding
            and not args
            and kwargs.get("update_fields") is None
            and not kwargs.get("force_insert")
        ):
            # ``generation`` only moves through record_change(): writing back
            # the value this instance was loaded with could move it backwards.
            deferred = self.get_deferred_fields()
            kwargs["update_fields"] = [
                f.name
                for f in self._meta.concrete_fields
                if not f.primary_key and f.name != "generation" and f.attname not in deferred
            ]
        # The post_save receiver appends the Change: keep both in one transaction.
        with transaction.atomic(using=_database_for(self, kwargs.get("using"))):
            super().save(*args, **kwargs)  # type: ignore[arg-type]

    def clean(self) -> None:
        errors: dict[str, object] = {}
        if self.hsts_max_age and not self.https_only:
            errors["hsts_max_age"] = _("HSTS needs HTTPS only: plain-HTTP responses must not carry it.")
        if self.hsts_preload and (not self.hsts_include_subdomains or self.hsts_max_age < HSTS_PRELOAD_MAX_AGE):
            errors["hsts_preload"] = _("Preload needs includeSubDomains and a max-age of at least 31536000.")
        if self.canonical_host:
            self.canonical_host = self.canonical_host.lower().rstrip(".")
            hosts = {self.host} | set(self.domains.values_list("hostname", flat=True) if self.pk else ())
            if self.canonical_host not in hosts:
                errors["canonical_host"] = _("Give one of the site's hosts: %(hosts)s.") % {
                    "hosts": ", ".join(sorted(hosts))
                }
        if errors:
            raise ValidationError(errors)

    @property
    def private(self) -> bool:
        return self.visibility != Visibility.PUBLIC

    @property
    def host(self) -> str:
        return f"{self.subdomain}.{conf.get().DOMAIN}"

    @property
    def url(self) -> str:
        return conf.get().SITE_URL.format(host=self.host)


def lock_blobs(shas: Iterable[str]) -> set[str]:
    """Lock the Blob rows of ``shas`` that exist, in one order (two holders
    cannot deadlock) and batches; return their hashes. Publish, warmup and
    gc all hold blobs this way."""
    ordered = sorted(set(shas))
    locked: set[str] = set()
    for start in range(0, len(ordered), 500):
        rows = Blob.objects.select_for_update().filter(pk__in=ordered[start : start + 500]).order_by("pk")
        locked.update(rows.values_list("pk", flat=True))
    return locked


def sites_named(subdomains: Iterable[str]) -> tuple[models.QuerySet[Site], list[str]]:
    """The sites of ``subdomains`` (spelt in any case, as a command line may),
    and the names that match none."""
    wanted = {name.strip().lower() for name in subdomains}
    sites = Site.objects.filter(subdomain__in=wanted)
    return sites, sorted(wanted - set(sites.values_list("subdomain", flat=True)))


def new_verification_token() -> str:
    return secrets.token_hex(16)


class Domain(models.Model):
    """A custom host name of a site, served once its owner proved control
    of it (a DNS TXT record holding the token), or added by a trusted admin."""

    class State(models.TextChoices):
        PENDING = "pending", _("pending")
        VERIFIED = "verified", _("verified")

    hostname = models.CharField(_("host name"), max_length=253, unique=True, validators=[validate_hostname])
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="domains")
    state = models.CharField(_("state"), max_length=16, choices=State.choices, default=State.PENDING)
    verification_token = models.CharField(
        _("verification token"),
        max_length=64,
        default=new_verification_token,
        editable=False,
        help_text=_("Publish it as _assetcache-challenge.<host name> TXT “assetcache-verification=<token>”."),
    )
    verified_at = models.DateTimeField(_("verified"), null=True, blank=True, editable=False)

    class Meta:
        ordering = ["hostname"]
        verbose_name = _("domain")
        verbose_name_plural = _("domains")

    def __str__(self) -> str:
        return self.hostname

    def save(self, *args: object, **kwargs: object) -> None:
        self.hostname = (self.hostname or "").lower().rstrip(".")
        if self._state.adding and self.state == self.State.PENDING and conf.get().TRUST_ADMIN_DOMAINS:
            self.state = self.State.VERIFIED
            self.verified_at = timezone.now()
        # The post_save receiver appends the Change: keep both in one transaction.
        with transaction.atomic(using=_database_for(self, kwargs.get("using"))):
            super().save(*args, **kwargs)  # type: ignore[arg-type]

    @property
    def challenge_name(self) -> str:
        return f"{CHALLENGE_PREFIX}.{self.hostname}"

    @property
    def challenge_value(self) -> str:
        return f"{CHALLENGE_VALUE_PREFIX}{self.verification_token}"


class Blob(models.Model):
    """Bytes stored once under their SHA-256, shared by every asset that has them.

    A compressed variant is a blob too, linked to the blob it was made from.
    """

    sha256 = models.CharField(_("SHA-256"), max_length=64, primary_key=True)
    size = models.PositiveBigIntegerField(_("size"))
    created_at = models.DateTimeField(_("created"), auto_now_add=True)
    source = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="variants",
        help_text=_("For a compressed variant: the blob it was compressed from."),
    )
    encoding = models.CharField(
        _("content coding"),
        max_length=16,
        blank=True,
        help_text=_("For a compressed variant: gzip or br."),
    )
    unused_since = models.DateTimeField(
        _("unused since"),
        null=True,
        blank=True,
        editable=False,
        help_text=_("When assetcache_gc first found no asset using it; cleared when one does again."),
    )

    class Meta:
        verbose_name = _("blob")
        verbose_name_plural = _("blobs")
        constraints = [
            models.UniqueConstraint(
                fields=["source", "encoding"],
                condition=models.Q(source__isnull=False),
                name="assetcache_blob_one_variant_per_encoding",
            )
        ]

    def __str__(self) -> str:
        return self.sha256[:12]


class Asset(models.Model):
    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="assets")
    deployment = models.ForeignKey("Deployment", on_delete=models.CASCADE, related_name="assets")
    path = models.CharField(_("path"), max_length=1024)
    blob = models.ForeignKey(Blob, on_delete=models.PROTECT, related_name="assets")
    content_type = models.CharField(_("content type"), max_length=255)
    last_modified = models.DateTimeField(_("last modified"))

    class Meta:
        ordering = ["site", "path"]
        verbose_name = _("asset")
        verbose_name_plural = _("assets")
        constraints = [models.UniqueConstraint(fields=["deployment", "path"], name="assetcache_asset_deployment_path")]

    def __str__(self) -> str:
        return f"{self.site_id}:{self.path}"


def _database_for(instance: models.Model, using: object) -> str:
    """The database a save() writes to: the one it was given, else the router's."""
    if isinstance(using, str) and using:
        return using
    return router.db_for_write(type(instance), instance=instance)


def record_change(
    site_id: int | None,
    kind: str,
    paths: Iterable[str] | None = None,
    *,
    deployment_id: int | None = None,
    previous_id: int | None = None,
) -> Change:
    """Bump the site's generation and append a Change, atomically.

    Called inside the transaction that made the change, so both commit or
    neither does.
    """
    path_list = None if paths is None else sorted(set(paths))
    if path_list is not None and len(path_list) > MAX_CHANGE_PATHS:
        path_list = None
    # The backend is told here, beside the write, rather than by each caller:
    # a push backend must notify inside this transaction (postgres) or right
    # after its commit (redis), whoever records the change (publish, the
    # admin, a signal receiver, a data migration). invalidation imports no
    # model, so models importing it makes no cycle.
    with transaction.atomic():
        if site_id is not None:
            Site.objects.filter(pk=site_id).update(generation=F("generation") + 1)
        change = Change.objects.create(
            site_id=site_id, kind=kind, paths=path_list, deployment_id=deployment_id, previous_id=previous_id
        )
        invalidation.before_commit(change.id)
    transaction.on_commit(invalidation.committed)
    return change


# The change feed's rows live in a module of their own, as do the access
# models; importing them here
# registers them with the app, as Django finds models through this module.
from .accessmodels import ShareLink as ShareLink  # noqa: E402
from .accessmodels import UsedTicket as UsedTicket  # noqa: E402

# The deploy API's tokens and uploads (apimodels.py), likewise.
from .apimodels import DeployToken as DeployToken  # noqa: E402
from .apimodels import PendingDeploy as PendingDeploy  # noqa: E402

# A site's deployments (every publish) and their aliases, likewise.
from .deploymentmodels import Deployment as Deployment  # noqa: E402
from .deploymentmodels import DeploymentAlias as DeploymentAlias  # noqa: E402
from .deploymentmodels import DeployTally as DeployTally  # noqa: E402

# Traffic per site and the processes' heartbeats live in usage.py; importing
# them here registers them with the app like every other model.
from .usage import Heartbeat as Heartbeat  # noqa: E402
from .usage import SiteTraffic as SiteTraffic  # noqa: E402
