"""Site rules as a site writes them: Netlify's ``_redirects`` and ``_headers``.

Parsing happens once, when a site is published: each file becomes a tuple of
frozen rule records and a list of problems (an invalid line, with its line
number, is skipped). The records are kept as JSON (``dumps``/``loads``) with
what is published and in the snapshot; ``ruletables.py`` turns them into the
lookup tables a request uses. Nothing here knows of Django.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import unquote

REDIRECTS_FILE = "/_redirects"
HEADERS_FILE = "/_headers"
RULE_FILES = (REDIRECTS_FILE, HEADERS_FILE)

#: Statuses a redirect rule may give; 200 rewrites, 404 and 410 serve TO.
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
STATUSES = REDIRECT_STATUSES | {200, 404, 410}

#: Header names framing, the cache or a site setting own: a rule setting one
#: is refused with a warning (lower case).
REFUSED_HEADERS = frozenset(
    {
        "accept-ranges",
        "connection",
        "content-encoding",
        "content-length",
        "content-range",
        "content-type",
        "date",
        "etag",
        "keep-alive",
        "last-modified",
        "location",
        "proxy-connection",
        "set-cookie",
        "strict-transport-security",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "vary",
        "x-content-type-options",
        "basic-auth",
    }
)

_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", re.ASCII)
_PLACEHOLDER_RE = re.compile(r":[A-Za-z_][A-Za-z0-9_]*", re.ASCII)
_HOST_RE = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?", re.ASCII)


class RulesError(Exception):
    """A rules file over a limit: the publish is refused."""


@dataclass(frozen=True, slots=True)
class Problem:
    """An invalid or refused line of a rules file, skipped."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file.lstrip('/')}:{self.line}: {self.message}"


@dataclass(frozen=True, slots=True)
class RedirectRule:
    """One line of ``_redirects``: FROM (percent-decoded, without a trailing
    slash), its query conditions, TO as written, the status, forced or not."""

    line: int
    path: str
    to: str
    status: int = 301
    force: bool = False
    #: A domain-level rule names the host it applies to ("" for any).
    host: str = ""
    #: (key, value): a value starting with ":" binds a placeholder.
    query: tuple[tuple[str, str], ...] = ()

    @property
    def dynamic(self) -> bool:
        """Not matched by one dictionary lookup of the request path."""
        return bool(self.host or self.query or "*" in self.path or "/:" in self.path)


@dataclass(frozen=True, slots=True)
class HeaderRule:
    """One block of ``_headers``: a path pattern and its headers."""

    line: int
    path: str
    headers: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class ParsedRules:
    redirects: tuple[RedirectRule, ...] = ()
    headers: tuple[HeaderRule, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.redirects or self.headers)


def normalize(path: str) -> str:
    """``/foo/`` and ``/foo`` are one rule path."""
    return path.rstrip("/") or "/"


def _text(data: bytes, file: str, max_size: int) -> str:
    if len(data) > max_size:
        raise RulesError(f"{file.lstrip('/')}: {len(data)} bytes, over ASSETCACHE_MAX_RULES_FILE_SIZE ({max_size})")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise RulesError(f"{file.lstrip('/')}: not UTF-8 text") from exc


def _over(file: str, max_rules: int) -> RulesError:
    return RulesError(f"{file.lstrip('/')}: more than ASSETCACHE_MAX_RULES ({max_rules}) rules")


# --- _redirects ------------------------------------------------------------------


def parse_redirects(data: bytes, max_rules: int, max_size: int) -> tuple[tuple[RedirectRule, ...], list[Problem]]:
    """The rules of a ``_redirects`` file and the lines it skipped."""
    rules: list[RedirectRule] = []
    problems: list[Problem] = []
    for number, raw in enumerate(_text(data, REDIRECTS_FILE, max_size).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        try:
            rules.append(_redirect_rule(number, line.split()))
        except ValueError as exc:
            problems.append(Problem(REDIRECTS_FILE, number, str(exc)))
            continue
        if len(rules) > max_rules:
            raise _over(REDIRECTS_FILE, max_rules)
    return tuple(rules), problems


def _redirect_rule(number: int, fields: list[str]) -> RedirectRule:
    if len(fields) < 2:
        raise ValueError("a rule needs FROM and TO")
    source, rest = fields[0], fields[1:]
    query: list[tuple[str, str]] = []
    while rest and "=" in rest[0] and not rest[0].startswith(("/", "http://", "https://")):
        key, _, value = rest.pop(0).partition("=")
        if not key:
            raise ValueError(f"query condition {key}={value}: no parameter name")
        query.append((key, value))
    if not rest:
        raise ValueError("a rule needs a TO after FROM and its query conditions")
    to, options = rest[0], rest[1:]
    status, force = 301, False
    if options and options[0].rstrip("!").isdigit():
        code = options.pop(0)
        force = code.endswith("!")
        status = int(code.rstrip("!"))
        if status not in STATUSES:
            raise ValueError(f"status {status}: use one of {', '.join(map(str, sorted(STATUSES)))}")
    if options:
        raise ValueError(f"{' '.join(options)}: conditions (country, language, role, cookie) are not supported")
    host, path = _source(source)
    _check_target(to, status)
    return RedirectRule(number, path, to, status, force, host, tuple(query))


def _source(source: str) -> tuple[str, str]:
    """(host, decoded path) of a FROM."""
    host = ""
    for scheme in ("https://", "http://"):
        if source.startswith(scheme):
            authority, slash, rest = source[len(scheme) :].partition("/")
            host = authority.lower().rstrip(".")
            if not _HOST_RE.fullmatch(host):
                raise ValueError(f"{source}: not a host name in a domain-level FROM")
            source = slash + rest or "/"
    if not source.startswith("/"):
        raise ValueError(f"{source}: FROM must be a path starting with / or https://host/…")
    if "?" in source:
        raise ValueError(f"{source}: give query conditions as key=value after FROM")
    path = normalize(unquote(source))
    if "*" in path[:-1] or (path.endswith("*") and not path.endswith("/*")):
        raise ValueError(f"{source}: * may only end FROM, after a slash")
    for segment in path.split("/"):
        if segment.startswith(":") and not _PLACEHOLDER_RE.fullmatch(segment):
            raise ValueError(f"{source}: placeholder {segment} is not a name")
    return host, path


def _check_target(to: str, status: int) -> None:
    absolute = to.startswith(("https://", "http://"))
    if not absolute and not to.startswith("/"):
        raise ValueError(f"{to}: TO must be a path starting with / or an https:// URL")
    if absolute and status not in REDIRECT_STATUSES:
        raise ValueError(f"{to}: status {status} to another origin would proxy it; only 3xx may leave the site")
    if any(not ("!" <= ch <= "~") for ch in to):
        raise ValueError(f"{to}: TO must be percent-encoded ASCII")


# --- _headers --------------------------------------------------------------------


def parse_headers(data: bytes, max_rules: int, max_size: int) -> tuple[tuple[HeaderRule, ...], list[Problem]]:
    """The blocks of a ``_headers`` file and the lines it skipped."""
    rules: list[HeaderRule] = []
    problems: list[Problem] = []
    current: tuple[int, str] | None = None
    headers: list[tuple[str, str]] = []
    count = 0
    for number, raw in enumerate(_text(data, HEADERS_FILE, max_size).splitlines(), 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if not raw[:1].isspace():
            if current is not None and headers:
                rules.append(HeaderRule(current[0], current[1], tuple(headers)))
            current, headers = None, []
            try:
                current = (number, _header_path(line))
            except ValueError as exc:
                problems.append(Problem(HEADERS_FILE, number, str(exc)))
            continue
        if current is None:
            problems.append(Problem(HEADERS_FILE, number, "a header line outside a path block"))
            continue
        try:
            headers.append(_header(line))
        except ValueError as exc:
            problems.append(Problem(HEADERS_FILE, number, str(exc)))
            continue
        count += 1
        if count > max_rules:
            raise _over(HEADERS_FILE, max_rules)
    if current is not None and headers:
        rules.append(HeaderRule(current[0], current[1], tuple(headers)))
    return tuple(rules), problems


def _header_path(line: str) -> str:
    if not line.startswith("/"):
        raise ValueError(f"{line}: a path pattern starts with / (header lines are indented)")
    if len(line.split()) > 1:
        raise ValueError(f"{line}: one path pattern per line")
    return _source(line)[1]


def _header(line: str) -> tuple[str, str]:
    name, colon, value = line.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not _TOKEN_RE.fullmatch(name):
        raise ValueError(f"{line}: not a Name: value header line")
    if name.lower() in REFUSED_HEADERS:
        raise ValueError(f"{name}: refused, the server sets this header itself")
    if not value or any(not (" " <= ch <= "~" or ch == "\t") for ch in value):
        raise ValueError(f"{name}: the value must be printable ASCII, not empty")
    return name, value


# --- parsing both, storing ------------------------------------------------------------


def parse(
    redirects: bytes | None, headers: bytes | None, max_rules: int, max_size: int
) -> tuple[ParsedRules, list[Problem]]:
    """Both files (None: absent). Raises RulesError over a limit."""
    redirect_rules: tuple[RedirectRule, ...] = ()
    header_rules: tuple[HeaderRule, ...] = ()
    problems: list[Problem] = []
    if redirects is not None:
        redirect_rules, found = parse_redirects(redirects, max_rules, max_size)
        problems += found
    if headers is not None:
        header_rules, found = parse_headers(headers, max_rules, max_size)
        problems += found
    return ParsedRules(redirect_rules, header_rules), problems


def dumps(rules: ParsedRules) -> str:
    """The rules as compact JSON text ("" for none): what is stored."""
    if not rules:
        return ""
    return json.dumps(
        {
            "redirects": [
                [r.line, r.path, r.to, r.status, r.force, r.host, [list(q) for q in r.query]] for r in rules.redirects
            ],
            "headers": [[h.line, h.path, [list(pair) for pair in h.headers]] for h in rules.headers],
        },
        separators=(",", ":"),
    )


def loads(text: str) -> ParsedRules:
    """The rules ``dumps`` wrote."""
    if not text:
        return ParsedRules()
    data = json.loads(text)
    return ParsedRules(
        tuple(
            RedirectRule(line, path, to, status, force, host, tuple((k, v) for k, v in query))
            for line, path, to, status, force, host, query in data["redirects"]
        ),
        tuple(HeaderRule(line, path, tuple((n, v) for n, v in pairs)) for line, path, pairs in data["headers"]),
    )
