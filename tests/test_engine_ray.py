"""The Ray engine against the local one: a real Ray instance (two CPUs, started once for the
module) and the loopback image server.

Ingest, review and release on ``--engine ray`` must leave what ``--engine local`` leaves:
the same per-source outcomes, images, hashes, clusters, findings and release bytes. A Ray
worker killed mid-batch must not change that; per-host limits and Retry-After must hold
for all workers together; a missing Ray or an unreachable cluster is one line.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import ray

from curator import ingest
from curator.config import EngineConfig
from curator.workspace import Workspace, init_workspace, open_workspace
from tests import ingest_data as data
from tests.conftest import CLASSES, run_cli, snapshot
from tests.imageserver import ImageServer, Reply
from tests.test_ingest_crash import _count
from tests.test_ingest_http import FLAGS, _routes
from tests.test_reproducible import _inputs

RAY = EngineConfig(kind="ray", batch_size=4)
MAIN = "from curator.cli import main; main()"


@pytest.fixture(scope="module", autouse=True)
def ray_instance() -> Iterator[None]:
    """One local Ray for the module (~4 s to start), its files under a short temp folder
    (Ray's socket paths must stay under ~107 characters)."""
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_AUTH_MODE", "disabled")
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, _temp_dir=temp)
        try:
            yield
        finally:
            ray.shutdown()
            shutil.rmtree(temp, ignore_errors=True)


def _new_workspace(root: Path, engine: str, **ingest_keys: object) -> Path:
    init_workspace(root, "scalp-test", CLASSES).close()
    with (root / "curator.toml").open("a", encoding="utf-8") as fh:
        fh.write(f'\n[engine]\nkind = "{engine}"\nbatch_size = 4\n')
    if ingest_keys:
        data.set_ingest_keys(root, **ingest_keys)
    return root


def _rows(ws: Path, sql: str, port: int | None = None) -> list[tuple[object, ...]]:
    conn = sqlite3.connect(ws / "catalog.sqlite")
    try:
        rows = [tuple(r) for r in conn.execute(sql)]
    finally:
        conn.close()
    if port is None:
        return rows
    def plain(v: object) -> object:
        return v.replace(f":{port}/", ":PORT/") if isinstance(v, str) else v

    return [tuple(plain(v) for v in r) for r in rows]


SOURCES = ("SELECT locator, kind, hint, final_url, http_status, content_type, bytes, outcome, reason, "
           "transient, sha256, robots, position, group_id FROM sources ORDER BY locator")
IMAGES = ("SELECT sha256, fingerprint, pixel_sha256, width, height, format, bytes, hashed_from, cluster_id "
          "FROM images ORDER BY sha256")
HASHES = "SELECT sha256, name, value FROM image_hashes ORDER BY sha256, name"
CLUSTERS = "SELECT id, representative FROM clusters ORDER BY id"
FINDINGS = ("SELECT sha256, kind, verdict, score, detail, check_version, params, active FROM review_findings "
            "ORDER BY sha256, kind, verdict")
FEATURES = "SELECT sha256, version, vector FROM review_features ORDER BY sha256"


@pytest.mark.slow
def test_ingest_review_release_on_ray_match_local(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Copies listed before their originals, near copies, a PNG with a JPEG's pixels: the same URL
    list through ingest, review and release on either engine gives the same catalog and bytes."""
    items = _inputs()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    workspaces = {}
    with ImageServer() as server:
        server.route("/robots.txt", Reply(404, b"", "text/plain"))
        for path, _, body, _ in items:
            server.route(path, Reply(body=body))
        urls = tmp_path / "urls.txt"
        urls.write_text("".join(f"{server.url(path)}\t{label}\n" for path, label, _, _ in items))
        for engine in ("local", "ray"):
            ws = _new_workspace(tmp_path / engine, "local")
            for args in (["ingest", str(urls), "--engine", engine], ["label", "--accept-hints"],
                         ["review", "--run", "--engine", engine],
                         ["release", "--allow-unreviewed", "--engine", engine]):
                result = run_cli(*args, workspace=ws)
                assert result.exit_code == 0, (args, result.output)
            workspaces[engine] = ws
    local, on_ray = workspaces["local"], workspaces["ray"]
    for sql in (SOURCES, IMAGES, HASHES, CLUSTERS, FINDINGS, FEATURES):
        assert _rows(on_ray, sql) == _rows(local, sql), sql
    assert len(_rows(local, CLUSTERS)) == 12 and len(_rows(local, FEATURES)) == len(items) - 1
    assert sorted(p.name for p in (local / "objects").rglob("*")) == sorted(
        p.name for p in (on_ray / "objects").rglob("*"))
    assert snapshot(on_ray / "releases") == snapshot(local / "releases")
    assert any(p.suffix == ".parquet" for p in (local / "releases").rglob("*"))


@pytest.mark.slow
def test_every_outcome_on_ray_matches_local(tmp_path: Path) -> None:
    """test_ingest_http's routes (retries, Retry-After, redirects, robots, caps, bad lines): each
    source's outcome, reason and recorded HTTP facts are the same on either engine."""
    found = {}
    for engine in ("local", "ray"):
        ws = _new_workspace(tmp_path / engine, "local", max_retry_after=1.5, max_pixels=1_000_000)
        with ImageServer() as server:
            urls = tmp_path / f"urls-{engine}.txt"
            urls.write_text("\n".join(_routes(server)) + "\n")
            result = run_cli("--json", "ingest", str(urls), *FLAGS, "--engine", engine, workspace=ws)
            assert result.exit_code == 0, result.output
            found[engine] = ([_rows(ws, sql, server.port) for sql in (SOURCES, IMAGES, CLUSTERS)],
                             server.count("/robots.txt"))
    assert found["ray"][0] == found["local"][0]
    assert len(found["local"][0][0]) > 40
    assert found["local"][1] == 1 and 1 <= found["ray"][1] <= 2  # fetched once per worker process


def _ingest_thread(
    root: Path, urls: list[str], engine: EngineConfig
) -> tuple[threading.Thread, list[object]]:
    """The ingest stage on a thread of its own, with its own workspace handle."""
    out: list[object] = []

    def work() -> None:
        ws = open_workspace(root)
        try:
            ws.config = dataclasses.replace(ws.config, engine=engine)
            out.append(ingest.run(ws, urls))
        except BaseException as err:  # re-raised by the test
            out.append(err)
        finally:
            ws.close()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    return thread, out


def _running(task: str) -> list[int]:
    """PIDs of this machine's Ray workers running ``task`` now (Ray titles them ``ray::<task>``)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if cmdline.startswith(f"ray::{task}".encode()):
                pids.append(int(entry.name))
    return pids


@pytest.mark.slow
def test_a_worker_killed_mid_batch_changes_nothing(tmp_path: Path) -> None:
    """SIGKILL a worker while it fetches a batch: Ray runs the batch again and the catalog ends as
    the local engine's does, each source once."""
    bodies = {f"/img/{i}.jpg": data.jpeg(data.photo(300 + i, CLASSES[i % 3])) for i in range(24)}
    catalogs = []
    killed: list[int] = []
    for engine in ("local", "ray"):
        ws = _new_workspace(tmp_path / engine, "local", connect_timeout=1.0, read_timeout=1.0)
        with ImageServer(latency=0.15) as server:
            server.route("/robots.txt", Reply(404, b"", "text/plain"))
            for path, body in bodies.items():
                server.route(path, Reply(body=body))
            urls = [server.url(path) for path in bodies]
            thread, out = _ingest_thread(ws, urls, RAY if engine == "ray" else EngineConfig())
            if engine == "ray":
                deadline = time.monotonic() + 30
                while not killed and time.monotonic() < deadline and thread.is_alive():
                    fetching = any(hit.path.startswith("/img/") for hit in list(server.hits))
                    for pid in _running("prepare_batch")[:1] if fetching else []:
                        os.kill(pid, signal.SIGKILL)
                        killed.append(pid)
                    time.sleep(0.02)
            thread.join(timeout=120)
            assert not thread.is_alive()
            assert not isinstance(out[0], BaseException), out[0]
            catalogs.append([_rows(ws, sql, server.port) for sql in (SOURCES, IMAGES, CLUSTERS)])
            fetched = {path: server.count(path) for path in bodies}
        assert len(_rows(ws, SOURCES)) == len(bodies)
    assert killed, "no Ray worker was seen running a batch"
    assert any(n > 1 for n in fetched.values()), "the killed batch was not fetched again"
    assert catalogs[1] == catalogs[0]


@pytest.mark.slow
def test_a_killed_driver_resumes_on_rerun(tmp_path: Path) -> None:
    """kill -9 the `curator ingest --engine ray` process mid-run (it joined this module's Ray), then
    rerun: what was committed is not fetched again, and every source and image ends as with the
    local engine (input positions, and so cluster ids, continue after the killed run's, as locally)."""
    bodies = {f"/d/{i}.jpg": data.jpeg(data.photo(600 + i, CLASSES[i % 3], (128, 96))) for i in range(30)}
    address = ray.get_runtime_context().gcs_address
    unordered = (SOURCES.replace("position, ", ""), IMAGES.replace(", cluster_id", ""),
                 "SELECT COUNT(*) FROM clusters")
    catalogs = []
    for engine in ("local", "ray"):
        ws = _new_workspace(tmp_path / engine, "local")
        with ImageServer() as server:
            server.route("/robots.txt", Reply(404, b"", "text/plain"))
            for path, body in bodies.items():
                server.route(path, Reply(body=body, delay=0.15))
            urls = tmp_path / f"urls-{engine}.txt"
            urls.write_text("".join(server.url(p) + "\n" for p in bodies))
            args = ["ingest", str(urls), "--engine", engine]
            if engine == "ray":
                with (ws / "curator.toml").open("a", encoding="utf-8") as fh:
                    fh.write(f'address = "{address}"\n')  # appended to [engine]
                proc = subprocess.Popen([sys.executable, "-c", MAIN, "--workspace", str(ws), *args],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
                deadline = time.monotonic() + 60
                db = ws / "catalog.sqlite"
                while _count(db) < 6 and time.monotonic() < deadline and proc.poll() is None:
                    time.sleep(0.05)
                assert proc.poll() is None, "ingest finished before it could be killed"
                proc.kill()
                proc.communicate(timeout=30)
                committed = [str(row[0]).split(str(server.port))[1] for row in _rows(ws, SOURCES)]
                assert 6 <= len(committed) < len(bodies)
                hits = {path: server.count(path) for path in committed}
            result = run_cli("--json", *args, workspace=ws)
            assert result.exit_code == 0, result.output
            if engine == "ray":
                assert json.loads(result.stdout)["skipped"] == len(committed)
                assert {path: server.count(path) for path in committed} == hits  # not fetched again
            catalogs.append([_rows(ws, sql, server.port) for sql in unordered])
    assert catalogs[1] == catalogs[0]
    assert len(catalogs[0][0]) == len(bodies)


def test_per_host_limit_holds_across_workers(tmp_path: Path) -> None:
    """Two workers, each fetching a batch at once: together never more than per_host requests
    in flight to the host (each alone would take per_host)."""
    ws = _new_workspace(tmp_path / "ws", "ray", per_host=2)
    bodies = {f"/h/{i}.jpg": data.jpeg(data.photo(400 + i)) for i in range(24)}
    with ImageServer(latency=0.1) as server:
        server.route("/robots.txt", Reply(404, b"", "text/plain"))
        for path, body in bodies.items():
            server.route(path, Reply(body=body))
        (tmp_path / "urls.txt").write_text("".join(server.url(p) + "\n" for p in bodies))
        result = run_cli("--json", "ingest", str(tmp_path / "urls.txt"), workspace=ws)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["stored"] == len(bodies)
        assert server.max_active == 2


def test_retry_after_pauses_the_host_for_every_worker(tmp_path: Path) -> None:
    """A 429 with Retry-After: 1 holds back every worker's requests to that host, not only the
    retry of that URL."""
    ws = _new_workspace(tmp_path / "ws", "ray", per_host=4, backoff=0.05)
    bodies = {f"/r/{i}.jpg": data.jpeg(data.photo(500 + i)) for i in range(32)}
    with ImageServer(latency=0.05) as server:
        server.route("/robots.txt", Reply(404, b"", "text/plain"))
        busy = data.jpeg(data.photo(599))
        server.route("/busy.jpg", Reply(429, b"", None, {"Retry-After": "1"}), Reply(body=busy))
        for path, body in bodies.items():
            server.route(path, Reply(body=body))
        lines = [server.url("/busy.jpg")] + [server.url(p) for p in bodies]
        (tmp_path / "urls.txt").write_text("\n".join(lines) + "\n")
        result = run_cli("--json", "ingest", str(tmp_path / "urls.txt"), workspace=ws)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["stored"] == len(bodies) + 1
        refused_at = server.times("/busy.jpg")[0]
        every = sorted(hit.at for hit in server.hits if hit.path != "/robots.txt")
    # requests already sent when the 429 arrived may still land just after it
    during = [at for at in every if refused_at + 0.3 < at < refused_at + 0.95]
    assert during == []
    assert any(at > refused_at + 0.95 for at in every)


def test_engine_ray_without_ray_is_one_line(tmp_path: Path) -> None:
    ws = _new_workspace(tmp_path / "ws", "local")
    before = snapshot(ws)
    without_ray = "import sys; sys.modules['ray'] = None; " + MAIN  # `import ray` raises ImportError
    result = subprocess.run(
        [sys.executable, "-c", without_ray, "--workspace", str(ws), "ingest", str(tmp_path),
         "--engine", "ray"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "CURATOR_DEBUG": ""},
    )
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "Error: --engine ray: Ray is not installed",
        "Hint: install it with `pip install 'curator[ray]'`, or use --engine local",
    ]
    assert snapshot(ws) == before


def test_unreachable_cluster_is_one_line(tmp_path: Path) -> None:
    ws = _new_workspace(tmp_path / "ws", "local")
    with (ws / "curator.toml").open("a", encoding="utf-8") as fh:
        fh.write('address = "127.0.0.1:1"\n')  # appended to [engine]
    before = snapshot(ws)
    result = subprocess.run(
        [sys.executable, "-c", MAIN, "--workspace", str(ws), "review", "--run", "--engine", "ray"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "CURATOR_DEBUG": ""},
    )
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0] == "Error: --engine ray: cannot reach 127.0.0.1:1 ([Errno 111] Connection refused)"
    assert lines[1].startswith("Hint: start a cluster with `ray start --head`") and len(lines) == 2
    assert snapshot(ws) == before


def test_engine_settings_are_checked(workspace: Workspace) -> None:
    toml = workspace.root / "curator.toml"
    toml.write_text(toml.read_text() + '\n[engine]\nkind = "spark"\n')
    result = run_cli("status", workspace=workspace.root)
    assert result.exit_code == 4
    assert result.stderr == "Error: curator.toml: 'engine.kind' must be 'local' or 'ray'\n"
