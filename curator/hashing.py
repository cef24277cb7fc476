"""Pixel identity and perceptual hashes of one decoded image.

    normalize(img)          first frame, EXIF orientation applied, RGB
    pixel_sha256(rgb)       the exact-duplicate key: SHA-256 of size + RGB pixels
    perceptual_hashes(rgb)  name -> unsigned 64-bit perceptual hash

The perceptual hash is a DCT hash (pHash): the image is reduced to a 32x32
grey thumbnail, its 2-D DCT taken, and the 8x8 lowest frequencies compared with
their median (one bit each). A left-right mirror only flips the sign of the
odd horizontal frequencies, so ``phash_mirror`` (the pHash of the mirrored
image) costs nothing extra; comparing a new image's ``phash`` with a stored
``phash_mirror`` finds mirrored copies. The variants named in :data:`VARIANTS`
hash shifted, zoomed and rotated views of the same thumbnail, so that a crop or a
small rotation of a stored photo lands near one of them (see curator.dedup).

Everything works on a small grey copy (at most :data:`WORK_SIDE` px), so the
cost is well under a millisecond beyond reading the decoded pixels once.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache

import numpy as np
from PIL import Image, ImageOps

HASH_SIZE = 8  # 8x8 low frequencies -> 64 bits
DCT_SIDE = 32  # the thumbnail the DCT is taken of
WORK_SIDE = 128  # longest side of the grey working copy

PHASH = "phash"
PHASH_MIRROR = "phash_mirror"
ROTATIONS = (-4.0, 4.0)  # degrees; rotated copies of 2-6 degrees land within a few bits of one
CROP_SCALES = (0.80, 0.90)  # windows of this fraction of each side ...
CROP_STEPS = 3  # ... at 3x3 positions (corners, edges, centre)


def _variant_names() -> tuple[str, ...]:
    names = [PHASH, PHASH_MIRROR]
    names += [f"phash_rot{angle:+.0f}" for angle in ROTATIONS]
    for scale in CROP_SCALES:
        for i in range(CROP_STEPS):
            for j in range(CROP_STEPS):
                names.append(f"phash_crop{round(scale * 100)}_{i}{j}")
    return tuple(names)


# Every hash perceptual_hashes() returns, in order. PHASH is the image's own hash; the
# others are hashes of views of it that a transformed copy's PHASH may land near.
NAMES = _variant_names()


def normalize(img: Image.Image) -> Image.Image:
    """The first frame, with EXIF orientation applied, as RGB (what every hash is taken of)."""
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    oriented = ImageOps.exif_transpose(img)
    if oriented is None:  # exif_transpose returns None only with in_place=True
        oriented = img
    if oriented.mode != "RGB":
        if oriented.mode in ("RGBA", "LA", "PA") or (
            oriented.mode == "P" and "transparency" in oriented.info
        ):
            # Composite on white so that transparent regions hash the same way every time.
            rgba = oriented.convert("RGBA")
            background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
            oriented = Image.alpha_composite(background, rgba)
        oriented = oriented.convert("RGB")
    return oriented


def pixel_sha256(rgb: Image.Image) -> str:
    """SHA-256 of the width, height and raw RGB bytes: equal for equal pixels, whatever the encoding."""
    if rgb.mode != "RGB":
        raise ValueError(f"pixel_sha256 needs an RGB image, got mode {rgb.mode}")
    digest = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    digest.update(rgb.tobytes())
    return digest.hexdigest()


def grey_copy(rgb: Image.Image, side: int = WORK_SIDE) -> Image.Image:
    """A small grey copy whose longest side is about ``side`` px (never enlarged)."""
    factor = max(1, max(rgb.size) // (2 * side))
    # reduce() is a fast integer box filter; the final resize then anti-aliases the rest.
    small = rgb.reduce(factor) if factor > 1 else rgb
    grey = small.convert("L")
    scale = side / max(grey.size)
    if scale < 1:
        size = (max(1, round(grey.width * scale)), max(1, round(grey.height * scale)))
        grey = grey.resize(size, Image.Resampling.BOX)
    return grey


@lru_cache(maxsize=1)
def _dct_matrix() -> np.ndarray:
    """Orthonormal DCT-II matrix for DCT_SIDE points (rows: frequencies)."""
    n = DCT_SIDE
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    m = np.cos(np.pi * (2 * i + 1) * k / (2 * n)) * np.sqrt(2.0 / n)
    m[0, :] = np.sqrt(1.0 / n)
    return m


@lru_cache(maxsize=1)
def _mirror_signs() -> np.ndarray:
    # DCT of a reversed sequence: coefficient k is multiplied by (-1)^k.
    return np.array([(-1.0) ** k for k in range(HASH_SIZE)])[None, :]


def phash_pair(grey: Image.Image) -> tuple[int, int]:
    """(pHash, pHash of the left-right mirror) of a grey image (as given: not equalised)."""
    pixels = np.asarray(grey.resize((DCT_SIDE, DCT_SIDE), Image.Resampling.BOX), dtype=np.float64)
    d = _dct_matrix()[:HASH_SIZE]
    low = d @ pixels @ d.T
    plain, mirrored = _bits_many(np.stack([low, low * _mirror_signs()]))
    return plain, mirrored


def perceptual_hashes(rgb: Image.Image) -> dict[str, int]:
    """Every perceptual hash curator stores for an image: name -> unsigned 64-bit value.

    ``phash`` and ``phash_mirror`` are of the whole image; ``phash_rot±4`` of the
    image rotated about its centre (black corners, as augmentation libraries leave
    them); ``phash_cropSS_ij`` of the window of SS% of each side at grid position
    (i, j). A copy rotated by 2-6 degrees, or cropped by up to ~22% of a side, has a
    ``phash`` within a few bits of one of these views of its original.
    """
    # Equalising first makes the hash ignore brightness, contrast and gamma (any monotonic
    # change of grey levels) and spreads distinct photos further apart: on
    # benchmarks/dedup_quality.py it took distinct pairs within 12 bits from 8 to 0 of 3,741.
    grey = ImageOps.equalize(grey_copy(rgb))
    thumbs = [grey.resize((DCT_SIDE, DCT_SIDE), Image.Resampling.BOX)]
    for angle in ROTATIONS:
        rotated = grey.rotate(angle, resample=Image.Resampling.BILINEAR)
        thumbs.append(rotated.resize((DCT_SIDE, DCT_SIDE), Image.Resampling.BOX))
    width, height = grey.size
    for scale in CROP_SCALES:
        steps = np.linspace(0.0, 1.0 - scale, CROP_STEPS)
        for left in steps:
            for top in steps:
                box = (left * width, top * height, (left + scale) * width, (top + scale) * height)
                thumbs.append(grey.resize((DCT_SIDE, DCT_SIDE), Image.Resampling.BOX, box=box))
    pixels = np.stack([np.asarray(t, dtype=np.float64) for t in thumbs])
    d = _dct_matrix()[:HASH_SIZE]
    low = d @ pixels @ d.T  # (views, 8, 8)
    # The mirror of the whole image is its first view with odd horizontal frequencies negated.
    low = np.concatenate([low[:1], low[:1] * _mirror_signs(), low[1:]])
    values = _bits_many(low)
    return dict(zip(NAMES, values, strict=True))


def _bits_many(low: np.ndarray) -> list[int]:
    flat = low.reshape(len(low), -1)
    above = flat > np.median(flat, axis=1, keepdims=True)
    packed = np.packbits(above, axis=1)  # (views, 8) bytes, most significant first
    return [int(v) for v in packed.view(">u8").reshape(-1)]


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def to_signed(value: int) -> int:
    """An unsigned 64-bit hash as the signed integer SQLite stores."""
    return value - (1 << 64) if value >= (1 << 63) else value


def to_unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value
