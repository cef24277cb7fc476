"""The ITA skin-tone estimate: patches of known CIELAB colour land in their band, and the skin
rule leaves hair and coloured backgrounds out."""

from __future__ import annotations

import io
import math

import cv2
import numpy as np
import pytest
from PIL import Image

from curator import skintone


def patch(lab: tuple[float, float, float], size: int = 64) -> np.ndarray:
    """An RGB uint8 square of one CIELAB colour."""
    pixels = np.full((size, size, 3), lab, np.float32)
    return np.clip(cv2.cvtColor(pixels, cv2.COLOR_Lab2RGB) * 255 + 0.5, 0, 255).astype(np.uint8)


def ita(lightness: float, b: float) -> float:
    return math.degrees(math.atan((lightness - 50) / b))


# (L*, a*, b*) of skin-like colours, one well inside each band
PATCHES = [
    ((75, 8, 12), "very light"),
    ((68, 10, 18), "light"),
    ((62, 12, 18), "intermediate"),
    ((55, 14, 20), "tan"),
    ((45, 14, 22), "brown"),
    ((32, 12, 16), "dark"),
]


@pytest.mark.parametrize(("lab", "expected"), PATCHES)
def test_a_patch_of_known_colour_lands_in_its_band(lab: tuple[float, float, float], expected: str) -> None:
    measured = skintone.ita_of_pixels(patch(lab))
    assert measured is not None
    assert abs(measured - ita(lab[0], lab[2])) < 1.0  # only the 8-bit rounding of the patch
    assert skintone.band(measured) == expected


@pytest.mark.parametrize(("value", "expected"), [
    (55.01, "very light"), (55.0, "light"), (41.0, "intermediate"), (28.0, "tan"), (10.0, "brown"),
    (-30.0, "dark"), (-80.0, "dark"), (None, "unknown"),
])
def test_band_edges(value: float | None, expected: str) -> None:
    assert skintone.band(value) == expected


def scalp_scene() -> tuple[np.ndarray, np.ndarray]:
    """A tan skin patch crossed by dark hair, on a blue (left) and green (right) background;
    and the mask of the skin pixels."""
    image = np.zeros((120, 160, 3), np.uint8)
    image[:, :80] = (40, 70, 200)  # blue
    image[:, 80:] = (50, 160, 60)  # green
    skin = np.zeros((120, 160), bool)
    skin[20:100, 30:130] = True
    image[skin] = patch((55, 14, 20), 1)[0, 0]
    for row in range(24, 100, 8):  # strands of dark hair over the skin
        image[row:row + 3, 30:130] = (45, 28, 20)  # dark brown: skin-coloured in YCrCb, L* about 13
        skin[row:row + 3, 30:130] = False
    return image, skin


def test_the_skin_rule_ignores_dark_hair_and_blue_or_green_background() -> None:
    image, skin = scalp_scene()
    mask = skintone.skin_mask(image, skintone.to_lab(image))
    assert np.array_equal(mask, skin)


def test_hair_and_background_do_not_move_the_estimate() -> None:
    image, _ = scalp_scene()
    alone = skintone.ita_of_pixels(patch((55, 14, 20)))
    assert alone is not None and skintone.ita_of_pixels(image) == pytest.approx(alone, abs=0.5)


def test_no_skin_is_unknown() -> None:
    image, _ = scalp_scene()
    image[20:100, 30:130] = (40, 70, 200)
    assert skintone.ita_of_pixels(image) is None
    assert skintone.distribution([None, 50.0, 20.0, 20.5]) == {
        "very light": 0, "light": 1, "intermediate": 0, "tan": 2, "brown": 0, "dark": 0, "unknown": 1}


def test_encoded_bytes_give_the_pixels_estimate() -> None:
    """A large JPEG, decoded at reduced scale, agrees with its pixels to within a degree."""
    image = cv2.resize(scalp_scene()[0], (1600, 1200), interpolation=cv2.INTER_NEAREST)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "JPEG", quality=95, subsampling=0)
    from_bytes = skintone.ita_of_bytes(buffer.getvalue())
    from_pixels = skintone.ita_of_pixels(image)
    assert from_bytes is not None and from_pixels is not None
    assert from_bytes == pytest.approx(from_pixels, abs=1.0)


@pytest.mark.parametrize("steps", [
    [{"op": "resize", "size": 224}],  # the estimate is taken on the resized pixels
    [{"op": "resize", "size": 224, "mode": "pad-square"}, {"op": "denoise", "method": "median"}],
    [{"op": "denoise", "method": "median"}],  # no leading resize: on the decoded original
    [{"op": "resize", "size": 64}],  # shrunk below the estimate's size: on the decoded original
])
def test_the_build_takes_the_estimate_from_its_own_decode(steps: list[dict[str, object]]) -> None:
    """preprocess.process_with_tone: the same image bytes as process, and within a degree of the
    estimate on the full original, whether the first step resizes, pads, or does neither."""
    from curator import preprocess

    image = cv2.resize(scalp_scene()[0], (1600, 1200), interpolation=cv2.INTER_NEAREST)
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, "PNG")
    normal = preprocess.normalize_steps(steps)
    out = preprocess.process_with_tone(buffer.getvalue(), normal)
    assert out.image == preprocess.process(buffer.getvalue(), normal)
    full = skintone.ita_of_pixels(image)
    assert out.ita is not None and full is not None and out.ita == pytest.approx(full, abs=1.0)
