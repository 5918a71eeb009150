"""Helpers shared by the benchmark scripts: environment, tables, reports.

Scripts run as ``.venv/bin/python benchmarks/<name>.py`` from the repository
root; they put the root on ``sys.path`` and import this module as
``benchmarks.common``.
"""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def setup_django(settings_module: str, env: dict[str, str]) -> None:
    """Point Django at ``settings_module`` (with ``env`` set first), set it up
    and create the database tables."""
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = settings_module
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", verbosity=0)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured table, columns padded so it also reads as plain text.

    The first column is left-aligned, the others (numbers) right-aligned.
    """
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        padded = [row[i].ljust(widths[i]) if i == 0 else row[i].rjust(widths[i]) for i in range(len(row))]
        return "| " + " | ".join(padded) + " |"

    rule = "|" + "|".join(f" {'-' * w} " if i == 0 else f" {'-' * (w - 1)}: " for i, w in enumerate(widths)) + "|"
    return "\n".join([line(cells[0]), rule, *map(line, cells[1:])])


def version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "not installed"


def cpu_model() -> str:
    try:
        for text_line in Path("/proc/cpuinfo").read_text().splitlines():
            if text_line.startswith("model name"):
                return text_line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_lines(distributions: Sequence[str]) -> list[str]:
    """Markdown bullet lines: date, CPU, OS, Python and package versions."""
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    versions = ", ".join(f"{name} {version(name)}" for name in distributions)
    return [
        f"- Date: {now}",
        f"- Machine: {os.cpu_count()} CPUs (nproc {len(os.sched_getaffinity(0))}), {cpu_model()}",
        f"- OS: {platform.system()} {platform.release()} ({platform.machine()})",
        f"- Python {platform.python_version()} (the project's virtual environment)",
        f"- Packages: {versions}",
    ]


def write_doc(name: str, text: str) -> Path:
    DOCS.mkdir(exist_ok=True)
    path = DOCS / name
    path.write_text(text.rstrip() + "\n")
    return path


def process_memory(pid: int | str = "self") -> dict[str, int]:
    """Resident memory of a process in bytes: ``rss`` in all, ``anon`` (its
    own heap) and ``file`` (mapped files, shared with the page cache)."""
    fields = {"VmRSS": "rss", "RssAnon": "anon", "RssFile": "file"}
    memory = {}
    for text_line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = text_line.partition(":")
        if name in fields:
            memory[fields[name]] = int(value.split()[0]) * 1024
    return memory


def percentile(values: Sequence[float], share: float) -> float:
    """The value below which ``share`` (0–1) of ``values`` lie (nearest rank)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(share * len(ordered)) - 1))]
