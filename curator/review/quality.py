"""Quality checks: pure functions of one decoded image and the ``[review]`` thresholds.

Each measure is taken on a grey or colour copy whose longer side is :data:`SIDE` pixels
(resolution and aspect from the full size), so a measure does not depend on how large a
photo was saved. A finding's score is the measure against its threshold, oriented so that
a higher score is worse and a score of 1 or more is past the threshold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from curator.config import ReviewConfig

VERSION = "quality-1"
SIDE = 256
EPS = 1e-6


@dataclass(frozen=True)
class Result:
    """One check's verdict on one image: flagged when ``issue`` says so, else when ``score >= 1``."""

    kind: str
    score: float
    detail: dict[str, Any]
    issue: bool | None = None

    @property
    def flagged(self) -> bool:
        return self.score >= 1.0 if self.issue is None else self.issue


def params(cfg: ReviewConfig) -> dict[str, Any]:
    """The thresholds this check uses (stored with every finding)."""
    return {"side": SIDE, "blur_max": cfg.blur_max, "dark_max": cfg.dark_max, "bright_min": cfg.bright_min,
            "low_information_max": cfg.low_information_max, "min_side": cfg.min_side,
            "max_aspect": cfg.max_aspect, "greyscale_max": cfg.greyscale_max}


def small_copy(rgb: np.ndarray, side: int = SIDE) -> np.ndarray:
    """``rgb`` resized (area averaging) so that its longer side is ``side``; smaller ones as they are."""
    height, width = rgb.shape[:2]
    scale = side / max(height, width)
    if scale >= 1:
        return rgb
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def measures(rgb: np.ndarray, width: int, height: int) -> dict[str, float]:
    """The raw measures of one image: ``rgb`` is (a reduced copy of) the image, ``width`` x
    ``height`` its full size."""
    small = small_copy(rgb).astype(np.float32)
    grey = small @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
    # Sharpness: the finest detail (Laplacian) against the detail a little coarser (grey minus
    # its 2-pixel Gaussian blur), at a fixed scale. Blur removes the first faster than the
    # second; a darker, paler or smooth-lit copy of a sharp photo keeps the ratio.
    laplacian = cv2.Laplacian(grey, cv2.CV_32F, ksize=1)
    band = grey - cv2.GaussianBlur(grey, (0, 0), 2.0)
    low, high = np.percentile(grey, [1, 99])
    counts = np.bincount(np.clip(grey, 0, 255).astype(np.uint8).ravel(), minlength=256)
    share = counts[counts > 0] / grey.size
    r, g, b = small[..., 0], small[..., 1], small[..., 2]
    rg, yb = r - g, 0.5 * (r + g) - b
    # Hasler and Suesstrunk's colourfulness (2003), over the mean brightness so that a dark
    # copy of a colour photo is not taken for greyscale.
    colourfulness = float(np.hypot(rg.std(), yb.std()) + 0.3 * np.hypot(rg.mean(), yb.mean()))
    return {
        "sharpness": float(laplacian.var()) / (float(band.var()) + 1.0),
        "luma_p99": float(high),
        "luma_p1": float(low),
        "entropy": float(-(share * np.log2(share)).sum()),
        "min_side": float(min(width, height)),
        "aspect": max(width, height) / max(1, min(width, height)),
        "colourfulness": 100.0 * colourfulness / (float(small.mean()) + 10.0),
    }


def check(rgb: np.ndarray, width: int, height: int, cfg: ReviewConfig) -> list[Result]:
    """Every quality kind's result for one image (flagged or not)."""
    m = measures(rgb, width, height)
    uniform = m["entropy"] < cfg.low_information_max
    results = [
        # A near-uniform image has no edges to be sharp with: it is low-information, not blurred.
        Result("blur", 0.0 if uniform else cfg.blur_max / (m["sharpness"] + EPS),
               {"sharpness": round(m["sharpness"], 5), "threshold": cfg.blur_max}),
        Result("dark", cfg.dark_max / (m["luma_p99"] + 1.0),
               {"luma_p99": round(m["luma_p99"], 1), "threshold": cfg.dark_max}),
        Result("bright", m["luma_p1"] / cfg.bright_min,
               {"luma_p1": round(m["luma_p1"], 1), "threshold": cfg.bright_min}),
        Result("low-information", cfg.low_information_max / (m["entropy"] + EPS),
               {"entropy": round(m["entropy"], 3), "threshold": cfg.low_information_max}),
        Result("low-resolution", cfg.min_side / m["min_side"],
               {"width": width, "height": height, "threshold": cfg.min_side}),
        Result("odd-aspect", m["aspect"] / cfg.max_aspect,
               {"aspect": round(m["aspect"], 3), "threshold": cfg.max_aspect}),
        Result("greyscale", 0.0 if uniform else cfg.greyscale_max / (m["colourfulness"] + EPS),
               {"colourfulness": round(m["colourfulness"], 2), "threshold": cfg.greyscale_max}),
    ]
    return results
