"""Keypress-to-next-image latency of `curator label`, and frame build time per renderer.

Builds a workspace of generated 1024x768 JPEGs (ingested with the real CLI), then
drives the real `curator label` in a pseudo-terminal with pexpect: for each image,
timestamp the keypress, and the arrival of the next frame's progress marker
``[k/N]`` (written after the image bytes, so the whole frame has arrived). Every
keypress is a real answer, committed to the catalog before the next frame.

    python benchmarks/label_latency.py                   # 30 images, blocks/kitty/iterm/sixel
    python benchmarks/label_latency.py --images 60 --think 0.5 --modes blocks,kitty

--think is the pause before each keypress (a person looks at the image first;
the prompt renders the next frames meanwhile). --think 0 measures back-to-back
keypresses, the worst case for prefetching.

The second table compares frame build times with textual-image's renderers (the
named peer) when that package is importable.
"""

from __future__ import annotations

import argparse
import functools
import io
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sized
from pathlib import Path
from typing import Any

import pexpect

from curator import synthetic, termimage

CLASSES = "alopecia,psoriasis,folliculitis"


def curator_exe() -> str:
    beside = Path(sys.executable).with_name("curator")
    return str(beside) if beside.exists() else (shutil.which("curator") or "curator")


def build_workspace(root: Path, count: int) -> Path:
    ws = root / "ws"
    subprocess.run([curator_exe(), "--workspace", str(ws), "init", "bench", "--classes", CLASSES],
                   check=True, capture_output=True)
    images = root / "images"
    for i in range(count):
        label = CLASSES.split(",")[i % 3]
        (images / label).mkdir(parents=True, exist_ok=True)
        data = synthetic.encode(synthetic.photo(1000 + i, label, (1024, 768)), "JPEG", quality=90)
        (images / label / f"{i:04d}.jpg").write_bytes(data)
    subprocess.run([curator_exe(), "--workspace", str(ws), "-q", "ingest", str(images), "--hint-from-folder"],
                   check=True, capture_output=True)
    return ws


def session(ws: Path, mode: str, think: float, size: tuple[int, int]) -> list[float]:
    """Milliseconds from each keypress to the next frame's marker."""
    child = pexpect.spawn(
        curator_exe(),
        ["--workspace", str(ws), "label", "--annotator", f"bench-{mode}", "--graphics", mode],
        env=dict(os.environ, TERM="xterm-256color"),
        dimensions=size,
        timeout=60,
        maxread=1 << 20,
        searchwindowsize=4096,  # the marker is followed by under 1 KB of text
    )
    child.delaybeforesend = None  # pexpect sleeps 50 ms before each send by default
    child.expect(rb"\[1/(\d+)\]")
    total = int(child.match.group(1))
    latencies = []
    for k in range(1, total):
        time.sleep(think)
        start = time.perf_counter()
        child.send("123"[k % 3])
        child.expect_exact(f"[{k + 1}/{total}]".encode())
        latencies.append((time.perf_counter() - start) * 1000)
    child.send("q")
    child.expect(pexpect.EOF)
    child.close()
    return latencies


def _frame_bytes(sample: bytes, mode: str, cols: int, rows: int) -> bytes:
    return termimage.render(sample, mode, cols, rows).data


def build_times(sample: bytes, cols: int, rows: int, repeat: int = 9) -> list[tuple[str, float, int]]:
    def median_ms(fn: Callable[[], Sized]) -> tuple[float, int]:
        times, size = [], 0
        for _ in range(repeat):
            start = time.perf_counter()
            size = len(fn())
            times.append((time.perf_counter() - start) * 1000)
        return statistics.median(times), size

    rows_out: list[tuple[str, float, int]] = []
    for mode in termimage.MODES:
        ms, size = median_ms(functools.partial(_frame_bytes, sample, mode, cols, rows))
        rows_out.append((f"curator {mode}", ms, size))
    try:
        from PIL import Image
        from rich.console import Console
        from textual_image.renderable.halfcell import Image as HalfCell
        from textual_image.renderable.sixel import Image as Sixel
    except ImportError:
        rows_out.append(("textual-image (not installed: pip install textual-image)", float("nan"), 0))
        return rows_out
    for name, cls in (("halfcell", HalfCell), ("sixel", Sixel)):
        def peer(cls: Any = cls) -> str:
            buf = io.StringIO()
            console = Console(file=buf, width=cols, height=rows, force_terminal=True,
                              color_system="truecolor")
            console.print(cls(Image.open(io.BytesIO(sample)), width=cols, height=None))
            return buf.getvalue()

        ms, size = median_ms(peer)
        rows_out.append((f"textual-image {name}", ms, size))
    return rows_out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=30)
    parser.add_argument("--think", type=float, default=0.3, help="seconds before each keypress")
    parser.add_argument("--modes", default="blocks,kitty,iterm,sixel")
    parser.add_argument("--size", default="50x160", help="terminal ROWSxCOLS")
    args = parser.parse_args()
    rows, cols = (int(v) for v in args.size.split("x"))
    with tempfile.TemporaryDirectory(prefix="curator-bench-") as tmp:
        ws = build_workspace(Path(tmp), args.images)
        print(f"keypress -> next image shown, {args.images} generated 1024x768 JPEGs, "
              f"terminal {cols}x{rows}, think {args.think}s")
        print(f"{'mode':<10}{'median ms':>10}{'p90 ms':>10}{'max ms':>10}")
        for mode in args.modes.split(","):
            lat = sorted(session(ws, mode, args.think, (rows, cols)))
            p90 = lat[int(0.9 * (len(lat) - 1))]
            print(f"{mode:<10}{statistics.median(lat):>10.1f}{p90:>10.1f}{lat[-1]:>10.1f}")
    sample = synthetic.encode(synthetic.photo(7, 1, (1024, 768)))
    print(f"\nframe build time for one 1024x768 JPEG in {cols - 2}x{rows - 7} cells (median of 9)")
    for name, ms, size in build_times(sample, cols - 2, rows - 7):
        print(f"{name:<58}{ms:>8.1f} ms {size / 1000:>8.0f} KB")


if __name__ == "__main__":
    main()
