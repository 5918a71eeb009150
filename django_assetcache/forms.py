"""Admin forms: a site with messages a person understands, and the upload form.

The upload form only stages what the browser sent (on disk, never whole in
memory) and hands it to :func:`django_assetcache.publish.publish`: what a site
may hold (paths, sizes, links) is decided there, not here. The form refuses
only what is wrong with the upload itself: nothing chosen, two files of one
name, a ``.zip`` that is not a zip or holds no files.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from django import forms
from django.conf import settings as django_settings
from django.core.exceptions import ValidationError
from django.core.files.uploadedfile import UploadedFile
from django.utils.html import format_html
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _

from . import conf
from .models import Site
from .progress import first_few, human_bytes
from .publish import DeploymentInfo, PublishError, PublishSummary, publish
from .sources import read_source

if TYPE_CHECKING:
    SiteModelForm = forms.ModelForm[Site]
else:  # Django's classes take no type arguments at run time.
    SiteModelForm = forms.ModelForm


class SiteForm(SiteModelForm):
    """The admin's site form: the subdomain is normalised and a taken or
    reserved one is refused in words, naming the host the site would get."""

    class Meta:
        model = Site
        fields = [
            "subdomain",
            "name",
            "is_active",
            "index_document",
            "error_document",
            "cache_control",
            "https_only",
            "hsts_max_age",
            "hsts_include_subdomains",
            "hsts_preload",
            "canonical_host",
        ]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        field = self.fields.get("subdomain")
        if field is not None:
            # Settings are read per form, not at import: tests and projects
            # change ASSETCACHE_DOMAIN and the reserved names.
            settings = conf.get()
            reserved = ", ".join(settings.RESERVED_SUBDOMAINS) or gettext("none")
            # The admin renders help text as HTML: build it with format_html.
            field.help_text = format_html(
                gettext(
                    "The site answers at <i>subdomain</i>.{domain}. Use lower-case letters, "
                    "digits and hyphens (not first or last), at most 63. Reserved: {reserved}."
                ),
                domain=settings.DOMAIN,
                reserved=reserved,
            )

    def clean_subdomain(self) -> str:
        # Host names are case-insensitive: "Docs " means "docs". The model's
        # validators run afterwards, on this value (ModelForm._post_clean).
        value: str = (self.cleaned_data.get("subdomain") or "").strip().lower()
        taken = Site.objects.filter(subdomain=value)
        if self.instance.pk is not None:
            taken = taken.exclude(pk=self.instance.pk)
        if taken.exists():
            # Said here rather than by the unique constraint's "Site with this
            # Subdomain already exists", which does not say what to do.
            raise ValidationError(
                _("“%(value)s” is taken: another site already answers at %(host)s. Choose another subdomain."),
                code="unique",
                params={"value": value, "host": f"{value}.{conf.get().DOMAIN}"},
            )
        return value


class MultipleFileInput(forms.FileInput):
    allow_multiple_selected = True


class MultipleFileField(forms.FileField):
    """A file field that takes one or several files and cleans to a list."""

    widget = MultipleFileInput

    def clean(self, data: Any, initial: Any = None) -> list[UploadedFile[Any]]:
        single = super().clean
        if isinstance(data, (list, tuple)):
            files = [single(item, initial) for item in data if item]
            if not files and self.required:
                raise ValidationError(self.error_messages["required"], code="required")
            return files
        cleaned = single(data, initial)
        return [cleaned] if cleaned else []


class UploadForm(forms.Form):
    # A declared field named like BaseForm.files (the request's files): the
    # form metaclass moves it to base_fields, so the two never meet.
    files = MultipleFileField(  # type: ignore[assignment]
        label=_("Files"),
        # An empty plain file (.nojekyll, an empty robots.txt) is a file the
        # site may want; an empty zip is refused in stage().
        allow_empty_file=True,
        error_messages={"required": _("Choose a .zip file, or the files to upload.")},
        help_text=_(
            "One .zip file: its folders become the site's paths. Or several files: each is "
            "published under its own name at the top of the site."
        ),
    )
    delete = forms.BooleanField(
        label=_("Remove files not in the upload"),
        required=False,
        help_text=_("Without this, files the site has that the upload lacks are kept."),
    )
    keep_top_folder = forms.BooleanField(
        label=_("Keep the zip's top folder"),
        required=False,
        help_text=_(
            "A zip whose files all sit in one folder (what zipping a build folder gives) is published "
            "without that folder: build/index.html is served at /index.html. Check this to serve it at "
            "/build/index.html."
        ),
    )

    draft = forms.BooleanField(
        label=_("Draft"),
        required=False,
        help_text=_("Store the upload as a deployment without making it live: it answers at its preview address."),
    )
    alias = forms.CharField(
        label=_("Alias"),
        required=False,
        max_length=50,
        help_text=_("Optional: a name such as staging; <alias>--<subdomain> then shows this deployment."),
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = conf.get()
        self.fields["files"].help_text = format_html(
            "{} {}",
            self.fields["files"].help_text,
            gettext("Each file may be up to %(file)s, all together up to %(total)s uncompressed.")
            % {"file": human_bytes(settings.MAX_FILE_SIZE), "total": human_bytes(settings.MAX_SITE_SIZE)},
        )
        #: Where stage() put the upload, to reword publish()'s messages.
        self._staged_dir: str | None = None
        self._zip_path: str | None = None

    def clean_files(self) -> list[UploadedFile[Any]]:
        files: list[UploadedFile[Any]] = self.cleaned_data["files"]
        seen: set[str] = set()
        for uploaded in files:
            name = _plain_name(uploaded)
            if name in seen:
                raise ValidationError(
                    _("Two files are named “%(name)s”: a site has one file per name."),
                    code="duplicate",
                    params={"name": name},
                )
            seen.add(name)
        return files

    @property
    def is_zip(self) -> bool:
        files = self.cleaned_data["files"]
        return len(files) == 1 and _plain_name(files[0]).lower().endswith(".zip")

    def describe(self) -> str:
        """What was uploaded, for messages and the admin log."""
        files = self.cleaned_data["files"]
        if len(files) == 1:
            return f"“{_plain_name(files[0])}”"
        return ngettext("%(count)d file", "%(count)d files", len(files)) % {"count": len(files)}

    def publish(self, site: Site, created_by: str = "") -> PublishSummary | None:
        """Publish the upload to ``site`` as a deployment by ``created_by``;
        None, with form errors, for a bad upload, in which case nothing changed."""
        try:
            with self.stage() as source:
                keep_top_folder = self.cleaned_data["keep_top_folder"]
                with read_source(source, keep_top_folder=keep_top_folder) as listing:
                    # Checked here, before publish() reads anything: with
                    # "remove files not in the upload", an empty zip would
                    # empty the site.
                    if not listing.files:
                        raise PublishError(self._nothing_to_publish(listing.skipped))
                info = DeploymentInfo(
                    draft=self.cleaned_data["draft"],
                    alias=self.cleaned_data["alias"].strip(),
                    created_by=created_by,
                    source=self.describe(),
                )
                return publish(
                    site, source, delete=self.cleaned_data["delete"], keep_top_folder=keep_top_folder, deployment=info
                )
        except PublishError as exc:
            field = "alias" if self.cleaned_data.get("alias") and "alias" in str(exc) else "files"
            self.add_error(field, self._reword(str(exc)))
            return None

    def _nothing_to_publish(self, skipped: list[str]) -> str:
        message = gettext("%(upload)s holds no files to publish.") % {"upload": self.describe()}
        if skipped:
            message += " " + ngettext(
                "%(count)d was skipped (%(names)s): dot-files, editor backups and the like are not published.",
                "%(count)d were skipped (%(names)s): dot-files, editor backups and the like are not published.",
                len(skipped),
            ) % {"count": len(skipped), "names": first_few(skipped)}
        return message

    @contextmanager
    def stage(self) -> Iterator[str]:
        """A path publish() can read: the zip, or a directory of the files.

        A file Django already streamed to disk (over FILE_UPLOAD_MAX_MEMORY_SIZE)
        is used where it lies, or hard-linked into the directory; a small one
        held in memory is written out in chunks. Nothing is read whole.
        """
        files: list[UploadedFile[Any]] = self.cleaned_data["files"]
        temp_root = getattr(django_settings, "FILE_UPLOAD_TEMP_DIR", None) or None
        with tempfile.TemporaryDirectory(prefix="assetcache-upload-", dir=temp_root) as workdir:
            self._staged_dir = workdir
            if self.is_zip:
                uploaded = files[0]
                if not uploaded.size:
                    raise PublishError(gettext("%(upload)s is empty.") % {"upload": self.describe()})
                path = _on_disk(uploaded, Path(workdir) / "upload.zip")
                if not zipfile.is_zipfile(path):
                    raise PublishError(
                        gettext("%(upload)s is not a zip file (or it is damaged).") % {"upload": self.describe()}
                    )
                self._zip_path = path
                yield path
            else:
                root = Path(workdir) / "site"
                root.mkdir()
                for uploaded in files:
                    _on_disk(uploaded, root / _plain_name(uploaded), link=True)
                yield str(root)

    def _reword(self, message: str) -> str:
        """publish() speaks to a command line: name the upload, not the
        temporary path it was staged at."""
        if self._zip_path:
            message = message.replace(self._zip_path, self.describe())
        if self._staged_dir:
            message = message.replace(self._staged_dir, gettext("the upload"))
        return message.replace("SOURCE", gettext("the upload"))


def _plain_name(uploaded: UploadedFile[Any]) -> str:
    # Django keeps only the last component of the name the browser sent;
    # refuse what would still not be a plain file name.
    name = os.path.basename(uploaded.name or "")
    if name in {"", ".", ".."} or "\x00" in name or "\\" in name:
        raise ValidationError(_("“%(name)s” is not a usable file name."), code="bad_name", params={"name": name})
    return name


def _on_disk(uploaded: UploadedFile[Any], target: Path, *, link: bool = False) -> str:
    """A path holding ``uploaded``'s bytes.

    For a zip the temporary file itself is returned; for a file that must sit
    in the staging directory under its own name it is hard-linked there
    (same filesystem: FILE_UPLOAD_TEMP_DIR), or copied in chunks.
    """
    temporary_path = getattr(uploaded, "temporary_file_path", None)
    if temporary_path is not None:
        path: str = temporary_path()
        if not link:
            return path
        try:
            os.link(path, target)
        except OSError:
            with open(path, "rb") as source, open(target, "wb") as out:
                shutil.copyfileobj(source, out, 1024 * 1024)
        return str(target)
    with open(target, "wb") as out:
        for chunk in uploaded.chunks():
            out.write(chunk)
    return str(target)
