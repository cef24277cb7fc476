"""Property: whatever list file or CSV a user feeds the real CLI, there is no traceback, and a
refused command leaves the workspace as it was."""

from __future__ import annotations

import sqlite3
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import ingest_data as data
from tests.conftest import CLASSES, run_cli, snapshot

HOSTILE = [
    "/", "~", "~nosuchuser/a.jpg", "~/x.jpg", "x" * 300, "a/" + "b" * 300, "../../etc/passwd", "..", ".",
    "ok", "ok/a.jpg", "ok/a.jpg\talopecia", "ok/a.jpg\t\t", "a\tb\tc", "\ufeffok/a.jpg", "# comment",
    "http://127.0.0.1:9/a.jpg", "https://u:p@127.0.0.1:9/b.png\tpsoriasis", "ftp://x/y", "file:///etc/passwd",
    "data:image/png;base64,AAAA", "http://", "https://[::1", "http://127.0.0.1:99999/", "C:\\x.jpg",
    "/dev/zero", "/proc/self/mem", "ok/\x1b[2Ja.jpg", "\x7f", "\u0085", "\u202e", "",
]
_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=40).filter(lambda t: "://" not in t)
LINES = st.lists(st.one_of(st.sampled_from(HOSTILE), _text), max_size=12)
NEWLINES = st.sampled_from(["\n", "\r\n", "\r"])
SETTINGS = settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))


def _state(ws: Path) -> tuple[dict[str, bytes], list[str]]:
    conn = sqlite3.connect(ws / "catalog.sqlite")
    try:
        return snapshot(ws), list(conn.iterdump())
    finally:
        conn.close()


def _workspace(root: Path) -> Path:
    ws = root / "ws"
    assert run_cli("init", "fuzz", "--classes", ",".join(CLASSES), workspace=ws).exit_code == 0
    (root / "ok").mkdir()
    (root / "ok" / "a.jpg").write_bytes(data.jpeg(data.photo(7, CLASSES[0])))
    assert run_cli("ingest", str(root / "ok"), workspace=ws).exit_code == 0
    return ws


def _check(ws: Path, args: list[str], allowed: set[int]) -> None:
    before = _state(ws)
    result = run_cli(*args, workspace=ws)  # an exception escaping the CLI fails the test here
    assert "Traceback" not in result.output
    assert result.exit_code in allowed, result.output
    if result.exit_code != 0:
        assert len(result.stderr.strip().splitlines()) <= 2, result.stderr  # Error: + optional Hint:
        assert _state(ws) == before


def test_random_list_files() -> None:
    with tempfile.TemporaryDirectory(prefix="curator-fuzz-") as tmp:
        root = Path(tmp)
        ws = _workspace(root)

        @SETTINGS
        @given(lines=LINES, newline=NEWLINES, raw=st.one_of(st.none(), st.binary(max_size=64)))
        def run(lines: list[str], newline: str, raw: bytes | None) -> None:
            listing = root / "list.txt"
            text = newline.join(lines).encode("utf-8", "surrogatepass")
            listing.write_bytes(raw if raw is not None else text)
            args = ["ingest", str(listing), "--ignore-robots", "--retries", "0", "--connect-timeout", "1"]
            _check(ws, args, {0, 5})

        run()


CELLS = st.one_of(st.sampled_from(["alopecia", "psoriasis", "eczema", "__excluded__", "hint", "ann", "",
                                   "=1+1", "'=1", "ok/a.jpg", "ab" * 32, '"', "a,b", "\r", "\n"]), _text)
HEADERS = st.sampled_from(["sha256,label", "url,label", "sha256,label,annotator",
                           "source_url,label,annotator", "label", "", "\ufeffsha256,label"])


def test_random_label_csvs() -> None:
    with tempfile.TemporaryDirectory(prefix="curator-fuzz-") as tmp:
        root = Path(tmp)
        ws = _workspace(root)
        conn = sqlite3.connect(ws / "catalog.sqlite")
        sha, locator = conn.execute("SELECT sha256, locator FROM sources WHERE sha256 IS NOT NULL").fetchone()
        conn.close()
        real = st.sampled_from([sha, locator])

        @SETTINGS
        @given(header=HEADERS, rows=st.lists(st.lists(st.one_of(CELLS, real), max_size=4), max_size=6),
               raw=st.one_of(st.none(), st.binary(max_size=64)))
        def run(header: str, rows: list[list[str]], raw: bytes | None) -> None:
            path = root / "labels.csv"
            text = header + "\n" + "\n".join(",".join(r) for r in rows)
            path.write_bytes(raw if raw is not None else text.encode("utf-8", "surrogatepass"))
            _check(ws, ["label", "--import", str(path)], {0, 5})

        run()
