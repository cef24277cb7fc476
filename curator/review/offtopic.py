"""Off-topic images: far from the rest of the dataset in a colour and texture space.

Why this space and not the baseline CNN's penultimate layer: it needs no trained model
(the check runs right after ingest, before any label exists), costs ~1 ms per image, and
what makes a scraped photo off-topic for a scalp dataset is mostly visible here: scalp
photos share skin and hair colours (a narrow region of CIELAB's a*/b* plane) and fine,
oriented hair texture, while diagrams, screenshots, animals, landscapes and objects differ
in colour distribution, edge density or texture scale.

Features (:func:`features`, 32 numbers): CIELAB mean and spread (6), a 4x4 histogram of
a*/b* (16), gradient energy at three scales (3), edge orientation in 4 bins (4), the
share of strong edges and of saturated pixels (2), and the grey entropy (1).

Score (:func:`scores`): features standardised by their median and MAD over the dataset
(with a floor per feature, capped at CLIP), then the distance to the k-th nearest other
image, in those robust standard units (stable as the dataset grows, unlike a ratio to the
median distance);
``score >= [review] offtopic_min`` is flagged. Fewer than :data:`MIN_IMAGES` images
give no scores: there is no "rest of the dataset" to differ from yet.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from curator.config import ReviewConfig

VERSION = "offtopic-1"
SIDE = 64
K = 5
MIN_IMAGES = 10
CHUNK = 1024
CLIP = 8.0  # no single feature may decide alone: |z| is capped
# The smallest spread each feature is standardised by, in its own units (CIELAB levels, share
# of pixels, log gradient, bits): a feature nearly constant over the dataset (an a*/b* bin no
# scalp photo reaches) must not turn a small difference into a huge one.
FLOOR = np.array([2.0] * 6 + [0.02] * 16 + [0.05] * 3 + [0.02] * 4 + [0.02, 0.02, 0.1], dtype=np.float32)


def params(cfg: ReviewConfig) -> dict[str, Any]:
    return {"side": SIDE, "k": K, "min_images": MIN_IMAGES, "offtopic_min": cfg.offtopic_min}


def features(rgb: np.ndarray) -> np.ndarray:
    """The colour and texture features of one image (float32, 32 values)."""
    small = cv2.resize(rgb, (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    lab = cv2.cvtColor(small, cv2.COLOR_RGB2LAB)
    mean, std = cv2.meanStdDev(lab)
    # a* and b* in 4 x 4 bins over 64..192 (192 in the last bin), as np.histogram2d counts them
    a, b = (lab[..., i].astype(np.int16).ravel() - 64 for i in (1, 2))
    inside = (a >= 0) & (a <= 128) & (b >= 0) & (b <= 128)
    ab_hist = np.bincount(np.minimum(a[inside] // 32, 3) * 4 + np.minimum(b[inside] // 32, 3), minlength=16)
    grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY).astype(np.float32)
    gx, gy = cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    magnitude = np.hypot(gx, gy)
    energies = [float(np.log1p(magnitude.mean()))]
    for blur in (1.0, 2.0):
        level = cv2.GaussianBlur(grey, (0, 0), blur)
        energies.append(float(np.log1p(np.hypot(cv2.Sobel(level, cv2.CV_32F, 1, 0),
                                                cv2.Sobel(level, cv2.CV_32F, 0, 1)).mean())))
    angle = np.mod(np.arctan2(gy, gx), np.pi)
    orient = np.bincount(np.minimum((angle / np.pi * 4).astype(int), 3).ravel(),
                         weights=magnitude.ravel(), minlength=4)
    orient = orient / (orient.sum() + 1e-6)
    hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV).reshape(-1, 3)
    counts = np.bincount(grey.astype(np.uint8).ravel(), minlength=256) / grey.size
    share = counts[counts > 0]
    return np.concatenate([
        mean.ravel(), std.ravel(), ab_hist / (SIDE * SIDE), energies, orient,
        [float((magnitude > 100).mean()), float((hsv[:, 1] > 128).mean()),
         float(-(share * np.log2(share)).sum())],
    ]).astype(np.float32)


def scores(matrix: np.ndarray) -> np.ndarray | None:
    """Each row's outlier score among all rows (see the module docstring); None under MIN_IMAGES rows."""
    n = len(matrix)
    if n < MIN_IMAGES:
        return None
    median = np.median(matrix, axis=0)
    spread = np.maximum(np.median(np.abs(matrix - median), axis=0) * 1.4826, FLOOR)
    z = np.clip((matrix - median) / spread, -CLIP, CLIP).astype(np.float32)
    k = min(K, n - 1)
    squared = (z * z).sum(axis=1)
    kth = np.empty(n, dtype=np.float32)
    for start in range(0, n, CHUNK):
        block = z[start : start + CHUNK]
        d2 = squared[start : start + CHUNK, None] + squared[None, :] - 2.0 * block @ z.T
        d2[np.arange(len(block)), np.arange(start, start + len(block))] = np.inf  # not itself
        kth[start : start + CHUNK] = np.sqrt(np.maximum(np.partition(d2, k - 1, axis=1)[:, k - 1], 0.0))
    return kth
