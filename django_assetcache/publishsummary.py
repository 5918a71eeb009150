"""What a publish did: the counts, the line a command prints, and the
summary a deployment keeps."""

from __future__ import annotations

from dataclasses import dataclass, field

from .models import Deployment
from .progress import human_bytes


@dataclass
class PublishSummary:
    subdomain: str
    created: bool = False
    dry_run: bool = False
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: int = 0
    removed: list[str] = field(default_factory=list)
    files: int = 0
    bytes_stored: int = 0
    bytes_deduplicated: int = 0
    seconds: float = 0.0
    #: Source paths the exclusion rules skipped (a folder once, as ``name/``).
    skipped: list[str] = field(default_factory=list)
    #: The zip's one top folder, published without it ("" if none).
    top_folder: str = ""
    #: Lines of _redirects and _headers skipped ("_redirects:4: why").
    rule_problems: list[str] = field(default_factory=list)
    #: Whether the deployment's compiled rules differ from the live one's.
    rules_changed: bool = False
    #: The deployment made (or, when nothing changed, the live one it is);
    #: None for a dry run.
    deployment: Deployment | None = None
    draft: bool = False

    def as_json(self) -> dict[str, int]:
        """The counts a deployment keeps as its summary."""
        return {
            "files": self.files,
            "added": len(self.added),
            "changed": len(self.changed),
            "unchanged": self.unchanged,
            "removed": len(self.removed),
            "skipped": len(self.skipped),
            "bytes_stored": self.bytes_stored,
        }

    def __str__(self) -> str:
        prefix = "dry run, nothing changed: " if self.dry_run else ""
        created = " (new site)" if self.created else ""
        stored = "would store" if self.dry_run else "stored"
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        top = f"; the zip's top folder {self.top_folder}/ left out of the paths" if self.top_folder else ""
        return (
            f"{prefix}{self.subdomain}{created}: {len(self.added)} added, "
            f"{len(self.changed)} changed, {self.unchanged} unchanged, "
            f"{len(self.removed)} removed{skipped}; {human_bytes(self.bytes_stored)} {stored}, "
            f"{human_bytes(self.bytes_deduplicated)} deduplicated{top}{self._deployed()}; {self.seconds:.2f} s"
            f"{self._rules()}"
        )

    def _deployed(self) -> str:
        deployment = self.deployment
        if deployment is None:
            return ""
        if self.draft:
            return f"; draft {deployment.key}, preview at {deployment.preview_url()}"
        return f"; deployment {deployment.key} live"

    def _rules(self) -> str:
        changed = ""
        if self.rules_changed:
            changed = "; rules differ from the live deployment's" if self.draft else "; site rules updated"
        if not self.rule_problems:
            return changed
        return f"{changed}; {len(self.rule_problems)} rule lines skipped: " + "; ".join(self.rule_problems)
