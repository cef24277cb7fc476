"""Ingest's near-duplicate search, replayed without the rest of ingest: CPU per image as the catalog grows.

The hashes of benchmarks/ingest_scale.py's photos (20,000 distinct ones plus their planted copies,
every view hash as ingest computes it) are placed in a shuffled order in groups of ``--group``,
exactly as the catalog thread places them (`NearIndex.group`, then each image's candidates and
its insertion), with no keypoint check and no database. Printed: search CPU per image around
2,000, 10,000 and 19,000 stored images, the whole replay's CPU, and the folds of each index. This
is the part of the catalog thread that grows with the catalog; `ingest_scale.py` measures the
whole pipeline.

    python benchmarks/index_replay.py [--images 20000] [--group 16] [--seed 7]

The images are generated once (ingest_scale's cache) and their hashes cached beside them.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ingest_scale import images  # noqa: E402
from curator import dedup, hashing  # noqa: E402
from curator.config import DedupConfig  # noqa: E402
from curator.match import Policy  # noqa: E402

MARKS = (2000, 10000, 19000)
WINDOW = 600  # images placed from each mark on whose search CPU is averaged


def hashes_of(path: Path) -> list[int]:
    from PIL import Image

    with Image.open(path) as img:
        grey = hashing.grey_of(img).pixels
    found = hashing.hashes_of_grey(grey)
    return [found[name] for name in hashing.NAMES]


def all_hashes(cache: Path, count: int, copy_every: int, seed: int) -> np.ndarray:
    """(images, len(NAMES)) uint64: every view hash of every photo and planted copy."""
    stored = cache / f"hashes-{count}-{copy_every}-{len(hashing.NAMES)}.npy"
    if stored.exists():
        return np.load(stored)
    files = [path for path, _, _ in images(cache, count, copy_every, seed)]
    print(f"hashing {len(files)} images (once)...", file=sys.stderr)
    with ProcessPoolExecutor(os.cpu_count() or 2) as pool:
        rows = list(pool.map(hashes_of, files, chunksize=64))
    values = np.array(rows, dtype=np.uint64)
    np.save(stored, values)
    return values


def replay(values: np.ndarray, group: int, seed: int) -> tuple[dict[int, float], float, dict[str, int]]:
    """Search CPU ms per image from each mark, the whole replay's CPU s, and folds per index."""
    hashes = [dict(zip(hashing.NAMES, map(int, row), strict=True)) for row in values]
    order = np.random.default_rng(seed).permutation(len(hashes))
    # The policy of a default ingest (keypoint confirmation on: composite matches are searched
    # too); candidates are only found here, never checked.
    index = dedup.NearIndex(objects=Path("/nowhere"), policy=Policy.of(DedupConfig()))
    folds = dict.fromkeys(("every", "forms", "plain"), 0)
    for name in folds:  # count each index's folds
        table = getattr(index.views, name)
        fold = table._fold

        def counted(fold=fold, name=name) -> None:
            folds[name] += 1
            fold()

        table._fold = counted
    per_mark: dict[int, list[float]] = {mark: [] for mark in MARKS}
    started = time.process_time()
    for start in range(0, len(order), group):
        members = order[start : start + group]
        new = {str(i): hashes[i] for i in members}
        cpu = time.process_time()
        with index.group(new):
            for i in members:
                index.candidates(hashes[i], str(i))
                index.extend({str(i): hashes[i]})
        cpu = (time.process_time() - cpu) / len(members)
        for mark in MARKS:
            if mark <= start < mark + WINDOW:
                per_mark[mark].append(cpu)
    total = time.process_time() - started
    return {mark: 1000 * float(np.mean(v)) for mark, v in per_mark.items() if v}, total, folds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000, help="distinct photos")
    parser.add_argument("--copy-every", type=int, default=50, help="one planted copy per this many photos")
    parser.add_argument("--group", type=int, default=16, help="images placed per group")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "curator-scale-images-v1")
    args = parser.parse_args()
    values = all_hashes(args.cache / f"seed{args.seed}", args.images, args.copy_every, args.seed)
    per_mark, total, folds = replay(values, args.group, args.seed)
    numba = "on" if hashing.HashIndex().compiled else "off"
    load = os.getloadavg()[0]
    print(f"{len(values)} images, groups of {args.group}, numba {numba}, load average {load:.1f}")
    marks = ", ".join(f"{ms:.2f} ms at {mark:,} stored" for mark, ms in per_mark.items())
    print(f"search CPU per image: {marks}")
    counts = ", ".join(f"{n} {name}" for name, n in folds.items())
    print(f"whole replay: {total:.1f} s of CPU; folds: {counts}")


if __name__ == "__main__":
    main()
