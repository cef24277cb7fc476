"""curator.hashing: golden values, normalisation, and what the hashes are invariant to."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageEnhance, ImageOps

from curator import dedup, hashing, synthetic
from curator.config import DedupConfig
from curator.match import Policy

CFG = DedupConfig()


def reencode(img: Image.Image, quality: int = 60) -> Image.Image:
    return Image.open(io.BytesIO(synthetic.encode(img, "JPEG", quality=quality))).convert("RGB")


@pytest.fixture(scope="module")
def photo() -> Image.Image:
    return synthetic.photo(2, "psoriasis", (320, 240))


def test_golden_values() -> None:
    img = synthetic.photo(1, "alopecia", (128, 96))
    hashes = hashing.perceptual_hashes(img)
    assert tuple(hashes) == hashing.NAMES
    assert hashes["phash"] == 0xFD21484E57B2B88E
    assert hashing.pixel_sha256(img) == "3bd40fae80ee9328ee74abd6e0f4ac03e95bcb37a4f67a2bbb45af41254dcde2"
    assert all(0 <= v < 2**64 for v in hashes.values())


@pytest.mark.parametrize(
    ("seed", "size", "expected"),
    [
        (1, (128, 96), "3e192ab9f6d9889b09ca9f2b5f7bbcf9"),
        (3, (97, 211), "1202566531e3e2b1f7e2d8f9b6a2f73f"),
        (5, (640, 480), "c181e95b92f5a0dfb0e668c06a509902"),
    ],
)
def test_every_view_hashes_as_catalogs_stored_it(seed: int, size: tuple[int, int], expected: str) -> None:
    """The fingerprint covers all the views' hashes: a faster way of computing them must give
    the same bits, or every stored image's fingerprint and views would be stale."""
    img = synthetic.photo(seed, "alopecia", size)
    grey = hashing.grey_copy(img)
    assert hashing.fingerprint(grey.shape[1], grey.shape[0], hashing.perceptual_hashes(img)) == expected


@settings(max_examples=60, deadline=None)
@given(st.integers(2, 120), st.integers(2, 120), st.floats(-30, 30), st.floats(-20, 20), st.integers(0, 99))
def test_warp_maps_remap_exactly_as_warp_affine_does(
    height: int, width: int, angle: float, shift: float, seed: int
) -> None:
    pixels = np.random.default_rng(seed).random((height, width), dtype=np.float32) * 255
    turn = cv2.getRotationMatrix2D(((width - 1) / 2, (height - 1) / 2), angle, 1.0)
    turn[:, 2] += shift
    canvas = (width + 7, height + 5)
    warped = cv2.warpAffine(pixels, turn, canvas, flags=cv2.INTER_LINEAR)
    where, weights = hashing._warp_maps(turn, *canvas)
    assert np.array_equal(cv2.remap(pixels, where, weights, cv2.INTER_LINEAR), warped)


def test_mirror_hash_is_the_hash_of_the_mirror(photo: Image.Image) -> None:
    hashes = hashing.perceptual_hashes(photo)
    mirrored = hashing.perceptual_hashes(ImageOps.mirror(photo))
    assert hashing.hamming(mirrored["phash"], hashes["phash_mirror"]) <= 4
    assert hashing.hamming(mirrored["phash"], hashes["phash"]) > CFG.candidate_threshold


def test_pixel_sha256_ignores_encoding_but_not_pixels(photo: Image.Image) -> None:
    png = Image.open(io.BytesIO(synthetic.encode(photo, "PNG")))
    assert hashing.pixel_sha256(hashing.normalize(png)) == hashing.pixel_sha256(photo)
    assert hashing.pixel_sha256(reencode(photo, 100)) != hashing.pixel_sha256(photo)


def test_normalize_applies_exif_orientation_and_makes_rgb() -> None:
    img = synthetic.photo(3, 0, (120, 80))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    data = synthetic.encode(img, "JPEG", exif=exif.tobytes())
    rgb = hashing.normalize(Image.open(io.BytesIO(data)))
    assert rgb.size == (80, 120) and rgb.mode == "RGB"
    rgba = Image.new("RGBA", (70, 70), (255, 0, 0, 0))
    assert hashing.normalize(rgba).getpixel((5, 5)) == (255, 255, 255)


@pytest.mark.parametrize(
    "name, change",
    [
        ("re-encode", lambda im: reencode(im, 40)),
        ("resize", lambda im: im.resize((160, 120), Image.Resampling.LANCZOS)),
        ("brightness", lambda im: ImageEnhance.Brightness(im).enhance(1.15)),
        ("crop 3%", lambda im: im.crop((5, 4, 315, 236))),
    ],
)
def test_easy_changes_stay_under_the_threshold(photo: Image.Image, name: str, change) -> None:
    copy = hashing.perceptual_hashes(change(photo))
    assert (dedup.pair_distance(copy, hashing.perceptual_hashes(photo)) or 0) <= CFG.threshold, name


@pytest.mark.parametrize(
    "name, change",
    [
        ("mirror", ImageOps.mirror),
        ("rotate -5", lambda im: im.rotate(-5, resample=Image.Resampling.BICUBIC)),
        ("crop 15%", lambda im: im.crop((20, 10, 292, 214))),
    ],
)
def test_hard_changes_land_near_a_view(photo: Image.Image, name: str, change) -> None:
    original = hashing.perceptual_hashes(photo)
    copy = hashing.perceptual_hashes(change(photo))
    assert hashing.hamming(copy["phash"], original["phash"]) > CFG.threshold, "needs a view to be found"
    assert (dedup.pair_distance(copy, original) or 0) <= CFG.candidate_threshold, name


FLIPS = hashing.TRANSPOSES


def turned(img: Image.Image, angle: float, fill: str) -> Image.Image:
    """``img`` turned by ``angle`` degrees, filled the way augmenters do (hashing.FILLS)."""
    if fill in ("constant", "expand"):
        return img.rotate(angle, resample=Image.Resampling.BICUBIC, expand=fill == "expand")
    pixels = np.asarray(img)
    h, w = pixels.shape[:2]
    turn = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), angle, 1.0)
    border = cv2.BORDER_REFLECT_101 if fill == "reflect" else cv2.BORDER_CONSTANT
    out = Image.fromarray(cv2.warpAffine(pixels, turn, (w, h), flags=cv2.INTER_CUBIC, borderMode=border))
    if fill == "reflect":
        return out
    c, s = abs(np.cos(np.radians(angle))), abs(np.sin(np.radians(angle)))
    inside = min(w / (w * c + h * s), h / (w * s + h * c))  # crop: the largest upright window
    cw, ch = int(w * inside), int(h * inside)
    x, y = (w - cw) // 2, (h - ch) // 2
    return out.crop((x, y, x + cw, y + ch)).resize((w, h), Image.Resampling.BICUBIC)


def test_names_of_the_flips_and_quarter_turns() -> None:
    assert set(hashing.DIHEDRAL) == {hashing.PHASH, *FLIPS}


@settings(max_examples=25, deadline=None, derandomize=True)
@given(st.integers(0, 10_000), st.sampled_from(sorted(FLIPS)))
def test_every_flip_and_quarter_turn_is_one_of_the_views(seed: int, view: str) -> None:
    """The view computed from the original's DCT is the hash of the flipped image itself."""
    img = synthetic.photo(seed, seed % 3, (160 + seed % 97, 120 + seed % 61))
    copy = hashing.perceptual_hashes(reencode(img.transpose(FLIPS[view]), 90))
    assert hashing.hamming(copy[hashing.PHASH], hashing.perceptual_hashes(img)[view]) <= 4


def test_turned_flipped_brightened_copies_are_candidates() -> None:
    """Turns up to 25 degrees in any fill, after any flip, with a brightness change: a candidate
    under the match policy (the keypoint check then decides, curator.match), in at least 95% of
    80 random cases. Not every case: a turn halfway between two turned views (8 degrees, between
    5 and 11) can land a few bits outside, which benchmarks/dedup_quality.py measures as recall."""
    policy = Policy.of(CFG)
    rng = np.random.default_rng(5)
    misses = []
    for _ in range(80):
        seed, angle = int(rng.integers(0, 10_000)), float(rng.uniform(-25, 25))
        fill = str(rng.choice(hashing.FILLS))
        flip = [None, *sorted(FLIPS)][int(rng.integers(0, len(FLIPS) + 1))]
        img = synthetic.photo(seed, seed % 3, (320, 240))
        copy = img.transpose(FLIPS[flip]) if flip else img
        copy = ImageEnhance.Brightness(turned(copy, angle, fill)).enhance(float(rng.uniform(0.7, 1.3)))
        pair = [hashing.perceptual_hashes(reencode(copy, 85)), hashing.perceptual_hashes(img)]
        if (0, 1) not in dedup.near_pairs(policy, pair):
            misses.append((seed, round(angle, 1), fill, flip))
    assert len(misses) <= 4, misses


def test_distinct_photos_are_far_apart() -> None:
    hashes = [hashing.perceptual_hashes(synthetic.photo(s, s % 3, (320, 240))) for s in range(10, 16)]
    for i, a in enumerate(hashes):
        for b in hashes[i + 1 :]:
            distance = dedup.pair_distance(a, b)
            assert distance is not None and distance > CFG.threshold


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_signed_round_trip(value: int) -> None:
    signed = hashing.to_signed(value)
    assert -(2**63) <= signed < 2**63
    assert hashing.to_unsigned(signed) == value


@pytest.mark.parametrize("size", [(640, 480), (161, 97), (1, 1)])
def test_grey_copy_from_pillow_memory_equals_the_packed_pixels(size: tuple[int, int]) -> None:
    pixels = np.random.default_rng(size[0]).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    img = Image.fromarray(pixels)
    direct = hashing._pillow_grey(img)
    assert direct is not None  # the zero-copy path was taken
    assert np.array_equal(direct, cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY))
    assert np.array_equal(hashing.grey_copy(img), hashing.grey_copy(pixels))


def test_grey_copy_falls_back_where_pillow_cannot_export() -> None:
    big = Image.new("RGB", (3000, 2000), (10, 200, 30))  # 24 MB: rows span Pillow's memory blocks
    assert hashing._pillow_grey(big) is None
    assert hashing._pillow_grey(Image.new("L", (8, 8))) is None
    assert np.array_equal(hashing.grey_copy(big), hashing.grey_copy(np.asarray(big)))


def _jpeg(img: Image.Image, **params: object) -> bytes:
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=90, **params)
    return buf.getvalue()


def test_luma_grey_decodes_a_jpeg_smaller_and_only_a_jpeg() -> None:
    photo = synthetic.photo(4, "alopecia", (1600, 1200))
    img = Image.open(io.BytesIO(_jpeg(photo)))
    grey = hashing.luma_grey(img)
    assert grey is not None and grey.shape == (192, 256)
    assert (img.mode, img.size) == ("L", (400, 300))  # decoded at 1/4: still >= 256 px
    for other in (synthetic.encode(photo, "PNG"), _jpeg(photo.convert("CMYK"))):
        opened = Image.open(io.BytesIO(other))
        assert hashing.luma_grey(opened) is None
        assert hashing.grey_of(opened).hashed_from == hashing.RGB


def test_grey_of_a_jpeg_applies_exif_orientation() -> None:
    upright = synthetic.photo(5, "psoriasis", (640, 480))
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": undoes ROTATE_90 (which is CCW)
    sideways = _jpeg(upright.transpose(Image.Transpose.ROTATE_90), exif=exif)
    tagged = hashing.grey_of(Image.open(io.BytesIO(sideways)))
    plain = hashing.grey_of(Image.open(io.BytesIO(_jpeg(upright))))
    assert (tagged.hashed_from, tagged.size, tagged.pixels.shape) == (hashing.LUMA, (640, 480), (192, 256))
    assert hashing.hamming(hashing.hashes_of_grey(tagged.pixels)[hashing.PHASH],
                           hashing.hashes_of_grey(plain.pixels)[hashing.PHASH]) <= 4


@pytest.mark.parametrize("size", [(640, 480), (1600, 1200), (333, 500), (900, 300)])
def test_luma_and_rgb_hashes_of_the_same_pixels_are_close(size: tuple[int, int]) -> None:
    """What ingest's and audit's comparison across the two ways of hashing relies on
    (hashing.ACROSS_HASHINGS)."""
    for seed in range(6):
        data = _jpeg(synthetic.photo(seed, "folliculitis", size))
        luma = hashing.grey_of(Image.open(io.BytesIO(data)))
        rgb = hashing.grey_copy(hashing.normalize(Image.open(io.BytesIO(data))))
        distance = hashing.hamming(hashing.hashes_of_grey(luma.pixels)[hashing.PHASH],
                                   hashing.hashes_of_grey(rgb)[hashing.PHASH])
        assert distance <= hashing.ACROSS_HASHINGS - 6, (size, seed, distance)
