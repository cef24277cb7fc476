"""Shared fixtures: a fresh workspace in a temp folder, and the CLI run in-process."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from curator.cli import cli
from curator.workspace import Workspace, init_workspace

CLASSES = ["alopecia", "psoriasis", "folliculitis"]


@pytest.fixture
def workspace(tmp_path: Path) -> Iterator[Workspace]:
    ws = init_workspace(tmp_path / "ws", "scalp-test", CLASSES)
    yield ws
    ws.close()


def run_cli(*args: str, workspace: Path | None = None, input: str | None = None) -> Result:
    """Run ``curator ARGS`` in-process (stdout and stderr kept apart)."""
    prefix = ["--workspace", str(workspace)] if workspace is not None else []
    return CliRunner().invoke(cli, [*prefix, *args], input=input, catch_exceptions=False)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (except SQLite's -wal/-shm side files) with its bytes,
    to assert that a refused command left the workspace as it was."""
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix == ".sqlite":
            files[str(path.relative_to(root))] = _sqlite_dump(path)
        elif path.is_file() and not path.name.endswith(("-wal", "-shm")):
            files[str(path.relative_to(root))] = path.read_bytes()
    return files


def _sqlite_dump(path: Path) -> bytes:
    """A database's content as SQL: a reader's WAL checkpoint moves bytes between the
    database file and its -wal without changing what it holds."""
    conn = sqlite3.connect(path)
    try:
        return "\n".join(conn.iterdump()).encode()
    finally:
        conn.close()
