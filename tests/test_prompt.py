"""The interactive prompt, driven in a real pseudo-terminal with pexpect."""

from __future__ import annotations

import os
import shutil
import signal
import sys
from pathlib import Path

import pexpect
import pytest

from curator import catalog, config, labeling
from curator.labeling import EXCLUDED
from curator.workspace import Workspace
from tests.test_labeling import add_image, events

TIMEOUT = 30  # generous for 2 shared cores, but bounded


def curator_exe() -> str:
    beside = Path(sys.executable).with_name("curator")
    found = str(beside) if beside.exists() else shutil.which("curator")
    assert found, "the curator console script is not installed"
    return found


def spawn(ws: Workspace, *args: str, env: dict[str, str] | None = None) -> pexpect.spawn:
    child = pexpect.spawn(
        curator_exe(),
        ["--workspace", str(ws.root), "label", "--annotator", "ann", *args],
        env=env or dict(os.environ, TERM="xterm-256color"),
        dimensions=(40, 100),
        timeout=TIMEOUT,
    )
    return child


def step(child: pexpect.spawn, key: str, marker: str) -> None:
    """Press ``key`` and wait for the next frame's progress marker."""
    child.send(key)
    child.expect_exact(marker)


def finish(child: pexpect.spawn) -> str:
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, child.before
    return child.before.decode("utf-8", "replace")


def fresh(conn_path: Path) -> list[tuple[str, str, str | None, str | None, str]]:
    """Events as another process sees them (a new connection)."""
    conn = catalog.connect(conn_path)
    try:
        return events(conn)
    finally:
        conn.close()


@pytest.fixture
def six(workspace: Workspace) -> list[str]:
    shas = [add_image(workspace, seed) for seed in range(6)]
    workspace.close()  # the prompt runs in another process
    return shas


@pytest.mark.slow
def test_label_undo_skip_exclude_quit_then_resume(workspace: Workspace, six: list[str]) -> None:
    s = six
    child = spawn(workspace, "--graphics", "blocks")
    child.expect_exact("[1/6]")
    child.expect_exact("1 alopecia  2 psoriasis  3 folliculitis")
    step(child, "1", "[2/6]")
    step(child, "2", "[3/6]")
    step(child, "u", "[2/6]")  # back to image 2, its label undone
    child.expect_exact("Undone: psoriasis -> (none)")
    step(child, "3", "[3/6]")
    step(child, "s", "[4/6]")
    step(child, "x", "[5/6]")
    child.send("q")
    out = finish(child)
    assert "\x1b[?1049l" in out  # the normal screen is back
    assert "ann: labeled 2, excluded 1, skipped 1, undone 1; 3 still need a label." in out
    assert fresh(workspace.catalog_path) == [
        (s[0], "ann", "alopecia", None, "label"),
        (s[1], "ann", "psoriasis", None, "label"),
        (s[1], "ann", None, "psoriasis", "undo"),
        (s[1], "ann", "folliculitis", None, "label"),
        (s[3], "ann", EXCLUDED, None, "exclude"),
    ]
    # Resume: only the skipped and the untouched images come back, in ingest order.
    child = spawn(workspace, "--graphics", "blocks")
    child.expect_exact("[1/3]")
    child.expect_exact(s[2][:12])
    step(child, "2", "[2/3]")
    child.expect_exact(s[4][:12])
    step(child, "1", "[3/3]")
    child.send("3")
    out = finish(child)
    assert "ann: labeled 3, excluded 0, skipped 0, undone 0; 0 still need a label." in out
    conn = catalog.connect(workspace.catalog_path)
    cfg = config.load(workspace.root / "curator.toml")
    assert labeling.current_labels(conn, cfg) == {
        s[0]: "alopecia", s[1]: "folliculitis", s[2]: "psoriasis", s[3]: EXCLUDED,
        s[4]: "alopecia", s[5]: "folliculitis",
    }
    assert len(events(conn)) == 8
    conn.close()
    child = spawn(workspace, "--graphics", "blocks")
    assert "Nothing to label for ann." in finish(child)


@pytest.mark.slow
def test_kill_9_keeps_every_answer_given(workspace: Workspace, six: list[str]) -> None:
    child = spawn(workspace, "--graphics", "blocks")
    child.expect_exact("[1/6]")
    step(child, "1", "[2/6]")
    step(child, "x", "[3/6]")
    step(child, "3", "[4/6]")
    child.kill(signal.SIGKILL)
    child.expect(pexpect.EOF)
    child.close()
    assert child.signalstatus == signal.SIGKILL
    assert fresh(workspace.catalog_path) == [
        (six[0], "ann", "alopecia", None, "label"),
        (six[1], "ann", EXCLUDED, None, "exclude"),
        (six[2], "ann", "folliculitis", None, "label"),
    ]
    child = spawn(workspace, "--graphics", "blocks")
    child.expect_exact("[1/3]")
    child.expect_exact(six[3][:12])
    child.send("\x03")  # Ctrl-C quits cleanly, like q
    out = finish(child)
    assert "\x1b[?25h\x1b[?1049l" in out
    assert "ann: labeled 0, excluded 0, skipped 0, undone 0; 3 still need a label." in out


@pytest.mark.slow
def test_help_unknown_key_open_without_viewer_and_kitty(workspace: Workspace, six: list[str]) -> None:
    # A PATH without xdg-open/open: the prompt says so instead of failing.
    env = dict(os.environ, TERM="xterm-256color", PATH=str(Path(curator_exe()).parent))
    child = spawn(workspace, "--graphics", "kitty", env=env)
    child.expect_exact("\x1b_Ga=T,f=24,o=z")  # the kitty graphics protocol
    child.expect_exact("[1/6]")
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    step(child, "o", f"No system image viewer found ({opener} is not installed)")
    step(child, "?", "Press any key to go back.")
    step(child, " ", "[1/6]")
    step(child, "z", "Key 'z' does nothing here; press ? for help")
    step(child, "u", "Nothing to undo in this session")
    child.send("q")
    assert "ann: labeled 0" in finish(child)
    assert fresh(workspace.catalog_path) == []


@pytest.mark.slow
def test_review_a_class(workspace: Workspace) -> None:
    a, b = add_image(workspace, 0), add_image(workspace, 1)
    labeling.record(workspace.conn, a, "bob", "psoriasis", "label")
    labeling.record(workspace.conn, b, "bob", "alopecia", "label")
    workspace.close()
    child = spawn(workspace, "--graphics", "blocks", "--class", "psoriasis")
    child.expect_exact("[1/1]")
    child.expect_exact("label: psoriasis   yours: (none)")
    child.send("1")
    finish(child)
    assert fresh(workspace.catalog_path)[-1] == (a, "ann", "alopecia", None, "label")
