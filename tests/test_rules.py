"""The rules engine alone: parsing ``_redirects`` and ``_headers`` and matching.

The tables hold the examples of Netlify's "Redirects and rewrites", "Redirect
options", "Rewrites and proxies" and "Custom headers" pages, with what those
pages say each does (or, where we differ, what docs/rules.md says we do).
"""

from __future__ import annotations

import pytest

from django_assetcache.rules import Problem, RulesError, dumps, loads, parse, parse_headers, parse_redirects
from django_assetcache.ruletables import MEMO_LIMIT, SiteRules, compiled
from django_assetcache.transport import for_site

LIMIT = 10_000
SIZE = 1 << 20


def table(text: str) -> SiteRules:
    parsed, problems = parse(text.encode(), None, LIMIT, SIZE)
    assert problems == []
    rules = compiled(dumps(parsed))
    assert rules is not None
    return rules


def lookup(rules: SiteRules, path: str, query: str = "", host: str = "example.com") -> tuple[int, str, bool] | None:
    for forced, found in ((True, rules.forced), (False, rules.redirects)):
        match = found.lookup(host, path, query) if found is not None else None
        if match is not None:
            return match.status, match.target, forced
    return None


# (rules, request path, query, host, expected (status, target, forced) or None)
REDIRECT_CASES = [
    # The first example of the redirects page.
    ("/home /", "/home", "", "example.com", (301, "/", False)),
    ("/blog/my-post.php /blog/my-post", "/blog/my-post.php", "", "example.com", (301, "/blog/my-post", False)),
    ("/news /blog", "/news", "", "example.com", (301, "/blog", False)),
    (
        "/cuties https://www.petsofnetlify.com",
        "/cuties",
        "",
        "example.com",
        (301, "https://www.petsofnetlify.com", False),
    ),
    # Paths are written percent-encoded, matched against the decoded request path.
    (
        "/authors/c%C3%A9line /authors/about-c%C3%A9line",
        "/authors/céline",
        "",
        "x",
        (301, "/authors/about-c%C3%A9line", False),
    ),
    # HTTP status codes.
    ("/my-redirect / 302", "/my-redirect", "", "x", (302, "/", False)),
    ("/pass-through /index.html 200", "/pass-through", "", "x", (200, "/index.html", False)),
    ("/ecommerce /store-closed 404", "/ecommerce", "", "x", (404, "/store-closed", False)),
    ("/old /gone 410", "/old", "", "x", (410, "/gone", False)),
    ("/a /b 303", "/a", "", "x", (303, "/b", False)),
    ("/a /b 307", "/a", "", "x", (307, "/b", False)),
    ("/a /b 308", "/a", "", "x", (308, "/b", False)),
    # Splats.
    ("/news/* /blog/:splat", "/news/2004/01/10/my-story", "", "x", (301, "/blog/2004/01/10/my-story", False)),
    ("/news/* /blog/:splat", "/news", "", "x", (301, "/blog/", False)),
    ("/news/* /blog/:splat", "/newsletter", "", "x", None),
    # Placeholders.
    (
        "/news/:month/:date/:year/:slug /blog/:year/:month/:date/:slug",
        "/news/02/12/2004/my-story",
        "",
        "x",
        (301, "/blog/2004/02/12/my-story", False),
    ),
    ("/news/:year/:slug /blog-:year-:slug.html", "/news/2004/x", "", "x", (301, "/blog-2004-x.html", False)),
    ("/news/:year/:slug /blog/:year", "/news/2004", "", "x", None),
    # Query parameters.
    ("/store id=:id /blog/:id 301", "/store", "id=4", "x", (301, "/blog/4", False)),
    ("/store id=:id /blog/:id 301", "/store", "other=4", "x", None),
    ("/articles id=:id tag=:tag /posts/:tag/:id 301", "/articles", "tag=x&id=7", "x", (301, "/posts/x/7", False)),
    ("/articles id=:id tag=:tag /posts/:tag/:id 301", "/articles", "id=7", "x", None),
    ("/lang lang=fr /fr/ 302", "/lang", "lang=fr", "x", (302, "/fr/", False)),
    ("/lang lang=fr /fr/ 302", "/lang", "lang=de", "x", None),
    # Trailing slash: /foo and /foo/ are one rule.
    ("/foo /bar", "/foo/", "", "x", (301, "/bar", False)),
    ("/foo/ /bar", "/foo", "", "x", (301, "/bar", False)),
    # Shadowing and forcing (SPA fallback, forced rewrites).
    ("/* /index.html 200", "/any/route", "", "x", (200, "/index.html", False)),
    ("/app/* /app/index.html 200!", "/app/x", "", "x", (200, "/app/index.html", True)),
    ("/app/ /app/index.html 200!", "/app", "", "x", (200, "/app/index.html", True)),
    # Domain-level rules.
    (
        "https://blog.example.com/* https://www.example.com/blog/:splat 301!",
        "/post",
        "",
        "blog.example.com",
        (301, "https://www.example.com/blog/post", True),
    ),
    (
        "http://blog.example.com/* https://www.example.com/blog/:splat 301!",
        "/post",
        "",
        "www.example.com",
        None,
    ),
    # First match wins, whether static or dynamic comes first.
    ("/a/* /first\n/a/b /second", "/a/b", "", "x", (301, "/first", False)),
    ("/a/b /first\n/a/* /second", "/a/b", "", "x", (301, "/first", False)),
    ("/a/b /first\n/a/b /second", "/a/b", "", "x", (301, "/first", False)),
    # Placeholders taken from the request are percent-encoded in TO.
    ("/u/:name /users/:name", "/u/é x", "", "x", (301, "/users/%C3%A9%20x", False)),
]


@pytest.mark.parametrize(("text", "path", "query", "host", "expected"), REDIRECT_CASES)
def test_redirect_rules(text: str, path: str, query: str, host: str, expected: tuple[int, str, bool] | None) -> None:
    assert lookup(table(text), path, query, host) == expected


# Lines Netlify accepts that we refuse (with why), and malformed lines.
INVALID_REDIRECTS = [
    ("/api/* https://api.example.com/:splat 200", "would proxy it"),
    ("/ /anz 302 Country=au,nz", "conditions (country, language, role, cookie) are not supported"),
    ("/admin/* /admin/:splat 200! Role=admin", "not supported"),
    ("/ /china 302 Language=zh", "not supported"),
    ("/old", "a rule needs FROM and TO"),
    ("/old /new 299", "status 299"),
    ("old /new", "FROM must be a path"),
    ("/a/*/b /c", "* may only end FROM"),
    ("/x https://example.com 404", "would proxy it"),
    ("/x relative", "TO must be a path"),
    ("/store id=:id", "a rule needs a TO"),
    ("/p?x=1 /q", "query conditions"),
]


@pytest.mark.parametrize(("line", "message"), INVALID_REDIRECTS)
def test_invalid_redirect_lines_are_reported_with_their_number(line: str, message: str) -> None:
    text = f"# comment\n/kept /ok\n\n{line}\n/also /ok 302\n"
    rules, problems = parse_redirects(text.encode(), LIMIT, SIZE)
    assert [rule.path for rule in rules] == ["/kept", "/also"]
    assert len(problems) == 1
    assert problems[0].line == 4 and message in problems[0].message
    assert str(problems[0]).startswith("_redirects:4: ")


HEADERS_PAGE = """\
# a path:
/templates/index.html
  # headers for that path:
  X-Frame-Options: DENY
  X-XSS-Protection: 1; mode=block
# another path:
/templates/index2.html
  # headers for that path:
  X-Frame-Options: SAMEORIGIN
/*
  cache-control: max-age=0
  cache-control: no-cache
  cache-control: no-store
  cache-control: must-revalidate
/assets/*
  Cache-Control: public, max-age=31536000
/blog/:slug
  Link: </style.css>; rel=preload; as=style
"""

HEADER_CASES = [
    (
        "/templates/index.html",
        (("X-Frame-Options", "DENY"), ("X-XSS-Protection", "1; mode=block")),
        "max-age=0, no-cache, no-store, must-revalidate",
    ),
    ("/templates/index2.html", (("X-Frame-Options", "SAMEORIGIN"),), "max-age=0, no-cache, no-store, must-revalidate"),
    ("/other.html", (), "max-age=0, no-cache, no-store, must-revalidate"),
    # Two blocks apply: their Cache-Control values join.
    ("/assets/app.js", (), "max-age=0, no-cache, no-store, must-revalidate, public, max-age=31536000"),
    (
        "/blog/hello/",
        (("Link", "</style.css>; rel=preload; as=style"),),
        "max-age=0, no-cache, no-store, must-revalidate",
    ),
]


@pytest.mark.parametrize(("path", "headers", "cache_control"), HEADER_CASES)
def test_header_rules(path: str, headers: tuple[tuple[str, str], ...], cache_control: str) -> None:
    parsed, problems = parse(None, HEADERS_PAGE.encode(), LIMIT, SIZE)
    assert problems == []
    rules = compiled(dumps(parsed))
    assert rules is not None and rules.headers is not None
    assert rules.headers.for_path(path) == (headers, cache_control)


def test_header_rules_without_cache_control_leave_the_site_policy() -> None:
    parsed, _ = parse(None, b"/a\n  X-A: 1\n", LIMIT, SIZE)
    rules = SiteRules(parsed)
    assert rules.headers is not None
    assert rules.headers.for_path("/a") == ((("X-A", "1"),), None)
    assert rules.headers.for_path("/b") == ((), None)
    assert rules.forced is None and rules.redirects is None


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("  Content-Length: 4", "Content-Length: refused"),
        ("  content-encoding: gzip", "refused"),
        ("  ETag: x", "refused"),
        ("  Set-Cookie: a=b", "refused"),
        ("  Accept-Ranges: none", "refused"),
        ("  Transfer-Encoding: chunked", "refused"),
        ("  Connection: close", "refused"),
        ("  Content-Range: bytes 0-1/2", "refused"),
        ("  Basic-Auth: user:pass", "refused"),
        ("  Bad Name: x", "not a Name: value"),
        ("  NoColon", "not a Name: value"),
        ("  X-Empty:", "printable ASCII"),
        ("  X-Utf8: café", "printable ASCII"),
    ],
)
def test_refused_header_lines_are_reported(line: str, message: str) -> None:
    text = f"/a\n  X-Kept: 1\n{line}\n"
    rules, problems = parse_headers(text.encode(), LIMIT, SIZE)
    assert [rule.headers for rule in rules] == [(("X-Kept", "1"),)]
    assert problems == [Problem("/_headers", 3, problems[0].message)]
    assert message in problems[0].message


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("  X-A: 1\n", 1, "outside a path block"),
        ("nopath\n  X-A: 1\n", 1, "starts with /"),
        ("/a /b\n  X-A: 1\n", 1, "one path pattern per line"),
    ],
)
def test_header_blocks_without_a_path(text: str, line: int, message: str) -> None:
    rules, problems = parse_headers(text.encode(), LIMIT, SIZE)
    assert rules == ()
    assert problems[0].line == line and message in problems[0].message


@pytest.mark.parametrize(
    ("parser", "data", "message"),
    [
        (parse_redirects, b"/a /b\n" * 4, "more than ASSETCACHE_MAX_RULES (3) rules"),
        (parse_headers, b"/a\n" + b"  X-A: 1\n" * 4, "more than ASSETCACHE_MAX_RULES (3) rules"),
        (parse_redirects, b"/a /b\n" * 200, "over ASSETCACHE_MAX_RULES_FILE_SIZE (1000)"),
        (parse_headers, b"\xff\xfe", "not UTF-8 text"),
    ],
)
def test_limits(parser, data: bytes, message: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(RulesError, match=message.replace("(", r"\(").replace(")", r"\)")):
        parser(data, 3, 1000)


def test_stored_form_round_trips() -> None:
    parsed, _ = parse(
        b"/a id=:id /b/:id 302!\nhttps://x.example/* https://y.example/:splat\n", b"/*\n  X-A: 1\n", LIMIT, SIZE
    )
    assert loads(dumps(parsed)) == parsed
    assert dumps(loads("")) == ""
    assert compiled("") is None


def test_answers_are_memoized_and_bounded() -> None:
    rules = table("/a/* /b/:splat")
    table_ = rules.redirects
    assert table_ is not None
    first = table_.lookup("h", "/a/1", "")
    assert table_.lookup("h", "/a/1", "") is first
    for number in range(MEMO_LIMIT + 1):
        table_.lookup("h", f"/z/{number}", "")
    assert len(table_.memo) <= MEMO_LIMIT


def test_a_query_rule_keys_its_memo_by_query() -> None:
    rules = table("/s id=:id /b/:id")
    assert lookup(rules, "/s", "id=1") == (301, "/b/1", False)
    assert lookup(rules, "/s", "id=2") == (301, "/b/2", False)


@pytest.mark.parametrize(
    ("https_only", "hsts", "canonical", "asks"),
    [
        (False, 0, "", False),
        (False, 31536000, "", False),  # HSTS is only sent over HTTPS only: nothing to ask a request
        (True, 0, "", True),
        (False, 0, "www.example.com", True),
    ],
)
def test_a_transport_is_made_only_for_what_can_redirect(https_only, hsts, canonical, asks) -> None:
    """A site's requests pay the transport check only when it can redirect them."""
    assert (for_site(https_only, hsts, False, False, canonical) is not None) is asks
