"""A publish's site rules: ``_redirects`` and ``_headers`` taken out of the
files, parsed and compiled to the text stored with what is published."""

from __future__ import annotations

from . import conf
from .rules import HEADERS_FILE, REDIRECTS_FILE, RULE_FILES, ParsedRules, Problem, RulesError, dumps, loads, parse
from .sources import PublishError, SourceFile


def take_rule_files(files: list[SourceFile]) -> dict[str, bytes]:
    """The bytes of the rule files among ``files``, which loses them: they
    are compiled, never served."""
    max_size = conf.get().MAX_RULES_FILE_SIZE
    found: dict[str, bytes] = {}
    for source_file in [f for f in files if f.path in RULE_FILES]:
        files.remove(source_file)
        try:
            with source_file.open() as stream:
                found[source_file.path] = stream.read(max_size + 1)
        except OSError as exc:
            raise PublishError(f"{source_file.path}: cannot be read ({exc.strerror or exc})") from exc
    return found


def compile_rules(found: dict[str, bytes], current: str, delete: bool) -> tuple[str, list[Problem]]:
    """The stored rules after this publish and the lines it skipped.

    A file in the source replaces its rules; a file absent keeps the ones
    published before, unless ``delete`` (the site becomes the source).
    Raises PublishError over a limit.
    """
    settings = conf.get()
    try:
        parsed, problems = parse(
            found.get(REDIRECTS_FILE), found.get(HEADERS_FILE), settings.MAX_RULES, settings.MAX_RULES_FILE_SIZE
        )
    except RulesError as exc:
        raise PublishError(str(exc)) from exc
    before = ParsedRules() if delete else loads(current)
    merged = ParsedRules(
        parsed.redirects if REDIRECTS_FILE in found else before.redirects,
        parsed.headers if HEADERS_FILE in found else before.headers,
    )
    return dumps(merged), problems


def refuse_problems(problems: list[Problem]) -> None:
    """``strict``: any skipped line refuses the publish."""
    if problems:
        shown = "; ".join(str(problem) for problem in problems[:20])
        more = f" (and {len(problems) - 20} more)" if len(problems) > 20 else ""
        raise PublishError(f"invalid rule lines: {shown}{more}")
