"""Compiled site rules: what a request looks up, built once per site.

A ``RedirectTable`` answers "which rule, and to where" for a request: static
FROM paths by one dictionary lookup, dynamic ones (splats, placeholders,
query conditions, a host) in file order; the first match wins. Answers are
memoized per request key, so a path asked again costs one lookup whatever
the rules. A ``HeaderTable`` gives the headers for a path when its cache
entry is built, never per request. Nothing here knows of Django.
"""

from __future__ import annotations

import re
from functools import lru_cache
from urllib.parse import parse_qsl, quote

from .rules import HeaderRule, ParsedRules, RedirectRule, loads, normalize

#: Memoized answers a table keeps before it starts over.
MEMO_LIMIT = 4096
_SAFE = "/:@!$&'()*+,;=-._~"
_NAME_RE = re.compile(r":([A-Za-z_][A-Za-z0-9_]*)", re.ASCII)


def _pattern(path: str) -> re.Pattern[str]:
    """A FROM path as a regular expression over normalized request paths."""
    splat = path.endswith("/*")
    body = path[:-2] if splat else path
    parts = []
    for segment in body.split("/")[1:] if body != "/" else []:
        if segment.startswith(":"):
            parts.append(f"/(?P<{segment[1:]}>[^/]+)")
        else:
            parts.append("/" + re.escape(segment))
    regex = "".join(parts)
    if splat:
        regex += "(?:/(?P<splat>.*))?"
    return re.compile(regex or "/", re.DOTALL)


_UNKNOWN = object()


def _host_name(raw_host: str) -> str:
    """A Host value as rules name hosts: lower case, no port, no final dot."""
    host = raw_host.strip().lower()
    if ":" in host and not host.startswith("["):
        host = host.rsplit(":", 1)[0]
    return host.rstrip(".")


class CompiledRedirect:
    """A dynamic rule: its pattern and what it needs of the request."""

    __slots__ = ("host", "order", "pattern", "query", "rule")

    def __init__(self, order: int, rule: RedirectRule) -> None:
        self.order = order
        self.rule = rule
        self.host = rule.host
        self.query = rule.query
        self.pattern = _pattern(rule.path)

    def match(self, host: str, key: str, query_string: str) -> dict[str, str] | None:
        if self.host and host != self.host:
            return None
        found = self.pattern.fullmatch(key)
        if found is None:
            return None
        values = {name: value for name, value in found.groupdict().items() if value is not None}
        if self.query:
            given = dict(parse_qsl(query_string, keep_blank_values=True))
            for name, wanted in self.query:
                value = given.get(name)
                if value is None or (wanted[:1] != ":" and value != wanted):
                    return None
                if wanted[:1] == ":":
                    values[wanted[1:]] = value
        values.setdefault("splat", "")
        return values


class Match:
    """A rule that matched and its TO with placeholders filled in
    (percent-encoded, as TO is written)."""

    __slots__ = ("rule", "status", "target")

    def __init__(self, rule: RedirectRule, target: str) -> None:
        self.rule = rule
        self.status = rule.status
        self.target = target


def fill(to: str, values: dict[str, str]) -> str:
    """TO with ``:name`` and ``:splat`` replaced by what the request gave."""
    if ":" not in to:
        return to
    return _NAME_RE.sub(lambda m: quote(values[m.group(1)], safe=_SAFE) if m.group(1) in values else m.group(0), to)


class RedirectTable:
    """Redirect rules (forced ones, or the others) in the order written."""

    __slots__ = ("dynamic", "live", "memo", "static")

    def __init__(self, rules: list[RedirectRule]) -> None:
        self.static: dict[str, tuple[int, RedirectRule]] = {}
        dynamic: list[CompiledRedirect] = []
        for order, rule in enumerate(rules):
            if rule.dynamic:
                dynamic.append(CompiledRedirect(order, rule))
            else:
                self.static.setdefault(rule.path, (order, rule))  # the first one wins
        self.dynamic = tuple(dynamic)
        #: Whether an answer depends on more than the path (host, query).
        self.live = any(item.host or item.query for item in dynamic)
        self.memo: dict[object, Match | None] = {}

    def __len__(self) -> int:
        return len(self.static) + len(self.dynamic)

    def lookup(self, raw_host: str, path: str, query_string: str) -> Match | None:
        """The first rule matching the request (its Host as received),
        memoized: one dictionary lookup for a request seen before."""
        key: object = (raw_host, path, query_string) if self.live else path
        memo = self.memo
        found = memo.get(key, _UNKNOWN)
        if found is not _UNKNOWN:
            return found  # type: ignore[return-value]
        found = self.search(_host_name(raw_host), path, query_string)
        if len(memo) >= MEMO_LIMIT:
            memo.clear()
        memo[key] = found
        return found

    def may_match(self, path: str) -> bool:
        """Whether a rule may match a request for ``path``: surely when one
        matches the path alone, maybe when a rule asks for a host or a query."""
        return self.live or self.lookup("", path, "") is not None

    def search(self, host: str, path: str, query_string: str) -> Match | None:
        key = normalize(path)
        static = self.static.get(key)
        limit = static[0] if static is not None else len(self.static) + len(self.dynamic)
        for item in self.dynamic:
            if item.order > limit:
                break
            values = item.match(host, key, query_string)
            if values is not None:
                return Match(item.rule, fill(item.rule.to, values))
        if static is not None:
            return Match(static[1], static[1].to)
        return None


class HeaderTable:
    """Header rules; several blocks may apply to one path."""

    __slots__ = ("dynamic", "static")

    def __init__(self, rules: tuple[HeaderRule, ...]) -> None:
        self.static: dict[str, list[tuple[int, HeaderRule]]] = {}
        self.dynamic: list[tuple[int, re.Pattern[str], HeaderRule]] = []
        for order, rule in enumerate(rules):
            if "*" in rule.path or "/:" in rule.path:
                self.dynamic.append((order, _pattern(rule.path), rule))
            else:
                self.static.setdefault(rule.path, []).append((order, rule))

    def for_path(self, path: str) -> tuple[tuple[tuple[str, str], ...], str | None]:
        """The headers for ``path`` in file order (a repeated name joined
        with ", "), without Cache-Control, and the Cache-Control they set
        (None: the site's policy)."""
        key = normalize(path)
        matched = list(self.static.get(key, ()))
        matched += [(order, rule) for order, pattern, rule in self.dynamic if pattern.fullmatch(key)]
        if not matched:
            return (), None
        merged: dict[str, tuple[str, str]] = {}
        for _, rule in sorted(matched, key=lambda item: item[0]):
            for name, value in rule.headers:
                lower = name.lower()
                known = merged.get(lower)
                merged[lower] = (known[0], f"{known[1]}, {value}") if known else (name, value)
        cache_control = merged.pop("cache-control", None)
        return tuple(merged.values()), cache_control[1] if cache_control else None


class SiteRules:
    """Everything a site's rules compile to."""

    __slots__ = ("forced", "headers", "redirects", "text")

    def __init__(self, parsed: ParsedRules, text: str = "") -> None:
        self.text = text
        forced = [rule for rule in parsed.redirects if rule.force]
        others = [rule for rule in parsed.redirects if not rule.force]
        #: Checked before the path's own file; None when there are none.
        self.forced = RedirectTable(forced) if forced else None
        #: Checked when the path has no file; None when there are none.
        self.redirects = RedirectTable(others) if others else None
        self.headers = HeaderTable(parsed.headers) if parsed.headers else None


@lru_cache(maxsize=256)
def compiled(text: str) -> SiteRules | None:
    """The compiled rules of stored JSON text; None for "" (no rules).

    Kept per text, so every host of a site and every reload of an unchanged
    site share one compiled set (and its memo).
    """
    if not text:
        return None
    return SiteRules(loads(text), text)
