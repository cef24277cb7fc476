"""Pixel identity and perceptual hashes of one decoded image.

    normalize(img)          first frame, EXIF orientation applied, RGB
    pixel_sha256(rgb)       the exact-duplicate key: SHA-256 of size + RGB pixels
    perceptual_hashes(rgb)  name -> unsigned 64-bit perceptual hash
    fingerprint(w, h, hs)   size + every perceptual hash: equal pixels, equal fingerprint
    HashIndex               every stored hash within a Hamming radius, without a full scan

The perceptual hash is a DCT hash (pHash): the image is reduced to a 32x32
grey thumbnail, its 2-D DCT taken, and the 8x8 lowest frequencies compared with
their median (one bit each). A left-right mirror only flips the sign of the
odd horizontal frequencies, a top-bottom flip that of the odd vertical ones, and a
transpose swaps the two axes, so the hashes of all 8 flips and quarter turns
(:data:`DIHEDRAL`, and :data:`CENTRES` of the centre window) cost nothing extra.
The other names in :data:`NAMES` hash turned (:data:`TURNS` x :data:`FILLS`) and
cropped views of the same image, so that a rotated or cropped copy of a stored
photo lands near one of them (see curator.match).

Every image gets one grey copy (:func:`grey_of`, :data:`GREY_SIDE` px), kept
for keypoint checks (curator.dedup) and halved and equalised for hashing. A JPEG's
comes from its own luma plane, decoded smaller (:func:`luma_grey`); any other
image's from its decoded RGB pixels (:func:`grey_copy`). The box
average down to each view's 32x32 thumbnail and the DCT are both linear, so the
unturned views are one batch of small matrix products, and the turned ones are
rotated at half size.

:class:`HashIndex` finds every stored hash within a Hamming radius of a query
without comparing with all of them (multi-index hashing); curator.dedup uses it
for placing new images and for re-clustering.
"""

from __future__ import annotations

import ctypes
import hashlib
import itertools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from PIL import Image, ImageOps

ORIENTATION_TAG = 0x0112
HASH_SIZE = 8  # 8x8 low frequencies -> 64 bits
DCT_SIDE = 32  # the thumbnail the DCT is taken of
WORK_SIDE = 128  # longest side of the equalised grey copy the hashes are taken of
GREY_SIDE = 256  # longest side of the grey copy kept per image: hashed, and matched by keypoints

# What an image's grey copy, and so its hashes, were taken of (the catalog's images.hashed_from).
RGB = "rgb"  # the decoded RGB pixels
LUMA = "luma"  # a JPEG's luma plane, decoded at a reduced scale (luma_grey)
# Bits between the phash values of equal pixels hashed from luma and from RGB, beyond
# which they are not compared by pixels: 10 was the most seen over 3,960 JPEGs (12 for a
# 1024x141 strip; luma_grey).
ACROSS_HASHINGS = 16
LEGACY_SUFFIX = "+legacy"  # ... with the views of LEGACY_NAMES (catalog migration 4)

PHASH = "phash"
PHASH_MIRROR = "phash_mirror"
# The 8 flips and quarter turns of the image (the dihedral group), each the image's DCT with
# odd frequencies negated and/or axes swapped: no extra pixel work. Index bit 1: mirror
# (left-right), bit 2: flip (top-bottom), bit 4: transpose, applied in that order.
DIHEDRAL = (
    PHASH, PHASH_MIRROR, "phash_flip", "phash_rot180",
    "phash_transpose", "phash_rot90", "phash_rot270", "phash_transverse",
)  # fmt: skip
# What each DIHEDRAL name is the hash of: the image under this Pillow transpose.
TRANSPOSES = {
    PHASH_MIRROR: Image.Transpose.FLIP_LEFT_RIGHT, "phash_flip": Image.Transpose.FLIP_TOP_BOTTOM,
    "phash_rot180": Image.Transpose.ROTATE_180, "phash_transpose": Image.Transpose.TRANSPOSE,
    "phash_rot90": Image.Transpose.ROTATE_90, "phash_rot270": Image.Transpose.ROTATE_270,
    "phash_transverse": Image.Transpose.TRANSVERSE,
}  # fmt: skip
# The same 8 of the centre window (CENTRE of each side): a second opinion for trusting a match
# on the hash alone. Rotated copies with black or grown corners share the corners' pattern, so
# distinct photos turned alike can have whole-image hashes within the threshold; their centres,
# which hold no corner up to ~30 degrees, still differ (see curator.match).
CENTRE = 0.6
CENTRES = tuple(name.replace("phash", "centre", 1) for name in DIHEDRAL)
TURNS = (-5.0, 5.0, -11.0, 11.0, -17.0, 17.0, -23.0, 23.0)  # degrees; each catches +-3 around it
# How augmenters fill a rotated image: black corners, mirrored corners, cropped to the
# largest upright rectangle (zoomed in), or the canvas grown to hold it all (zoomed out).
FILLS = ("constant", "reflect", "crop", "expand")
CROP_SCALES = (0.80, 0.87)  # windows of this fraction of each side ...
CROP_STEPS = 3  # ... at 3x3 positions (corners, edges, centre)


def _variant_names() -> tuple[str, ...]:
    names = [*DIHEDRAL, *CENTRES]
    names += [f"phash_turn{angle:+.0f}_{fill}" for angle in TURNS for fill in FILLS]
    for scale in CROP_SCALES:
        for i in range(CROP_STEPS):
            for j in range(CROP_STEPS):
                names.append(f"phash_crop{round(scale * 100)}_{i}{j}")
    return tuple(names)


# Every hash perceptual_hashes() returns, in order. PHASH is the image's own hash; the
# others are hashes of views of it that a transformed copy's PHASH may land near.
NAMES = _variant_names()
# The views stored before catalog migration 4 (22 hashes): still read, see unpack_hashes.
LEGACY_NAMES = (PHASH, PHASH_MIRROR, "phash_rot-4", "phash_rot+4", *(n for n in NAMES if "phash_crop" in n))


def normalize(img: Image.Image) -> Image.Image:
    """The first frame, with EXIF orientation applied, as RGB (what every hash is taken of).

    May return ``img`` itself, loaded (an upright RGB image needs no copy: 0.4 ms of a 640x480
    JPEG's ~3 ms ingest check), so the caller must not close ``img`` while using the result.
    """
    if getattr(img, "n_frames", 1) > 1:
        img.seek(0)
    oriented: Image.Image | None = img
    if orientation(img) != 1:
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
    oriented.load()
    return oriented


def oriented_size(img: Image.Image) -> tuple[int, int]:
    """(width, height) of ``img`` once its EXIF orientation is applied, read from its header."""
    width, height = img.size
    return (height, width) if orientation(img) in (5, 6, 7, 8) else (width, height)  # a quarter turn


def orientation(img: Image.Image) -> int:
    """The EXIF orientation tag (1, upright, when absent or unreadable)."""
    try:
        return int(img.getexif().get(ORIENTATION_TAG, 1))
    except Exception:  # a broken EXIF block: exif_transpose would fail the same way
        return 1


def pixel_sha256(rgb: Image.Image | np.ndarray) -> str:
    """SHA-256 of the width, height and raw RGB bytes: equal for equal pixels, whatever the encoding."""
    pixels = rgb_array(rgb)
    height, width = pixels.shape[:2]
    digest = hashlib.sha256(f"{width}x{height}:".encode())
    digest.update(np.ascontiguousarray(pixels).data)
    return digest.hexdigest()


class _ArrowSchema(ctypes.Structure):
    pass


class _ArrowArray(ctypes.Structure):
    pass


# The Arrow C data interface (a stable ABI): https://arrow.apache.org/docs/format/CDataInterface.html
_ArrowSchema._fields_ = [
    ("format", ctypes.c_char_p),
    ("name", ctypes.c_char_p),
    ("metadata", ctypes.c_char_p),
    ("flags", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowSchema))),
    ("dictionary", ctypes.c_void_p),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]
_ArrowArray._fields_ = [
    ("length", ctypes.c_int64),
    ("null_count", ctypes.c_int64),
    ("offset", ctypes.c_int64),
    ("n_buffers", ctypes.c_int64),
    ("n_children", ctypes.c_int64),
    ("buffers", ctypes.POINTER(ctypes.c_void_p)),
    ("children", ctypes.POINTER(ctypes.POINTER(_ArrowArray))),
    ("dictionary", ctypes.c_void_p),
    ("release", ctypes.c_void_p),
    ("private_data", ctypes.c_void_p),
]
_capsule_pointer = ctypes.pythonapi.PyCapsule_GetPointer
_capsule_pointer.restype = ctypes.c_void_p
_capsule_pointer.argtypes = [ctypes.py_object, ctypes.c_char_p]


def _pillow_grey(img: Image.Image) -> np.ndarray | None:
    """OpenCV's grey of an RGB image, read from Pillow's own memory; None if that is not possible.

    Pillow keeps RGB as 4-byte RGBX pixels, and ``np.asarray(img)`` packs them to RGB with a
    loop that holds the GIL throughout: in an ingest run the largest single holder of the GIL
    (a fifth of it), stalling the catalog thread. Pillow exports its pixels through the Arrow
    C data interface without a copy, so OpenCV converts them to grey in place, GIL released.
    (pyarrow reads that interface too, but loading it costs ~65 MB of memory.) Images whose
    rows are not one block of memory (over 16 MB) are refused by the export: None.
    """
    import cv2

    if img.mode != "RGB" or not hasattr(img, "__arrow_c_array__"):
        return None
    try:
        schema_capsule, array_capsule = img.__arrow_c_array__()
    except ValueError:
        return None
    schema = _ArrowSchema.from_address(_capsule_pointer(schema_capsule, b"arrow_schema"))
    array = _ArrowArray.from_address(_capsule_pointer(array_capsule, b"arrow_array"))
    child_format = schema.children[0].contents.format if schema.n_children == 1 else None
    if schema.format != b"+w:4" or child_format != b"C" or array.n_children != 1:
        return None
    values = array.children[0].contents
    if array.offset or values.n_buffers != 2 or values.length != 4 * img.width * img.height:
        return None
    start = values.buffers[1] + values.offset
    rgbx = np.ctypeslib.as_array((ctypes.c_uint8 * values.length).from_address(start))
    # The capsules (alive until this returns) keep Pillow's memory; the grey is a new array.
    return cv2.cvtColor(rgbx.reshape(img.height, img.width, 4), cv2.COLOR_RGBA2GRAY)


def pack_hashes(hashes: dict[str, int]) -> bytes:
    """Every :data:`NAMES` hash (or, for an image hashed before catalog migration 4, every
    :data:`LEGACY_NAMES` one), in that order, 8 bytes each (big-endian): one catalog column."""
    names = NAMES if all(name in hashes for name in NAMES) else LEGACY_NAMES
    return np.array([hashes[name] for name in names], dtype=">u8").tobytes()


def unpack_hashes(packed: bytes) -> dict[str, int]:
    """The hashes :func:`pack_hashes` packed, by name (today's views, or the legacy ones)."""
    names = LEGACY_NAMES if len(packed) == 8 * len(LEGACY_NAMES) else NAMES
    return dict(zip(names, np.frombuffer(packed, dtype=">u8").tolist(), strict=True))


def fingerprint(width: int, height: int, hashes: dict[str, int]) -> str:
    """A key that images with equal pixels always share: their size and every perceptual hash.

    Ingest computes :func:`pixel_sha256` (SHA-256 of ~1 MB per photo, a fifth of the
    decoding work) only between images whose fingerprints are equal. Different photos
    rarely share one: 13 of the 2,000 images of benchmarks/ingest_speed.py did, each a
    re-encoded copy of another, where the phash and size alone were shared by 355.
    """
    names = sorted(hashes)
    # The values as bytes, not formatted one by one: 66 hashes took ~70 us as text.
    digest = hashlib.sha256(f"{width}x{height}:{','.join(names)}:".encode())
    digest.update(np.array([hashes[name] for name in names], dtype=">u8").tobytes())
    return digest.hexdigest()[:32]


def rgb_array(rgb: Image.Image | np.ndarray) -> np.ndarray:
    """The (height, width, 3) uint8 pixels of an RGB image (one copy; an array is passed through)."""
    if isinstance(rgb, Image.Image):
        if rgb.mode != "RGB":
            raise ValueError(f"needs an RGB image, got mode {rgb.mode}")
        return np.asarray(rgb)
    if rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        raise ValueError(f"needs (height, width, 3) uint8 pixels, got {rgb.shape} {rgb.dtype}")
    return rgb


def grey_copy(rgb: Image.Image | np.ndarray, side: int = GREY_SIDE) -> np.ndarray:
    """A small grey copy (uint8 array) whose longest side is ``side`` px (never enlarged).

    OpenCV, because its area reduction by a whole factor is ~10x faster than Pillow's
    resize to an arbitrary size: shrink by the largest whole factor that keeps the
    longest side >= ``side``, then interpolate the last step (less than 2x, so no aliasing).
    """
    import cv2  # ~0.1 s to import: only where images are hashed

    if isinstance(rgb, np.ndarray) and rgb.ndim == 2:
        pixels = rgb  # grey already (a grey copy, made smaller again for hashing)
    else:
        grey = _pillow_grey(rgb) if isinstance(rgb, Image.Image) else None
        pixels = grey if grey is not None else cv2.cvtColor(rgb_array(rgb), cv2.COLOR_RGB2GRAY)
    height, width = pixels.shape
    factor = max(1, max(height, width) // side)
    if factor > 1:
        pixels = pixels[: height - height % factor, : width - width % factor]
        size = (pixels.shape[1] // factor, pixels.shape[0] // factor)
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
    scale = side / max(pixels.shape)
    if scale < 1:
        size = (max(1, round(pixels.shape[1] * scale)), max(1, round(pixels.shape[0] * scale)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(pixels)


@dataclass(frozen=True)
class Grey:
    pixels: np.ndarray  # the grey copy (GREY_SIDE px on the longest side, never enlarged)
    hashed_from: str  # RGB or LUMA
    size: tuple[int, int]  # (width, height) of the whole image, EXIF orientation applied


def grey_of(img: Image.Image) -> Grey:
    """The grey copy of a just-opened image: :func:`luma_grey` for a JPEG that has one, else
    :func:`grey_copy` of its :func:`normalize`-d pixels. Loads ``img`` (a truncated file
    raises as ``img.load()`` would)."""
    size = oriented_size(img)  # before luma_grey, which makes the decoded image smaller
    luma = luma_grey(img)
    if luma is not None:
        return Grey(luma, LUMA, size)
    rgb = normalize(img)
    return Grey(grey_copy(rgb), RGB, rgb.size)


def luma_grey(img: Image.Image) -> np.ndarray | None:
    """The grey copy of a just-opened JPEG, taken from its own luma (Y) plane; None (and
    ``img`` untouched) for any other image, or a JPEG that is not one frame of Y or YCbCr.

    libjpeg then skips the colour planes' inverse DCT, upsampling and colour conversion,
    and decodes at the smallest scale (1/2, 1/4 or 1/8) that keeps the longest side at
    least GREY_SIDE: decode plus grey copy of a 640x480 photo 0.63 ms instead of 0.90,
    1600x1200 2.3 instead of 4.6, 3000x2000 5.4 instead of 40.
    The result is close to, not exactly, the grey of the decoded RGB pixels, so the same
    pixels hashed both ways can differ by a few bits (at most 10 of 64 between the two
    ``phash`` values, over 3,960 JPEGs of 30 photos at 6 aspect ratios, 4 sizes, 3
    qualities, 2 chroma subsamplings; 12 for a 1024x141 strip). Exact duplicates across
    the two are found by pixels instead (curator.ingest.run).
    """
    if img.format != "JPEG" or img.mode not in ("RGB", "L") or getattr(img, "n_frames", 1) != 1:
        return None
    width, height = img.size
    longest = max(width, height)
    img.draft("L", (max(1, width * GREY_SIDE // longest), max(1, height * GREY_SIDE // longest)))
    img.load()
    upright = ImageOps.exif_transpose(img) if orientation(img) != 1 else img
    return grey_copy(np.asarray(upright))


def perceptual_hashes(rgb: Image.Image | np.ndarray) -> dict[str, int]:
    """Every perceptual hash curator stores for an image: name -> unsigned 64-bit value."""
    return hashes_of_grey(grey_copy(rgb))


def hashes_of_grey(grey: np.ndarray) -> dict[str, int]:
    """:func:`perceptual_hashes` of the image whose :func:`grey_copy` is ``grey``.

    ``phash`` is of the whole image and the other :data:`DIHEDRAL` names of its flips and
    quarter turns; ``phash_turn±A_FILL`` of the image rotated by A degrees about its centre
    with each of the :data:`FILLS`; ``phash_cropSS_ij`` of the window of SS% of each side at
    grid position (i, j). A copy under any flip or quarter turn, rotated by up to ~26
    degrees, or cropped by up to ~22% of a side has a ``phash`` within a few bits of one of
    these views of its original, or of one of its own flips (see curator.match).
    """
    import cv2

    # Equalising first makes the hash ignore brightness, contrast and gamma (any monotonic
    # change of grey levels) and spreads distinct photos further apart: on
    # benchmarks/dedup_quality.py it took distinct pairs within 12 bits from 8 to 0 of 3,741.
    work = cv2.equalizeHist(grey_copy(grey, WORK_SIDE))
    height, width = work.shape
    rows, row_of, cols = _view_projections(height, width)
    # Box-averaging a window to the 32x32 thumbnail and taking the thumbnail's 8x8 lowest
    # DCT frequencies are both linear, so each view is two small products: rows @ pixels @ cols.T,
    # the first taken once per distinct row window (the crops share them).
    pixels = work.astype(np.float64)
    low = (rows @ pixels)[row_of] @ cols.transpose(0, 2, 1)  # (1 + crops, 8, 8)
    centre = _projection(height, *_CENTRE) @ pixels @ _projection(width, *_CENTRE).T
    views = np.concatenate([dihedral(low[0]), dihedral(centre), _turn_views(cv2, work), low[1:]])
    return dict(zip(NAMES, _bits_many(views), strict=True))


def dihedral(low: np.ndarray) -> np.ndarray:
    """(8, 8, 8): the low DCT frequencies of the image's 8 flips and quarter turns, in
    :data:`DIHEDRAL` order, from its own (``low``): a reversed axis negates its odd
    frequencies, a transpose swaps the axes."""
    flips = low * _flip_signs()  # (4, 8, 8): as is, mirrored, flipped, both
    return np.concatenate([flips, flips.transpose(0, 2, 1)])


def _turn_views(cv2: Any, work: np.ndarray) -> np.ndarray:
    """(turns x fills, 8, 8): low frequencies of ``work`` rotated by each of TURNS, filled each
    way (FILLS order within each turn).

    Every turn at half size (the 32x32 thumbnail needs no more), onto a canvas that holds
    the image turned by any of TURNS, reading mirrored borders padded once: the canvas's
    centre window of the original size is the ``reflect`` fill; the canvas times the turn's
    mask (cached per size) is black-filled, and of that the centre window is ``constant``,
    the upright window inside the turned image ``crop``, and the window that holds all of
    it ``expand``. All turns are one remap and their projections one batched product.
    """
    size = (max(1, work.shape[1] // 2), max(1, work.shape[0] // 2))
    half = cv2.resize(work, size, interpolation=cv2.INTER_AREA).astype(np.float32)
    height, width = half.shape
    margin = _margin(height, width)
    # A warp with mirrored borders built in (BORDER_REFLECT_101) takes twice as long as one
    # that never reads past the pixels.
    padded = cv2.copyMakeBorder(half, margin, margin, margin, margin, cv2.BORDER_REFLECT_101)
    (where, weights), masks, rows, cols = _turn_geometry(height, width)
    # One remap of all turns, not a warpAffine per turn: the same pixels (the maps are the
    # warp's own), and beside ingest's other threads on 2 cores the eight calls cost far more
    # wall time than their CPU time (benchmarks/ingest_speed.py).
    grown = cv2.remap(padded, where, weights, cv2.INTER_LINEAR).reshape(masks.shape)
    mirrored = rows[:, 0] @ grown @ cols[:, 0]  # (turns, 8, 8)
    black = rows @ (grown * masks)[:, None] @ cols  # (turns, 3, 8, 8): centre, inside, all
    fills = np.stack([black[:, 0], mirrored, black[:, 1], black[:, 2]], axis=1)
    return fills.reshape(-1, HASH_SIZE, HASH_SIZE).astype(np.float64)


@lru_cache(maxsize=256)
def _turn_geometry(
    height: int, width: int
) -> tuple[tuple[np.ndarray, np.ndarray], np.ndarray, np.ndarray, np.ndarray]:
    """For a ``height`` x ``width`` image and each of TURNS: the remap maps (:func:`_warp_maps`)
    turning it (padded by :func:`_margin`) onto the common canvas, all turns stacked; the
    canvas's mask of turned pixels; and (3, 8, n) row and (3, n, 8) column projections of the
    centre window of the original size, the upright window inside the turned image, and the
    window that holds all of it."""
    import cv2

    grown = [_turned_geometry(width, height, angle)[:2] for angle in TURNS]
    canvas_w, canvas_h = max(w for w, _ in grown), max(h for _, h in grown)
    ones = np.ones((height, width), dtype=np.float32)
    maps, masks, rows, cols = [], [], [], []
    for angle in TURNS:
        grown_w, grown_h, inside = _turned_geometry(width, height, angle)
        turn = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, 1.0)
        turn[0, 2] += (canvas_w - width) / 2
        turn[1, 2] += (canvas_h - height) / 2
        masks.append(cv2.warpAffine(ones, turn, (canvas_w, canvas_h), flags=cv2.INTER_LINEAR))
        turn[:, 2] -= turn[:, :2] @ np.array([1.0, 1.0]) * _margin(height, width)  # read the padded copy
        maps.append(_warp_maps(turn, canvas_w, canvas_h))
        rows.append(_windows(canvas_h, (height, height * inside, grown_h)))
        cols.append(_windows(canvas_w, (width, width * inside, grown_w)).transpose(0, 2, 1))
    where, weights = (np.concatenate(part) for part in zip(*maps, strict=True))
    return (where, weights), np.stack(masks), np.stack(rows), np.stack(cols)


def _warp_maps(turn: np.ndarray, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """The fixed-point maps ``cv2.warpAffine(src, turn, (width, height), flags=INTER_LINEAR)``
    computes and remaps with: (height, width, 2) int16 source pixels and (height, width)
    uint16 interpolation weights, so that ``cv2.remap`` with them gives the same pixels to
    the bit (tested). The same arithmetic as OpenCV's: the inverse transform in doubles,
    rounded to 1/1024 of a pixel, then to 1/32."""
    import cv2

    bits, tab = 10, 5  # OpenCV's AB_BITS and INTER_BITS
    inverse = cv2.invertAffineTransform(turn)
    x, y = np.arange(width), np.arange(height)
    half_step = (1 << bits) >> tab >> 1

    def fixed(across: float, down: float, shift: float) -> np.ndarray:
        row = np.rint((down * y + shift) * (1 << bits)).astype(np.int64) + half_step
        return (row[:, None] + np.rint(across * x * (1 << bits)).astype(np.int64)[None, :]) >> (bits - tab)

    sx = fixed(inverse[0, 0], inverse[0, 1], inverse[0, 2])
    sy = fixed(inverse[1, 0], inverse[1, 1], inverse[1, 2])
    where = np.stack([sx >> tab, sy >> tab], axis=-1).astype(np.int16)
    weights = ((sy & ((1 << tab) - 1)) << tab | (sx & ((1 << tab) - 1))).astype(np.uint16)
    return where, weights


def _windows(canvas: int, sides: tuple[float, ...]) -> np.ndarray:
    """(len(sides), 8, canvas): projections of centred windows of these sides."""
    spans = [((canvas - side) / 2 / canvas, (canvas + side) / 2 / canvas) for side in sides]
    return np.stack([_projection(canvas, *span) for span in spans]).astype(np.float32)


_CENTRE = ((1 - CENTRE) / 2, (1 + CENTRE) / 2)


def _margin(height: int, width: int) -> int:
    """Padding that holds every pixel a turn onto the grown canvas reads (its half-diagonal)."""
    return int(math.hypot(height, width) / 2) + 2


@lru_cache(maxsize=4096)
def _turned_geometry(width: int, height: int, angle: float) -> tuple[int, int, float]:
    """For a ``width`` x ``height`` image turned by ``angle`` degrees: the canvas that holds all
    of it, and the largest centred window of the same proportions (fraction of each side)
    that holds no corner."""
    c, s = abs(math.cos(math.radians(angle))), abs(math.sin(math.radians(angle)))
    inside = min(width / (width * c + height * s), height / (width * s + height * c))
    return round(width * c + height * s), round(width * s + height * c), inside


@lru_cache(maxsize=4096)
def _projection(n: int, start: float, stop: float) -> np.ndarray:
    """(8, n): a side of ``n`` pixels to the thumbnail's low DCT frequencies over [start, stop)."""
    return _dct_matrix()[:HASH_SIZE] @ _box_weights(n, start, stop)


@lru_cache(maxsize=256)
def _view_projections(height: int, width: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For the whole image and each crop window, matrices taking an image's pixels to its
    thumbnail's low DCT frequencies: (windows, 8, height) of the distinct row windows, which
    of them each view takes, and (views, 8, width) of each view's columns. Cached: one per
    image shape."""
    d = _dct_matrix()[:HASH_SIZE]
    windows = [(0.0, 1.0)]
    windows += [(float(a), float(a) + scale) for scale in CROP_SCALES for a in _steps(scale)]
    pairs = [(windows[0], windows[0])]  # crops as NAMES orders them: left (i) outer, top (j) inner
    pairs += [
        ((top, top + s), (left, left + s)) for s in CROP_SCALES for left in _steps(s) for top in _steps(s)
    ]
    rows = np.stack([d @ _box_weights(height, *w) for w in windows])
    row_of = np.array([windows.index(r) for r, _ in pairs])
    col_of = {w: d @ _box_weights(width, *w) for w in windows}
    cols = np.stack([col_of[c] for _, c in pairs])
    return rows, row_of, cols


def _steps(scale: float) -> list[float]:
    """Where crop windows of ``scale`` start, as fractions of the side: CROP_STEPS of them, evenly."""
    return [float(x) for x in np.linspace(0.0, 1.0 - scale, CROP_STEPS)]


def _box_weights(n: int, start: float, stop: float) -> np.ndarray:
    """(DCT_SIDE, n): each thumbnail pixel is the area-weighted mean of the source pixels its
    share of the window [start, stop) (fractions of the side) covers."""
    edges = np.linspace(start * n, stop * n, DCT_SIDE + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    pixel = np.arange(n, dtype=np.float64)[None, :]
    overlap = np.clip(np.minimum(hi, pixel + 1) - np.maximum(lo, pixel), 0.0, None)
    return overlap / (hi - lo)


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
def _flip_signs() -> np.ndarray:
    """(4, 8, 8): the low frequencies' signs as is, mirrored, flipped, and both (the DCT of a
    reversed sequence has its coefficient k multiplied by (-1)^k)."""
    mirror = np.broadcast_to([(-1.0) ** k for k in range(HASH_SIZE)], (HASH_SIZE, HASH_SIZE))
    return np.stack([np.ones_like(mirror), mirror, mirror.T, mirror * mirror.T])


def _bits_many(low: np.ndarray) -> list[int]:
    flat = low.reshape(len(low), -1)
    # Each row's median: the mean of its two middle values, as np.median takes it. Sorting
    # 64 values takes a quarter of the time np.partition takes to find those two.
    middle = HASH_SIZE * HASH_SIZE // 2
    ordered = np.sort(flat, axis=1)
    median = (ordered[:, middle - 1 : middle] + ordered[:, middle : middle + 1]) / 2
    above = flat > median
    packed = np.packbits(above, axis=1)  # (views, 8) bytes, most significant first
    return packed.view(">u8").reshape(-1).tolist()


def hamming(a: int, b: int) -> int:
    return (a ^ b).bit_count()


def to_signed(value: int) -> int:
    """An unsigned 64-bit hash as the signed integer SQLite stores."""
    return value - (1 << 64) if value >= (1 << 63) else value


def to_unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value


class HashIndex:
    """Every stored hash within a Hamming radius of a query, without comparing with all of them.

    Multi-index hashing: the 64 bits are cut into ``m`` chunks. With
    ``r = m * q + a`` (``a < m``), two hashes within ``r`` bits agree to within ``q``
    bits on one of the first ``a + 1`` chunks or to within ``q - 1`` bits on one of
    the others (pigeonhole: otherwise the chunk distances add up to more than r).
    Each chunk has a table from chunk value to the entries holding it, so a query
    probes every chunk value within that many bits of its own, and only the
    entries found there are compared in full. ``m`` is chosen per search from the
    table size and radius; for small tables a plain vectorised scan is cheaper and
    is used instead. New entries go to a scanned tail that is folded into the
    tables when it grows, so adding one image costs no rebuild. The probes run as numpy
    steps, or as one loop compiled by numba where it is installed (the ``fast`` extra)
    once the searches are big enough to pay for loading it; both find the same.

    Each entry carries an ``owner`` (an image slot) and a ``kind`` (a hash name's
    index in NAMES). Used by both dedup.NearIndex.add_image and dedup.recluster.
    """

    def __init__(self, compiled: bool | None = None) -> None:
        # compiled: True probes with the compiled loop wherever numba (the ``fast`` extra) is
        # installed, False never, None once it pays (_probe_loop_for).
        self._compiled = compiled
        # Entries 0.._size in buffers that grow by a quarter at a time (one image's hashes are
        # appended, not the whole index copied); the chunk tables cover 0.._folded, and the
        # rest, the tail, is scanned.
        self._values = np.zeros(0, dtype=np.uint64)
        self._owners = np.zeros(0, dtype=np.int32)
        self._kinds = np.zeros(0, dtype=np.int16)
        self._size = 0
        self._folded = 0
        self._tables: dict[int, list[_ChunkTable]] = {}
        self._rent = 0.0  # the tail's scans since the last fold, in ns (see search)
        self._numpy_probes = 0.0  # the estimated cost of probes made with numpy's steps (_plan's units)

    def __len__(self) -> int:
        return self._size

    @property
    def compiled(self) -> bool:
        """Whether searches may probe with the compiled loop (numba installed, not turned off)."""
        return self._compiled is not False and _compiled_probe() is not None

    def extend(self, values: np.ndarray, owners: np.ndarray, kinds: np.ndarray) -> None:
        end = self._size + len(values)
        if end > len(self._values):
            capacity = max(end, len(self._values) * 5 // 4, 1024)
            self._values, self._owners, self._kinds = (
                np.concatenate([old[: self._size], np.zeros(capacity - self._size, dtype=old.dtype)])
                for old in (self._values, self._owners, self._kinds)
            )
        self._values[self._size : end] = values
        self._owners[self._size : end] = owners
        self._kinds[self._size : end] = kinds
        self._size = end

    def _fold(self) -> None:
        tail = self._values[self._folded : self._size]
        self._tables = {m: _merged(tables, tail, self._folded) for m, tables in self._tables.items()}
        self._folded = self._size
        self._rent = 0.0

    def _fold_price(self) -> float:
        """What folding the tail into the cached tables would cost, in ns: each table's insert
        moves its entries and rebuilds its bucket starts (2**21 of them at m = 3)."""
        tables = [table for tables in self._tables.values() for table in tables]
        return sum(_FOLD_NS_PER_ENTRY * self._folded + _FOLD_NS_PER_SLOT * len(t.starts) for t in tables)

    def search(
        self, queries: np.ndarray, radius: int, chunks: int | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(query index, entry index, distance) for every entry within ``radius`` of a query.

        ``chunks`` forces the plan (0: scan, 3-8: multi-index); by default it is estimated.
        """
        queries = np.asarray(queries, dtype=np.uint64)
        # Every search scans the tail (entries added since the last fold); folding it into the
        # tables costs an insert into each. Rent or buy: the tail is folded once its scans
        # would have cost as much as a fold, so neither is ever more than about twice what the
        # best fixed tail size would have spent, whatever an index's mix of entries added and
        # hashes searched (ingest's index of every view gets 66 entries per image and few
        # queries, that of the plain phash one entry and 58 queries).
        self._rent += len(queries) * (self._size - self._folded) * _SCAN_NS_PER_PAIR
        if self._folded == 0 or self._rent >= self._fold_price():
            self._fold()
        folded = self._values[: self._folded]
        m = _plan(len(folded), len(queries), radius, self._tables) if chunks is None else chunks
        if m == 0 or not len(folded):  # one pass over the tables' part and the tail alike
            return scan(queries, self._values[: self._size], radius)
        tables = self._tables.get(m)
        if tables is None:
            tables = self._tables[m] = _build_tables(folded, m)
        loop = self._probe_loop_for(_cost(len(folded), len(queries), radius, m))
        probed = _probe(queries, folded, tables, radius, loop)
        if self._size == self._folded:
            return probed
        scanned = scan(queries, self._values[self._folded : self._size], radius, self._folded)
        return tuple(np.concatenate(col) for col in zip(probed, scanned, strict=True))  # type: ignore[return-value]

    def _probe_loop_for(self, cost: float) -> Any:
        """The compiled probe loop for a search of this estimated ``cost`` (None: numpy's steps).
        Loading it (importing numba, reading its cached machine code) takes about half a
        second, which a small catalog's whole ingest never spends on probes: rent or buy
        again, it is loaded once this index's probes with numpy would have cost that much."""
        if self._compiled is False:
            return None
        loaded = _compiled_probe.cache_info().currsize > 0
        if self._compiled is None and not loaded and self._numpy_probes + cost < _LOAD_COST:
            self._numpy_probes += cost
            return None
        return _compiled_probe()

    def prepare(self, queries: int, radius: int) -> int:
        """Build the chunk tables a search of ``queries`` hashes at ``radius`` would use, and
        return its plan (``chunks`` for :meth:`search`): processes forked after this share
        the tables, and each can search a slice of the queries with the same plan."""
        if self._folded == 0:
            self._fold()
        m = _plan(self._folded, queries, radius, self._tables)
        if m and m not in self._tables:
            self._tables[m] = _build_tables(self._values[: self._folded], m)
        return m

    def entries(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(values, owners, kinds) of every entry, in the order added (views, not copies)."""
        return self._values[: self._size], self._owners[: self._size], self._kinds[: self._size]

    def entry(self, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(owners, kinds) of entries by index (tail included)."""
        return self._owners[index], self._kinds[index]


_Found = tuple[np.ndarray, np.ndarray, np.ndarray]


@dataclass(frozen=True)
class _ChunkTable:
    shift: int
    bits: int
    order: np.ndarray  # entry indices sorted by chunk value
    values: np.ndarray  # the entries' values in that order: a probe reads its bucket in one place
    starts: np.ndarray  # starts[v]..starts[v + 1]: where chunk value v's entries lie in ``order``


def _chunks(m: int) -> list[tuple[int, int]]:
    """(shift, bits) of m chunks covering 64 bits."""
    sizes = [64 // m + (1 if i < 64 % m else 0) for i in range(m)]
    shifts = np.cumsum([0, *sizes[:-1]])
    return [(int(s), b) for s, b in zip(shifts, sizes, strict=True)]


@lru_cache(maxsize=256)
def _ball(bits: int, radius: int) -> int:
    return sum(math.comb(bits, k) for k in range(radius + 1))


def _chunk_radii(radius: int, m: int) -> list[int]:
    """Per chunk, the radius to probe (-1: skip the chunk); see HashIndex."""
    q, a = divmod(radius, m)
    return [q] * (a + 1) + [q - 1] * (m - a - 1)


def _plan(entries: int, queries: int, radius: int, cached: Iterable[int] = ()) -> int:
    """The chunk count m with the least estimated work, or 0 for a plain scan; one of the
    ``cached`` tables' counts unless a new m would cost under half as much.

    Work is counted in scanned entries (~4 ns each): a scan costs entries x queries. Probing
    costs its probes and the entries they hold, ~15 numpy calls per chunk (~4,000 entries'
    worth), and the chunk tables' build, spread over the searches until the next fold (they
    are cached). Measured for ingest's searches (8 dihedral hashes against 116,000 views at
    radius 10): m = 4 in 0.2 ms, 5 in 0.65, 3 in 0.35, a scan 3.6. An entry a probe finds
    costs ~3 scanned ones (gathered, expanded, compared): on the hashes of 4,900 photos the
    50 views' search of the stored dihedral hashes took 3x as long at m = 5 as at m = 4,
    which an equal weight had ranked first. Every set of tables kept is merged again at each
    fold, so an index searched at two radii (ingest's, at 8 and 10 bits) keeps one set where
    it can: near the best, the estimates differ less than the searches' measured times do.
    """
    if entries * max(queries, 1) <= _SCAN_ALWAYS:
        return 0  # small searches: no need to price every m
    # m >= 3 keeps each table at most 2**22 slots.
    costs = {m: _cost(entries, queries, radius, m) for m in (0, *range(3, 9))}
    best = min(costs, key=lambda m: (costs[m], m))
    kept = min((m for m in cached if m in costs), key=lambda m: costs[m], default=None)
    return kept if kept is not None and best and costs[kept] <= 2 * costs[best] else best


def _cost(entries: int, queries: int, radius: int, m: int) -> float:
    """_plan's estimate of a search's work with m chunks (0: a scan), in scanned entries."""
    if m == 0:
        return float(entries) * max(queries, 1)
    bits = 64 // m
    probes = sum(_ball(bits, r) for r in _chunk_radii(radius, m) if r >= 0)
    return probes * max(queries, 1) * (4.0 + 3.0 * entries / 2.0**bits) + _fixed_cost(m)


# Loading the compiled probe loop, ~0.5 s, in _plan's units (~4 ns each).
_LOAD_COST = 0.5e9 / 4


def _fixed_cost(m: int) -> float:
    """Per search, whatever the queries: the numpy calls of m chunks and the tables' build share."""
    return 4000.0 * m + 2.0 ** (64 // m) * m / 50


# Below this many (entries x queries) no chunk count m beats a scan: _fixed_cost alone is more.
_SCAN_ALWAYS = min(_fixed_cost(m) for m in range(3, 9))


def _build_tables(values: np.ndarray, m: int) -> list[_ChunkTable]:
    index_type = np.int32 if len(values) < 2**31 else np.int64
    tables = []
    for shift, bits in _chunks(m):
        keys = _chunk_of(values, shift, bits)
        order = np.argsort(keys, kind="stable").astype(index_type)
        starts = np.zeros((1 << bits) + 1, dtype=index_type)
        np.cumsum(np.bincount(keys, minlength=1 << bits), out=starts[1:])
        tables.append(_ChunkTable(shift, bits, order, values[order], starts))
    return tables


def _merged(tables: list[_ChunkTable], values: np.ndarray, first: int) -> list[_ChunkTable]:
    """``tables`` with entries ``first``.. (``values``) added, exactly as _build_tables of all
    would have them: each new entry after the old ones of its chunk value. One insert instead
    of a new sort: rebuilding the tables took 14% of the catalog thread ingesting 20,000 photos."""
    merged = []
    for table in tables:
        keys = _chunk_of(values, table.shift, table.bits)
        new = np.argsort(keys, kind="stable")
        keys = keys[new]
        at = table.starts[keys + 1]  # the end of each key's old entries
        order = np.insert(table.order, at, (new + first).astype(table.order.dtype))
        starts = table.starts.copy()
        starts[1:] += np.cumsum(np.bincount(keys, minlength=1 << table.bits), dtype=starts.dtype)
        entries = np.insert(table.values, at, values[new])
        merged.append(_ChunkTable(table.shift, table.bits, order, entries, starts))
    return merged


# Costs on this project's 2-core machine (benchmarks/ingest_scale.py's profile), only their
# ratios matter: a scanned (query, entry) pair; a fold's insert per entry and per bucket start.
_SCAN_NS_PER_PAIR = 1.5
_FOLD_NS_PER_ENTRY = 3.0
_FOLD_NS_PER_SLOT = 9.0


def _chunk_of(values: np.ndarray, shift: int, bits: int) -> np.ndarray:
    return ((values >> np.uint64(shift)) & np.uint64((1 << bits) - 1)).astype(np.int32)


@lru_cache(maxsize=32)
def _masks(bits: int, radius: int) -> np.ndarray:
    """Every ``bits``-bit value with at most ``radius`` bits set."""
    masks = [0]
    for k in range(1, radius + 1):
        masks += [sum(1 << b for b in combo) for combo in itertools.combinations(range(bits), k)]
    return np.array(masks, dtype=np.int64)


def scan(queries: np.ndarray, values: np.ndarray, radius: int, offset: int = 0) -> _Found:
    """(query index, value index + ``offset``, distance) of every pair within ``radius``,
    comparing every query with every value."""
    out_q, out_e, out_d = [], [], []
    step = max(1, 4_000_000 // max(len(values), 1))
    for start in range(0, len(queries), step):
        block = queries[start : start + step]
        dist = np.bitwise_count(block[:, None] ^ values[None, :])
        # flatnonzero and divmod: np.nonzero of a 2-D mask took 5x as long (25 us of
        # the ~40 us scan of 22,000 hashes, each image's search in an ingest).
        hits = np.flatnonzero(dist <= radius)
        qi, ei = np.divmod(hits, len(values))
        out_q.append(qi + start)
        out_e.append(ei + offset)
        out_d.append(dist.reshape(-1)[hits].astype(np.int64))
    return _cat(out_q), _cat(out_e), _cat(out_d)


def _probe(
    queries: np.ndarray, values: np.ndarray, tables: list[_ChunkTable], radius: int, compiled: Any
) -> _Found:
    """What search finds in the chunk tables; ``compiled``: :func:`_compiled_probe`'s loop, or
    None for numpy's steps."""
    out_q, out_e = [], []
    radii = _chunk_radii(radius, len(tables))
    for c, (table, sub) in enumerate(zip(tables, radii, strict=True)):
        if sub < 0:
            continue
        # A pair close on an earlier probed chunk was found there: dropped here.
        earlier = [(t.shift, t.bits, r) for t, r in zip(tables[:c], radii[:c], strict=True) if r >= 0]
        masks = _masks(table.bits, sub).astype(np.int32)
        # Queries in chunk order, one mask at a time: the probes then walk the table in one
        # direction (x -> x ^ mask keeps aligned blocks together), not all over it.
        chunk = _chunk_of(queries, table.shift, table.bits)
        by_chunk = np.argsort(chunk, kind="stable")
        if compiled is not None:
            at, entries = compiled(
                queries[by_chunk], chunk[by_chunk], masks, table.starts, table.values, table.order,
                np.uint64(radius), np.array(earlier, dtype=np.uint64).reshape(-1, 3),
            )
            found = by_chunk[at], entries
        else:
            found = _probe_steps(queries, chunk, by_chunk, masks, table, radius, earlier)
        out_q.append(found[0])
        out_e.append(found[1])
    # Sorted by query, then entry.
    key = np.sort(_cat(out_q) * len(values) + _cat(out_e))
    q, e = np.divmod(key, len(values))
    return q, e, np.bitwise_count(values[e] ^ queries[q]).astype(np.int64)


def _probe_steps(
    queries: np.ndarray, chunk: np.ndarray, by_chunk: np.ndarray, masks: np.ndarray, table: _ChunkTable,
    radius: int, earlier: list[tuple[int, int, int]],
) -> tuple[np.ndarray, np.ndarray]:
    """_probe's work on one chunk table in numpy, a bounded number of probes at a time."""
    out_q, out_e = [], []
    block = min(len(queries), _PROBES)
    group = max(1, _PROBES // block)
    for start in range(0, len(queries), block):
        ids = by_chunk[start : start + block]
        chunk_ids = chunk[ids]
        for first in range(0, len(masks), group):
            keys = (masks[first : first + group, None] ^ chunk_ids[None, :]).reshape(-1)
            lo, hi = table.starts[keys], table.starts[keys + 1]
            hit = np.flatnonzero(hi > lo)  # most probed chunk values hold no entry
            if not len(hit):
                continue
            # Expanded a bounded number of entries at a time: crowded chunk values (the low DCT
            # frequencies of photos are far from uniform) once made this step take gigabytes.
            total = np.cumsum(hi[hit] - lo[hit])
            cuts = np.searchsorted(total, np.arange(_EXPAND, int(total[-1]), _EXPAND), side="right")
            for part in np.split(hit, cuts):
                if len(part):
                    found = _expand(lo[part], hi[part], ids[part % len(ids)], table, queries, radius, earlier)
                    out_q.append(found[0])
                    out_e.append(found[1])
    return _cat(out_q), _cat(out_e)


def _probe_loop(
    queries: np.ndarray, chunk: np.ndarray, masks: np.ndarray, starts: np.ndarray,
    values: np.ndarray, order: np.ndarray, radius: np.uint64, earlier: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """_probe_steps as one loop, for numba: (query, entry) of every entry in the probed buckets
    within ``radius``, less those an ``earlier`` chunk (rows of shift, bits, radius) finds.
    The queries come in chunk order, so that each mask's probes walk the table in one direction."""

    def ones(x: np.uint64) -> np.uint64:  # popcount; LLVM makes it one instruction
        x = x - ((x >> np.uint64(1)) & np.uint64(0x5555555555555555))
        x = (x & np.uint64(0x3333333333333333)) + ((x >> np.uint64(2)) & np.uint64(0x3333333333333333))
        x = (x + (x >> np.uint64(4))) & np.uint64(0x0F0F0F0F0F0F0F0F)
        return (x * np.uint64(0x0101010101010101)) >> np.uint64(56)

    size, found = 0, np.empty((max(1024, len(queries)), 2), dtype=np.int64)
    for mask in masks:
        for i in range(len(queries)):
            query, key = queries[i], chunk[i] ^ mask
            for p in range(starts[key], starts[key + 1]):
                xor = values[p] ^ query
                if ones(xor) > radius:
                    continue
                new = True
                for shift, bits, sub in earlier:
                    if ones((xor >> shift) & ((np.uint64(1) << bits) - np.uint64(1))) <= sub:
                        new = False
                if new:
                    if size == len(found):
                        found = np.concatenate((found, np.empty_like(found)))
                    found[size, 0], found[size, 1] = i, order[p]
                    size += 1
    return found[:size, 0].copy(), found[:size, 1].copy()


@lru_cache(maxsize=1)
def _compiled_probe() -> Any:
    """_probe_loop compiled by numba (the ``fast`` extra), or None without numba: numpy's
    steps then do the same work, several times slower."""
    try:
        import numba
    except ImportError:
        return None
    return numba.njit(nogil=True, cache=True)(_probe_loop)


# Probes made, and entries compared, per step of _probe: a quarter million keeps each step's
# temporaries in the CPU's cache (4 million, 16-32 MB each, took 1.5x as long at 10M entries).
_PROBES = 1 << 18
_EXPAND = 1 << 18


def _expand(
    lo: np.ndarray, hi: np.ndarray, qids: np.ndarray, table: _ChunkTable, queries: np.ndarray,
    radius: int, earlier: list[tuple[int, int, int]],
) -> tuple[np.ndarray, np.ndarray]:
    """(query, entry) of every entry in the probed ranges ``lo[i]..hi[i]`` within ``radius`` of
    its query ``qids[i]``, less those an ``earlier`` (shift, bits, radius) chunk probe finds."""
    counts = hi - lo
    ends = np.cumsum(counts)
    # Expand each probed range into the positions it holds, each beside its query's value.
    pos = np.arange(int(ends[-1]), dtype=lo.dtype) - np.repeat(ends - counts - lo, counts)
    xor = table.values[pos] ^ np.repeat(queries[qids], counts)
    near = np.flatnonzero(np.bitwise_count(xor) <= radius)
    xor = xor[near]
    keep = np.ones(len(near), dtype=bool)
    for shift, bits, sub in earlier:
        keep &= np.bitwise_count(_chunk_of(xor, shift, bits)) > sub
    near = near[keep]
    return qids[np.searchsorted(ends, near, side="right")], table.order[pos[near]]


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts).astype(np.int64) if parts else np.zeros(0, dtype=np.int64)
