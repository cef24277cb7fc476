"""`curator ingest` against a real HTTP server on 127.0.0.1: every good and bad case in one run.

The module fixture builds the server's routes, ingests one URL list with short
timeouts and small caps, and keeps the report and the catalog rows; each test
then checks one promise. A second and a third run (plain, then --retry-failed)
check resumability.
"""

from __future__ import annotations

import importlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from curator import catalog, store
from curator.ingest import fetch
from curator.workspace import init_workspace
from tests import ingest_data as data
from tests.conftest import CLASSES, run_cli
from tests.imageserver import ImageServer, Reply

UA = "curator-test/1.0 (+https://example.invalid/tests)"
FLAGS = [
    "--concurrency", "8", "--per-host", "6", "--connect-timeout", "2", "--read-timeout", "0.4",
    "--retries", "2", "--backoff", "0.05", "--max-bytes", "150000", "--user-agent", UA,
]
ROBOTS = b"User-agent: *\nDisallow: /private/\n"
NEAR = ["near/base.jpg", "near/resized.jpg", "near/q60.jpg", "near/crop.jpg", "near/bright.jpg",
        "near/mark.jpg"]
DISTINCT = [f"distinct/{i}.jpg" for i in range(6)]
ingest_run = importlib.import_module("curator.ingest.run")  # the package's `run` is the function


@dataclass
class Scenario:
    server: ImageServer
    root: Path
    first: list[dict[str, Any]]  # the first run's report, one object per source
    first_rows: dict[str, sqlite3.Row]  # sources rows after the first run, by locator
    first_summary: dict[str, Any]
    hits_after_first: int
    second: list[dict[str, Any]]
    hits_after_second: int
    third: list[dict[str, Any]]

    def status(self, path: str, report: str = "first") -> dict[str, Any]:
        url = self.server.url(path if path.startswith("/") else "/" + path)
        items = [item for item in getattr(self, report) if item["url"] == url]
        assert len(items) == 1, (url, items)
        return items[0]

    def row(self, path: str) -> sqlite3.Row:
        return self.first_rows[self.server.url("/" + path.lstrip("/"))]

    def conn(self) -> sqlite3.Connection:
        return catalog.connect(self.root / "catalog.sqlite")


def _routes(server: ImageServer) -> list[str]:
    """Register every route; return the lines of the URL list."""
    lines = []

    def add(path: str, *replies: Reply, hint: str | None = None) -> None:
        server.route("/" + path, *replies)
        lines.append(server.url("/" + path) + (f"\t{hint}" if hint else ""))

    server.route("/robots.txt", Reply(body=ROBOTS, content_type="text/plain"))
    same = data.jpeg(data.photo(1, "alopecia"))
    add("same/one.jpg", Reply(body=same), hint="alopecia")
    add("same/two.jpg", Reply(body=same), hint="alopecia")
    as_jpeg = data.jpeg(data.photo(2, "psoriasis"))
    add("pixels/b.jpg", Reply(body=as_jpeg), hint="psoriasis")
    same_pixels = data.png(data.decoded(as_jpeg))
    add("pixels/b.png", Reply(body=same_pixels, content_type="image/png"), hint="psoriasis")
    base = data.photo(3, "folliculitis", (200, 150))
    near = {
        "near/base.jpg": data.jpeg(base),
        "near/resized.jpg": data.jpeg(base.resize((120, 90), Image.Resampling.LANCZOS)),
        "near/q60.jpg": data.jpeg(base, quality=60),
        "near/crop.jpg": data.jpeg(data.crop(base, 0.04)),
        "near/bright.jpg": data.jpeg(data.brighter(base)),
        "near/mark.jpg": data.jpeg(data.watermarked(base)),
    }
    for path in NEAR:
        add(path, Reply(body=near[path]), hint="folliculitis")
    for i, path in enumerate(DISTINCT):
        add(path, Reply(body=data.jpeg(data.photo(40 + i, CLASSES[i % 3]))))
    formats = {"fmt/a.webp": ("WEBP", "image/webp"), "fmt/a.gif": ("GIF", "image/gif"),
               "fmt/a.bmp": ("BMP", "image/bmp"), "fmt/a.tiff": ("TIFF", "image/tiff")}
    for i, (path, (fmt, ctype)) in enumerate(formats.items()):
        add(path, Reply(body=data.encode(data.photo(60 + i), fmt), content_type=ctype))
    add("missing.jpg")  # no route: 404
    flaky = data.jpeg(data.photo(70))
    add("flaky.jpg", Reply(500, b"oops", "text/plain"), Reply(body=flaky))
    add("busy.jpg", Reply(429, b"", None, {"Retry-After": "1"}), Reply(body=data.jpeg(data.photo(71))))
    add("capped.jpg", Reply(429, b"", None, {"Retry-After": "30"}), Reply(body=data.jpeg(data.photo(72))))
    html = b"<!doctype html><html><body>Not found</body></html>"
    add("page.jpg", Reply(body=html, content_type="text/html"))
    add("drawing.svg", Reply(body=b'<svg xmlns="http://www.w3.org/2000/svg"/>', content_type="image/svg+xml"))
    whole = data.jpeg(data.photo(73))
    add("truncated.jpg", Reply(body=whole[: len(whole) * 6 // 10]))
    add("empty.jpg", Reply(body=b""))
    add("tiny.png", Reply(body=data.png(data.photo(74, size=(40, 30))), content_type="image/png"))
    add("bomb.png", Reply(body=data.png(Image.new("RGB", (1200, 1000), (9, 9, 9))), content_type="image/png"))
    add("image.ppm", Reply(body=data.encode(data.photo(75), "PPM"), content_type="image/x-portable-pixmap"))
    add("big.jpg", Reply(body=b"\xff" * 300_000))
    add("big-stream.jpg", Reply(body=b"\xff" * 300_000, chunked=True))
    slow = data.jpeg(data.photo(76))
    add("slow.jpg", *[Reply(body=slow, delay=1.0)] * 3, Reply(body=slow))
    server.route("/loop/b", Reply(302, b"", None, {"Location": "/loop/a"}))
    add("loop/a", Reply(302, b"", None, {"Location": "/loop/b"}))
    server.route("/moved/target.jpg", Reply(body=data.jpeg(data.photo(77))))
    add("moved.jpg", Reply(301, b"", None, {"Location": "/moved/target.jpg"}))
    add("noai.jpg", Reply(body=data.jpeg(data.photo(78)), headers={"X-Robots-Tag": "noai"}))
    add("private/secret.jpg", Reply(body=data.jpeg(data.photo(79))))
    lines += [
        "# a comment", "", "ftp://127.0.0.1/x.jpg", "file:///etc/hosts", "http://", "not a url at all",
        "http://exa mple.com/x.jpg", "http://127.0.0.1:99999/x.jpg",
        f"{server.url('/a.jpg')}\talopecia\tcase-1\textra-field",
    ]
    return lines


def _rows(root: Path) -> dict[str, sqlite3.Row]:
    conn = catalog.connect(root / "catalog.sqlite")
    try:
        return {row["locator"]: row for row in conn.execute("SELECT * FROM sources")}
    finally:
        conn.close()


def _ingest(root: Path, urls: Path, report: Path, *extra: str) -> dict[str, Any]:
    result = run_cli("--json", "ingest", str(urls), "--report", str(report), *FLAGS, *extra, workspace=root)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def _report(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scenario]:
    tmp = tmp_path_factory.mktemp("ingest-http")
    ws = init_workspace(tmp / "ws", "scalp-test", CLASSES)
    data.set_ingest_keys(ws.root, max_retry_after=1.5, max_pixels=1_000_000)
    with ImageServer() as server:
        urls = tmp / "urls.txt"
        urls.write_text("\n".join(_routes(server)) + "\n")
        summary = _ingest(ws.root, urls, tmp / "r1.jsonl")
        first, rows, hits1 = _report(tmp / "r1.jsonl"), _rows(ws.root), len(server.hits)
        _ingest(ws.root, urls, tmp / "r2.jsonl")
        second, hits2 = _report(tmp / "r2.jsonl"), len(server.hits)
        _ingest(ws.root, urls, tmp / "r3.jsonl", "--retry-failed")
        yield Scenario(server, ws.root, first, rows, summary, hits1, second, hits2, _report(tmp / "r3.jsonl"))


def test_same_bytes_under_two_urls_is_one_image(scenario: Scenario) -> None:
    one, two = scenario.status("same/one.jpg"), scenario.status("same/two.jpg")
    assert sorted([(one["status"], one["reason"]), (two["status"], two["reason"])]) == [
        ("duplicate", "exact"), ("stored", None)]
    assert one["sha256"] == two["sha256"]


def test_same_pixels_as_png_and_jpeg_is_an_exact_duplicate(scenario: Scenario) -> None:
    a, b = scenario.status("pixels/b.jpg"), scenario.status("pixels/b.png")
    assert {a["status"], b["status"]} == {"stored", "duplicate"}
    assert "exact" in (a["reason"], b["reason"])
    assert a["sha256"] == b["sha256"]
    conn = scenario.conn()
    assert conn.execute("SELECT COUNT(*) FROM images WHERE sha256 = ?", (a["sha256"],)).fetchone()[0] == 1
    # exact duplicates store nothing new: only the stored one's bytes are in objects/
    stored = [p for p in (scenario.root / "objects").rglob("*") if p.is_file()]
    assert len(stored) == conn.execute("SELECT COUNT(*) FROM images").fetchone()[0]
    conn.close()


@pytest.mark.parametrize("path", NEAR[1:])
def test_near_copies_join_the_original_cluster(scenario: Scenario, path: str) -> None:
    base, copy = scenario.status(NEAR[0]), scenario.status(path)
    assert copy["status"] in ("stored", "duplicate") and copy["sha256"] != base["sha256"]
    conn = scenario.conn()
    clusters = {
        row[0]: row[1] for row in conn.execute(
            "SELECT sha256, cluster_id FROM images WHERE sha256 IN (?, ?)", (base["sha256"], copy["sha256"]))
    }
    conn.close()
    assert clusters[base["sha256"]] == clusters[copy["sha256"]], f"{path} did not join the original's cluster"


def test_near_cluster_has_one_stored_rest_near(scenario: Scenario) -> None:
    statuses = sorted((scenario.status(p)["status"], scenario.status(p)["reason"]) for p in NEAR)
    assert statuses == [("duplicate", "near")] * 5 + [("stored", None)]


def test_distinct_images_do_not_cluster(scenario: Scenario) -> None:
    shas = [scenario.status(p)["sha256"] for p in DISTINCT]
    assert all(scenario.status(p)["status"] == "stored" for p in DISTINCT)
    conn = scenario.conn()
    marks = ",".join("?" * len(shas))
    clusters = [r[0] for r in conn.execute(f"SELECT cluster_id FROM images WHERE sha256 IN ({marks})", shas)]
    others = conn.execute(
        f"SELECT COUNT(*) FROM images WHERE cluster_id IN ({','.join('?' * len(clusters))}) "
        f"AND sha256 NOT IN ({marks})", [*clusters, *shas]).fetchone()[0]
    conn.close()
    assert len(set(clusters)) == len(DISTINCT)
    assert others == 0


@pytest.mark.parametrize("path,fmt", [("fmt/a.webp", "WEBP"), ("fmt/a.gif", "GIF"), ("fmt/a.bmp", "BMP"),
                                      ("fmt/a.tiff", "TIFF"), ("pixels/b.jpg", "JPEG")])
def test_formats_are_accepted(scenario: Scenario, path: str, fmt: str) -> None:
    item = scenario.status(path)
    assert item["status"] in ("stored", "duplicate")
    conn = scenario.conn()
    assert conn.execute("SELECT format FROM images WHERE sha256 = ?", (item["sha256"],)).fetchone()[0] in (
        fmt, "PNG")  # pixels/b.* is one image, stored as whichever arrived first
    conn.close()


@pytest.mark.parametrize(
    "path,reason,transient",
    [
        ("missing.jpg", "http-404", 0),
        ("page.jpg", "not-an-image", 0),
        ("drawing.svg", "not-an-image", 0),
        ("truncated.jpg", "truncated", 0),
        ("empty.jpg", "empty", 0),
        ("tiny.png", "too-small", 0),
        ("bomb.png", "decompression-bomb", 0),
        ("image.ppm", "unsupported-format", 0),
        ("big.jpg", "too-large", 0),
        ("big-stream.jpg", "too-large", 0),
        ("slow.jpg", "timeout", 1),
        ("loop/a", "redirect-loop", 0),
        ("noai.jpg", "noai", 0),
        ("private/secret.jpg", "robots-disallowed", 0),
    ],
)
def test_rejections_have_distinct_reasons(scenario: Scenario, path: str, reason: str, transient: int) -> None:
    item = scenario.status(path)
    assert (item["status"], item["reason"], item["sha256"]) == ("rejected", reason, None)
    row = scenario.row(path)
    assert (row["outcome"], row["reason"], row["transient"]) == ("rejected", reason, transient)


@pytest.mark.parametrize(
    "line,reason",
    [
        ("ftp://127.0.0.1/x.jpg", "unsupported-scheme"),
        ("file:///etc/hosts", "unsupported-scheme"),
        ("http://", "malformed-line"),
        ("not a url at all", "malformed-line"),
        ("http://exa mple.com/x.jpg", "malformed-line"),
        ("http://127.0.0.1:99999/x.jpg", "malformed-line"),
    ],
)
def test_bad_lines_are_rejected_with_a_reason(scenario: Scenario, line: str, reason: str) -> None:
    items = [i for i in scenario.first if i["url"] == line]
    assert [(i["status"], i["reason"]) for i in items] == [("rejected", reason)]
    assert scenario.first_rows[line]["outcome"] == "rejected"


def test_line_with_three_tabs_is_malformed(scenario: Scenario) -> None:
    items = [i for i in scenario.first if i["url"].endswith("extra-field")]
    assert [(i["status"], i["reason"]) for i in items] == [("rejected", "malformed-line")]


def test_500_then_200_is_retried_and_stored(scenario: Scenario) -> None:
    assert scenario.status("flaky.jpg")["status"] == "stored"
    assert scenario.server.count("/flaky.jpg") == 2
    assert scenario.row("flaky.jpg")["http_status"] == 200


def test_429_waits_for_retry_after(scenario: Scenario) -> None:
    assert scenario.status("busy.jpg")["status"] == "stored"
    first, second = scenario.server.times("/busy.jpg")
    assert second - first >= 0.9  # Retry-After: 1, while the backoff is 0.05 s


def test_retry_after_is_capped(scenario: Scenario) -> None:
    assert scenario.status("capped.jpg")["status"] == "stored"
    first, second = scenario.server.times("/capped.jpg")
    assert 1.3 <= second - first < 10  # Retry-After: 30, capped by ingest.max_retry_after = 1.5


def test_slow_response_times_out_after_the_retries(scenario: Scenario) -> None:
    assert scenario.server.times("/slow.jpg")  # it was tried
    assert len(scenario.server.times("/slow.jpg")) == 4  # 3 in the first run (1 + 2 retries), 1 in the third


def test_redirect_records_final_url(scenario: Scenario) -> None:
    row = scenario.row("moved.jpg")
    assert row["outcome"] == "stored"
    assert row["final_url"] == scenario.server.url("/moved/target.jpg")


def test_redirect_loop_is_cut(scenario: Scenario) -> None:
    assert scenario.server.count("/loop/a") + scenario.server.count("/loop/b") <= 6


def test_robots_txt_fetched_once_and_disallowed_path_never_requested(scenario: Scenario) -> None:
    # once in the first run and once in the --retry-failed run; the plain rerun fetched nothing at all
    assert scenario.server.count("/robots.txt") == 2
    assert scenario.server.count("/private/secret.jpg") == 0
    assert scenario.row("private/secret.jpg")["robots"] == "respected"


def test_user_agent_is_sent(scenario: Scenario) -> None:
    agents = {hit.headers.get("user-agent") for hit in scenario.server.hits}
    assert agents == {UA}


def test_provenance_is_recorded(scenario: Scenario) -> None:
    row = scenario.row("near/base.jpg")
    assert row["kind"] == "url" and row["hint"] == "folliculitis"
    assert row["http_status"] == 200 and row["content_type"] == "image/jpeg"
    assert row["bytes"] > 0 and row["fetched_at"] and row["robots"] == "respected"
    assert row["final_url"] == row["locator"]
    path = store.object_path(scenario.root / "objects", row["sha256"])
    assert store.sha256_bytes(path.read_bytes()) == row["sha256"]


def test_summary_counts(scenario: Scenario) -> None:
    s = scenario.first_summary
    lines = len(scenario.first)
    assert s["total"] == lines
    assert s["stored"] + s["exact_duplicates"] + s["near_duplicates"] + s["rejected"] + s["skipped"] == lines
    near = sum(1 for i in scenario.first if i["reason"] == "near")
    assert s["exact_duplicates"] == 2 and s["near_duplicates"] == near and s["skipped"] == 0
    assert s["rejected_by_reason"]["too-large"] == 2


def test_rerun_fetches_nothing_and_skips_everything(scenario: Scenario) -> None:
    assert [i["status"] for i in scenario.second] == ["skipped"] * len(scenario.first)
    assert scenario.hits_after_second == scenario.hits_after_first  # not even robots.txt


def test_retry_failed_fetches_only_transient_rejections(scenario: Scenario) -> None:
    retried = [i for i in scenario.third if i["status"] != "skipped"]
    assert [(i["url"], i["status"]) for i in retried] == [(scenario.server.url("/slow.jpg"), "stored")]
    conn = scenario.conn()
    row = conn.execute("SELECT outcome, reason, transient FROM sources WHERE locator = ?",
                       (scenario.server.url("/slow.jpg"),)).fetchone()
    conn.close()
    assert tuple(row) == ("stored", None, 0)


def _small_run(tmp_path: Path, server: ImageServer, lines: list[str], *flags: str) -> Path:
    ws = init_workspace(tmp_path / "ws", "scalp-test", CLASSES)
    ws.close()
    urls = tmp_path / "urls.txt"
    urls.write_text("\n".join(lines) + "\n")
    result = run_cli("--json", "ingest", str(urls), "--backoff", "0.05", *flags, workspace=ws.root)
    assert result.exit_code == 0, result.output
    return ws.root


def test_opt_outs_can_be_ignored_and_the_choice_is_recorded(tmp_path: Path) -> None:
    with ImageServer() as server:
        server.route("/robots.txt", Reply(body=ROBOTS, content_type="text/plain"))
        noai = Reply(body=data.jpeg(data.photo(91)), headers={"X-Robots-Tag": "noai"})
        lines = [server.route("/private/a.jpg", Reply(body=data.jpeg(data.photo(90)))),
                 server.route("/b.jpg", noai)]
        root = _small_run(tmp_path, server, lines, "--ignore-robots", "--ignore-noai")
        assert server.count("/robots.txt") == 0
    rows = _rows(root)
    assert [(rows[url]["outcome"], rows[url]["robots"]) for url in lines] == [("stored", "ignored")] * 2


def test_only_noai_ignored_still_checks_robots(tmp_path: Path) -> None:
    with ImageServer() as server:
        server.route("/robots.txt", Reply(body=ROBOTS, content_type="text/plain"))
        noai = Reply(body=data.jpeg(data.photo(93)), headers={"X-Robots-Tag": "noai"})
        lines = [server.route("/private/a.jpg", Reply(body=data.jpeg(data.photo(92)))),
                 server.route("/b.jpg", noai)]
        root = _small_run(tmp_path, server, lines, "--ignore-noai")
    rows = _rows(root)
    assert [(rows[url]["reason"], rows[url]["robots"]) for url in lines] == [
        ("robots-disallowed", "noai-ignored"), (None, "noai-ignored")]


def _small_jpeg(seed: int) -> bytes:
    return data.jpeg(data.photo(seed, size=(96, 72)))


@pytest.fixture(params=["default", "asyncio"])
def event_loop_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Ingest on its default loop (uvloop's where installed), then on asyncio's own, as where
    uvloop is not (Windows)."""
    if request.param == "asyncio":
        monkeypatch.setattr(ingest_run, "loop_factory", lambda: None)
    return str(request.param)


def test_default_event_loop_is_uvloop_where_installed() -> None:
    uvloop = pytest.importorskip("uvloop")
    assert fetch.loop_factory() is uvloop.new_event_loop


def test_per_host_limit_holds(tmp_path: Path, event_loop_kind: str) -> None:
    with ImageServer() as server:
        lines = [server.route(f"/p/{i}.jpg", Reply(body=_small_jpeg(100 + i), delay=0.1)) for i in range(8)]
        root = _small_run(tmp_path, server, lines, "--concurrency", "8", "--per-host", "2")
        assert server.max_active == 2
        assert _stored(root) == 8


def test_global_limit_holds(tmp_path: Path, event_loop_kind: str) -> None:
    with ImageServer() as server:
        lines = [server.route(f"/g/{i}.jpg", Reply(body=_small_jpeg(110 + i), delay=0.1)) for i in range(8)]
        root = _small_run(tmp_path, server, lines, "--concurrency", "3", "--per-host", "8")
        assert server.max_active == 3
        assert _stored(root) == 8


def _stored(root: Path) -> int:
    with catalog.connect(root / "catalog.sqlite") as conn:
        return int(conn.execute("SELECT COUNT(*) FROM sources WHERE outcome = 'stored'").fetchone()[0])
