"""Unit tests of the Django-free decision core (django_assetcache/http.py)."""

from __future__ import annotations

import time

import pytest

from django_assetcache.entries import Entry, build_file_entry, build_redirect_entry, etag_for
from django_assetcache.http import (
    accepted_encodings,
    choose,
    clean_path,
    decide,
    etag_matches,
    etag_matches_strongly,
    not_modified_since,
    range_still_valid,
    redirect,
    request_host,
    unmodified_since,
)
from django_assetcache.ranges import MAX_RANGES, UNSATISFIABLE, coalesce, parse_range, parse_ranges
from django_assetcache.records import BlobRecord, LocatedBlob
from django_assetcache.replies import without_body


def in_memory(sha256: str, body: bytes, encoding: str = "") -> LocatedBlob:
    return LocatedBlob(BlobRecord(sha256, len(body), encoding), body=body)


# --- parse_range ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "length", "expected"),
    [
        ("bytes=0-3", 10, (0, 3)),
        ("bytes=5-", 10, (5, 9)),
        ("bytes=-4", 10, (6, 9)),
        ("bytes=0-0", 10, (0, 0)),
        ("bytes=9-9", 10, (9, 9)),
        ("bytes=9-", 10, (9, 9)),
        ("bytes=-1", 10, (9, 9)),
        ("bytes=0-9", 10, (0, 9)),
        ("bytes=0-10", 10, (0, 9)),
        ("bytes=3-1000000", 10, (3, 9)),
        ("bytes=-10", 10, (0, 9)),
        ("bytes=-11", 10, (0, 9)),
        ("bytes=0-", 1, (0, 0)),
        ("bytes=-5", 1, (0, 0)),
        ("BYTES=1-2", 10, (1, 2)),
        ("Bytes=1-2", 10, (1, 2)),
        ("bytes=007-0008", 10, (7, 8)),
        ("bytes=00-", 10, (0, 9)),
        (" bytes = 1 - 2 ", 10, (1, 2)),
        ("bytes=0-" + "9" * 5000, 10, (0, 9)),
        ("bytes=" + "0" * 5000 + "1-2", 10, (1, 2)),
        ("bytes=-" + "9" * 5000, 10, (0, 9)),
        ("bytes=-99999999999999999999", 10, (0, 9)),
        ("bytes=1-99999999999999999999", 10, (1, 9)),
        # unsatisfiable
        ("bytes=10-", 10, UNSATISFIABLE),
        ("bytes=10-20", 10, UNSATISFIABLE),
        ("bytes=999999-", 10, UNSATISFIABLE),
        ("bytes=-0", 10, UNSATISFIABLE),
        ("bytes=-000", 10, UNSATISFIABLE),
        ("bytes=" + "9" * 5000 + "-", 10, UNSATISFIABLE),
        ("bytes=99999999999999999999-", 10, UNSATISFIABLE),
        ("bytes=" + "9" * 30 + "-" + "9" * 31, 10, UNSATISFIABLE),
        # ignored: syntax, several ranges, last before first
        ("bytes=5-2", 10, None),
        ("bytes=1-0", 10, None),
        ("bytes=" + "9" * 31 + "-" + "9" * 30, 10, None),
        ("bytes=" + "9" * 5001 + "-" + "9" * 5000, 10, None),
        ("bytes=0-1,4-5", 10, None),
        ("bytes=0-1, 4-5", 10, None),
        ("bytes=0-1,", 10, (0, 1)),  # empty list elements are skipped (RFC 9110 5.6.1.2)
        ("bytes=,0-1,,", 10, (0, 1)),
        ("bytes=,", 10, None),
        ("bytes=-", 10, None),
        ("bytes=", 10, None),
        ("bytes", 10, None),
        ("", 10, None),
        ("bytes 0-1", 10, None),
        ("bytes:0-1", 10, None),
        ("0-1", 10, None),
        ("items=0-1", 10, None),
        ("bytes=a-b", 10, None),
        ("bytes=1-b", 10, None),
        ("bytes=1.0-2", 10, None),
        ("bytes=+1-2", 10, None),
        ("bytes=-+1", 10, None),
        ("bytes=0x1-2", 10, None),
        ("bytes=--1", 10, None),
        ("bytes=1--2", 10, None),
        ("bytes=١-٢", 10, None),  # not ASCII digits
        ("bytes=¹-²", 10, None),
        ("bytes=1-2\x00", 10, None),
    ],
)
def test_parse_range(header, length, expected):
    assert parse_range(header, length) == expected


@pytest.mark.parametrize(
    ("header", "length", "expected"),
    [
        ("bytes=0-1,4-5", 10, [(0, 1), (4, 5)]),
        ("bytes=4-5, 0-1", 10, [(4, 5), (0, 1)]),  # in the order asked
        ("bytes=0-1,10-,-0,8-", 10, [(0, 1), (8, 9)]),
        ("bytes=10-,-0", 10, []),
        ("bytes=0-1,5-2", 10, None),
        ("bytes=0-1,a", 10, None),
        ("bytes=" + ",".join(["1-1"] * MAX_RANGES), 10, [(1, 1)] * MAX_RANGES),
        ("bytes=" + ",".join(["1-1"] * (MAX_RANGES + 1)), 10, None),
    ],
)
def test_parse_ranges(header, length, expected):
    """Issue 11 item 10: every range of a Range header."""
    assert parse_ranges(header, length) == expected


@pytest.mark.parametrize(
    ("ranges", "length", "expected"),
    [
        ([(4, 5), (0, 1)], 10, [(0, 1), (4, 5)]),
        ([(0, 3), (2, 5)], 10, [(0, 5)]),
        ([(0, 3), (4, 5)], 10, [(0, 5)]),
        ([(0, 5), (1, 2)], 10, [(0, 5)]),
        ([(6, 9), (0, 0), (2, 2)], 10, [(0, 0), (2, 2), (6, 9)]),
        ([(0, 9), (0, 0)], 10, None),  # 11 bytes asked of 10
        ([(0, 4), (5, 9)], 10, [(0, 9)]),
    ],
)
def test_coalesce(ranges, length, expected):
    """Issue 11 item 10: ranges sorted, overlapping and adjacent ones merged."""
    assert coalesce(ranges, length) == expected


@pytest.mark.parametrize("header", ["bytes=-1", "bytes=-5", "bytes=0-", "bytes=0-0", "bytes=3-", "bytes=-0"])
def test_parse_range_ignores_any_range_on_an_empty_representation(header):
    """Issue 11 item 12: a Range on an empty representation is ignored (200), not unsatisfiable (416)."""
    assert parse_range(header, 0) is None
    assert parse_ranges(header + ",0-1", 0) is None


# --- accepted_encodings -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "qualities"),
    [
        ("", (0, 0, 0)),
        ("identity", (0, 0, 1)),
        ("gzip", (0, 1, 0)),
        ("x-gzip", (0, 1, 0)),
        ("GZip", (0, 1, 0)),
        ("br", (1, 0, 0)),
        ("BR", (1, 0, 0)),
        ("gzip, br", (1, 1, 0)),
        ("gzip,br", (1, 1, 0)),
        ("  gzip ,  br  ", (1, 1, 0)),
        ("gzip, deflate, br, zstd", (1, 1, 0)),
        ("*", (1, 1, 1)),
        ("*;q=0", (0, 0, 0)),
        ("*;q=0, gzip", (0, 1, 0)),
        ("br;q=0, *", (0, 1, 1)),
        ("gzip;q=0, *", (1, 0, 1)),
        ("gzip;q=0, br;q=0", (0, 0, 0)),
        ("gzip;q=0, br;q=0, *", (0, 0, 1)),
        ("gzip;q=0.001", (0, 0.001, 0)),
        ("gzip;q=1", (0, 1, 0)),
        ("gzip;q=1.000", (0, 1, 0)),
        ("gzip;q=0.000", (0, 0, 0)),
        ("gzip; q=0", (0, 0, 0)),
        ("gzip ;Q=0", (0, 0, 0)),
        ("gzip;level=9;q=0", (0, 0, 0)),
        ("gzip;q=0;level=9", (0, 0, 0)),
        ("gzip;level=9", (0, 1, 0)),
        ("gzip;q=", (0, 0, 0)),
        ("gzip;q=abc", (0, 0, 0)),
        ("gzip;q=nan", (0, 0, 0)),
        ("gzip;q=inf", (0, 0, 0)),
        ("gzip;q=-0.5", (0, 0, 0)),
        ("gzip;q=1.5", (0, 0, 0)),
        ("gzip;q=0, x-gzip", (0, 0, 0)),  # gzip named: its own q decides
        ("x-gzip;q=0", (0, 0, 0)),
        ("deflate", (0, 0, 0)),
        (",,,", (0, 0, 0)),
        (";q=1", (0, 0, 0)),
        ("brotli", (0, 0, 0)),
        ("gzip-ish", (0, 0, 0)),
        # q-values other than 0 and 1
        ("gzip;q=1, br;q=0.8", (0.8, 1, 0)),
        ("br;q=0.5, gzip;q=0.25, identity;q=0.75", (0.5, 0.25, 0.75)),
        ("*;q=0.3, br", (1, 0.3, 0.3)),
        ("identity;q=0, *;q=0.5", (0.5, 0.5, 0)),
    ],
)
def test_accepted_encodings(header, qualities):
    """Issue 11 item 9: the q-values of br, gzip and identity, not only whether each is refused."""
    assert accepted_encodings(header) == qualities
    assert accepted_encodings(header) is accepted_encodings(header)  # again, from its memo


@pytest.mark.parametrize(
    ("header", "encoding"),
    [
        ("gzip;q=1, br;q=0.8", "gzip"),
        ("br;q=0.1, gzip", "gzip"),
        ("br;q=0.8, gzip;q=0.9", "gzip"),
        ("gzip;q=0.8, br;q=0.9", "br"),
        ("gzip, br", "br"),
        ("gzip;q=0.5, br;q=0.5", "br"),
        ("gzip;q=0.5, identity;q=0.5", "gzip"),
        ("gzip;q=0.5, identity;q=0.6", ""),
        ("br;q=0.5, *;q=0.4", "br"),
        ("*;q=0.4, identity;q=0.5", ""),
        ("*;q=0", ""),
        ("identity;q=0", ""),  # nothing else acceptable: identity all the same
        ("deflate", ""),
    ],
)
def test_choose_takes_the_highest_q(header, encoding):
    """Issue 11 item 9: the stored variant with the highest q wins; ties go to br, then gzip, then identity."""
    entry = make_entry(variants=True)
    assert choose(entry, header).encoding == encoding


def test_choose_only_among_stored_variants():
    """Issue 11 item 9: a coding with a higher q that is not stored does not count."""
    entry = build_file_entry(
        content_type="text/plain",
        last_modified=LAST_MODIFIED,
        cache_control="no-cache",
        identity=in_memory("a" * 64, b"ab"),
        variants=[in_memory("b" * 64, b"GZIP", "gzip")],
    )
    assert choose(entry, "br, gzip;q=0.5").encoding == "gzip"
    assert choose(entry, "br, gzip;q=0.5, identity;q=0.6").encoding == ""
    assert choose(entry, "br").encoding == ""


def test_accepted_encodings_memo_is_bounded():
    from django_assetcache import http

    for i in range(2000):
        accepted_encodings(f"gzip;x={i}")
    assert len(http._accept_cache) <= 512


# --- etag_matches -----------------------------------------------------------------------------

ETAG = '"0123456789abcdef0123456789abcdef"'


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (ETAG, True),
        ("W/" + ETAG, True),
        ("*", True),
        (" * ", True),
        (f'"a", {ETAG}', True),
        (f'"a",{ETAG},"b"', True),
        (f' "a" ,  W/{ETAG} ', True),
        (f"{ETAG}, *", True),
        ('"a"', False),
        ('W/"a"', False),
        ("", False),
        (",", False),
        (ETAG[1:-1], False),  # unquoted
        (ETAG[:-2] + '"', False),  # a prefix
        (ETAG + "x", False),
        ('"' + ETAG + '"', False),
        ("w/" + ETAG, False),  # the weak prefix is case-sensitive
        ("W/ " + ETAG, False),
        ('"*"', False),
    ],
)
def test_etag_matches(header, expected):
    assert etag_matches(header, ETAG) is expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (ETAG, True),
        ("*", True),
        (" * ", True),
        (f'"a", {ETAG}', True),
        (f'"a",{ETAG},"b"', True),
        (f" {ETAG} ", True),
        ("W/" + ETAG, False),  # weak tags never match strongly
        (f'"a", W/{ETAG}', False),
        ('"a"', False),
        ("", False),
        (",", False),
        (ETAG[1:-1], False),
        (ETAG[:-2] + '"', False),
        (ETAG + "x", False),
        ('"*"', False),
    ],
)
def test_etag_matches_strongly(header, expected):
    """Issue 11 item 8: If-Match uses the strong comparison."""
    assert etag_matches_strongly(header, ETAG) is expected


def test_etag_for_is_strong_and_quoted():
    sha = "ab" * 32
    etag = etag_for(sha)
    assert etag.startswith('"') and etag.endswith('"') and not etag.startswith("W/")
    assert etag_for("cd" * 32) != etag


# --- clean_path --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/",
        "/index.html",
        "/a/b/c.txt",
        "/dir/",
        "/.well-known/x",
        "/.hidden",
        "/...",
        "/a..b",
        "/a/..b/c",
        "/a./b",
        "/a b",
        "/é",
        "/%2e%2e",  # already decoded once: these are literal characters now
        "/a//b",
        "/" + "a" * 99,
    ],
)
def test_clean_path_accepts(path):
    assert clean_path(path, 100) == path


@pytest.mark.parametrize(
    "path",
    [
        "",
        "index.html",
        "../x",
        "/..",
        "/../x",
        "/a/..",
        "/a/../b",
        "/.",
        "/./x",
        "/a/.",
        "/a/./b",
        "/a/./",
        "/a\\b",
        "\\",
        "/a\\..\\b",
        "/a\x00b",
        "/\x00",
        "/" + "a" * 100,
    ],
)
def test_clean_path_rejects(path):
    assert clean_path(path, 100) is None


# --- conditional requests ----------------------------------------------------------------------

LAST_MODIFIED = 1_704_164_645  # Tue, 02 Jan 2024 03:04:05 GMT


def make_entry(body: bytes = b"0123456789", variants: bool = False) -> Entry:
    return build_file_entry(
        content_type="text/plain; charset=utf-8",
        last_modified=LAST_MODIFIED,
        cache_control="no-cache",
        identity=in_memory("a" * 64, body),
        variants=[in_memory("b" * 64, b"GZIP", "gzip"), in_memory("c" * 64, b"BR", "br")] if variants else (),
    )


def test_entry_headers_are_formatted_once():
    """The date is formatted when the entry is built; every reply after
    holds the very same header tuples, only the ETag and length being the
    file's own."""
    entry = make_entry()
    assert entry.last_modified == "Tue, 02 Jan 2024 03:04:05 GMT"
    first, second = decide(entry, "GET", {}.get), decide(entry, "GET", {}.get)
    assert dict(first.headers)["Last-Modified"] is entry.last_modified
    assert first.headers == second.headers and first.body is second.body is entry.body
    assert all(
        a is b for a, b in zip(first.headers, second.headers, strict=True) if a[0] not in ("Content-Length", "ETag")
    )
    other = make_entry(b"another body")
    assert decide(other, "GET", {}.get).headers[0] is first.headers[0]


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Tue, 02 Jan 2024 03:04:05 GMT", True),
        ("Tue, 02 Jan 2024 03:04:06 GMT", True),
        ("Wed, 03 Jan 2024 00:00:00 GMT", True),
        ("Tuesday, 02-Jan-24 03:04:05 GMT", True),
        ("Tue Jan  2 03:04:05 2024", True),
        ("Tue, 02 Jan 2024 03:04:04 GMT", False),
        ("Mon, 01 Jan 2024 00:00:00 GMT", False),
        ("not a date", False),
        ("", False),
        ("Tue, 02 Jan 2024 03:04:05 GMT, Wed, 03 Jan 2024 00:00:00 GMT", False),
        ("Fri, 31 Dec 9999 23:59:59 GMT", False),  # in the future: ignored
    ],
)
def test_not_modified_since(header, expected):
    assert not_modified_since(header, make_entry()) is expected


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("Tue, 02 Jan 2024 03:04:05 GMT", True),
        ("Tue, 02 Jan 2024 03:04:06 GMT", True),
        ("Fri, 31 Dec 9999 23:59:59 GMT", True),
        ("Tuesday, 02-Jan-24 03:04:05 GMT", True),
        ("Tue, 02 Jan 2024 03:04:04 GMT", False),
        ("Sun, 06 Nov 1994 08:49:37 GMT", False),
        ("not a date", None),
        ("", None),
        ("Tue, 02 Jan 2024 03:04:04 GMT, Wed, 03 Jan 2024 00:00:00 GMT", None),
    ],
)
def test_unmodified_since(header, expected):
    """Issue 11 item 8: If-Unmodified-Since is true, false, or ignored (None) when not one valid date."""
    assert unmodified_since(header, make_entry()) is expected


def test_range_still_valid():
    entry = make_entry()
    rep = entry.identity
    assert rep is not None
    assert range_still_valid(rep.etag, rep, entry)
    assert range_still_valid(f" {rep.etag} ", rep, entry)
    assert range_still_valid("Tue, 02 Jan 2024 03:04:05 GMT", rep, entry)
    assert not range_still_valid("W/" + rep.etag, rep, entry)  # If-Range needs a strong match
    assert not range_still_valid('"other"', rep, entry)
    assert not range_still_valid("Tue, 02 Jan 2024 03:04:06 GMT", rep, entry)  # only an exact date
    assert not range_still_valid("Wed, 03 Jan 2024 00:00:00 GMT", rep, entry)
    assert not range_still_valid("nonsense", rep, entry)
    assert not range_still_valid("", rep, entry)


def getter(**headers: str):
    return {"HTTP_" + name.upper(): value for name, value in headers.items()}.get


def test_decide():
    entry = make_entry()
    rep = entry.identity
    assert rep is not None
    assert decide(entry, "GET", getter()).status == 200
    assert decide(entry, "HEAD", getter()).body == b""
    assert decide(entry, "GET", getter(if_none_match=rep.etag)).status == 304
    both = getter(if_none_match='"x"', if_modified_since=entry.last_modified)
    assert decide(entry, "GET", both).status == 200
    assert decide(entry, "GET", getter(if_modified_since=entry.last_modified)).status == 304
    part = decide(entry, "GET", getter(range="bytes=2-4"))
    assert (part.status, part.body) == (206, b"234")
    assert dict(part.headers)["Content-Range"] == "bytes 2-4/10"
    assert decide(entry, "HEAD", getter(range="bytes=2-4")).status == 200
    assert decide(entry, "GET", getter(range="bytes=20-")).status == 416
    assert decide(entry, "GET", getter(range="bytes=2-4", if_range='"x"')).status == 200
    assert decide(entry, "GET", getter(range="bytes=2-4", if_range=rep.etag)).status == 206


def test_decide_with_variants():
    entry = make_entry(variants=True)
    reply = decide(entry, "GET", getter(accept_encoding="gzip"))
    headers = dict(reply.headers)
    assert (reply.status, reply.body, headers["Content-Encoding"]) == (200, b"GZIP", "gzip")
    assert headers["Vary"] == "Accept-Encoding"
    assert headers["Content-Length"] == "4"
    assert decide(entry, "GET", getter(accept_encoding="br, gzip")).body == b"BR"
    assert decide(entry, "GET", getter(accept_encoding="identity")).body == b"0123456789"
    gzip_etag = headers["ETag"]
    assert decide(entry, "GET", getter(accept_encoding="gzip", if_none_match=gzip_etag)).status == 304
    assert decide(entry, "GET", getter(if_none_match=gzip_etag)).status == 200
    part = decide(entry, "GET", getter(accept_encoding="gzip", range="bytes=1-"))
    assert (part.status, part.body, dict(part.headers)["Content-Range"]) == (206, b"ZIP", "bytes 1-3/4")
    not_modified = dict(decide(entry, "GET", getter(if_none_match="*")).headers)
    assert not_modified["Vary"] == "Accept-Encoding"
    assert {"ETag", "Last-Modified", "Cache-Control"} <= set(not_modified)
    assert "Content-Length" not in not_modified and "Content-Type" not in not_modified


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"if_match": '"x"'}, 412),
        ({"if_match": "W/{etag}"}, 412),
        ({"if_match": "{etag}"}, 200),
        ({"if_match": '"x"', "if_none_match": "{etag}"}, 412),
        ({"if_match": "*", "if_none_match": "{etag}"}, 304),
        ({"if_match": "{etag}", "if_unmodified_since": "Mon, 01 Jan 2024 00:00:00 GMT"}, 200),
        ({"if_unmodified_since": "Mon, 01 Jan 2024 00:00:00 GMT"}, 412),
        ({"if_unmodified_since": "Mon, 01 Jan 2024 00:00:00 GMT", "if_none_match": "*"}, 412),
        ({"if_unmodified_since": "Mon, 01 Jan 2024 00:00:00 GMT", "range": "bytes=0-1"}, 412),
        ({"if_unmodified_since": "Wed, 03 Jan 2024 00:00:00 GMT", "if_modified_since": "{date}"}, 304),
        ({"if_unmodified_since": "nonsense", "range": "bytes=0-1"}, 206),
        ({"if_match": "{etag}", "range": "bytes=0-1", "if_range": '"x"'}, 200),
    ],
)
def test_decide_evaluates_preconditions_in_order(headers, status):
    """Issue 11 item 8: RFC 9110 13.2.2 order, with 412 where If-Match or If-Unmodified-Since fails."""
    entry = make_entry()
    assert entry.identity is not None
    values = {name: value.format(etag=entry.identity.etag, date=entry.last_modified) for name, value in headers.items()}
    assert decide(entry, "GET", getter(**values)).status == status


def test_412_of_a_representation():
    """Issue 11 item 8: the 412 names the representation chosen; HEAD gets it without a body."""
    entry = make_entry(variants=True)
    get = decide(entry, "GET", getter(accept_encoding="gzip", if_match='"x"'))
    assert get.headers == decide(entry, "GET", getter(accept_encoding="gzip", if_match='"y"')).headers
    head = decide(entry, "HEAD", getter(accept_encoding="gzip", if_match='"x"'))
    assert (head.status, head.headers) == (
        412,
        decide(
            entry, "HEAD", getter(accept_encoding="gzip", if_unmodified_since="Sun, 06 Nov 1994 08:49:37 GMT")
        ).headers,
    )
    assert (get.status, get.body, head.status, head.body) == (412, b"Precondition failed.\n", 412, b"")
    headers = dict(get.headers)
    assert head.headers == get.headers
    assert headers["ETag"] == etag_for("b" * 64)
    assert headers["Vary"] == "Accept-Encoding"
    assert headers["Cache-Control"] == "no-cache"
    assert headers["Content-Length"] == str(len(get.body))
    assert "Content-Encoding" not in headers
    assert dict(decide(entry, "GET", getter(if_match='"x"')).headers)["ETag"] == etag_for("a" * 64)  # the identity's


def test_file_entry_on_disk():
    entry = build_file_entry(
        content_type="application/octet-stream",
        last_modified=LAST_MODIFIED,
        cache_control="no-cache",
        identity=LocatedBlob(BlobRecord("a" * 64, 1000), file_path="/blobs/aa"),
    )
    whole = decide(entry, "GET", getter())
    assert (whole.file_path, whole.offset, whole.length, whole.body) == ("/blobs/aa", 0, 1000, b"")
    part = decide(entry, "GET", getter(range="bytes=100-199"))
    assert (part.status, part.file_path, part.offset, part.length) == (206, "/blobs/aa", 100, 100)
    head = decide(entry, "HEAD", getter())
    assert head.file_path is None and head.body == b""
    assert dict(head.headers)["Content-Length"] == "1000"
    assert entry.cost == 0  # nothing held in memory


def test_redirect():
    entry = build_redirect_entry("/my docs/é")
    reply = redirect(entry, "")
    assert reply.status == 301
    assert dict(reply.headers)["Location"] == "/my%20docs/%C3%A9/"
    assert dict(redirect(entry, "a=1&b=2").headers)["Location"] == "/my%20docs/%C3%A9/?a=1&b=2"
    assert dict(redirect(build_redirect_entry("/100%"), "").headers)["Location"] == "/100%25/"
    assert dict(redirect(build_redirect_entry("/a?b#c"), "").headers)["Location"] == "/a%3Fb%23c/"
    assert redirect(entry, "").body == b""


def test_not_found_uses_the_error_document():
    entry = make_entry(b"<h1>gone</h1>")
    reply = entry.not_found()
    assert (reply.status, reply.body) == (404, b"<h1>gone</h1>")
    assert dict(reply.headers)["Content-Length"] == "13"
    assert entry.not_found().headers == reply.headers and entry.not_found().body is reply.body
    head = without_body(reply)
    assert (head.status, head.body, head.headers) == (404, b"", reply.headers)


def test_future_if_modified_since_is_ignored_even_when_the_file_is_new():
    now = time.time()
    entry = build_file_entry(
        content_type="text/plain",
        last_modified=now - 10,
        cache_control="no-cache",
        identity=in_memory("a" * 64, b"x"),
    )
    from django.utils.http import http_date

    assert not_modified_since(http_date(now - 5), entry)
    assert not not_modified_since(http_date(now + 3600), entry)


# --- the host a request names -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (None, "host.example"),
        ("/", "host.example"),
        ("/a?b=http://other.example/", "host.example"),
        ("//other.example/x", "host.example"),  # origin-form, a path starting with //
        ("*", "host.example"),
        ("", "host.example"),
        ("other.example:80", "host.example"),  # authority-form (CONNECT)
        ("http://docs.example.com/", "docs.example.com"),
        ("HTTP://Docs.Example.com:8080/x?y", "Docs.Example.com:8080"),
        ("https://docs.example.com", "docs.example.com"),
        ("http://docs.example.com?x", "docs.example.com"),
        ("http://docs.example.com#x", "docs.example.com"),
        ("http://user@docs.example.com/", "user@docs.example.com"),  # names no host: passed on
        ("http:///x", ""),
        ("http://[::1]:80/", "[::1]:80"),
        ("http://[/", "["),
        ("http:/docs.example.com/", "host.example"),
        ("1http://docs.example.com/", "host.example"),
        ("http://" + "a" * 100_000, "a" * 100_000),
        ("http://\x00é/", "\x00é"),
    ],
)
def test_request_host(target, expected):
    """Issue 11 item 11: an absolute-form target's authority is the host (RFC 9112 3.2.2), parsed without failing."""
    assert request_host("host.example", target) == expected
