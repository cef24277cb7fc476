"""The interactive prompt, driven in a real pseudo-terminal with pexpect."""

from __future__ import annotations

import base64
import os
import re
import shutil
import signal
import sys
import time
import tty
import zlib
from pathlib import Path

import numpy as np
import pexpect
import pytest
from PIL import Image

from curator import catalog, config, labeling, synthetic, termimage
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


def finish(child: pexpect.spawn, code: int = 0) -> str:
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == code, child.before
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
    step(child, "3", "[done 3/3]")
    step(child, "u", "[3/3]")  # the end screen still offers an undo
    child.expect_exact("Undone: folliculitis -> (none)")
    step(child, "3", "[done 3/3]")
    child.send("q")
    out = finish(child)
    assert "ann: labeled 3, excluded 0, skipped 0, undone 1; 0 still need a label." in out
    conn = catalog.connect(workspace.catalog_path)
    cfg = config.load(workspace.root / "curator.toml")
    assert labeling.current_labels(conn, cfg) == {
        s[0]: "alopecia", s[1]: "folliculitis", s[2]: "psoriasis", s[3]: EXCLUDED,
        s[4]: "alopecia", s[5]: "folliculitis",
    }
    assert len(events(conn)) == 10
    assert events(conn)[-2:] == [(s[5], "ann", None, "folliculitis", "undo"),
                                 (s[5], "ann", "folliculitis", None, "label")]
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
    child.send("\x03")  # Ctrl-C quits cleanly, like q, but exits 130 as everywhere
    out = finish(child, 130)
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
    step(child, "1", "[done 1/1]")
    child.send("q")
    finish(child)
    assert fresh(workspace.catalog_path)[-1] == (a, "ann", "alopecia", None, "label")


@pytest.mark.slow
def test_an_unreadable_image_can_still_be_excluded(workspace: Workspace) -> None:
    a = add_image(workspace, 0)
    (workspace.objects / a[:2] / a).write_bytes(b"not an image any more")
    workspace.close()
    child = spawn(workspace, "--graphics", "blocks")
    child.expect_exact("(cannot show this image: UnidentifiedImageError")
    child.expect_exact("[1/1]")
    step(child, "x", "[done 1/1]")
    child.send("q")
    finish(child)
    assert fresh(workspace.catalog_path) == [(a, "ann", EXCLUDED, None, "exclude")]


@pytest.mark.slow
def test_resized_terminal_redraws_to_fit(workspace: Workspace, six: list[str]) -> None:
    child = spawn(workspace, "--graphics", "blocks")
    # 100x40: a 96x72 image in 98x33 cells of two pixels each -> 88x66 pixels, 33 rows; text from row 35
    child.expect_exact("\x1b[35;1H\x1b[0m\x1b[2K[1/6]")
    child.setwinsize(30, 80)
    # 80x30: 78x23 cells -> 61x46 pixels, 23 rows; text from row 25
    child.expect_exact("\x1b[25;1H\x1b[0m\x1b[2K[1/6]")
    child.send("q")
    finish(child)


# ---------------------------------------------------------------------------------------------
# Terminal images


def test_halfblocks_exact_bytes() -> None:
    # Two columns, two pixel rows: each cell is fg = top pixel, bg = bottom pixel, then the upper half block.
    rgb = np.array([[[255, 0, 0], [0, 10, 100]], [[0, 0, 255], [1, 2, 3]]], dtype=np.uint8)
    assert termimage.halfblocks(rgb) == (
        b"\x1b[38;2;255;0;0;48;2;0;0;255m\xe2\x96\x80"
        b"\x1b[38;2;0;10;100;48;2;1;2;3m\xe2\x96\x80\x1b[0m\r\n"
    )
    # An odd number of pixel rows is padded with black.
    assert termimage.halfblocks(rgb[:1, :1]) == b"\x1b[38;2;255;0;0;48;2;0;0;0m\xe2\x96\x80\x1b[0m\r\n"


def test_blocks_frame_of_a_640x480_photo_is_fast_and_fits() -> None:
    data = synthetic.encode(synthetic.photo(5, 0, (640, 480)))
    times = []
    for _ in range(5):
        start = time.perf_counter()
        frame = termimage.render(data, "blocks", 80, 40)
        times.append(time.perf_counter() - start)
    assert (frame.cols, frame.rows) == (80, 30)  # 4:3 in 80 columns of square half-cells
    assert frame.data.count(b"\r\n") == 30
    assert sorted(times)[2] < 0.040, times  # the pure-Python reference is ~40 ms


def test_kitty_and_iterm_frames_decode_back() -> None:
    data = synthetic.encode(synthetic.photo(5, 0, (320, 240)))
    frame = termimage.render(data, "kitty", 40, 20, (8, 16))
    chunks = re.findall(rb"\x1b_G([^;]*);([^\x1b]*)\x1b\\", frame.data)
    assert chunks[0][0].startswith(b"a=T,f=24,o=z,s=320,v=240,c=40,r=15,q=2,m=1")
    assert chunks[-1][0] == b"m=0"
    raw = zlib.decompress(base64.b64decode(b"".join(c[1] for c in chunks)))
    assert len(raw) == 320 * 240 * 3  # shown at its own size, the terminal scales it to 40x15 cells
    frame = termimage.render(data, "iterm", 40, 20, (8, 16))
    head, payload = frame.data.split(b":", 1)
    assert head.startswith(b"\x1b]1337;File=inline=1;") and b"width=40;height=15" in head
    assert base64.b64decode(payload.rstrip(b"\x07"))[:2] == b"\xff\xd8"  # a JPEG
    frame = termimage.render(data, "sixel", 40, 20, (8, 16))
    assert frame.data.startswith(b'\x1bPq"1;1;320;240') and frame.data.endswith(b"\x1b\\")


@pytest.mark.parametrize(
    ("env", "mode"),
    [({"TERM": "xterm-kitty"}, "kitty"), ({"KITTY_WINDOW_ID": "1", "TERM": "xterm"}, "kitty"),
     ({"TERM_PROGRAM": "iTerm.app"}, "iterm"), ({"LC_TERMINAL": "iTerm2"}, "iterm"),
     ({"TERM": "foot"}, "sixel"), ({"TERM": "mlterm"}, "sixel"), ({"TERM": "xterm-256color"}, "blocks"),
     ({"TERM": "xterm-kitty", "TMUX": "/tmp/tmux-0/default,1,0"}, "blocks")],
)
def test_detect_graphics_from_the_environment(env: dict[str, str], mode: str) -> None:
    assert termimage.detect(env) == mode


@pytest.mark.parametrize(("reply", "sixel"), [(b"\x1b[?62;4;6;22c", True), (b"\x1b[?62;6;22c", False),
                                               (b"", False)])
def test_query_sixel_reads_the_da1_reply(reply: bytes, sixel: bool) -> None:
    master, slave = os.openpty()
    try:
        tty.setraw(slave)
        os.write(master, reply)  # the "terminal" answers (or not) on the other side
        assert termimage.query_sixel(slave, timeout=0.2) is sixel
        assert os.read(master, 16) == b"\x1b[c"  # the question that was asked
    finally:
        os.close(master)
        os.close(slave)


def _decode_sixel(data: bytes) -> np.ndarray:
    """A minimal sixel reader: the colour index of every pixel (-1 where none was drawn)."""
    head = re.match(rb'\x1bPq"1;1;(\d+);(\d+)', data)
    assert head and data.endswith(b"\x1b\\")
    width, height = int(head.group(1)), int(head.group(2))
    out = np.full((height, width), -1)
    band = x = 0
    colour = -1
    tokens = rb"#(\d+)(?:;2;\d+;\d+;\d+)?|!(\d+)([?-~])|([?-~])|(\$)|(-)"
    for token in re.finditer(tokens, data[head.end():-2]):
        select_colour, count, repeated, single, carriage, newline = token.groups()
        if select_colour is not None:
            colour = int(select_colour)
        elif carriage is not None:
            x = 0
        elif newline is not None:
            band, x = band + 1, 0
        else:
            n, char = (int(count), repeated[0]) if count is not None else (1, single[0])
            for r in range(6):
                if (char - 63) >> r & 1:
                    out[band * 6 + r, x:x + n] = colour
            x += n
    return out


def test_sixel_round_trips_the_quantised_pixels() -> None:
    img = synthetic.photo(9, 2, (61, 40))  # a height that is not a multiple of six
    quantized = img.quantize(colors=64, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE)
    assert np.array_equal(_decode_sixel(termimage.sixel(img)), np.asarray(quantized, dtype=np.int64))
