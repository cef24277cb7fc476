"""`curator audit` on the study's kind of leak, and on a 10,000-image folder.

1. Study-style: generated originals, each augmented the way the study did (horizontal and
   vertical flips, 90/180/270-degree turns, rotations of 5-15 degrees, brightness x0.7-1.3,
   alone or combined) up to ``--study`` images, split at random 70/15/15 into an image
   folder. Recall and precision of the reported cross-split pairs (a pair is true when both
   come from one original), beside a plain pHash at <= 10 bits (imagededup's default).
2. Speed: ``--images`` distinct photo-like images (smooth random lighting plus texture,
   600x450 JPEGs) in an image folder of three splits, 1% of them with a flipped, turned or
   brightened copy planted in another split; wall time and peak RSS of audit_folder, and
   how many planted pairs it found.

    python benchmarks/audit_leaks.py [--study 150] [--images 10000] [--seed 7]
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageEnhance

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.dedup_quality import DIHEDRAL, rotate  # noqa: E402
from curator import audit, synthetic  # noqa: E402
from curator.config import DedupConfig  # noqa: E402
from curator.match import Policy  # noqa: E402

SPLITS = (("train", 0.70), ("validation", 0.15), ("test", 0.15))
STUDY_TURNS = ("mirror", "flip", "rot90", "rot180", "rot270")


def augment(img: Image.Image, rng: random.Random) -> Image.Image:
    """One of the study's augmentations, or two or three of them combined."""
    out = img
    kinds = rng.sample(("turn", "rotate", "brightness"), rng.randint(1, 3))
    if "turn" in kinds:
        out = out.transpose(DIHEDRAL[rng.choice(STUDY_TURNS)])
    if "rotate" in kinds:
        fill = rng.choice(("constant", "reflect", "crop", "expand"))
        out = rotate(out, rng.uniform(5, 15) * rng.choice([-1, 1]), fill)
    if "brightness" in kinds:
        out = ImageEnhance.Brightness(out).enhance(rng.uniform(0.7, 1.3))
    return out


def pick_split(rng: random.Random) -> str:
    x, total = rng.random(), 0.0
    for name, share in SPLITS:
        total += share
        if x < total:
            return name
    return SPLITS[-1][0]


def write(root: Path, split: str, label: str, name: str, img: Image.Image) -> Path:
    folder = root / split / label
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.jpg"
    path.write_bytes(synthetic.encode(img, "JPEG", quality=90))
    return path


def cross_pairs(origin: dict[str, int], split_of: dict[str, str]) -> set[frozenset[str]]:
    paths = sorted(origin)
    return {
        frozenset((a, b))
        for i, a in enumerate(paths)
        for b in paths[i + 1 :]
        if origin[a] == origin[b] and split_of[a] != split_of[b]
    }


def study(root: Path, total: int, seed: int) -> None:
    rng = random.Random(seed)
    originals = max(1, total // 5)
    origin: dict[str, int] = {}
    split_of: dict[str, str] = {}
    for k in range(total):
        base = k % originals
        img = synthetic.photo(9000 + base, base % 3, (400, 300))
        if k >= originals:
            img = augment(img, rng)
        split = pick_split(rng)
        label = ("alopecia", "psoriasis", "folliculitis")[base % 3]
        path = str(write(root, split, label, f"img{k:04d}", img))
        origin[path], split_of[path] = base, split
    truth = cross_pairs(origin, split_of)
    t0 = time.perf_counter()
    result = audit.audit_folder(root, Policy.of(DedupConfig()))
    wall = time.perf_counter() - t0
    found = {frozenset((leak.a.path, leak.b.path)) for leak in result.leaks}
    peer = peer_pairs(origin, split_of)
    print(f"study-style: {total} images from {originals} originals, {len(truth)} cross-split pairs; "
          f"audit {wall:.1f} s")
    print(f"{'':10s} {'found':>6s} {'recall':>7s} {'precision':>9s}")
    for name, pairs in (("curator", found), ("pHash<=10", peer)):
        hits = len(pairs & truth)
        precision = hits / len(pairs) if pairs else 1.0
        print(f"{name:10s} {len(pairs):6d} {hits / len(truth):7.3f} {precision:9.3f}")


def peer_pairs(origin: dict[str, int], split_of: dict[str, str]) -> set[frozenset[str]]:
    import imagehash

    paths = sorted(origin)
    values = np.array([int(str(imagehash.phash(Image.open(p))), 16) for p in paths], dtype=np.uint64)
    close = np.bitwise_count(values[:, None] ^ values[None, :]) <= 10
    return {
        frozenset((paths[i], paths[j]))
        for i, j in zip(*np.nonzero(np.triu(close, 1)), strict=True)
        if split_of[paths[i]] != split_of[paths[j]]
    }


def photo_like(seed: int) -> Image.Image:
    """A distinct 600x450 image with photographic structure: smooth lighting, blobs, grain."""
    rng = np.random.default_rng(seed)
    low = rng.uniform(0, 255, (6, 8, 3)).astype(np.float32)
    light = cv2.resize(low, (600, 450), interpolation=cv2.INTER_CUBIC)
    blobs = rng.uniform(-60, 60, (24, 32, 3)).astype(np.float32)
    mid = cv2.resize(blobs, (600, 450), interpolation=cv2.INTER_CUBIC)
    grain = rng.normal(0, 12, (450, 600, 1)).astype(np.float32)
    return Image.fromarray(np.clip(light + mid + grain, 0, 255).astype(np.uint8))


def make_one(args: tuple[Path, int, str, int]) -> tuple[str, str, str | None]:
    """Write image ``k`` (and, for every 100th, a changed copy in another split)."""
    root, k, split, seed = args
    rng = random.Random(seed * 1_000_003 + k)
    img = photo_like(seed * 1_000_003 + k)
    path = write(root, split, "x", f"img{k:05d}", img)
    if k % 100:
        return str(path), split, None
    other = rng.choice([s for s, _ in SPLITS if s != split])
    copy = augment(img, rng)
    return str(path), split, str(write(root, other, "x", f"copy{k:05d}", copy))


def speed(root: Path, images: int, seed: int) -> None:
    rng = random.Random(seed)
    jobs = [(root, k, pick_split(rng), seed) for k in range(images)]
    with ProcessPoolExecutor(os.cpu_count() or 2) as pool:
        made = list(pool.map(make_one, jobs, chunksize=64))
    planted = {frozenset((a, c)) for a, _, c in made if c is not None}
    count = sum(1 for p in root.rglob("*.jpg"))
    t0, c0 = time.perf_counter(), time.process_time()
    result = audit.audit_folder(root, Policy.of(DedupConfig()))
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    found = {frozenset((leak.a.path, leak.b.path)) for leak in result.leaks}
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"speed: {count} images ({len(planted)} planted copies) in {wall:.1f} s ({cpu:.1f} s CPU), "
          f"{count / wall:.0f} images/s, peak RSS {peak:.0f} MB, cpu={os.cpu_count()}, "
          f"load average {open('/proc/loadavg').read().split()[:3]}; "
          f"found {len(found & planted)}/{len(planted)} planted, {len(found - planted)} other pairs")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--study", type=int, default=150, help="images in the study-style set (0: skip)")
    parser.add_argument("--images", type=int, default=10_000, help="images in the speed set (0: skip)")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="curator-audit-bench-") as tmp:
        if args.study:
            study(Path(tmp) / "study", args.study, args.seed)
        if args.images:
            speed(Path(tmp) / "speed", args.images, args.seed)


if __name__ == "__main__":
    main()
