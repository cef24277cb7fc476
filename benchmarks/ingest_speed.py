"""Ingest speed and memory: `curator ingest` vs img2dataset on the same URLs from the same loopback server.

    python benchmarks/ingest_speed.py                 # 2,027 URLs, latency 0 and 200 ms, both tools
    python benchmarks/ingest_speed.py --urls 400 --latencies 0 --skip-img2dataset   # a quick sanity run

The images are generated once (synthetic 640x480 JPEGs: 1,000 photos, each with
one near copy -- re-encoded, mirrored, cropped, brighter, lower contrast, resized
or rotated 4 degrees -- plus 27 URLs repeating earlier bytes) and cached in ``--cache``.
Both tools run as subprocesses against one threaded server on 127.0.0.1, taking
turns at going first; each is timed from start to exit (start-up included), and its
tree of processes is sampled every 50 ms for two peaks: the largest single process's
(its VmHWM) and the whole tree's summed RSS.

img2dataset runs from its own venv (``--img2dataset /tmp/i2d/bin/img2dataset``;
create it with ``python -m venv /tmp/i2d && /tmp/i2d/bin/pip install img2dataset``)
with ``--processes_count 2 --thread_count 256 --output_format files``.
curator runs with ``--concurrency 256 --per-host 256`` (everything is on one host
here, and img2dataset has no per-host limit), robots.txt and noai checks on,
hashing and dedup included.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.imageserver import ImageServer, Reply  # noqa: E402

BASES = 1000
VARIANTS = 2
CLASSES = ("alopecia", "psoriasis", "folliculitis")


def _variants(seed: int) -> list[bytes]:
    """A photo and one near copy of it (which transform depends on the seed)."""
    from PIL import Image, ImageEnhance

    from curator import synthetic

    img = synthetic.photo(seed, CLASSES[seed % 3], (640, 480))
    copies = [
        lambda: synthetic.encode(img, "JPEG", quality=60),
        lambda: synthetic.encode(img.transpose(Image.Transpose.FLIP_LEFT_RIGHT), "JPEG"),
        lambda: synthetic.encode(img.crop((16, 12, 624, 468)).resize((640, 480)), "JPEG"),
        lambda: synthetic.encode(ImageEnhance.Brightness(img).enhance(1.15), "JPEG"),
        lambda: synthetic.encode(ImageEnhance.Contrast(img).enhance(0.85), "JPEG"),
        lambda: synthetic.encode(img.resize((480, 360)), "JPEG"),
        lambda: synthetic.encode(img.rotate(4, expand=False), "JPEG"),
    ]
    return [synthetic.encode(img, "JPEG", quality=90), copies[seed % len(copies)]()][:VARIANTS]


def images(cache: Path, count: int) -> list[Path]:
    """The generated JPEGs (made once, in parallel, then read from the cache)."""
    cache.mkdir(parents=True, exist_ok=True)
    bases = min(BASES, -(-count // VARIANTS))
    missing = [s for s in range(bases) if not (cache / f"{s:04d}-{VARIANTS - 1}.jpg").exists()]
    if missing:
        print(f"generating {len(missing) * VARIANTS} images into {cache} (once)...", file=sys.stderr)
        with ProcessPoolExecutor() as pool:
            for seed, blobs in zip(missing, pool.map(_variants, missing, chunksize=4), strict=True):
                for k, blob in enumerate(blobs):
                    (cache / f"{seed:04d}-{k}.jpg").write_bytes(blob)
    return [cache / f"{s:04d}-{k}.jpg" for s in range(bases) for k in range(VARIANTS)]


def serve(server: ImageServer, files: list[Path], count: int) -> list[str]:
    server.route("/robots.txt", Reply(body=b"User-agent: *\nAllow: /\n", content_type="text/plain"))
    urls = []
    for i, path in enumerate(files[: count - count // 75]):
        urls.append(server.route(f"/img/{i}.jpg", Reply(body=path.read_bytes())))
    for j in range(count - len(urls)):  # the same bytes again under another URL
        urls.append(server.route(f"/copy/{j}.jpg", Reply(body=files[j * 7].read_bytes())))
    return urls


class TreeRss:
    """Samples a process and its descendants: the peak of their summed RSS, and the largest
    peak RSS of any one of them (its VmHWM, which starts afresh at exec).

    Not ``wait4``'s ru_maxrss: a child keeps the RSS its parent had when it forked, so that
    reported this benchmark's own size (~300 MB once both servers had run) for both tools.
    """

    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self.largest, self._stop = pid, 0, 0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            status = [_status(p) for p in _tree(self.pid)]
            self.peak = max(self.peak, sum(s.get("VmRSS:", 0) for s in status))
            self.largest = max(self.largest, *(s.get("VmHWM:", 0) for s in status))

    def stop(self) -> tuple[int, int]:
        self._stop.set()
        self._thread.join()
        return self.largest, self.peak


def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                todo += [int(c) for c in Path(f"/proc/{p}/task/{task}/children").read_text().split()]
        except OSError:
            pass
    return out


def _status(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM of a process, in bytes (empty once it is gone)."""
    sizes = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(("VmRSS:", "VmHWM:")):
                key, value, _unit = line.split()
                sizes[key] = int(value) * 1024
    except OSError:
        pass
    return sizes


def timed(cmd: list[str], cwd: Path) -> tuple[float, int, int, int]:
    """(seconds, exit code, peak RSS of the largest process, peak summed tree RSS) of one command."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    sampler = TreeRss(proc.pid)
    stderr = proc.stderr.read() if proc.stderr else b""
    proc.wait()
    seconds = time.perf_counter() - start
    largest, tree = sampler.stop()
    if proc.returncode:
        print(stderr.decode(errors="replace")[-2000:], file=sys.stderr)
    return seconds, proc.returncode, largest, tree


def run_curator(urls: Path, work: Path) -> tuple[float, int, int, int, str]:
    curator = [sys.executable, "-c", "from curator.cli import main; main()"]
    ws = work / "ws"
    subprocess.run([*curator, "--workspace", str(ws), "init", "bench", "--classes", ",".join(CLASSES)],
                   check=True, stdout=subprocess.DEVNULL)
    cmd = [*curator, "--workspace", str(ws), "--json", "ingest", str(urls),
           "--concurrency", "256", "--per-host", "256"]
    seconds, code, rss, tree = timed(cmd, work)
    status = [*curator, "--workspace", str(ws), "--json", "status"]
    out = subprocess.run(status, capture_output=True, text=True)
    return seconds, code, rss, tree, out.stdout


def run_img2dataset(exe: str, urls: Path, work: Path) -> tuple[float, int, int, int]:
    cmd = [exe, "--url_list", str(urls), "--input_format", "txt", "--output_folder", str(work / "i2d"),
           "--processes_count", "2", "--thread_count", "256", "--output_format", "files"]
    return timed(cmd, work)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--urls", type=int, default=2027)
    parser.add_argument("--latencies", default="0,0.2", help="seconds added to every reply, comma-separated")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "curator-bench-images-v2")
    parser.add_argument("--img2dataset", default="/tmp/i2d/bin/img2dataset")
    parser.add_argument("--skip-img2dataset", action="store_true")
    parser.add_argument("--repeat", type=int, default=3, help="runs per tool and latency; medians printed")
    args = parser.parse_args()
    files = images(args.cache, args.urls)
    have_i2d = not args.skip_img2dataset and Path(args.img2dataset).exists()
    if not have_i2d and not args.skip_img2dataset:
        print(f"img2dataset not found at {args.img2dataset}: its column is left empty", file=sys.stderr)
    rows = []
    # Every run's output stays until the end: on ext4, creating files in the seconds after
    # thousands were deleted costs several times the usual system CPU, so deleting a run's
    # output before the next run taxed whichever tool came next.
    with tempfile.TemporaryDirectory() as tmp:
        for latency in (float(x) for x in args.latencies.split(",")):
            with ImageServer(latency=latency) as server:
                work = Path(tmp) / f"latency-{latency}"
                work.mkdir()
                urls = work / "urls.txt"
                urls.write_text("\n".join(serve(server, files, args.urls)) + "\n")
                curs, i2ds = [], []
                for attempt in range(args.repeat):
                    run_dir = work / f"run{attempt}"
                    run_dir.mkdir()
                    # Alternate which tool goes first, so drift and warm caches favour neither.
                    for tool in ("curator", "img2dataset")[:: 1 if attempt % 2 == 0 else -1]:
                        if tool == "curator":
                            curs.append(run_curator(urls, run_dir))
                        elif have_i2d:
                            i2ds.append(run_img2dataset(args.img2dataset, urls, run_dir))
                rows.append((latency, _median_run(curs), _median_run(i2ds) if i2ds else None))
            print(f"latency {latency}: curator s {[round(c[0], 2) for c in curs]}, "
                  f"img2dataset s {[round(i[0], 2) for i in i2ds]}", file=sys.stderr)
    print(f"medians of {args.repeat} runs each")
    _print(rows, args.urls)


def _median_run(runs: list[Any]) -> Any:
    """The run with the median wall time, with the highest peak RSS seen in any run."""
    ordered = sorted(runs, key=lambda r: r[0])
    middle = list(ordered[len(ordered) // 2])
    middle[2] = max(r[2] for r in runs)
    middle[3] = max(r[3] for r in runs)
    return tuple(middle)


def _print(rows: list[Any], count: int) -> None:
    mb = 1024 * 1024
    print(f"{count} URLs, 640x480 JPEGs, loopback server; RSS = largest process / whole tree")
    print(f"{'latency':>8} | {'curator s':>9} {'URL/s':>7} {'RSS MB':>13} | "
          f"{'img2dataset s':>13} {'URL/s':>7} {'RSS MB':>13} | {'time ratio':>10}")
    for latency, cur, i2d in rows:
        c_s, c_code, c_rss, c_tree, _ = cur
        line = (f"{latency * 1000:>6.0f}ms | {c_s:>9.2f} {count / c_s:>7.0f} "
                f"{c_rss / mb:>6.0f}/{c_tree / mb:<6.0f}{'' if c_code == 0 else ' FAILED'} | ")
        if i2d:
            i_s, i_code, i_rss, i_tree = i2d
            line += (f"{i_s:>13.2f} {count / i_s:>7.0f} {i_rss / mb:>6.0f}/{i_tree / mb:<6.0f} | "
                     f"{c_s / i_s:>10.2f}{'' if i_code == 0 else ' (img2dataset FAILED)'}")
        else:
            line += f"{'-':>13} {'-':>7} {'-':>13} | {'-':>10}"
        print(line)
    print("curator status after the last run:", rows[-1][1][4].replace("\n", " ")[:600])


if __name__ == "__main__":
    main()
