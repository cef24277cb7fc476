"""The one output object: results to stdout, everything else to stderr.

Commands hand results to :meth:`Output.result` (a JSON-able value plus a renderer
for humans); messages, warnings and progress go to stderr. ``--json`` prints
results as JSON, ``--quiet`` drops messages (warnings and errors stay), and
progress bars appear only when stderr is a terminal.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

ProgressCallback = Callable[[int], None]
"""Stages report progress by calling this with the number of items just finished."""


def _ignore(n: int = 1) -> None:
    pass


_URL_PASSWORD = re.compile(r"(://[^/\s:@]+:)[^/\s@]+@")
_BEARER = re.compile(r"((?:Bearer|token)[\s=:]+)[A-Za-z0-9_.~+/-]{8,}", re.IGNORECASE)
_HF_TOKEN = re.compile(r"\bhf_[A-Za-z0-9]{8,}")


def scrub(text: str) -> str:
    """``text`` without the Hub token (``HF_TOKEN`` or the saved login), bearer tokens and
    URL passwords: everything curator prints goes through here, tracebacks included."""
    for secret in _known_tokens():
        text = text.replace(secret, "***")
    text = _URL_PASSWORD.sub(r"\1***@", text)
    text = _BEARER.sub(r"\1***", text)
    return _HF_TOKEN.sub("hf_***", text)


def _known_tokens() -> list[str]:
    tokens = [os.environ.get("HF_TOKEN") or "", os.environ.get("HUGGING_FACE_HUB_TOKEN") or ""]
    try:
        from huggingface_hub import get_token

        tokens.append(get_token() or "")
    except Exception:  # noqa: BLE001 - scrubbing must never fail; the patterns still apply
        pass
    return [t for t in tokens if len(t) >= 4]


class Output:
    def __init__(self, *, json_mode: bool = False, quiet: bool = False) -> None:
        self.json_mode = json_mode
        self.quiet = quiet
        self.out = Console(file=sys.stdout, highlight=False, soft_wrap=True)
        self.err = Console(file=sys.stderr, highlight=False, soft_wrap=True)

    def result(self, value: Any, render: Callable[[Console], None] | None = None) -> None:
        """Print a command's result: JSON with --json, else ``render`` (or the value's repr)."""
        if self.json_mode or render is None:
            sys.stdout.write(json.dumps(value, indent=2, sort_keys=False, default=str) + "\n")
            sys.stdout.flush()
        else:
            render(self.out)

    def info(self, message: str) -> None:
        if not self.quiet:
            self.err.print(scrub(message), markup=False)

    def warn(self, message: str) -> None:
        self.err.print(f"Warning: {scrub(message)}", markup=False, style="yellow")

    def error(self, message: str, hint: str | None = None, *, code: int | None = None) -> None:
        """``Error: <message>`` and an optional ``Hint:`` line; with --json one JSON object
        ``{"error": ..., "hint": ..., "exit_code": ...}`` on stderr instead."""
        if self.json_mode:
            value = {"error": scrub(message), "hint": scrub(hint) if hint else None, "exit_code": code}
            sys.stderr.write(json.dumps(value) + "\n")
            sys.stderr.flush()
            return
        self.err.print(f"Error: {scrub(message)}", markup=False, style="bold red")
        if hint:
            self.err.print(f"Hint: {scrub(hint)}", markup=False)

    def traceback(self, err: BaseException) -> None:
        """The whole exception chain, scrubbed (for ``CURATOR_DEBUG=1``)."""
        import traceback

        sys.stderr.write(scrub("".join(traceback.format_exception(err))))
        sys.stderr.flush()

    @contextlib.contextmanager
    def progress(self, description: str, total: int | None) -> Iterator[ProgressCallback]:
        """A progress bar with rate on a TTY; a silent callback otherwise."""
        if self.quiet or self.json_mode or not self.err.is_terminal:
            yield _ignore
            return
        if total is None:  # a count and a rate, not "150/?"
            columns = [TextColumn("{task.description}"), TextColumn("{task.completed:.0f} done"),
                       TextColumn("{task.fields[rate]}"), TimeElapsedColumn()]
        else:
            columns = [
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TaskProgressColumn(),
                TextColumn("{task.fields[rate]}"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            ]
        with Progress(*columns, console=self.err, transient=False) as bar:
            task = bar.add_task(description, total=total, rate="")

            def advance(n: int = 1) -> None:
                bar.advance(task, n)
                speed = bar.tasks[0].speed
                bar.update(task, rate=f"{speed:.1f}/s" if speed else "")

            yield advance
