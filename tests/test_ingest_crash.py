"""kill -9 in the middle of `curator ingest`, then rerun: the catalog stays whole, every image once."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curator import catalog, store
from curator.ingest import validate
from curator.workspace import init_workspace
from tests import ingest_data as data
from tests.conftest import CLASSES
from tests.imageserver import ImageServer, Reply

N = 30


def _count(db: Path) -> int:
    try:
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=5)
        try:
            return int(conn.execute("SELECT COUNT(*) FROM sources").fetchone()[0])
        finally:
            conn.close()
    except sqlite3.Error:
        return 0


def _ingest(root: Path, urls: Path) -> subprocess.Popen[bytes]:
    cmd = [sys.executable, "-c", "from curator.cli import main; main()", "--workspace", str(root),
           "ingest", str(urls), "--concurrency", "3", "--per-host", "3", "--read-timeout", "5",
           "--backoff", "0.05"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_stopped_mid_run_then_rerun(tmp_path: Path, sig: signal.Signals) -> None:
    ws = init_workspace(tmp_path / "ws", "crash", CLASSES)
    ws.close()
    with ImageServer() as server:
        server.route("/robots.txt", Reply(body=b"User-agent: *\nAllow: /\n", content_type="text/plain"))
        lines = []
        for i in range(N):
            body = data.jpeg(data.photo(500 + i, CLASSES[i % 3], (128, 96)))
            lines.append(server.route(f"/img/{i}.jpg", Reply(body=body, delay=0.15)))
        lines.append(server.url("/img/0.jpg").replace("/img/0", "/again/0"))  # same bytes, second URL
        server.route("/again/0.jpg", Reply(body=data.jpeg(data.photo(500, CLASSES[0], (128, 96)))))
        urls = tmp_path / "urls.txt"
        urls.write_text("\n".join(lines) + "\n")

        proc = _ingest(ws.root, urls)
        deadline = time.monotonic() + 60
        while _count(ws.catalog_path) < 6 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.05)
        assert proc.poll() is None, "ingest finished before it could be killed; slow the server down"
        os.kill(proc.pid, sig)
        _, err = proc.communicate(timeout=30)
        if sig == signal.SIGINT:  # Ctrl-C: finishes the current commits, says so, exits 130
            assert (proc.returncode, err.decode().strip().splitlines()[-1]) == (130, "Interrupted.")
        else:
            assert proc.returncode == -signal.SIGKILL
        done_before = _count(ws.catalog_path)
        assert 6 <= done_before < N + 1
        # a write that the kill cut short leaves a temp file like this one; the rerun must remove it
        leftover = ws.objects / "ab" / ".abcdef.tmp"
        leftover.parent.mkdir(exist_ok=True)
        leftover.write_bytes(b"partial")

        _check_consistent(ws.root, complete=False)
        hits_before = {line: server.count(line.split(str(server.port))[1]) for line in lines}
        rerun = _ingest(ws.root, urls)
        out, err = rerun.communicate(timeout=120)
        assert rerun.returncode == 0, err.decode()
        assert f"{done_before} skipped" in out.decode()
    _check_consistent(ws.root, complete=True)
    assert not leftover.exists()
    conn = catalog.connect(ws.catalog_path)
    finished = {r[0] for r in conn.execute("SELECT locator FROM sources")}
    conn.close()
    assert finished == set(lines)
    assert sum(hits_before.values()) >= done_before


def _check_consistent(root: Path, *, complete: bool) -> None:
    conn = catalog.connect(root / "catalog.sqlite")
    try:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        rows = conn.execute("SELECT locator, outcome, sha256 FROM sources").fetchall()
        assert all(r["outcome"] in ("stored", "duplicate") and r["sha256"] for r in rows), rows
        images = conn.execute("SELECT sha256, cluster_id FROM images").fetchall()
        pixels = set()
        for image in images:
            path = store.object_path(root / "objects", image["sha256"])
            assert store.sha256_bytes(path.read_bytes()) == image["sha256"]
            pixels.add(validate.pixel_sha256(path.read_bytes()))
        assert len(pixels) == len(images)  # every image present exactly once
        orphans_in_catalog = conn.execute(
            "SELECT COUNT(*) FROM sources s LEFT JOIN images i ON i.sha256 = s.sha256 WHERE i.sha256 IS NULL"
        ).fetchone()[0]
        assert orphans_in_catalog == 0
        clusters = conn.execute("SELECT id, representative FROM clusters").fetchall()
        assert all(c["representative"] for c in clusters)
        if complete:
            assert len(rows) == N + 1 and len(images) == N
            exact = [r for r in rows if r["outcome"] == "duplicate"]
            assert len(exact) == 1
            temp = [p for p in (root / "objects").rglob(".*")]
            assert temp == []
    finally:
        conn.close()
