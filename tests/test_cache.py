"""The process-global cache as seen through requests: queries, counters,
negative entries, bounds and eviction, host map, threads, invalidation."""

from __future__ import annotations

import gc
import random
import threading
import tracemalloc
from types import SimpleNamespace

import pytest
from django.db import connections
from django.test import Client

from django_assetcache import conf, runtime, serve
from django_assetcache.cache import AssetCache
from django_assetcache.costs import charge, entry_overhead
from django_assetcache.entries import Entry, build_file_entry, build_missing_entry
from django_assetcache.hosts import HOST_SHARE, SiteInfo
from django_assetcache.models import Domain, Site
from django_assetcache.publish import publish
from django_assetcache.records import BlobRecord, LocatedBlob
from django_assetcache.sharedheaders import shared_bytes
from tests.conftest import SAMPLE, write_tree

HOST = "docs.sites.test"
ERROR_DOCUMENT = SAMPLE["404.html"].encode()  # type: ignore[union-attr]
COUNTERS = ("hits", "misses", "negative_hits", "db_queries")


@pytest.fixture
def get(db):
    """``get(path, host=HOST, method="GET", **meta) -> (status, body, response)``."""
    client = Client()

    def get(path: str, host: str = HOST, method: str = "GET", **meta: str):
        response = client.generic(method, path, HTTP_HOST=host, **meta)
        body = b"".join(response.streaming_content) if response.streaming else response.content
        return response.status_code, body, response

    return get


def counters() -> dict[str, int]:
    stats = runtime.stats()
    return {name: stats[name] for name in COUNTERS}


def delta(before: dict[str, int]) -> dict[str, int]:
    after = counters()
    return {name: after[name] - before[name] for name in COUNTERS if after[name] != before[name]}


def process_cache() -> AssetCache:
    return runtime.get_cache()


def assert_accounting(c: AssetCache) -> None:
    """bytes_held is the sum of what the live entries cost."""
    assert c.bytes_held == sum(charge(path, entry) for (_, path), entry in c.entries.items())


# --- queries -------------------------------------------------------------------------


def test_first_request_costs_the_feed_position_the_host_and_the_entry(get, site, django_assert_num_queries):
    with django_assert_num_queries(3):
        assert get("/")[:2] == (200, SAMPLE["index.html"].encode())  # type: ignore[union-attr]


@pytest.fixture(params=["live", "preview"])
def site_host(request, site) -> str:
    """The site's own host, or the preview host of its live deployment:
    both cost the same."""
    if request.param == "live":
        return HOST
    site.refresh_from_db()
    return f"{site.live_deployment.key}--{HOST}"


def test_a_hit_makes_no_query(get, site_host, django_assert_num_queries):
    get("/", site_host)
    get("/css/site.css", site_host)
    for _ in range(3):
        with django_assert_num_queries(0):
            status, body, _ = get("/css/site.css", site_host)
        assert (status, body) == (200, b"body { color: #333 }\n")
    with django_assert_num_queries(0):
        assert get("/css/site.css", site_host, method="HEAD")[0] == 200
        assert get("/css/site.css", site_host, HTTP_RANGE="bytes=0-3")[1] == b"body"
        assert get("/", site_host, HTTP_IF_NONE_MATCH="*")[0] == 304


def test_a_miss_makes_exactly_one_query(get, site_host, django_assert_num_queries):
    get("/", site_host)  # the feed position and the host map
    with django_assert_num_queries(1):
        assert get("/css/site.css", site_host)[0] == 200
    with django_assert_num_queries(1):
        assert get("/guide", site_host)[0] == 301  # a redirect entry
    with django_assert_num_queries(1):
        assert get("/guide/", site_host)[0] == 200
    with django_assert_num_queries(0):
        assert get("/guide", site_host)[0] == 301


def test_a_preview_host_resolves_in_one_query(get, site_host, django_assert_num_queries):
    get("/", "other.sites.test")  # the feed position
    with django_assert_num_queries(2):  # the host, then the entry
        assert get("/", site_host)[0] == 200


def test_a_missing_path_is_remembered(get, site, django_assert_num_queries):
    get("/")
    # The miss loads the path and the error document in one query.
    with django_assert_num_queries(1):
        assert get("/nope.html")[:2] == (404, ERROR_DOCUMENT)
    with django_assert_num_queries(0):
        assert get("/nope.html")[:2] == (404, ERROR_DOCUMENT)
        assert get("/nope.html", method="HEAD")[:2] == (404, b"")


def test_random_missing_paths_cost_one_query_then_none(get, site, django_assert_num_queries):
    get("/")
    rng = random.Random(7)
    paths = [f"/probe-{rng.getrandbits(64):x}/{i}.php" for i in range(25)]
    for path in paths:
        with django_assert_num_queries(1):
            assert get(path)[:2] == (404, ERROR_DOCUMENT)
        with django_assert_num_queries(0):
            assert get(path)[:2] == (404, ERROR_DOCUMENT)
    with django_assert_num_queries(0):
        for path in paths:
            assert get(path)[0] == 404


def test_rejected_requests_make_no_query(get, site, django_assert_num_queries):
    get("/")
    with django_assert_num_queries(0):
        assert get("/a/../b")[0] == 400
        assert get("/a%00b")[0] == 400
        assert get("/", method="POST")[0] == 405
        assert get("/", host="a.b.sites.test")[0] == 404
        assert get("/", host=".sites.test")[0] == 404


def test_host_map(get, site, django_assert_num_queries):
    get("/")
    with django_assert_num_queries(1):
        assert get("/", host="nosuch.sites.test")[0] == 404
    with django_assert_num_queries(0):
        assert get("/", host="nosuch.sites.test")[0] == 404
    # A project host: one lookup among custom domains, then remembered.
    with django_assert_num_queries(1):
        assert get("/", host="testserver")[:2] == (200, b"project home")
    with django_assert_num_queries(0):
        assert get("/", host="testserver")[:2] == (200, b"project home")
    # Another spelling of a known host needs no lookup.
    with django_assert_num_queries(0):
        assert get("/", host="DOCS.SITES.TEST:8000")[0] == 200
    with django_assert_num_queries(0):
        assert get("/", host="DOCS.SITES.TEST:8000")[0] == 200
    # A label with a dot is never a site: no query at all.
    with django_assert_num_queries(0):
        assert get("/", host="x.y.sites.test")[0] == 404


@pytest.mark.parametrize(
    "spellings",
    [
        ["docs.example.org", "DOCS.EXAMPLE.ORG", "docs.example.org:8000", "Docs.Example.Org.:443"],
        ["nosuch.sites.test", "NoSuch.Sites.Test", "nosuch.sites.test:80"],
        ["project.example", "PROJECT.example:8443"],
    ],
)
def test_spellings_of_a_host_cost_one_query(get, site, spellings, django_assert_num_queries):
    """Issue 11 item 5: Host values that differ only by port or case cost one
    database query between them, not one each."""
    Domain.objects.create(site=site, hostname="docs.example.org", state="verified")
    get("/")
    with django_assert_num_queries(1):
        first = get("/", host=spellings[0])[0]
    with django_assert_num_queries(0):
        for host in spellings[1:]:
            assert get("/", host=host)[0] == first


def test_host_map_is_bounded(get, site):
    get("/")
    c = process_cache()
    for i in range(1100):
        c.site_for(f"x{i}.y.sites.test")  # never a site: no query, but remembered
    assert runtime.stats()["host_bytes"] <= 2 * (c.settings.MEMORY_LIMIT // HOST_SHARE)
    assert get("/")[0] == 200


def test_host_map_is_bounded_by_bytes(get, site, settings, django_assert_num_queries):
    """Issue 11 item 5: the host map is bounded by bytes, counted in the stats
    and against ASSETCACHE_MEMORY_LIMIT: 2,000 raw Host values of 7 KB each
    (one site host with junk ports) hold at most the limit, and cost one
    query between them."""
    limit = 1024 * 1024
    settings.ASSETCACHE_MEMORY_LIMIT = limit
    conf.reset()
    runtime.reset()
    get("/")
    hosts = [f"docs.sites.test:{i:07000d}" for i in range(2000)]
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        with django_assert_num_queries(0):
            for host in hosts:
                # A fresh string per request, as a server makes one.
                assert process_cache().site_for(host.encode().decode()).id == site.id  # type: ignore[union-attr]
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    stats = runtime.stats()
    assert 0 < stats["host_bytes"] <= 2 * (limit // HOST_SHARE)
    assert stats["hosts"] < 20
    assert grown <= 2 * (limit // HOST_SHARE) + 16 * 1024
    assert process_cache().held() <= limit
    assert get("/")[0] == 200


# --- counters ----------------------------------------------------------------------------


def test_stats_counters(get, site):
    get("/")
    assert counters() == {"hits": 0, "misses": 1, "negative_hits": 0, "db_queries": 3}

    before = counters()
    get("/")
    assert delta(before) == {"hits": 1}

    before = counters()
    get("/css/site.css")
    assert delta(before) == {"misses": 1, "db_queries": 1}

    before = counters()
    get("/css/site.css", method="HEAD")
    get("/css/site.css", HTTP_RANGE="bytes=0-1")
    assert delta(before) == {"hits": 2}

    # A missing path: its miss fills the error document too; serving the
    # error document for it is not counted as a hit.
    before = counters()
    assert get("/nope")[0] == 404
    assert delta(before) == {"misses": 1, "db_queries": 1}

    # Again: a negative hit, nothing else.
    before = counters()
    assert get("/nope")[0] == 404
    assert delta(before) == {"negative_hits": 1}

    # Requests answered before any entry lookup count nothing.
    before = counters()
    get("/a/../b")
    get("/", method="DELETE")
    get("/", host="a.b.sites.test")
    assert delta(before) == {}

    before = counters()
    get("/", host="nosuch.sites.test")
    assert delta(before) == {"db_queries": 1}

    stats = runtime.stats()
    assert stats["hit_ratio"] == pytest.approx(
        (stats["hits"] + stats["negative_hits"]) / (stats["hits"] + stats["negative_hits"] + stats["misses"])
    )
    assert stats["entries"] == len(process_cache().entries)
    assert stats["bytes_held"] == process_cache().bytes_held > 0
    assert stats["evictions"] == 0
    assert_accounting(process_cache())


def test_large_bodies_are_not_held_in_memory(get, site, tmp_path):
    big = bytes(range(256)) * 1200  # 300 KiB, over ASSETCACHE_MEMORY_FILE_LIMIT
    publish(site, write_tree(tmp_path / "big", {"big.bin": big}))
    runtime.reset()
    get("/")
    held = process_cache().bytes_held
    status, body, response = get("/big.bin")
    assert (status, body) == (200, big)
    assert response.streaming
    site.refresh_from_db()
    entry = process_cache().entries[(site.live_deployment_id, "/big.bin")]
    assert process_cache().bytes_held - held == charge("/big.bin", entry) == entry_overhead("/big.bin", entry)
    assert serve.answer(HOST, "/big.bin", "GET", "", {}.get).file_path is not None


# --- bounds and eviction ---------------------------------------------------------------


def many_files(count: int, size: int) -> dict[str, bytes]:
    rng = random.Random(count * 1000 + size)
    return {f"f/{i:03d}.bin": rng.randbytes(size) for i in range(count)}


SMALL = 24 * 1024


@pytest.fixture
def small_cache(settings):
    """A cache of 24 KiB: under twenty 1000-byte files, each charged its key
    and bookkeeping besides its body, and the header tuples they share."""
    settings.ASSETCACHE_MEMORY_LIMIT = SMALL
    conf.reset()
    runtime.reset()


def test_memory_bound_evicts_and_never_fails_a_request(get, site, small_cache, tmp_path):
    files = many_files(60, 1000)
    publish(site, write_tree(tmp_path / "many", files))
    runtime.reset()
    for round_ in range(2):
        for name, content in files.items():
            assert get("/" + name)[:2] == (200, content), (round_, name)
            c = process_cache()
            assert c.bytes_held <= SMALL
            assert_accounting(c)
    stats = runtime.stats()
    assert stats["evictions"] > 0
    assert stats["evictions_memory"] == stats["evictions"]
    assert stats["bytes_held"] <= stats["memory_limit"] == SMALL
    assert stats["entries"] < 20
    # Missing paths are bounded the same way.
    for i in range(100):
        assert get(f"/nope/{i}")[:2] == (404, ERROR_DOCUMENT)
    assert process_cache().bytes_held <= SMALL


LONG_DIR = "/".join(c * 225 for c in "abcd")  # 903 characters


def file_name(i: int, long: bool) -> str:
    if not long:
        return f"f/{i:03d}.txt"
    name = f"{LONG_DIR}/{i:03d}.txt"
    return name[:-4].ljust(999 - 4, "x") + ".txt"  # 1,000 characters with the slash


def use_fully(path: str, if_none_match: str = "") -> None:
    """Requests that make an entry prepare every reply it keeps: GET, HEAD,
    304, and the header bytes the ASGI adapter sends."""
    fresh = path.encode().decode()  # a new string, as a server makes one
    for method, headers in (("GET", {}), ("HEAD", {}), ("GET", {"HTTP_IF_NONE_MATCH": if_none_match})):
        reply = serve.answer(HOST, fresh, method, "", headers.get)
        assert reply is not None and reply.status in (200, 304)
        reply.raw_headers  # noqa: B018  (built and kept, as the ASGI adapter does)


@pytest.mark.parametrize("long", [False, True], ids=["short paths", "1000-character paths"])
def test_real_memory_stays_within_the_limit(get, site, settings, tmp_path, long):
    """Issue 11 item 5: the memory the cache really holds (tracemalloc), its
    keys and the header tuples they share included, stays within
    ASSETCACHE_MEMORY_LIMIT when far more is asked for than fits."""
    limit = 128 * 1024
    settings.ASSETCACHE_MEMORY_LIMIT = limit
    files = {file_name(i, long): f"line {i}\n" * (20 + i % 50) for i in range(400)}
    publish(site, write_tree(tmp_path / "many", files))
    conf.reset()
    runtime.reset()
    get("/")
    paths = ["/" + name for name in files]
    etags = {path: dict(get(path)[2].items())["ETag"] for path in paths[:1]}
    c = process_cache()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for path in paths:
            use_fully(path, etags.get(path, '"x"'))
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
        assert c.held() <= limit
        assert c.evictions_memory > 100  # far more was asked for than fits
        assert_accounting(c)
        # What the requests left elsewhere (the database driver's statement
        # cache, the ORM's) stays when the cache lets go of all it holds.
        c.clear()
        gc.collect()
        elsewhere = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown - elsewhere <= limit * 1.03 + 16 * 1024, (grown, elsewhere, limit)


def test_real_memory_stays_within_the_limit_under_invalidations(get, site, settings, tmp_path):
    """Issue 11 item 5: entries dropped by changes but still waiting in the
    eviction queue are memory the cache holds: they count against
    ASSETCACHE_MEMORY_LIMIT until the queue lets them go."""
    limit = 256 * 1024
    settings.ASSETCACHE_MEMORY_LIMIT = limit
    files = {file_name(i, False): f"line {i}\n" * 20 for i in range(40)}
    publish(site, write_tree(tmp_path / "some", files))
    conf.reset()
    runtime.reset()
    get("/")
    paths = ["/" + name for name in files]
    c = process_cache()
    change = SimpleNamespace(id=0, site_id=site.id, kind="paths", paths=paths)
    for path in paths:
        use_fully(path)  # the ORM's own caches warm before measuring
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for round_number in range(30):
            for path in paths:
                use_fully(path)
            # What a publish of these paths tells every process.
            change.id = c.last_change_id + 1
            c.apply([change])
            assert c.held() <= limit, round_number
        gc.collect()
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    # Every round misses: the database driver's statement cache (bounded,
    # outside the cache) grows with the first rounds and is measured too.
    assert grown <= limit * 1.03 + 128 * 1024, (grown, limit)
    assert_accounting(c)


def test_an_entry_larger_than_the_whole_cache_is_still_served(get, site, small_cache, tmp_path):
    big = random.Random(1).randbytes(100 * 1024)  # over the cache, under the file limit
    publish(site, write_tree(tmp_path / "big", {"big.bin": big}))
    runtime.reset()
    for _ in range(3):
        assert get("/big.bin")[:2] == (200, big)
        assert process_cache().bytes_held <= SMALL


def test_entry_count_bound(get, site, settings):
    settings.ASSETCACHE_MAX_ENTRIES = 10
    conf.reset()
    runtime.reset()
    for i in range(40):
        assert get(f"/nope/{i}")[:2] == (404, ERROR_DOCUMENT)
        assert len(process_cache().entries) <= 10
    stats = runtime.stats()
    assert stats["evictions_entries"] > 0
    assert_accounting(process_cache())


def test_hot_entries_survive_eviction(get, site, small_cache, tmp_path, django_assert_num_queries):
    files = many_files(40, 1000)
    publish(site, write_tree(tmp_path / "many", files))
    runtime.reset()
    names = sorted(files)
    hot, cold = names[:3], names[3:]
    get("/")
    for name in hot:
        get("/" + name)
    for name in cold:
        assert get("/" + name)[:2] == (200, files[name])
        for name in hot:  # kept in use while the cold ones stream past
            assert get("/" + name)[:2] == (200, files[name])
    assert runtime.stats()["evictions"] > 20
    with django_assert_num_queries(0):
        for name in hot:
            assert get("/" + name)[:2] == (200, files[name])
    # The first cold files, used once, are gone.
    with django_assert_num_queries(1):
        assert get("/" + cold[0])[:2] == (200, files[cold[0]])


def test_clock_spares_a_hot_entry_once():
    """CLOCK on its own: a hit earns an entry one more pass."""

    class Loader:
        queries = 0
        snapshot = None

        def entries_for(self, site: SiteInfo, path: str) -> dict[str, Entry]:
            return {path: build_missing_entry()}

    gc.collect()  # the header tuples entries of tests before shared are let go
    # Room for three entries (every path here is as long as "/a") besides
    # the header tuples other caches of this process still share.
    room = 3 * charge("/a", build_missing_entry()) + shared_bytes()
    settings = conf.Settings(MEMORY_LIMIT=room + 8, INVALIDATION="local")
    c = AssetCache(Loader(), settings)  # type: ignore[arg-type]
    site = SiteInfo(1, "docs", True, "index.html", "", "")
    for path in ("/a", "/b", "/c"):
        c.entry(site, path)
    c.entry(site, "/a")  # a hit: /a is hot
    c.entry(site, "/d")  # over the limit: /b, the oldest cold entry, goes
    assert set(path for _, path in c.entries) == {"/a", "/c", "/d"}
    c.entry(site, "/e")  # /a went to the back of the clock, cold: /c goes
    assert set(path for _, path in c.entries) == {"/a", "/d", "/e"}
    c.entry(site, "/f")  # /d is older in the clock than /a now
    assert set(path for _, path in c.entries) == {"/a", "/e", "/f"}
    c.entry(site, "/g")  # and now /a, not used since it was spared, goes
    assert set(path for _, path in c.entries) == {"/e", "/f", "/g"}
    assert c.evictions_memory == 4
    assert_accounting(c)


# --- threads ---------------------------------------------------------------------------


def check_reply(reply, kind: str, expected: bytes) -> None:
    assert reply is not None
    if kind == "file":
        assert (reply.status, reply.body) == (200, expected)
    elif kind == "range":
        assert (reply.status, reply.body) == (206, expected[10:20])
    elif kind == "head":
        assert (reply.status, reply.body) == (200, b"")
    else:
        assert (reply.status, reply.body) == (404, ERROR_DOCUMENT)


def run_threads(count: int, work) -> list[BaseException]:
    errors: list[BaseException] = []

    def target(seed: int) -> None:
        try:
            work(seed)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=target, args=(seed,)) for seed in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    return errors


@pytest.mark.django_db(transaction=True)
def test_threads_share_the_cache(site, small_cache, tmp_path):
    files = many_files(50, 700)
    publish(site, write_tree(tmp_path / "many", files))
    runtime.reset()
    names = sorted(files)
    headers = {"HTTP_RANGE": "bytes=10-19"}

    def work(seed: int) -> None:
        rng = random.Random(seed)
        for _ in range(250):
            kind = rng.choice(["file", "file", "range", "head", "missing"])
            if kind == "missing":
                path, expected = f"/nope/{rng.randrange(60)}", ERROR_DOCUMENT
            else:
                name = rng.choice(names)
                path, expected = "/" + name, files[name]
            method = "HEAD" if kind == "head" else "GET"
            get = headers.get if kind == "range" else {}.get
            check_reply(serve.answer(HOST, path, method, "", get), kind, expected)

    assert run_threads(8, work) == []
    c = process_cache()
    assert c.bytes_held <= SMALL
    assert_accounting(c)
    assert runtime.stats()["evictions"] > 0


@pytest.mark.django_db(transaction=True)
def test_threads_through_the_middleware(site, tmp_path):
    files = many_files(20, 300)
    publish(site, write_tree(tmp_path / "many", files))
    runtime.reset()
    names = sorted(files)

    def work(seed: int) -> None:
        rng = random.Random(seed)
        client = Client(HTTP_HOST=HOST)
        for _ in range(40):
            if rng.random() < 0.2:
                response = client.get(f"/nope/{rng.randrange(10)}")
                assert (response.status_code, response.content) == (404, ERROR_DOCUMENT)
            else:
                name = rng.choice(names)
                response = client.get("/" + name)
                assert (response.status_code, response.content) == (200, files[name])

    assert run_threads(8, work) == []


# --- changes -----------------------------------------------------------------------------


def test_publish_is_served_at_once(get, site, tmp_path, django_capture_on_commit_callbacks):
    status, _old_body, old = get("/css/site.css")
    old_etag = old["ETag"]
    assert get("/new.html")[0] == 404  # remembered as missing
    assert get("/newdir")[0] == 404
    assert get("/img/logo.png")[0] == 200

    version2 = {name: content for name, content in SAMPLE.items() if name != "img/logo.png"}
    version2.update({"css/site.css": "body { color: red }\n", "new.html": "new page", "newdir/index.html": "new dir"})
    with django_capture_on_commit_callbacks(execute=True):
        publish(site, write_tree(tmp_path / "v2", version2), delete=True)

    status, body, response = get("/css/site.css")
    assert (status, body) == (200, b"body { color: red }\n")
    assert response["ETag"] != old_etag
    assert response["Content-Length"] == str(len(body))
    assert get("/css/site.css", HTTP_IF_NONE_MATCH=old_etag)[:2] == (200, body)
    assert get("/css/site.css", HTTP_IF_NONE_MATCH=response["ETag"])[0] == 304
    assert get("/new.html")[:2] == (200, b"new page")
    assert get("/newdir")[2]["Location"] == "/newdir/"
    assert get("/newdir/")[:2] == (200, b"new dir")
    assert get("/img/logo.png")[:2] == (404, ERROR_DOCUMENT)
    assert_accounting(process_cache())


def test_publishing_the_error_document_changes_every_404(get, site, tmp_path, django_capture_on_commit_callbacks):
    assert get("/nope")[:2] == (404, ERROR_DOCUMENT)
    with django_capture_on_commit_callbacks(execute=True):
        publish(site, write_tree(tmp_path / "v2", {"404.html": "gone"}))
    assert get("/nope")[:2] == (404, b"gone")
    assert get("/other")[:2] == (404, b"gone")


def test_site_settings_are_applied_at_once(get, site, django_capture_on_commit_callbacks):
    assert get("/")[2]["Cache-Control"] == "public, max-age=0, must-revalidate"
    with django_capture_on_commit_callbacks(execute=True):
        site.cache_control = "public, max-age=600"
        site.save()
    assert get("/")[2]["Cache-Control"] == "public, max-age=600"
    with django_capture_on_commit_callbacks(execute=True):
        site.is_active = False
        site.save()
    assert get("/")[0] == 404
    with django_capture_on_commit_callbacks(execute=True):
        site.is_active = True
        site.save()
    assert get("/")[0] == 200


def test_domains_and_new_sites_are_applied_at_once(get, site, tmp_path, django_capture_on_commit_callbacks):
    assert get("/", host="docs.example.org")[0] == 400  # a project host, not allowed there
    assert get("/", host="blog.sites.test")[0] == 404
    with django_capture_on_commit_callbacks(execute=True):
        Domain.objects.create(hostname="docs.example.org", site=site, state="verified")
        publish("blog", write_tree(tmp_path / "blog", {"index.html": "blog home"}))
    assert get("/", host="docs.example.org")[0] == 200
    assert get("/", host="blog.sites.test")[:2] == (200, b"blog home")
    with django_capture_on_commit_callbacks(execute=True):
        Site.objects.filter(subdomain="blog").delete()
    assert get("/", host="blog.sites.test")[0] == 404


def test_a_fill_racing_a_change_does_not_keep_old_content():
    """A miss reads the database, a change commits and is applied, then the
    miss stores what it read: the stored entry must not outlive the change."""
    site = SiteInfo(1, "docs", True, "index.html", "", "")

    def entry(version: bytes) -> Entry:
        return build_file_entry(
            content_type="text/plain",
            last_modified=0,
            cache_control="no-cache",
            identity=LocatedBlob(BlobRecord(version.hex().ljust(64, "0"), len(version)), body=version),
        )

    class Change:
        id = 1
        site_id = 1
        kind = "publish"
        paths = ["/a.txt"]

    class Loader:
        queries = 0
        snapshot = None
        content = b"old"

        def entries_for(self, site: SiteInfo, path: str) -> dict[str, Entry]:
            read = entry(self.content)  # the query sees the old row...
            self.content = b"new"  # ...then the new one commits,
            c.apply([Change()])  # and this process applies the change
            return {path: read}

    c = AssetCache(Loader(), conf.Settings(INVALIDATION="local"))  # type: ignore[arg-type]
    first = c.entry(site, "/a.txt")
    assert first.identity is not None and first.identity.body == b"old"  # in flight: fine
    c.loader.entries_for = lambda site, path: {path: entry(b"new")}  # type: ignore[method-assign]
    again = c.entry(site, "/a.txt")
    assert again.identity is not None and again.identity.body == b"new"


def test_a_host_lookup_racing_a_change_is_not_kept():
    class Change:
        id = 1
        site_id = 1
        kind = "settings"
        paths = None

    class Loader:
        queries = 0
        snapshot = None

        def site_for_host(self, host: str) -> SiteInfo:
            self.queries += 1
            read = SiteInfo(1, "docs", True, "index.html", "", "")  # read before the change...
            c.apply([Change()])  # ...which deactivates the site and is applied now
            return read

    settings = conf.Settings(DOMAIN="sites.test", INVALIDATION="local")
    c = AssetCache(Loader(), settings)  # type: ignore[arg-type]
    assert isinstance(c.site_for("docs.sites.test"), SiteInfo)
    assert "docs.sites.test" not in c.hosts
    inactive = SiteInfo(1, "docs", False, "index.html", "", "")
    c.loader.site_for_host = lambda host: inactive  # type: ignore[method-assign]
    assert c.site_for("docs.sites.test").active is False  # type: ignore[union-attr]
    assert "docs.sites.test" in c.hosts
