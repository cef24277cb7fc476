"""Near-duplicate quality: pair precision/recall per transform, curator vs a plain pHash.

Builds a labelled set from generated photos (curator.synthetic, 640x480) and, when
scikit-image is installed, the real photos it ships (nothing is downloaded): each
photo plus transformed copies (easy: exact bytes, PNG of the same pixels, resize,
JPEG q20-45, brightness/contrast, blur, grayscale, a watermark bar, a 3-8% crop;
hard: mirror, 3-6 degree rotation, a 15-22% crop), and separate distinct photos
that all carry the same logo (these must stay apart). Every image goes through
the real path (decode, normalize, pixel SHA-256 for exact copies, NearIndex.add_image
into a temporary catalog) in shuffled order. The peer is a plain 64-bit pHash
with transitive clustering at Hamming <= 10 (imagededup's PHash default).

    python benchmarks/dedup_quality.py [--photos 40] [--logo 30] [--threshold 8] [--candidate 12]
"""

from __future__ import annotations

import argparse
import io
import itertools
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter, ImageOps

from curator import catalog, dedup, hashing, store, synthetic
from curator.config import DedupConfig, IngestConfig
from curator.ingest import validate

EASY = ("exact", "png", "resize", "jpeg", "bright", "blur", "gray", "watermark", "crop_small")
HARD = ("mirror", "rotate", "crop_large")
SKIMAGE_PHOTOS = (
    "astronaut.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png",
    "gravel.png", "brick.png", "hubble_deep_field.jpg", "rocket.jpg", "motorcycle_left.png",
    "retina.jpg", "moon.png", "page.png", "text.png", "color.png", "ihc.png",
)  # fmt: skip


def base_photos(count: int) -> list[Image.Image]:
    photos = [synthetic.photo(seed, seed % 3) for seed in range(1000, 1000 + count)]
    try:
        import skimage
    except ImportError:
        print("scikit-image not installed: generated photos only", file=sys.stderr)
        return photos
    folder = Path(skimage.__file__).parent / "data"
    for name in SKIMAGE_PHOTOS:
        if (folder / name).is_file():
            img = Image.open(folder / name).convert("RGB")
            img.thumbnail((640, 640))
            photos.append(img)
    return photos


def encode(img: Image.Image, fmt: str = "JPEG", quality: int = 92) -> bytes:
    return synthetic.encode(img, fmt, quality=quality) if fmt == "JPEG" else synthetic.encode(img, fmt)


def logo(width: int) -> Image.Image:
    mark = Image.new("RGB", (150, 48), (250, 250, 250))
    draw = ImageDraw.Draw(mark)
    draw.rectangle([2, 2, 147, 45], outline=(20, 40, 140), width=4)
    draw.text((12, 10), "DermAtlas", fill=(20, 40, 140))
    draw.text((12, 26), "www.derm-atlas.org", fill=(20, 40, 140))
    side = max(60, int(width * 0.3))
    return mark.resize((side, side * 48 // 150))


def with_logo(img: Image.Image) -> Image.Image:
    out = img.copy()
    mark = logo(img.width)
    out.paste(mark, (img.width - mark.width - 8, img.height - mark.height - 8))
    return out


def crop(img: Image.Image, fraction: float, rng: random.Random) -> Image.Image:
    w, h = img.size
    cw, ch = round(w * (1 - fraction)), round(h * (1 - fraction))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return img.crop((x, y, x + cw, y + ch))


def transformed(img: Image.Image, name: str, original: bytes, rng: random.Random) -> bytes:
    if name == "exact":
        return original
    if name == "png":
        return encode(Image.open(io.BytesIO(original)).convert("RGB"), "PNG")
    if name == "resize":
        f = rng.uniform(0.4, 0.7)
        return encode(img.resize((round(img.width * f), round(img.height * f)), Image.Resampling.LANCZOS))
    if name == "jpeg":
        return encode(img, quality=rng.randint(20, 45))
    if name == "bright":
        out = ImageEnhance.Brightness(img).enhance(rng.choice([0.75, 1.25]))
        return encode(ImageEnhance.Contrast(out).enhance(rng.choice([0.8, 1.2])))
    if name == "blur":
        return encode(img.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 2.5))))
    if name == "gray":
        return encode(img.convert("L").convert("RGB"))
    if name == "watermark":
        out = img.copy()
        draw = ImageDraw.Draw(out)
        bar = round(img.height * 0.09)
        draw.rectangle([0, img.height - bar, img.width, img.height], fill=(30, 30, 30))
        draw.text((10, img.height - bar + 4), "(c) some-forum.example  do not copy", fill=(240, 240, 240))
        return encode(out)
    if name == "crop_small":
        return encode(crop(img, rng.uniform(0.03, 0.08), rng))
    if name == "mirror":
        return encode(ImageOps.mirror(img))
    if name == "rotate":
        angle = rng.uniform(3, 6) * rng.choice([-1, 1])
        return encode(img.rotate(angle, resample=Image.Resampling.BICUBIC))
    if name == "crop_large":
        return encode(crop(img, rng.uniform(0.15, 0.22), rng))
    raise ValueError(name)


def build_items(n_photos: int, n_logo: int, seed: int) -> list[tuple[str, int, bytes]]:
    """(transform, group, bytes); group = the base photo; logo photos get groups of their own."""
    rng = random.Random(seed)
    items = []
    photos = base_photos(n_photos)
    for group, img in enumerate(photos):
        original = encode(img)
        items.append(("original", group, original))
        for name in EASY + HARD:
            items.append((name, group, transformed(img, name, original, rng)))
    for k in range(n_logo):
        img = synthetic.photo(5000 + k, k % 3)
        items.append(("logo_distinct", len(photos) + k, encode(with_logo(img))))
    rng.shuffle(items)
    return items


def run_curator(items: list[tuple[str, int, bytes]], cfg: DedupConfig) -> tuple[list[int], dict[str, float]]:
    """Cluster id per item through the real ingest path (exact copies by pixel hash)."""
    with tempfile.TemporaryDirectory() as tmp:
        conn = catalog.connect(Path(tmp) / "catalog.sqlite")
        objects = Path(tmp) / "objects"
        index = dedup.NearIndex.load(conn, objects, cfg)
        pixel_keys = by_pixels_in_order(items)  # ingest's exact-duplicate test, done up front here
        first_sha: dict[str, str] = {}  # pixel key -> the stored image with those pixels
        hash_s, add_s = 0.0, 0.0
        for (_, _, data), pixels in zip(items, pixel_keys, strict=True):
            t0 = time.perf_counter()
            checked = validate.check(data, IngestConfig())
            assert isinstance(checked, validate.Checked), checked
            t1 = time.perf_counter()
            if pixels in first_sha:
                continue
            sha = store.put(objects, data)
            new = dedup.NewImage(
                sha, checked.fingerprint, pixels, checked.width, checked.height, checked.format, len(data)
            )
            with catalog.atomic(conn):
                index.add_image(conn, new, checked.grey, checked.hashes)
            add_s += time.perf_counter() - t1
            hash_s += t1 - t0
            first_sha[pixels] = sha
        # Later merges change earlier images' clusters: read the final ids back.
        final = {row[0]: int(row[1]) for row in conn.execute("SELECT sha256, cluster_id FROM images")}
        result = [final[first_sha[pixels]] for pixels in pixel_keys]
        checked = index.confirmer.checked if index.confirmer else 0
        conn.close()
    stats = {"hash_ms": 1000 * hash_s / len(items), "add_ms": 1000 * add_s / len(items), "confirmed": checked}
    return result, stats


def by_pixels_in_order(items: list[tuple[str, int, bytes]]) -> list[str]:
    return [hashing.pixel_sha256(hashing.normalize(Image.open(io.BytesIO(d)))) for _, _, d in items]


def run_peer(items: list[tuple[str, int, bytes]], threshold: int = 10) -> list[int]:
    """Plain pHash (imagehash), transitive clusters at Hamming <= threshold, brute force."""
    import imagehash

    values = np.array(
        [int(str(imagehash.phash(Image.open(io.BytesIO(d)))), 16) for _, _, d in items], dtype=np.uint64
    )
    dist = np.bitwise_count(values[:, None] ^ values[None, :])
    sets = dedup.DisjointSets(len(items))
    for i, j in zip(*np.nonzero(dist <= threshold), strict=True):
        sets.union(int(i), int(j))
    return [sets.find(i) for i in range(len(items))]


def score(items: list[tuple[str, int, bytes]], clusters: list[int]) -> dict[str, tuple[float, float, int]]:
    """Per transform: (precision, recall, true pairs).

    Recall of a transform counts its (original, copy) pairs; its precision counts
    every predicted pair that involves one of its copies. ``overall`` counts all pairs.
    """
    tp: dict[str, int] = defaultdict(int)
    fp: dict[str, int] = defaultdict(int)
    fn: dict[str, int] = defaultdict(int)
    for a, b in itertools.combinations(range(len(items)), 2):
        same_truth = items[a][1] == items[b][1]
        same_pred = clusters[a] == clusters[b]
        if not (same_truth or same_pred):
            continue
        kinds = {items[a][0], items[b][0]}
        names = {"overall"}
        if same_pred and not same_truth:
            names |= kinds - {"original"}
        elif "original" in kinds:
            names |= kinds - {"original"}
        for name in names:
            if same_truth and same_pred:
                tp[name] += 1
            elif same_pred:
                fp[name] += 1
            else:
                fn[name] += 1
    out = {}
    for name in sorted(set(tp) | set(fp) | set(fn)):
        p = tp[name] / (tp[name] + fp[name]) if tp[name] + fp[name] else 1.0
        r = tp[name] / (tp[name] + fn[name]) if tp[name] + fn[name] else 1.0
        out[name] = (p, r, tp[name] + fn[name])
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40, help="generated base photos")
    parser.add_argument("--logo", type=int, default=30, help="distinct photos sharing one logo")
    parser.add_argument("--threshold", type=int, default=DedupConfig().threshold)
    parser.add_argument("--candidate", type=int, default=DedupConfig().candidate_threshold)
    parser.add_argument("--no-confirm", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    items = build_items(args.photos, args.logo, args.seed)
    cfg = DedupConfig(
        threshold=args.threshold, candidate_threshold=args.candidate, confirm=not args.no_confirm
    )
    t0 = time.perf_counter()
    ours, stats = run_curator(items, cfg)
    wall = time.perf_counter() - t0
    peer = run_peer(items)
    a, b = score(items, ours), score(items, peer)
    groups = len({g for _, g, _ in items})
    print(
        f"{len(items)} images in {groups} groups; threshold={args.threshold} "
        f"candidate={args.candidate} confirm={not args.no_confirm}; cpu={os.cpu_count()}"
    )
    print(
        f"curator: {wall:.1f} s total, hashing {stats['hash_ms']:.2f} ms/image, "
        f"add_image {stats['add_ms']:.2f} ms/image, {stats['confirmed']:.0f} keypoint checks"
    )
    print(f"{'transform':14s} {'pairs':>6s}  {'curator P':>9s} {'R':>6s}   {'pHash<=10 P':>11s} {'R':>6s}")
    for name in [*EASY, *HARD, "logo_distinct", "overall"]:
        pa, ra, n = a.get(name, (1.0, 1.0, 0))
        pb, rb, _ = b.get(name, (1.0, 1.0, 0))
        print(f"{name:14s} {n:6d}  {pa:9.3f} {ra:6.3f}   {pb:11.3f} {rb:6.3f}")


if __name__ == "__main__":
    main()
