"""Privacy checks: faces and eyes, found by OpenCV's Haar cascades.

The cascades ship inside opencv-python(-headless) 4.x wheels (``cv2.data.haarcascades``), so
nothing is downloaded at run time and no model file is shipped here; 5.x wheels dropped them
and ``CascadeClassifier`` with them, hence the ``<5`` bound in pyproject.toml.

A scalp photo shows half faces, turned faces and eye regions, so two cascades run: frontal
faces and eyes. A ``face`` is a frontal detection; an ``eye`` is an eye detection outside every
flagged face: an identifying eye region without a whole face. Both run on one grey copy padded
by mirroring its border (half a face cut by the edge becomes nearly whole), each scaled to its
working size (:data:`CASCADES`). The frontal cascade also finds the turned faces of the planted
set; OpenCV's profile cascade found none that it missed and was dropped (privacy-4), so true
profiles, which no photo shipped offline shows, are not looked for separately.
"""

from __future__ import annotations

import math
import threading
from typing import Any, NamedTuple

import cv2
import numpy as np

from curator.config import ReviewConfig
from curator.review.quality import Result

VERSION = "privacy-4"
FRONTAL = "haarcascade_frontalface_alt.xml"
EYE = "haarcascade_eye.xml"
UPSCALE = 1.5  # at most: a tiny image enlarged further shows hair as eyes and faces
PAD = 0.125


class Cascade(NamedTuple):
    side: int  # working size, longer side with padding, pixels
    scale_factor: float  # between the window sizes tried
    min_side: int  # smallest window, pixels at ``side``
    flagged: int  # neighbours (overlapping candidates) that give confidence 0.6, the default face_min


# A cascade's cost grows with the working image's area, so each runs on the smallest image
# that still shows what it must find: frontal faces from about a tenth of the image's longer
# side (20 px windows at 260 px, which is 208 px for the image inside its padding) and eye
# regions from about a fifth (128 px: an eye close-up that identifies someone fills much of a
# scalp photo). The padding costs the frontal pass half again its area; the coarser steps
# (1.25) pay for it. At these ``flagged`` counts no generated scalp photo nor any other photo
# scikit-image ships was flagged (benchmarks/review_quality.py).
CASCADES = {
    FRONTAL: Cascade(side=260, scale_factor=1.25, min_side=20, flagged=3),
    EYE: Cascade(side=128, scale_factor=1.3, min_side=20, flagged=4),
}
_local = threading.local()


def params(cfg: ReviewConfig) -> dict[str, Any]:
    return {"cascades": {name: c._asdict() for name, c in CASCADES.items()}, "upscale": UPSCALE, "pad": PAD,
            "face_min": cfg.face_min}


def _cascades() -> dict[str, Any]:
    """One set of cascades per thread (a CascadeClassifier is not safe to share)."""
    cascades = getattr(_local, "cascades", None)
    if cascades is None:
        folder = cv2.data.haarcascades  # type: ignore[attr-defined]  # cv2.data is not in OpenCV's stubs
        cascades = {name: cv2.CascadeClassifier(folder + name) for name in CASCADES}
        _local.cascades = cascades
    return cascades


def _find(name: str, grey: np.ndarray) -> list[tuple[np.ndarray, float]]:
    """Boxes (x, y, w, h in ``grey``) and confidences of one cascade's detections.

    Haar cascades give no probability. The confidence is n / (n + 2/3 flagged) for n
    neighbours: 0.6 at ``flagged`` neighbours, approaching 1 as more candidates agree, lower
    for the weaker groups kept (three or more: OpenCV drops smaller ones at minNeighbors=2) so
    that a finding's score also says how near it came."""
    cascade = CASCADES[name]
    scale = min(cascade.side / max(grey.shape[:2]), UPSCALE)
    size = (max(1, round(grey.shape[1] * scale)), max(1, round(grey.shape[0] * scale)))
    small = cv2.resize(grey, size, interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    # No histogram equalisation: it halved the neighbours of small faces on scalp photos.
    boxes, neighbours = _cascades()[name].detectMultiScale2(
        small, scaleFactor=cascade.scale_factor, minNeighbors=2,
        minSize=(cascade.min_side, cascade.min_side))
    half = cascade.flagged * 2 / 3
    found = []
    for box, n in zip(boxes, neighbours, strict=True):
        x, y, w, h = (float(v) / scale for v in box)
        found.append((np.array([x, y, w, h]), int(n) / (int(n) + half)))
    return found


def detect(rgb: np.ndarray) -> list[dict[str, Any]]:
    """Detections in ``rgb``: kind (``face`` or ``eye``), confidence and box (x, y, w, h in
    ``rgb``; partly outside it for a face cut by the edge), strongest first."""
    grey = cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)
    pad = math.ceil(PAD * max(rgb.shape[:2]))
    padded = cv2.copyMakeBorder(grey, pad, pad, pad, pad, cv2.BORDER_REFLECT)
    found = [{"kind": kind, "confidence": c, "box": box - [pad, pad, 0, 0]}
             for kind, name in (("face", FRONTAL), ("eye", EYE)) for box, c in _find(name, padded)]
    return sorted(found, key=lambda f: -f["confidence"])


def _inside(box: np.ndarray, face: np.ndarray) -> bool:
    """Whether ``box``'s centre lies in ``face``."""
    cx, cy = box[0] + box[2] / 2, box[1] + box[3] / 2
    return bool(face[0] <= cx <= face[0] + face[2] and face[1] <= cy <= face[1] + face[3])


def check(rgb: np.ndarray, cfg: ReviewConfig) -> list[Result]:
    """The ``face`` and ``eye`` results for one image: eyes inside a found face are that face."""
    found = detect(rgb)
    faces = [f for f in found if f["kind"] == "face"]
    shown = [f["box"] for f in faces if f["confidence"] >= cfg.face_min]
    eyes = [f for f in found if f["kind"] == "eye" and not any(_inside(f["box"], box) for box in shown)]
    return [_result("face", faces, cfg), _result("eye", eyes, cfg)]


def _result(kind: str, found: list[dict[str, Any]], cfg: ReviewConfig) -> Result:
    best = found[0]["confidence"] if found else 0.0
    detail = {"confidence": round(best, 3), "count": sum(f["confidence"] >= cfg.face_min for f in found),
              "threshold": cfg.face_min}
    return Result(kind, best / cfg.face_min, detail)
