"""Balance the classes of the training split: nothing, oversampling, or class weights.

Balancing happens **only inside the training split**: :func:`plan` must only
ever be given train rows (the release builder enforces this where it calls it).
Augmented copies of a validation or test image in train would be exactly the
leak this tool exists to prevent.

    none           the rows as they are
    oversample     synthetic rows up to the largest class; for each smaller class its
                   originals (sorted by sha256) are used round-robin, so every synthetic
                   row names its source: (source sha256, index of the copy of that source)
    class-weights  n_total / (n_classes * n_class) per class, recorded for the baseline

:func:`augment` makes the bytes of a synthetic row: a horizontal flip (half the
time), a small rotation (1-10 degrees either way, edges reflected) and a
brightness/contrast jitter, drawn from a generator seeded by (seed, sha256 of
the data, index), so it is deterministic and two copies of one source differ.
The output has no metadata (the encoder is :func:`curator.preprocess.encode`).
:func:`augment_many` runs many copies across cores with the same result.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from curator.errors import ConfigError
from curator.preprocess import decode, encode, map_parallel

if TYPE_CHECKING:
    import numpy as np

METHODS = ("none", "oversample", "class-weights")


@dataclass(frozen=True)
class Plan:
    method: str
    synthetic: list[tuple[str, int]]  # (source sha256, copy index), in a fixed order
    class_weights: dict[str, float] | None = None


def plan(train: list[tuple[str, str]], method: str) -> Plan:
    """Plan balancing for ``(sha256, label)`` rows of the training split (and only those)."""
    if method not in METHODS:
        raise ConfigError(
            f"curator.toml: 'balance.method' must be one of {', '.join(METHODS)}", key="balance.method"
        )
    by_class: dict[str, list[str]] = defaultdict(list)
    for sha, label in train:
        by_class[label].append(sha)
    if method == "none" or not by_class:
        return Plan(method, [])
    if method == "class-weights":
        total, n = len(train), len(by_class)
        weights = {label: total / (n * len(shas)) for label, shas in sorted(by_class.items())}
        return Plan(method, [], weights)
    largest = max(len(shas) for shas in by_class.values())
    synthetic: list[tuple[str, int]] = []
    for label in sorted(by_class):
        sources = sorted(by_class[label])
        for k in range(largest - len(sources)):
            synthetic.append((sources[k % len(sources)], k // len(sources)))
    return Plan(method, synthetic)


@dataclass(frozen=True)
class Jitter:
    """The random choices behind one augmented copy."""

    flip: bool  # mirror left-right
    angle: float  # degrees, counter-clockwise; 1 to 10 either way, never 0 so copies differ
    contrast: float  # 0.85 to 1.15, about mid-grey
    brightness: float  # -20 to +20 grey levels


def jitter(data: bytes, index: int, seed: int) -> Jitter:
    """The jitter of copy ``index`` of ``data``: drawn from a generator seeded by (seed, sha256, index)."""
    import numpy as np

    digest = hashlib.sha256(f"{seed}:{hashlib.sha256(data).hexdigest()}:{index}".encode()).digest()
    rng = np.random.default_rng(int.from_bytes(digest[:16], "big"))
    flip = bool(rng.random() < 0.5)
    angle = float(rng.uniform(1.0, 10.0) * rng.choice([-1.0, 1.0]))
    return Jitter(flip, angle, float(rng.uniform(0.85, 1.15)), float(rng.uniform(-20.0, 20.0)))


def augment(data: bytes, index: int, seed: int, fmt: str = "png", jpeg_quality: int = 95) -> bytes:
    """A deterministic augmented copy of the image ``data`` (copy number ``index``), encoded as ``fmt``."""
    return encode(apply_jitter(decode(data), jitter(data, index, seed)), fmt, jpeg_quality)


def augment_many(
    items: list[tuple[bytes, int]],
    seed: int,
    fmt: str = "png",
    jpeg_quality: int = 95,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
) -> list[bytes]:
    """:func:`augment` for each ``(data, index)``, in order, across cores (same bytes as one by one)."""
    keyed = [(str(i), item) for i, item in enumerate(items)]
    out = map_parallel(_augment_job, (seed, fmt, jpeg_quality), keyed, workers, on_progress)
    return [out[key] for key, _ in keyed]


def _augment_job(job: tuple[int, str, int], item: tuple[bytes, int]) -> bytes:
    seed, fmt, quality = job
    data, index = item
    return augment(data, index, seed, fmt, quality)


def apply_jitter(pixels: np.ndarray, j: Jitter) -> np.ndarray:
    """Flip, rotate (edges reflected, same size) and jitter an RGB array."""
    import cv2
    import numpy as np

    a = np.ascontiguousarray(pixels[:, ::-1]) if j.flip else pixels
    h, w = a.shape[:2]
    matrix = cv2.getRotationMatrix2D((w / 2, h / 2), j.angle, 1.0)
    a = cv2.warpAffine(a, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
    # contrast about mid-grey, so it does not also shift the brightness
    jittered = (a.astype(np.float32) - 128.0) * j.contrast + 128.0 + j.brightness
    return np.clip(np.rint(jittered), 0, 255).astype(np.uint8)
