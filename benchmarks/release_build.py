"""Release build time: `curator release` on N labelled images, by stage, next to a plain `datasets` write.

    python benchmarks/release_build.py                        # 2,000 photos 640x480, 3 runs
    python benchmarks/release_build.py --images 150 --runs 1  # a quick sanity run

The photos are generated once (synthetic.photo, JPEG, three classes 50/30/20 so
that oversampling adds rows, cached in ``--cache``), ingested from a folder with
``--hint-from-folder`` and labelled with ``label --accept-hints`` into a template
workspace. Each run copies the template
and times:

    cli      `curator release` as a subprocess, start-up and imports included
    stages   release.build in-process with on_stage: plan, images (read originals +
             preprocess on every core + balance), write (parquet + manifest + card),
             verify (load_dataset + cross-split leak check), record (catalog)

The peer is what the study's pipeline would do with `datasets` alone: load the
same originals as an imagefolder and write parquet (no preprocessing, split,
balancing, card or checks), timed the same way in-process.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLASSES = ("alopecia", "psoriasis", "folliculitis")
STAGES = ("plan", "images", "write", "verify", "record")


def label_of(seed: int) -> str:
    """50% / 30% / 20%: imbalanced like scraped data, so oversampling has work to do."""
    return CLASSES[0 if seed % 10 < 5 else 1 if seed % 10 < 8 else 2]


def _make(job: tuple[Path, int, int, int]) -> None:
    from curator import synthetic

    folder, seed, width, height = job
    label = label_of(seed)
    path = folder / label / f"{seed:05d}.jpg"
    if not path.exists():
        path.write_bytes(synthetic.encode(synthetic.photo(seed, label, (width, height)), "JPEG"))


def generate(folder: Path, count: int, width: int, height: int) -> None:
    for label in CLASSES:
        (folder / label).mkdir(parents=True, exist_ok=True)
    with ProcessPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(_make, [(folder, seed, width, height) for seed in range(count)], chunksize=16))


def curator(*args: str, workspace: Path) -> float:
    start = time.perf_counter()
    command = [sys.executable, "-c", "from curator.cli import main; main()", "--workspace", str(workspace)]
    subprocess.run([*command, *args], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    return time.perf_counter() - start


def template(images: Path, root: Path) -> Path:
    ws = root / "template"
    curator("init", "bench", "--classes", ",".join(CLASSES), workspace=ws)
    seconds = curator("ingest", str(images), "--hint-from-folder", workspace=ws)
    print(f"setup: ingest {seconds:.1f} s", flush=True)
    curator("label", "--accept-hints", workspace=ws)
    return ws


def staged_build(ws: Path) -> dict[str, float]:
    from curator import release
    from curator.workspace import open_workspace

    marks: list[tuple[str, float]] = []
    opened = open_workspace(ws)
    try:
        release.build(opened, on_stage=lambda name: marks.append((name, time.perf_counter())))
    finally:
        opened.close()
    end = time.perf_counter()
    times = {name: (marks[i + 1][1] if i + 1 < len(marks) else end) - t for i, (name, t) in enumerate(marks)}
    times["total"] = end - marks[0][1]
    return times


def peer(images: Path, out: Path) -> float:
    """datasets alone: imagefolder -> parquet, same originals."""
    import datasets

    datasets.disable_progress_bars()
    start = time.perf_counter()
    loaded = datasets.load_dataset("imagefolder", data_dir=str(images), cache_dir=str(out / "cache"))
    loaded["train"].to_parquet(str(out / "train.parquet"))
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--size", default="640x480", help="WIDTHxHEIGHT of the generated photos")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "curator-bench-release")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    images = args.cache / f"photos-imbalanced-{args.images}-{width}x{height}"
    start = time.perf_counter()
    generate(images, args.images, width, height)
    print(f"setup: {args.images} photos {width}x{height} in {images} ({time.perf_counter() - start:.1f} s)")
    with tempfile.TemporaryDirectory(prefix="curator-bench-") as tmp:
        root = Path(tmp)
        ws = template(images, root)
        cli, staged, peers = [], {name: [] for name in (*STAGES, "total")}, []
        for run in range(args.runs):
            copy = root / f"cli{run}"
            shutil.copytree(ws, copy)
            cli.append(curator("release", workspace=copy))
            copy = root / f"api{run}"
            shutil.copytree(ws, copy)
            for name, seconds in staged_build(copy).items():
                staged[name].append(seconds)
            peers.append(peer(images, root / f"peer{run}"))
            print(f"run {run + 1}: cli {cli[-1]:.1f} s, in-process {staged['total'][-1]:.1f} s, "
                  f"peer {peers[-1]:.1f} s", flush=True)
    n = args.images
    print(f"\nmedians over {args.runs} run(s), {n} images {width}x{height}, {os.cpu_count()} cores")
    print(f"{'':28}{'seconds':>9}{'images/s':>10}")
    print(f"{'curator release (CLI)':28}{statistics.median(cli):9.2f}{n / statistics.median(cli):10.1f}")
    for name in (*STAGES, "total"):
        value = statistics.median(staged[name])
        print(f"{'  ' + name:28}{value:9.2f}{(n / value if value else 0):10.1f}")
    value = statistics.median(peers)
    print(f"{'peer: datasets imagefolder':28}{value:9.2f}{n / value:10.1f}")


if __name__ == "__main__":
    main()
