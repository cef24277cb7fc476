"""kill -9 at every step of ``curator release``: the next command repairs the workspace and the
rerun builds a release byte-identical to a clean build; pool workers die with their parent."""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from curator import faultpoint
from tests.conftest import run_cli, snapshot
from tests.test_release import make_workspace

State = tuple[dict[str, bytes], list[tuple[str, ...]]]
STEPS = ["plan", "images", "write", "verify", "rename", "record", "recorded"]
EPOCH = "1700000000"


def _curator(ws: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-c", "from curator.cli import main; main()", "--workspace", str(ws), *args]
    return subprocess.run(cmd, capture_output=True, timeout=300, env={**os.environ, **env})


def _release_state(ws: Path) -> State:
    """The release folders' bytes and the catalog rows a build writes."""
    conn = sqlite3.connect(ws / "catalog.sqlite")
    try:
        rows = conn.execute("SELECT version, parent, created_at, path, manifest_sha256, rows FROM releases")
        splits = conn.execute("SELECT sha256, split, first_version FROM image_splits ORDER BY sha256")
        catalog_rows = [tuple(map(str, r)) for r in [*rows.fetchall(), *splits.fetchall()]]
    finally:
        conn.close()
    return snapshot(ws / "releases"), catalog_rows


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    counts = {"alopecia": 6, "psoriasis": 5, "folliculitis": 5}
    return make_workspace(tmp_path_factory.mktemp("crash"), counts)


@pytest.fixture(scope="module")
def clean(base: Path, tmp_path_factory: pytest.TempPathFactory) -> State:
    ws = tmp_path_factory.mktemp("clean") / "ws"
    shutil.copytree(base, ws)
    done = _curator(ws, "release", env={"SOURCE_DATE_EPOCH": EPOCH})
    assert done.returncode == 0, done.stderr.decode()
    return _release_state(ws)


@pytest.mark.slow
@pytest.mark.parametrize("step", STEPS)
def test_killed_at_every_step_then_rerun_is_byte_identical(
    step: str, base: Path, clean: State, tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(base, ws)
    killed = _curator(ws, "release", env={"SOURCE_DATE_EPOCH": EPOCH, faultpoint.ENV_VAR: f"release:{step}"})
    assert killed.returncode == -signal.SIGKILL, killed.stderr.decode()

    listed = run_cli("releases", workspace=ws)  # any command repairs what the kill left
    assert listed.exit_code == 0, listed.output
    assert not list(ws.glob("releases/.*.tmp"))
    if "1.0.0" not in listed.stdout:
        assert not (ws / "releases" / "v1.0.0").exists()
        rerun = _curator(ws, "release", env={"SOURCE_DATE_EPOCH": EPOCH})
        assert rerun.returncode == 0, rerun.stderr.decode()
    assert _release_state(ws) == clean


def test_a_row_without_its_folder_is_rolled_back(
    base: Path, clean: State, tmp_path: Path
) -> None:
    """The state the old order (commit, then rename) left after a kill: row + temp folder only."""
    ws = tmp_path / "ws"
    shutil.copytree(base, ws)
    assert _curator(ws, "release", env={"SOURCE_DATE_EPOCH": EPOCH}).returncode == 0
    (ws / "releases" / "v1.0.0").rename(ws / "releases" / ".v1.0.0.k1ll3d.tmp")

    repaired = _curator(ws, "release", env={"SOURCE_DATE_EPOCH": EPOCH})
    assert repaired.returncode == 0, repaired.stderr.decode()
    assert "Warning: rolled back release v1.0.0: its folder is missing" in repaired.stderr.decode()
    assert _release_state(ws) == clean


def _processes_with(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "environ").read_bytes():
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_pool_workers_exit_soon_after_their_parent_is_killed(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, {"alopecia": 12, "psoriasis": 12, "folliculitis": 12})
    marker = f"CURATOR_TEST_MARKER={os.getpid()}-{time.monotonic_ns()}"
    key, value = marker.split("=")
    cmd = [sys.executable, "-c", "from curator.cli import main; main()", "--workspace", str(ws), "release"]
    env = {**os.environ, faultpoint.ENV_VAR: "preprocess:result", key: value}
    # output to a file: orphaned workers would hold a pipe open and hang the wait
    with (tmp_path / "err.txt").open("wb") as err:
        killed = subprocess.run(cmd, stdout=err, stderr=err, env=env, timeout=300)
    assert killed.returncode == -signal.SIGKILL, (tmp_path / "err.txt").read_text()
    deadline = time.monotonic() + 5
    while _processes_with(marker) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = _processes_with(marker)
    for pid in left:  # don't leak them into the rest of the run
        os.kill(pid, signal.SIGKILL)
    assert left == []
