"""The interactive review prompt behind ``curator review``: one open finding at a time, worst first.

It reuses the labeling prompt's terminal (curator.prompt.Terminal: raw keys, alternate
screen, restored on any exit), its frame renderer and its safety: every decision is its
own committed transaction (``synchronous=FULL``) before the next finding is drawn, so a
crash or ``kill -9`` loses at most the finding on screen.

    k   keep (a real problem, but the image stays)      x   exclude from releases
    n   not a problem                                    r   relabel: then a class key
    a   accept the suggested label (label issues)        s   skip       u   undo
    o   open the original                                ?   help       q   quit
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import dataclass, field
from typing import Any

from rich.console import Console

from curator import labeling, prompt, termimage
from curator.review import findings
from curator.workspace import Workspace

INFO_LINES = 7
KEYS = {"k": "keep", "x": "exclude", "n": "not-a-problem"}


@dataclass
class ReviewResult:
    reviewer: str
    shown: int = 0
    decided: int = 0  # net of undos
    skipped: int = 0
    undone: int = 0
    remaining: int = 0
    decisions: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"reviewer": self.reviewer, "queue": self.shown, "decided": self.decided,
                "skipped": self.skipped, "undone": self.undone, "remaining": self.remaining}

    def render(self, console: Console) -> None:
        if self.shown == 0:
            console.print("No open findings to review.", markup=False)
            return
        console.print(f"{self.reviewer}: decided {self.decided}, skipped {self.skipped}, "
                      f"undone {self.undone}; {self.remaining} findings still open.", markup=False)


def run(ws: Workspace, reviewer: str, graphics: str = "auto", kind: str | None = None) -> ReviewResult:
    items = findings.listing(ws.conn, kind=kind, open_only=True)
    result = ReviewResult(reviewer, shown=len(items))
    if items:
        ws.conn.execute("PRAGMA synchronous=FULL")
        with prompt.Terminal() as term:
            mode = graphics if graphics != "auto" else term.detect_graphics()
            _Session(ws, items, term, mode, reviewer, result).loop()
    result.remaining = len(findings.listing(ws.conn, open_only=True))
    return result


def siblings(conn: sqlite3.Connection, sha256: str) -> list[str]:
    """The other images of ``sha256``'s near-duplicate cluster."""
    rows = conn.execute(
        "SELECT sha256 FROM images WHERE cluster_id = (SELECT cluster_id FROM images WHERE sha256 = ?)"
        " AND sha256 != ? ORDER BY sha256", (sha256, sha256),
    )
    return [row[0] for row in rows]


class Cursor:
    """One reviewer's walk through the open findings, shared by this prompt and the review page
    of ``curator serve``: a decision is a committed event before the position moves on, a skip
    writes nothing, an undo goes back one finding and takes its decision back."""

    def __init__(self, ws: Workspace, items: list[dict[str, Any]], reviewer: str,
                 result: ReviewResult) -> None:
        self.ws, self.items, self.reviewer, self.result = ws, items, reviewer, result
        self.history: list[tuple[int, bool]] = []  # (position, decided: False for a skip)
        self.pos = 0

    @property
    def done(self) -> bool:
        return self.pos >= len(self.items)

    def decide(self, decision: str, label: str | None) -> None:
        item = self.items[self.pos]
        # Committed before anything else happens: the next finding appears only after this.
        classes = self.ws.config.dataset.classes
        findings.decide(self.ws.conn, item["id"], self.reviewer, decision, label, classes)
        self.history.append((self.pos, True))
        self.result.decided += 1
        self.pos += 1

    def skip(self) -> None:
        self.history.append((self.pos, False))
        self.result.skipped += 1
        self.pos += 1

    def undo(self) -> str:
        """Go back one finding; a message saying what happened."""
        if not self.history:
            return "Nothing to undo in this session"
        pos, decided = self.history.pop()
        self.pos = pos
        if not decided:
            self.result.skipped -= 1
            return "Back to the skipped finding"
        status = findings.undo(self.ws.conn, self.items[pos]["id"], self.reviewer)
        self.result.decided -= 1
        self.result.undone += 1
        return f"Undone: back to {status}"


class _Session:
    def __init__(self, ws: Workspace, items: list[dict[str, Any]], term: prompt.Terminal, mode: str,
                 reviewer: str, result: ReviewResult) -> None:
        self.ws, self.items, self.term, self.mode = ws, items, term, mode
        self.reviewer = reviewer
        self.classes = prompt.class_keys(ws.config)
        self.frames = prompt.Frames(ws.objects, mode)
        self.cursor = Cursor(ws, items, reviewer, result)
        self.message = ""
        self.relabeling = False

    @property
    def pos(self) -> int:
        return self.cursor.pos

    def loop(self) -> None:
        try:
            while not self.cursor.done:
                self.draw()
                if not self.handle(self.term.read_key()):
                    return
        finally:
            self.frames.close()

    def handle(self, key: str) -> bool:
        self.message = ""
        item = self.items[self.pos]
        if key in ("q", "\x03", "\x04", "eof"):
            return False
        if self.relabeling:
            self.relabeling = False
            if key in self.classes:
                self.cursor.decide("relabel", self.classes[key])
            else:
                self.message = "Relabel cancelled"
        elif key in KEYS:
            self.cursor.decide(KEYS[key], None)
        elif key == "r":
            self.relabeling = True
            self.message = "Relabel to: " + "  ".join(f"{k} {c}" for k, c in self.classes.items())
        elif key == "a" and item.get("suggested_label"):
            self.cursor.decide("relabel", item["suggested_label"])
        elif key == "s":
            self.cursor.skip()
        elif key == "u":
            self.message = self.cursor.undo()
        elif key == "o":
            self.message = prompt.open_in_viewer(self.ws.objects, _as_item(self.ws, item))
        elif key == "?":
            self.term.write(b"\x1b[0m\x1b[H\x1b[2J" + termimage.KITTY_CLEAR
                            + (__doc__ or "").replace("\n", "\r\n").encode() + b"\r\nPress any key.")
            self.term.read_key()
        elif key not in ("resize", "esc"):
            self.message = f"Key {key!r} does nothing here; press ? for help"
        return True

    def draw(self) -> None:
        cols, rows, cell = self.term.size()
        area_cols, area_rows = max(cols - 2, 10), max(rows - INFO_LINES - 1, 4)
        item = self.items[self.pos]
        frame = self.frames.get(item["sha256"], area_cols, area_rows, cell).result()
        for nxt in self.items[self.pos + 1 : self.pos + 1 + prompt.PREFETCH]:
            self.frames.get(nxt["sha256"], area_cols, area_rows, cell)
        self.frames.keep_only({i["sha256"] for i in self.items[max(self.pos - 2, 0) : self.pos + 3]})
        out = [b"\x1b[0m\x1b[H\x1b[2J", termimage.KITTY_CLEAR if self.mode == "kitty" else b"", b"\x1b[1;1H",
               frame.data]
        top = min(frame.rows, area_rows) + 2
        for i, line in enumerate(self.info_lines(item)):
            out.append(f"\x1b[{top + i};1H\x1b[0m\x1b[2K".encode() + prompt._fit(line, cols).encode())
        self.term.write(b"".join(out))

    def info_lines(self, item: dict[str, Any]) -> list[str]:
        detail = {k: v for k, v in item["detail"].items() if k != "top"}
        lines = [
            f"[{self.pos + 1}/{len(self.items)}]  {item['kind']}  score {item['score']:.2f}  "
            f"{item['sha256'][:12]}  {self.reviewer}",
            "finding: " + json.dumps(detail, sort_keys=True),
        ]
        if item["kind"] == "label-issue":
            top = ", ".join(f"{name} {p:.2f}" for name, p in item["detail"].get("top", []))
            lines.append(f"given {item['given_label']}  suggested {item['suggested_label']}  model: {top}")
        others = siblings(self.ws.conn, item["sha256"])
        lines.append(f"cluster siblings: {len(others)} " + " ".join(s[:10] for s in others[:6]))
        lines.append("k keep  x exclude  n not a problem  r relabel  a accept suggestion  "
                     "s skip  u undo  o open  ? help  q quit")
        lines.append(self.message)
        return lines


def _as_item(ws: Workspace, item: dict[str, Any]) -> labeling.Item:
    row = ws.conn.execute("SELECT cluster_id, width, height, format, bytes FROM images WHERE sha256 = ?",
                          (item["sha256"],)).fetchone()
    return labeling.Item(sha256=item["sha256"], cluster_id=row[0], width=row[1], height=row[2], format=row[3],
                         bytes=row[4], source="", hint="", label=None, mine=None)
