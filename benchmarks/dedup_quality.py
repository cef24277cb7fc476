"""Near-duplicate quality: recall per transform and precision, curator vs a plain pHash.

Builds a labelled set from generated photos (curator.synthetic, 640x480) and, when
scikit-image is installed, the real photos it ships (nothing is downloaded): each photo
plus one copy under every transform of TRANSFORMS (every flip and quarter turn;
rotations of 3-25 degrees with each fill augmenters use; brightness, contrast, hue;
crops of 5-20%; a flip or quarter turn + 5-15 degrees + brightness; easy ones:
re-encoding, PNG, resize, blur, grey, a caption bar), each re-encoded as a JPEG, and
distinct photos that share a logo or a date stamp (these must stay apart). Every image
goes through the real path (decode, normalize, pixel SHA-256 for exact copies,
NearIndex.add_image into a temporary catalog) in shuffled order. The peer is a plain
64-bit pHash with transitive clustering at Hamming <= 10 (imagededup's PHash default).

    python benchmarks/dedup_quality.py [--photos 25] [--distinct 30] [--threshold 8] [--candidate 10]
"""

from __future__ import annotations

import argparse
import io
import math
import os
import random
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFilter

from curator import catalog, dedup, hashing, store, synthetic
from curator.config import DedupConfig, IngestConfig
from curator.ingest import validate

SKIMAGE_PHOTOS = (
    "astronaut.png", "camera.png", "chelsea.png", "coffee.png", "coins.png", "grass.png",
    "gravel.png", "brick.png", "hubble_deep_field.jpg", "rocket.jpg", "motorcycle_left.png",
    "retina.jpg", "moon.png", "page.png", "text.png", "color.png", "ihc.png",
)  # fmt: skip
DIHEDRAL = {name.removeprefix("phash_"): turn for name, turn in hashing.TRANSPOSES.items()}
ANGLES = (3, 5, 8, 10, 15, 25)
FILLS = ("constant", "reflect", "crop", "expand")
EASY = ("exact", "png", "resize", "jpeg", "blur", "gray", "watermark")
# Per transform family: (members, the recall it must reach).
FAMILIES = {
    "dihedral": (tuple(DIHEDRAL), 0.99),
    "brightness": (("brightness",), 0.99),
    "rotation<=15": (tuple(f"rot{a}_{f}" for a in ANGLES if a <= 15 for f in FILLS), 0.95),
    "rotation 25": (tuple(f"rot25_{f}" for f in FILLS), 0.85),
    "combination": (tuple(f"combo_{f}" for f in FILLS), 0.85),
    "contrast, hue": (("contrast", "hue"), 0.95),
    "crop 5-20%": (("crop_5_10", "crop_10_20"), 0.95),
    "easy": (EASY, 0.99),
}
TRANSFORMS = tuple(name for members, _ in FAMILIES.values() for name in members)
DISTINCT = ("logo_distinct", "stamp_distinct")  # distinct photos sharing a logo / a date stamp


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


def with_stamp(img: Image.Image) -> Image.Image:
    """A camera's date stamp, the same on every photo, bottom right in orange."""
    out = img.copy()
    draw = ImageDraw.Draw(out)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):  # thick digits, as cameras burn them in
        draw.text((img.width - 110 + dx, img.height - 24 + dy), "'19 07 23  14:02", fill=(255, 140, 0))
    return out


def crop(img: Image.Image, fraction: float, rng: random.Random) -> Image.Image:
    w, h = img.size
    cw, ch = round(w * (1 - fraction)), round(h * (1 - fraction))
    x, y = rng.randint(0, w - cw), rng.randint(0, h - ch)
    return img.crop((x, y, x + cw, y + ch))


def rotate(img: Image.Image, angle: float, fill: str) -> Image.Image:
    """``img`` turned by ``angle`` degrees (counter-clockwise) the way augmenters fill it."""
    if fill == "constant":  # torchvision, imgaug: black corners
        return img.rotate(angle, resample=Image.Resampling.BICUBIC)
    if fill == "expand":  # PIL expand=True: the canvas grows to hold the whole photo
        return img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True)
    pixels = np.asarray(img)
    h, w = pixels.shape[:2]
    turn = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    if fill == "reflect":  # Keras RandomRotation, albumentations: mirrored corners
        return Image.fromarray(cv2.warpAffine(pixels, turn, (w, h), flags=cv2.INTER_CUBIC,
                                              borderMode=cv2.BORDER_REFLECT_101))
    # crop: the largest centred upright window of the same proportions, scaled back to the size
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    inside = min(w / (w * c + h * s), h / (w * s + h * c))
    cw, ch = int(w * inside), int(h * inside)
    turned = Image.fromarray(cv2.warpAffine(pixels, turn, (w, h), flags=cv2.INTER_CUBIC))
    x, y = (w - cw) // 2, (h - ch) // 2
    return turned.crop((x, y, x + cw, y + ch)).resize((w, h), Image.Resampling.BICUBIC)


def shift_hue(img: Image.Image, degrees: float) -> Image.Image:
    hsv = np.asarray(img.convert("HSV")).copy()
    hsv[..., 0] = (hsv[..., 0].astype(int) + round(degrees * 256 / 360)) % 256
    return Image.fromarray(hsv, "HSV").convert("RGB")


def factor(rng: random.Random) -> float:
    """x0.7-0.85 or x1.15-1.3: a visible change either way."""
    return rng.uniform(0.7, 0.85) if rng.random() < 0.5 else rng.uniform(1.15, 1.3)


def changed(img: Image.Image, name: str, rng: random.Random) -> Image.Image:
    if name in DIHEDRAL:
        return img.transpose(DIHEDRAL[name])
    if name.startswith("rot"):
        angle, fill = name[3:].split("_")
        return rotate(img, float(angle) * rng.choice([-1, 1]), fill)
    if name.startswith("combo_"):  # a flip or quarter turn, 5-15 degrees, brightness
        out = img.transpose(DIHEDRAL[rng.choice(list(DIHEDRAL))])
        out = rotate(out, rng.uniform(5, 15) * rng.choice([-1, 1]), name.split("_")[1])
        return ImageEnhance.Brightness(out).enhance(factor(rng))
    if name == "brightness":
        return ImageEnhance.Brightness(img).enhance(factor(rng))
    if name == "contrast":
        return ImageEnhance.Contrast(img).enhance(factor(rng))
    if name == "hue":
        return shift_hue(img, rng.uniform(10, 30) * rng.choice([-1, 1]))
    if name == "crop_5_10":
        return crop(img, rng.uniform(0.05, 0.10), rng)
    if name == "crop_10_20":
        return crop(img, rng.uniform(0.10, 0.20), rng)
    if name == "resize":
        f = rng.uniform(0.4, 0.7)
        return img.resize((round(img.width * f), round(img.height * f)), Image.Resampling.LANCZOS)
    if name == "blur":
        return img.filter(ImageFilter.GaussianBlur(rng.uniform(1.0, 2.5)))
    if name == "gray":
        return img.convert("L").convert("RGB")
    if name == "watermark":
        out = img.copy()
        draw = ImageDraw.Draw(out)
        bar = round(img.height * 0.09)
        draw.rectangle([0, img.height - bar, img.width, img.height], fill=(30, 30, 30))
        draw.text((10, img.height - bar + 4), "(c) some-forum.example  do not copy", fill=(240, 240, 240))
        return out
    raise ValueError(name)


def transformed(img: Image.Image, name: str, original: bytes, rng: random.Random) -> bytes:
    """The bytes of a copy of ``img`` under transform ``name``, re-encoded as a JPEG."""
    if name == "exact":
        return original
    if name == "png":
        return encode(Image.open(io.BytesIO(original)).convert("RGB"), "PNG")
    if name == "jpeg":
        return encode(img, quality=rng.randint(20, 45))
    return encode(changed(img, name, rng), quality=rng.randint(75, 95))


def build_items(n_photos: int, n_distinct: int, seed: int) -> list[tuple[str, int, bytes]]:
    """(transform, group, bytes); group = the base photo; distinct photos get groups of their own."""
    rng = random.Random(seed)
    items = []
    photos = base_photos(n_photos)
    for group, img in enumerate(photos):
        original = encode(img)
        items.append(("original", group, original))
        for name in TRANSFORMS:
            items.append((name, group, transformed(img, name, original, rng)))
    for k in range(n_distinct):
        img = synthetic.photo(5000 + k, k % 3)
        items.append(("logo_distinct", len(photos) + 2 * k, encode(with_logo(img))))
        img = synthetic.photo(7000 + k, k % 3)
        items.append(("stamp_distinct", len(photos) + 2 * k + 1, encode(with_stamp(img))))
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
    """Per transform: (precision, recall, copies).

    Recall counts each copy clustered with its original; precision counts, over the
    predicted pairs that involve one of the transform's items, those of one base photo.
    ``overall`` counts every predicted pair.
    """
    members: dict[int, list[int]] = defaultdict(list)
    for i, cluster in enumerate(clusters):
        members[cluster].append(i)
    original = {g: clusters[i] for i, (name, g, _) in enumerate(items) if name == "original"}
    found: dict[str, list[bool]] = defaultdict(list)
    pairs: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # name -> [true pairs, all pairs]
    for i, (name, group, _) in enumerate(items):
        if group in original and name != "original":
            found[name].append(clusters[i] == original[group])
        others = [j for j in members[clusters[i]] if j != i]
        same = sum(items[j][1] == group for j in others)
        for key in (name, "overall"):
            pairs[key][0] += same
            pairs[key][1] += len(others)
    out = {}
    for name in set(found) | set(pairs):
        true_pairs, all_pairs = pairs[name]
        hits = found.get(name, [])
        recall = sum(hits) / len(hits) if hits else 1.0
        out[name] = (true_pairs / all_pairs if all_pairs else 1.0, recall, len(hits))
    hits = [h for name, v in found.items() for h in v]
    out["overall"] = (out["overall"][0], sum(hits) / len(hits), len(hits))
    return out


def family_recall(scores: dict[str, tuple[float, float, int]], members: tuple[str, ...]) -> float:
    """The family's recall over all its copies (transforms weighted by their copies)."""
    found = sum(scores[m][1] * scores[m][2] for m in members if m in scores)
    total = sum(scores[m][2] for m in members if m in scores)
    return found / total if total else 1.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=25, help="generated base photos (plus scikit-image's)")
    parser.add_argument("--distinct", type=int, default=30, help="distinct photos with a logo, and a stamp")
    parser.add_argument("--threshold", type=int, default=DedupConfig().threshold)
    parser.add_argument("--candidate", type=int, default=DedupConfig().candidate_threshold)
    parser.add_argument("--no-confirm", action="store_true")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    items = build_items(args.photos, args.distinct, args.seed)
    cfg = DedupConfig(
        threshold=args.threshold, candidate_threshold=args.candidate, confirm=not args.no_confirm
    )
    t0 = time.perf_counter()
    ours, stats = run_curator(items, cfg)
    wall = time.perf_counter() - t0
    peer = run_peer(items)
    a, b = score(items, ours), score(items, peer)
    photos = len({g for name, g, _ in items if name == "original"})
    print(
        f"{len(items)} images: {photos} photos x {len(TRANSFORMS)} copies + {2 * args.distinct} distinct; "
        f"threshold={args.threshold} candidate={args.candidate} confirm={not args.no_confirm}; "
        f"cpu={os.cpu_count()}"
    )
    print(
        f"curator: {wall:.1f} s total, hashing {stats['hash_ms']:.2f} ms/image, "
        f"add_image {stats['add_ms']:.2f} ms/image, {stats['confirmed']:.0f} keypoint checks"
    )
    print(f"{'transform':16s} {'copies':>6s}  {'curator R':>9s}   {'pHash<=10 R':>11s}")
    for name in TRANSFORMS:
        print(f"{name:16s} {a[name][2]:6d}  {a[name][1]:9.3f}   {b[name][1]:11.3f}")
    print(f"{'family':16s} {'target':>6s}  {'curator R':>9s}   {'pHash<=10 R':>11s}")
    for family, (members, target) in FAMILIES.items():
        ours_r, peer_r = family_recall(a, members), family_recall(b, members)
        flag = "ok" if ours_r >= target else "BELOW TARGET"
        print(f"{family:16s} {target:6.2f}  {ours_r:9.3f}   {peer_r:11.3f}  {flag}")
    print(f"{'precision':16s} {'target':>6s}  {'curator P':>9s}   {'pHash<=10 P':>11s}")
    for name in [*DISTINCT, "overall"]:
        print(f"{name:16s} {1.0:6.3f}  {a[name][0]:9.3f}   {b[name][0]:11.3f}")
    print(f"{'overall recall':16s} {'':6s}  {a['overall'][1]:9.3f}   {b['overall'][1]:11.3f}")


if __name__ == "__main__":
    main()
