"""`curator serve` run for real in a subprocess, for the serve tests."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.test_prompt import curator_exe

START_TIMEOUT = 60  # bounded: the server prints its links within seconds on 2 shared cores


@dataclass
class Served:
    proc: subprocess.Popen[str]
    links: dict[str, str]
    log: Path

    @property
    def base(self) -> str:
        url = next(iter(self.links.values()))
        return url.split("/label?")[0]

    def token(self, who: str) -> str:
        return self.links[who].split("token=")[1]


@contextmanager
def serving(root: Path, *args: str) -> Iterator[Served]:
    """Start `curator --json serve ARGS` on ROOT, read its links, stop it on exit (SIGTERM)."""
    log = root.parent / "serve-stderr.log"
    with open(log, "w") as err:
        proc = subprocess.Popen(
            [curator_exe(), "--workspace", str(root), "--json", "serve", *args],
            stdout=subprocess.PIPE, stderr=err, text=True, env=dict(os.environ),
        )
    try:
        assert proc.stdout is not None
        lines = []
        while True:  # the JSON result is printed once the socket listens
            line = proc.stdout.readline()
            assert line, f"curator serve exited: {log.read_text()}"
            lines.append(line)
            if line.rstrip() == "}":
                break
        result = json.loads("".join(lines))
        yield Served(proc, result["links"], log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=START_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
