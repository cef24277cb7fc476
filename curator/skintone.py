"""An estimated skin tone per image: the Individual Typology Angle (ITA) over its skin pixels.

    ITA = degrees(arctan((L* - 50) / b*))        over skin pixels, in CIELAB (D65)

and the usual bands (Chardon et al. 1991; Del Bino et al. 2006): very light > 55 >= light > 41 >=
intermediate > 28 >= tan > 10 >= brown > -30 >= dark.

This is an *uncalibrated, image-based estimate*: a web photo's white balance, exposure and
lighting move L* and b* as much as skin does, so it describes the photos, not the people, and it
is not a Fitzpatrick type. The card says so wherever it reports it.

Skin pixels (:func:`skin_mask`), on the image shrunk to at most 128 px on its longest side:

- the Chai & Ngan YCrCb skin box, 133 <= Cr <= 173 and 77 <= Cb <= 127 (8-bit), which leaves
  out blue, green, grey, white and black backgrounds and grey or black hair;
- 20 <= L* <= 95: drops dark hair, hair shadows and the gaps between hairs (below), and specular
  highlights (above), where the colour is the light's, not the skin's;
- b* > 0: ITA is an angle over yellowness; b* <= 0 is no skin colour (and would flip the angle).

An image needs at least 2% of its pixels (and 64 pixels) to pass, or its ITA is unknown. The
image's ITA is the median over its skin pixels, which a remaining strand of brown hair or a
patch of redness barely moves. Brown or red hair can pass the rule; on scalp photos that pulls
the estimate darker.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

WORK_SIDE = 128  # longest side the estimate is taken at
MIN_SHARE = 0.02
MIN_PIXELS = 64
L_RANGE = (20.0, 95.0)
CR_RANGE = (133, 173)
CB_RANGE = (77, 127)
UNKNOWN = "unknown"
# (name, lower bound, exclusive); a value above the bound falls in the band
BANDS: tuple[tuple[str, float], ...] = (
    ("very light", 55.0), ("light", 41.0), ("intermediate", 28.0), ("tan", 10.0), ("brown", -30.0),
    ("dark", float("-inf")),
)
BAND_NAMES = tuple(name for name, _ in BANDS)


def band(ita: float | None) -> str:
    """The ITA band of one value; ``unknown`` for None."""
    if ita is None:
        return UNKNOWN
    return next(name for name, lower in BANDS if ita > lower)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """RGB uint8 (H, W, 3) -> CIELAB float32: L* 0..100, a* and b* signed (OpenCV, D65)."""
    import cv2

    return np.asarray(cv2.cvtColor(rgb.astype(np.float32) / 255.0, cv2.COLOR_RGB2Lab))


def skin_mask(rgb: np.ndarray, lab: np.ndarray) -> np.ndarray:
    """Boolean (H, W): the pixels the estimate is taken over (see the module docstring)."""
    import cv2

    ycrcb = cv2.cvtColor(rgb, cv2.COLOR_RGB2YCrCb)
    cr, cb = ycrcb[..., 1], ycrcb[..., 2]
    lightness, yellow = lab[..., 0], lab[..., 2]
    return np.asarray(
        (cr >= CR_RANGE[0]) & (cr <= CR_RANGE[1]) & (cb >= CB_RANGE[0]) & (cb <= CB_RANGE[1])
        & (lightness >= L_RANGE[0]) & (lightness <= L_RANGE[1]) & (yellow > 0)
    )


def ita_of_pixels(rgb: np.ndarray) -> float | None:
    """Median ITA (degrees) over the skin pixels of an RGB uint8 image; None if too few."""
    import cv2

    height, width = rgb.shape[:2]
    scale = WORK_SIDE / max(height, width)
    if scale < 1:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
    lab = to_lab(rgb)
    mask = skin_mask(rgb, lab)
    count = int(mask.sum())
    if count < max(MIN_PIXELS, MIN_SHARE * mask.size):
        return None
    lightness, yellow = lab[..., 0][mask], lab[..., 2][mask]
    angles = np.degrees(np.arctan((lightness - 50.0) / yellow))
    return round(float(np.median(angles)), 2)


def ita_of_bytes(data: bytes) -> float | None:
    """The estimate for encoded image bytes. A JPEG is decoded at a reduced scale (libjpeg's
    1/2, 1/4 or 1/8) that still covers WORK_SIDE, so a large photo costs little."""
    from PIL import Image

    from curator.hashing import normalize

    with Image.open(io.BytesIO(data)) as img:
        if img.format == "JPEG":
            width, height = img.size
            longest = max(width, height)
            # libjpeg picks the smallest scale that still covers this: far less work than a full decode
            img.draft("RGB", (max(1, width * WORK_SIDE // longest), max(1, height * WORK_SIDE // longest)))
        rgb = np.asarray(normalize(img), dtype=np.uint8)
    return ita_of_pixels(rgb)


def distribution(values: Sequence[float | None]) -> dict[str, int]:
    """Images per band (every band, then ``unknown``), in band order."""
    counts = dict.fromkeys((*BAND_NAMES, UNKNOWN), 0)
    for value in values:
        counts[band(value)] += 1
    return counts
