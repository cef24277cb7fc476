"""Privacy checks: faces and eyes, found by YuNet (OpenCV's ``FaceDetectorYN``).

The model ships in ``curator/review/models/`` (``yunet_s_dynamic.onnx`` from
ShiqiYu/libfacedetection.train at 0047ac24, Apache-2.0, licence beside it): nothing
is downloaded at run time. Why not OpenCV's Haar cascades: opencv-python(-headless)
5.x wheels no longer ship them and have no ``CascadeClassifier`` to run them, while
``FaceDetectorYN`` exists in every OpenCV from 4.5.4 to 5.x, so no version bound is needed.
YuNet also finds profiles, half faces and eye regions that a frontal cascade misses
(recall per crop kind: benchmarks/review_quality.py).

The image is padded by an eighth of its longer side (a face cut by the border still
looks like a face) and reduced to :data:`SIDE` pixels. A detection whose box lies mostly
inside the photo is a ``face``; one mostly outside it is an ``eye``: the photo shows part
of a face (an eye region, half a face in profile), identifying but not a whole face.
"""

from __future__ import annotations

import threading
from importlib import resources
from typing import Any

import cv2
import numpy as np

from curator.config import ReviewConfig
from curator.review.quality import Result

VERSION = "privacy-1"
MODEL = "yunet_s_dynamic.onnx"
SIDE = 320  # a face a tenth of a 640x480 photo's height is ~40 px here; at 160 px YuNet misses it
PAD = 0.125
INSIDE = 0.6  # share of the face box inside the photo, at or above: a face, not an eye region
_local = threading.local()


def params(cfg: ReviewConfig) -> dict[str, Any]:
    return {"model": MODEL, "side": SIDE, "pad": PAD, "inside": INSIDE, "face_min": cfg.face_min}


def _detector() -> Any:
    """One detector per thread (a FaceDetectorYN is not safe to share)."""
    detector = getattr(_local, "detector", None)
    if detector is None:
        # OpenCV 5 warns on stderr, once per detector, that its new engine ignores targets.
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
        model = resources.files("curator.review") / "models" / MODEL
        with resources.as_file(model) as path:
            detector = cv2.FaceDetectorYN.create(str(path), "", (SIDE, SIDE), 0.3, 0.3, 50)
        _local.detector = detector
    return detector


def detect(rgb: np.ndarray) -> list[dict[str, float]]:
    """Detections in ``rgb``: confidence and the share of the box inside the photo, strongest first."""
    height, width = rgb.shape[:2]
    pad = int(PAD * max(height, width))
    padded = cv2.copyMakeBorder(rgb, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
    scale = SIDE / max(padded.shape[:2])
    size = (max(1, round(padded.shape[1] * scale)), max(1, round(padded.shape[0] * scale)))
    small = cv2.cvtColor(cv2.resize(padded, size, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2BGR)
    detector = _detector()
    detector.setInputSize(size)
    _, faces = detector.detect(small)
    found = []
    for face in [] if faces is None else faces:
        x, y = float(face[0]) / scale - pad, float(face[1]) / scale - pad
        w, h = float(face[2]) / scale, float(face[3]) / scale
        inside_w = max(0.0, min(x + w, width) - max(x, 0.0))
        inside_h = max(0.0, min(y + h, height) - max(y, 0.0))
        found.append({"confidence": float(face[14]), "inside": inside_w * inside_h / max(w * h, 1e-6)})
    return sorted(found, key=lambda f: -f["confidence"])


def check(rgb: np.ndarray, cfg: ReviewConfig) -> list[Result]:
    """The ``face`` and ``eye`` results for one image."""
    found = detect(rgb)
    faces = [f for f in found if f["inside"] >= INSIDE]
    eyes = [f for f in found if f["inside"] < INSIDE]
    return [_result("face", faces, cfg), _result("eye", eyes, cfg)]


def _result(kind: str, found: list[dict[str, float]], cfg: ReviewConfig) -> Result:
    best = found[0]["confidence"] if found else 0.0
    detail = {"confidence": round(best, 3), "count": sum(f["confidence"] >= cfg.face_min for f in found),
              "threshold": cfg.face_min}
    return Result(kind, best / cfg.face_min, detail)
