"""The interactive labeling prompt behind ``curator label``.

One screen per image: the picture (see :mod:`curator.termimage`), then the
progress marker ``[17/240]``, size, source, hint and current labels, with ``--suggest``
the latest model's top two classes (curator.suggest), and the keys. Images of the blind
subset show no suggestion, hint, source or other annotator's label.
One keypress per answer, read in non-canonical mode without echo or signals
(so Ctrl-C arrives as a key and quits cleanly, never in the middle of a commit):

    class keys   label the image (1..N in class order, or [labels] keys)
    s            skip (nothing is written; the image comes back next run)
    u            undo: back one image, its previous value restored by an 'undo' event
    x            exclude (not a scalp image, or unusable): kept out of releases
    o            open the original in the system viewer (xdg-open / open)
    ?            help
    q, Ctrl-C    quit

Safety: every answer is its own committed transaction (``synchronous=FULL``)
before the next image is drawn, so a crash or ``kill -9`` loses at most the
image on screen, and the next run starts from the images still without a label.
Speed: the frames of the next images are decoded and rendered by a background
thread while the annotator looks at the current one.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import select
import shutil
import signal
import sqlite3
import struct
import subprocess
import sys
import tempfile
import termios
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from PIL import Image
from rich.console import Console

from curator import labeling, store, suggest, termimage
from curator.config import Config
from curator.workspace import Workspace

RESERVED = "suxo?q"
INFO_LINES = 6  # text lines under the image (the last may be the screen's last row)
PREFETCH = 2  # frames rendered ahead


@dataclass(frozen=True)
class Options:
    annotator: str
    review_class: str | None = None
    conflicts: bool = False
    order: str = "ingest"
    graphics: str = "auto"
    suggest: bool = False  # show the latest model's top two classes


@dataclass
class SessionResult:
    annotator: str
    shown: int = 0  # images in this session's queue
    labeled: int = 0  # net of undos
    excluded: int = 0
    skipped: int = 0
    undone: int = 0
    remaining: int = 0  # images still needing a label from this annotator, after the session
    graphics: str = ""
    events: list[str] = field(default_factory=list)
    interrupted: bool = False  # quit with Ctrl-C: the command exits 130, as everywhere

    def as_dict(self) -> dict[str, object]:
        return {
            "annotator": self.annotator, "queue": self.shown, "labeled": self.labeled,
            "excluded": self.excluded, "skipped": self.skipped, "undone": self.undone,
            "remaining": self.remaining, "graphics": self.graphics,
        }

    def render(self, console: Console) -> None:
        if self.shown == 0:
            console.print(f"Nothing to label for {self.annotator}.", markup=False)
            return
        console.print(
            f"{self.annotator}: labeled {self.labeled}, excluded {self.excluded}, skipped {self.skipped}, "
            f"undone {self.undone}; {self.remaining} still need a label.",
            markup=False,
        )


def class_keys(cfg: Config) -> dict[str, str]:
    """key -> class: [labels] keys where given, else 1..9 then free letters, in class order."""
    chosen = dict(cfg.labels.keys)
    taken = set(chosen.values()) | set(RESERVED)
    spare = iter(k for k in "123456789abcdefghijklmnprtvwyz" if k not in taken)
    for name in cfg.dataset.classes:
        if name not in chosen:
            chosen[name] = next(spare)
    return {key: name for name, key in chosen.items()}


def run(ws: Workspace, options: Options) -> SessionResult:
    """Run the prompt on the current terminal (stdin/stdout) until done or quit."""
    cfg = ws.config
    if options.suggest:
        suggest.required(ws.conn, cfg.dataset.classes, "--suggest")
    items = labeling.queue(ws.conn, cfg, options.annotator, review_class=options.review_class,
                           conflicts=options.conflicts, order=options.order)
    result = SessionResult(options.annotator, shown=len(items))
    if items:
        # Durable commits: an answer acknowledged on screen survives a power cut too.
        ws.conn.execute("PRAGMA synchronous=FULL")
        with Terminal() as term:
            mode = options.graphics if options.graphics != "auto" else term.detect_graphics()
            result.graphics = mode
            Session(ws, items, term, mode, options, result).loop()
    result.remaining = len(labeling.queue(ws.conn, cfg, options.annotator))
    return result


# ---------------------------------------------------------------------------------------------
# The terminal


class Terminal:
    """stdin/stdout in non-canonical, no-echo, no-signal mode on the alternate screen;
    everything is restored on exit, whatever the exit (exception, SIGTERM, SIGHUP)."""

    def __init__(self) -> None:
        self.fd_in = sys.stdin.fileno()
        self.fd_out = sys.stdout.fileno()
        self.resized = False
        self._saved: list[Any] | None = None
        self._handlers: dict[int, Any] = {}

    def __enter__(self) -> Terminal:
        self._saved = termios.tcgetattr(self.fd_in)
        mode = termios.tcgetattr(self.fd_in)
        mode[3] &= ~(termios.ICANON | termios.ECHO | termios.ISIG | termios.IEXTEN)
        mode[6][termios.VMIN] = 1
        mode[6][termios.VTIME] = 0
        termios.tcsetattr(self.fd_in, termios.TCSANOW, mode)
        for sig in (signal.SIGTERM, signal.SIGHUP):
            self._handlers[sig] = signal.signal(sig, _exit_on_signal)
        self._handlers[signal.SIGWINCH] = signal.signal(signal.SIGWINCH, self._on_resize)
        self.write(b"\x1b[?1049h\x1b[?25l")
        return self

    def __exit__(self, *exc: object) -> None:
        self.write(termimage.KITTY_CLEAR + b"\x1b[0m\x1b[?25h\x1b[?1049l")
        if self._saved is not None:
            termios.tcsetattr(self.fd_in, termios.TCSADRAIN, self._saved)
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)

    def _on_resize(self, signum: int, frame: FrameType | None) -> None:
        self.resized = True

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            written = os.write(self.fd_out, view)
            view = view[written:]

    def size(self) -> tuple[int, int, tuple[int, int]]:
        """(columns, rows, (cell width, cell height) in pixels)."""
        try:
            rows, cols, xpix, ypix = struct.unpack(
                "HHHH", fcntl.ioctl(self.fd_out, termios.TIOCGWINSZ, b"\0" * 8))
        except OSError:
            cols, rows, xpix, ypix = 80, 24, 0, 0
        cols, rows = cols or 80, rows or 24
        cell = (xpix // cols, ypix // rows) if xpix and ypix else termimage.DEFAULT_CELL
        return cols, rows, cell

    def read_key(self) -> str:
        """One key; escape sequences (arrows, late terminal replies) come back as 'esc'."""
        while True:
            ready, _, _ = select.select([self.fd_in], [], [], 0.25)
            if self.resized:
                self.resized = False
                return "resize"
            if not ready:
                continue
            byte = os.read(self.fd_in, 1)
            if not byte:
                return "eof"
            if byte == b"\x1b":
                while select.select([self.fd_in], [], [], 0.02)[0]:
                    if not os.read(self.fd_in, 64):
                        break
                return "esc"
            return byte.decode("latin-1")

    def detect_graphics(self) -> str:
        mode = termimage.detect(os.environ)
        term = os.environ.get("TERM", "")
        if mode == "blocks" and term not in ("", "dumb", "linux") and not os.environ.get("TMUX"):
            with contextlib.suppress(OSError):
                if termimage.query_sixel(self.fd_in):
                    return "sixel"
        return mode


def _exit_on_signal(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


# ---------------------------------------------------------------------------------------------
# Frames, rendered ahead


class Frames:
    """Renders frames in a background thread; keeps the ones near the current position."""

    def __init__(self, objects: Path, mode: str) -> None:
        self.objects = objects
        self.mode = mode
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="curator-frames")
        self.cache: dict[tuple[str, int, int, tuple[int, int]], Future[termimage.Frame]] = {}

    def get(self, sha: str, cols: int, rows: int, cell: tuple[int, int]) -> Future[termimage.Frame]:
        key = (sha, cols, rows, cell)
        if key not in self.cache:
            self.cache[key] = self.pool.submit(self._render, sha, cols, rows, cell)
        return self.cache[key]

    def keep_only(self, shas: set[str]) -> None:
        for key in [k for k in self.cache if k[0] not in shas]:
            del self.cache[key]

    def _render(self, sha: str, cols: int, rows: int, cell: tuple[int, int]) -> termimage.Frame:
        try:
            return termimage.render(store.read(self.objects, sha), self.mode, cols, rows, cell)
        except (OSError, ValueError, Image.DecompressionBombError) as err:
            # Still labelable (x exclude is the likely answer): say why there is no picture.
            text = f"(cannot show this image: {type(err).__name__}: {err})"[: max(cols, 10)]
            return termimage.Frame(text.encode() + b"\r\n", len(text), 1)

    def close(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class _Answer:
    pos: int
    previous: str | None  # the annotator's label before this answer
    label: str | None  # None: skipped


class Cursor:
    """One annotator's walk through a queue, shared by this prompt and the label page of
    ``curator serve``: an answer is a committed event before the position moves on, a skip
    writes nothing, an undo goes back one image and restores its previous value. Each event
    records whether a suggestion was on screen (``suggest``: the prompt's --suggest; the
    web page shows none)."""

    def __init__(self, conn: sqlite3.Connection, items: list[labeling.Item], annotator: str,
                 result: SessionResult, *, suggest: bool = False) -> None:
        self.conn = conn
        self.items = items
        self.annotator = annotator
        self.result = result
        self.suggest = suggest
        self.history: list[_Answer] = []
        self.pos = 0

    @property
    def done(self) -> bool:
        return self.pos >= len(self.items)

    def shows_suggestion(self, item: labeling.Item) -> bool:
        return self.suggest and item.suggestion is not None  # blind images carry none

    def answer(self, label: str, action: str) -> None:
        item = self.items[self.pos]
        # Committed before anything else happens: the next image appears only after this.
        previous = labeling.record(self.conn, item.sha256, self.annotator, label, action,
                                   self.shows_suggestion(item))
        self.history.append(_Answer(self.pos, previous, label))
        if label == labeling.EXCLUDED:
            self.result.excluded += 1
        else:
            self.result.labeled += 1
        self.pos += 1

    def skip(self) -> None:
        self.history.append(_Answer(self.pos, None, None))
        self.result.skipped += 1
        self.pos += 1

    def undo(self) -> str:
        """Go back one answer; a message saying what happened."""
        if not self.history:
            return "Nothing to undo in this session"
        last = self.history.pop()
        self.pos = last.pos
        if last.label is None:
            self.result.skipped -= 1
            return "Back to the skipped image"
        item = self.items[last.pos]
        labeling.record(self.conn, item.sha256, self.annotator, last.previous, "undo",
                        self.shows_suggestion(item))
        self.result.undone += 1
        if last.label == labeling.EXCLUDED:
            self.result.excluded -= 1
        else:
            self.result.labeled -= 1
        return f"Undone: {_name(last.label)} -> {_name(last.previous)}"


class Session:
    def __init__(self, ws: Workspace, items: list[labeling.Item], term: Terminal, mode: str,
                 options: Options, result: SessionResult) -> None:
        self.ws = ws
        self.items = items
        self.term = term
        self.mode = mode
        self.annotator = options.annotator
        self.keys = class_keys(ws.config)
        self.frames = Frames(ws.objects, mode)
        self.cursor = Cursor(ws.conn, items, options.annotator, result, suggest=options.suggest)
        self.message = ""

    @property
    def pos(self) -> int:
        return self.cursor.pos

    def loop(self) -> None:
        try:
            while True:
                if self.cursor.done:
                    # The end: one last chance to undo before leaving.
                    self.draw_done()
                    if self.term.read_key() != "u":
                        return
                    self.message = self.cursor.undo()
                    continue
                self.draw()
                if not self.handle(self.term.read_key()):
                    return
        finally:
            self.frames.close()

    def draw_done(self) -> None:
        lines = [f"[done {len(self.items)}/{len(self.items)}]  Every image in this session has an answer.",
                 "u undo the last answer  |  any other key quits"]
        self.term.write(b"\x1b[0m\x1b[H\x1b[2J" + termimage.KITTY_CLEAR + "\r\n".join(lines).encode())

    def handle(self, key: str) -> bool:
        """Act on one key; False to quit."""
        self.message = ""
        if key in ("q", "\x03", "\x04", "eof"):
            self.cursor.result.interrupted = key == "\x03"
            return False
        if key in self.keys:
            self.cursor.answer(self.keys[key], "label")
        elif key == "x":
            self.cursor.answer(labeling.EXCLUDED, "exclude")
        elif key == "s":
            self.cursor.skip()
        elif key == "u":
            self.message = self.cursor.undo()
        elif key == "o":
            self.message = open_in_viewer(self.ws.objects, self.items[self.pos])
        elif key == "?":
            self.show_help()
        elif key not in ("resize", "esc"):
            self.message = f"Key {key!r} does nothing here; press ? for help"
        return True

    def draw(self) -> None:
        cols, rows, cell = self.term.size()
        area_cols, area_rows = max(cols - 2, 10), max(rows - INFO_LINES - 1, 4)
        item = self.items[self.pos]
        frame = self.frames.get(item.sha256, area_cols, area_rows, cell).result()
        ahead = self.items[self.pos + 1:self.pos + 1 + PREFETCH]
        for nxt in ahead:
            self.frames.get(nxt.sha256, area_cols, area_rows, cell)
        near = {i.sha256 for i in self.items[max(self.pos - 2, 0):self.pos + 1 + PREFETCH]}
        self.frames.keep_only(near)
        pad = max((cols - frame.cols) // 2, 0)
        out = [b"\x1b[0m\x1b[H\x1b[2J"]
        if self.mode == "kitty":
            out.append(termimage.KITTY_CLEAR)
        out.append(f"\x1b[1;{pad + 1}H".encode())
        if self.mode == "blocks":
            out.append(frame.data.replace(b"\r\n", b"\r\n" + f"\x1b[{pad}C".encode() if pad else b"\r\n"))
        else:
            out.append(frame.data)
        top = min(frame.rows, area_rows) + 2
        for i, line in enumerate(self.info_lines(item)):
            out.append(f"\x1b[{top + i};1H\x1b[0m\x1b[2K".encode() + _fit(line, cols).encode())
        self.term.write(b"".join(out))

    def info_lines(self, item: labeling.Item) -> list[str]:
        keys = "  ".join(f"{k} {c}" for k, c in self.keys.items())
        if item.blind:  # a source's folder names are hints too
            known = [f"source: {BLIND}", f"hint: {BLIND}   label: {BLIND}   yours: {_name(item.mine)}"]
        else:
            known = [f"source: {item.source or '-'}",
                     f"hint: {item.hint or '-'}   label: {_name(item.label)}   yours: {_name(item.mine)}"]
        lines = [
            f"[{self.pos + 1}/{len(self.items)}]  {item.width}x{item.height} {item.format} "
            f"{_size(item.bytes)}  {item.sha256[:12]}  {self.annotator}",
            *known,
        ]
        if self.cursor.suggest:
            lines.append(_suggestion(item))
        return [*lines, f"{keys}  |  s skip  u undo  x exclude  o open  ? help  q quit", self.message]

    def show_help(self) -> None:
        lines = ["curator label: one key per image", ""]
        lines += [f"  {k}   {c}" for k, c in self.keys.items()]
        lines += [
            "  s   skip (it comes back next time)",
            "  u   undo: back one image, restoring its previous value",
            "  x   exclude: not a scalp image, or unusable (kept out of releases)",
            "  o   open the original in the system viewer",
            "  q   quit (Ctrl-C too); every answer is already saved",
            "",
            "Press any key to go back.",
        ]
        self.term.write(b"\x1b[0m\x1b[H\x1b[2J" + termimage.KITTY_CLEAR
                        + "\r\n".join(lines).encode() + b"\r\n")
        self.term.read_key()


BLIND = "hidden (blind subset)"


def _suggestion(item: labeling.Item) -> str:
    if item.blind:
        return f"model: {BLIND}"
    return suggest.describe(item.suggestion) if item.suggestion else "model: no prediction for this image"


def _name(label: str | None) -> str:
    if label is None:
        return "(none)"
    return "excluded" if label == labeling.EXCLUDED else label


def _size(n: int) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.0f} KB"


def _fit(text: str, width: int) -> str:
    return text if len(text) < width else text[: max(width - 2, 0)] + "…"


EXTENSIONS = {"JPEG": ".jpg", "PNG": ".png", "WEBP": ".webp", "GIF": ".gif", "BMP": ".bmp", "TIFF": ".tif"}


def open_in_viewer(objects: Path, item: labeling.Item) -> str:
    """Open a copy of the original (with a file extension) in the system viewer; a message."""
    opener = "open" if sys.platform == "darwin" else "xdg-open"
    exe = shutil.which(opener)
    if exe is None:
        return f"No system image viewer found ({opener} is not installed)"
    folder = Path(tempfile.gettempdir()) / "curator-view"
    folder.mkdir(exist_ok=True)
    copy = folder / (item.sha256[:16] + EXTENSIONS.get(item.format, ""))
    copy.write_bytes(store.read(objects, item.sha256))
    with open(os.devnull, "wb") as devnull:
        subprocess.Popen([exe, str(copy)], stdin=subprocess.DEVNULL, stdout=devnull, stderr=devnull,
                         start_new_session=True)
    return f"Opened {copy.name} with {opener}"
