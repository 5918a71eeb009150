"""Publishing throughput: a 10,000-file site published three times.

    .venv/bin/python benchmarks/publish_bench.py [--files N] [--seed S]

1. everything new; 2. nothing changed (must store zero bytes, else exit 1);
3. 1 % of the files changed and 1 % deleted, published with ``delete=True``.
Runs in a throwaway directory (SQLite database, MEDIA_ROOT, source tree)
through ``tests.settings``; prints the table and writes
docs/benchmarks-publish.md.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.common import ROOT, machine_lines, markdown_table, setup_django, write_doc

MIB = 1024 * 1024
MIN_SIZE = 200
MAX_SIZE = 50 * 1024

#: Extension → share of the files. Text is compressible prose-like markup,
#: images are random bytes behind a real signature.
MIX = {"html": 30, "css": 10, "js": 15, "json": 10, "svg": 5, "png": 30}
SIGNATURES = {"png": b"\x89PNG\r\n\x1a\n"}
#: Share of files whose bytes repeat an earlier file (a vendored script or a
#: logo copied into several sections): what deduplication saves.
DUPLICATE_SHARE = 0.02
CHANGE_SHARE = 0.01
DELETE_SHARE = 0.01

WORDS = [
    "lorem",
    "ipsum",
    "dolor",
    "sit",
    "amet",
    "consectetur",
    "adipiscing",
    "elit",
    "sed",
    "do",
    "eiusmod",
    "tempor",
    "incididunt",
    "ut",
    "labore",
    "et",
    "dolore",
    "magna",
    "aliqua",
    "<div>",
    "</div>",
    "<p>",
    "</p>",
    "<a",
    'href="/docs/">',
    'class="nav"',
    "function",
    "return",
    "const",
    "let",
    "var",
    "{",
    "}",
    "(",
    ")",
    ";",
    "color:",
    "margin:",
    "padding:",
    '"id":',
    '"name":',
    "true",
    "false",
]


@dataclass
class Run:
    label: str
    files: int
    added: int
    changed: int
    unchanged: int
    removed: int
    stored: int
    deduplicated: int
    source_bytes: int
    seconds: float

    def row(self) -> list[object]:
        from django_assetcache.progress import human_bytes

        return [
            self.label,
            f"{self.files:,}",
            f"{self.added:,}",
            f"{self.changed:,}",
            f"{self.unchanged:,}",
            f"{self.removed:,}",
            human_bytes(self.stored),
            human_bytes(self.deduplicated),
            f"{self.seconds:.2f}",
            f"{self.files / self.seconds:,.0f}",
            f"{self.source_bytes / MIB / self.seconds:,.1f}",
        ]


HEADERS = [
    "run", "files", "added", "changed", "unchanged", "removed",
    "stored", "deduplicated", "seconds", "files/s", "MiB/s",
]  # fmt: skip


# --- the generated site ---------------------------------------------------------


def text_corpus(rng: random.Random, size: int = MIB) -> str:
    words: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words)


def file_size(rng: random.Random) -> int:
    """Log-uniform between MIN_SIZE and MAX_SIZE: many small files, some large."""
    return int(MIN_SIZE * (MAX_SIZE / MIN_SIZE) ** rng.random())


def file_body(rng: random.Random, extension: str, size: int, corpus: str, tag: str) -> bytes:
    """``size`` bytes; ``tag`` makes every generated body unique."""
    if extension in SIGNATURES:
        head = SIGNATURES[extension] + tag.encode()
        return head + rng.randbytes(max(size - len(head), 0))
    start = rng.randrange(len(corpus) - size)
    return (f"/* {tag} */\n" + corpus[start : start + size]).encode()[:size]


def relative_path(rng: random.Random, index: int, extension: str) -> str:
    depth = rng.randint(0, 3)
    parts = [f"{kind}{rng.randrange(count)}" for kind, count in (("section", 20), ("topic", 10), ("part", 5))]
    return "/".join([*parts[:depth], f"file{index:05d}.{extension}"])


def generate_site(root: Path, count: int, rng: random.Random) -> list[Path]:
    corpus = text_corpus(rng)
    extensions = rng.choices(list(MIX), weights=list(MIX.values()), k=count)
    earlier: dict[str, list[bytes]] = {}
    paths = []
    for index, extension in enumerate(extensions):
        previous = earlier.setdefault(extension, [])
        if previous and rng.random() < DUPLICATE_SHARE:
            body = rng.choice(previous)
        else:
            body = file_body(rng, extension, file_size(rng), corpus, f"{index}")
            previous.append(body)
        path = root / relative_path(rng, index, extension)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(body)
        paths.append(path)
    return paths


def mutate_site(paths: list[Path], rng: random.Random) -> tuple[int, int]:
    """Change CHANGE_SHARE of the files and delete DELETE_SHARE of the others."""
    changes = int(len(paths) * CHANGE_SHARE)
    deletions = int(len(paths) * DELETE_SHARE)
    chosen = rng.sample(paths, changes + deletions)
    for path in chosen[:changes]:
        path.write_bytes(path.read_bytes() + b"\n/* changed */\n")
    for path in chosen[changes:]:
        path.unlink()
    return changes, deletions


def tree_bytes(root: Path) -> int:
    return sum(path.stat().st_size for path in root.rglob("*") if path.is_file())


# --- publishing -------------------------------------------------------------------


def timed_publish(label: str, source: Path, *, delete: bool = False) -> Run:
    from django_assetcache.publish import publish

    summary = publish("bench", source, delete=delete)
    return Run(
        label=label,
        files=summary.files,
        added=len(summary.added),
        changed=len(summary.changed),
        unchanged=summary.unchanged,
        removed=len(summary.removed),
        stored=summary.bytes_stored,
        deduplicated=summary.bytes_deduplicated,
        source_bytes=tree_bytes(source),
        seconds=summary.seconds,
    )


def check(runs: list[Run], changes: int, deletions: int) -> list[str]:
    """What went wrong, if anything: the promises publishing makes."""
    first, again, partial = runs
    problems = []
    if again.stored != 0:
        problems.append(f"publish #2 of unchanged content stored {again.stored} bytes (expected 0)")
    if again.added or again.changed or again.removed:
        problems.append("publish #2 of unchanged content reported changes")
    if (partial.changed, partial.removed, partial.added) != (changes, deletions, 0):
        problems.append(
            f"publish #3: {partial.changed} changed, {partial.removed} removed, {partial.added} "
            f"added (expected {changes}, {deletions}, 0)"
        )
    if first.added != first.files:
        problems.append(f"publish #1 added {first.added} of {first.files} files")
    return problems


def report(runs: list[Run], count: int, seed: int, site_bytes: int, load: float) -> str:
    from django_assetcache.progress import human_bytes

    table = markdown_table(HEADERS, [run.row() for run in runs])
    return "\n".join(
        [
            "# Benchmark: publishing",
            "",
            f"`django_assetcache.publish.publish()` on a generated site of {count:,} files "
            f"({human_bytes(site_bytes)}; seed {seed}): html, css, js, json, svg as text, png as "
            f"random bytes; sizes {MIN_SIZE} B to {MAX_SIZE // 1024} KiB, log-uniform; nested up to "
            f"three directories deep; {DUPLICATE_SHARE:.0%} of the files repeat another file's bytes.",
            "",
            "1. **new**: first publish, every file added.",
            "2. **unchanged**: the same tree again; must store zero bytes (the script fails otherwise).",
            f"3. **1% changed, 1% deleted**: {CHANGE_SHARE:.0%} of the files rewritten, "
            f"{DELETE_SHARE:.0%} deleted, published with `delete=True`.",
            "",
            table,
            "",
            "*stored*: bytes written to the blob storage; *deduplicated*: bytes of added or changed "
            "files whose content was already stored. *seconds* is the whole call (reading, hashing, "
            "the diff, storing, one transaction); *files/s* counts every file of the source, "
            "*MiB/s* every source byte hashed.",
            "",
            "## Set-up",
            "",
            "- SQLite database and `FileSystemStorage` blob store in a temporary directory on the "
            "same disk as the source tree; the source tree was just written, so it is in the page cache.",
            "- Settings: `tests.settings` (`ASSETCACHE_TEST_DIR` set to the temporary directory).",
            f"- Load average (1 min) when publishing began: {load:.2f}; one process does all the "
            "work, so other load on the machine slows it.",
            *machine_lines(["Django", "django-assetcache"]),
            "",
            "Reproduce: `.venv/bin/python benchmarks/publish_bench.py` (or `make bench-publish`).",
        ]
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=10_000, help="files in the generated site")
    parser.add_argument("--seed", type=int, default=20_240_601)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="assetcache-publish-bench-"))
    try:
        setup_django("tests.settings", {"ASSETCACHE_TEST_DIR": str(workdir)})
        rng = random.Random(args.seed)
        source = workdir / "site"
        paths = generate_site(source, args.files, rng)
        site_bytes = tree_bytes(source)

        load = os.getloadavg()[0]
        runs = [timed_publish("1 new", source), timed_publish("2 unchanged", source)]
        changes, deletions = mutate_site(paths, rng)
        runs.append(timed_publish("3 1% changed, 1% deleted", source, delete=True))

        text = report(runs, args.files, args.seed, site_bytes, load)
        print(markdown_table(HEADERS, [run.row() for run in runs]))
        problems = check(runs, changes, deletions)
        if problems:
            for problem in problems:
                print(f"FAILED: {problem}", file=sys.stderr)
            return 1
        print(f"\nwrote {write_doc('benchmarks-publish.md', text).relative_to(ROOT)}")
        return 0
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
