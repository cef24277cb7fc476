"""Hostile lists and folders: only what the user named is read, and nothing breaks the run."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

import pytest

from curator.ingest import sources
from curator.ingest.run import read_local
from curator.workspace import Workspace
from tests import ingest_data as data
from tests.conftest import CLASSES, run_cli, snapshot


def _outcomes(ws: Workspace) -> dict[str, tuple[str, str | None]]:
    rows = ws.conn.execute("SELECT locator, outcome, reason FROM sources").fetchall()
    return {r["locator"]: (r["outcome"], r["reason"]) for r in rows}


def _ingest(ws: Workspace, *args: str, input: str | None = None) -> dict[str, Any]:
    result = run_cli("--json", "ingest", *args, workspace=ws.root, input=input)
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    return dict(json.loads(result.stdout))


@pytest.fixture
def listdir(tmp_path: Path) -> Path:
    folder = tmp_path / "lists"
    (folder / "ok").mkdir(parents=True)
    (folder / "ok" / "a.jpg").write_bytes(data.jpeg(data.photo(1, CLASSES[0])))
    return folder


def test_list_paths_outside_the_lists_folder_are_refused(workspace: Workspace, listdir: Path,
                                                         tmp_path: Path) -> None:
    secret = tmp_path / "elsewhere" / "private.jpg"
    secret.parent.mkdir()
    secret.write_bytes(data.jpeg(data.photo(2, CLASSES[1])))
    (listdir / "link.jpg").symlink_to(secret)
    listing = listdir / "list.txt"
    listing.write_text(f"/\n{secret}\n../elsewhere/private.jpg\nlink.jpg\nok/a.jpg\n")
    summary = _ingest(workspace, str(listing))
    assert (summary["stored"], summary["rejected_by_reason"]) == (1, {"outside-root": 4})
    assert {r for r in _outcomes(workspace).values()} == {("rejected", "outside-root"), ("stored", None)}
    # a flag names another root: then the same lines are read
    named = sources.read_argument(str(listing), root=tmp_path)
    assert [s.problem for s in named] == ["outside-root", None, None, None, None]


def test_stdin_paths_must_lie_under_the_current_folder(workspace: Workspace, listdir: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(listdir / "ok")
    summary = _ingest(workspace, "-", input=f"a.jpg\n{listdir}\n")
    assert (summary["stored"], summary["rejected_by_reason"]) == (1, {"outside-root": 1})


@pytest.mark.parametrize("how", ["list", "walk"])
def test_devices_fifos_and_sockets_are_not_files(workspace: Workspace, listdir: Path, how: str) -> None:
    os.mkfifo(listdir / "pipe.jpg")
    (listdir / "zero.jpg").symlink_to("/dev/zero")
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(listdir / "sock.jpg"))
    try:
        if how == "list":
            listing = listdir / "list.txt"
            listing.write_text("pipe.jpg\nsock.jpg\nzero.jpg\n")
            summary = _ingest(workspace, str(listing), "--root", "/")
            assert summary["rejected_by_reason"] == {"not-a-file": 3}
        else:  # the walk: a FIFO or socket is not a file, a symlink out of the folder is outside it
            summary = _ingest(workspace, str(listdir))
            assert summary["rejected_by_reason"] == {"not-a-file": 2, "outside-root": 1}
            assert summary["stored"] == 1
    finally:
        server.close()


def test_a_device_named_directly_is_one_line(workspace: Workspace) -> None:
    before = snapshot(workspace.root)
    result = run_cli("ingest", "/dev/zero", workspace=workspace.root)
    assert (result.exit_code, result.stderr.strip()) == (
        5, "Error: /dev/zero: not a regular file (a device, FIFO or socket)")
    assert snapshot(workspace.root) == before


def test_local_reads_stop_at_the_cap_whatever_st_size_says() -> None:
    assert read_local("/dev/zero", 1000).reason == "not-a-file"
    with open("/proc/self/status", "rb") as fh:  # st_size 0, yet it has bytes
        assert fh.read()
    capped = read_local("/proc/self/status", 10)
    assert capped.reason in ("too-large", "not-a-file")


@pytest.mark.parametrize("line", [
    "~nosuchuser/a.jpg",
    "~/a.jpg",
    "x" * 300,
    "a/" + "y" * 300 + ".jpg",
    "ok/a\x7f.jpg",
    "ok/\x1b[31ma.jpg",
    "ok/a\u0085.jpg",
])
def test_malformed_lines_are_per_line_outcomes(line: str, listdir: Path) -> None:
    (src,) = sources.parse_line(line, base=listdir)
    assert src.problem == "malformed-line"


def test_malformed_lines_through_the_cli(workspace: Workspace, listdir: Path) -> None:
    listing = listdir / "list.txt"
    listing.write_text("~nosuchuser/a.jpg\n" + "z" * 300 + "\nq/" + "q" * 300 + ".jpg\nok/a.jpg\n")
    summary = _ingest(workspace, str(listing))
    assert (summary["stored"], summary["rejected_by_reason"]) == (1, {"malformed-line": 3})


def test_passwords_in_urls_are_never_stored() -> None:
    (src,) = sources.parse_line("https://alice:s3cret@example.org:8443/a.jpg?x=1", base=Path("/"))
    assert src.locator == "https://alice@example.org:8443/a.jpg?x=1"
    (plain,) = sources.parse_line("https://bob@example.org/a.jpg", base=Path("/"))
    assert plain.locator == "https://bob@example.org/a.jpg"
