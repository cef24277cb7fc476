"""Generated stand-ins for scalp photos, for the demo, the tests and the benchmarks.

Nothing here is downloaded. :func:`photo` draws a deterministic, photo-like
image from a seed: a skin-tone gradient, hair strands, lighting noise, and a
class-specific pattern, so that a small CNN can learn the classes and distinct
seeds give perceptually distinct images:

    alopecia      smooth, round bald patches with few strands
    psoriasis     red, scaly plaques with white flecks
    folliculitis  many small red-white pustules around follicles

Any other class name gets a pattern derived from its index.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

PATTERNS = ("alopecia", "psoriasis", "folliculitis")


def photo(seed: int, label: str | int = 0, size: tuple[int, int] = (640, 480)) -> Image.Image:
    """A deterministic RGB image for ``seed``; ``label`` (a class name or index) picks the pattern."""
    rng = np.random.default_rng(seed)
    width, height = size
    pattern = label if isinstance(label, int) else _pattern_index(label)
    base = np.array(_skin_tone(rng), dtype=np.float32)
    # A lighting gradient in a random direction makes each image's low frequencies distinct.
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    ramp = (np.cos(angle) * xx / width + np.sin(angle) * yy / height) * rng.uniform(30, 70)
    blobs = _low_frequency_noise(rng, width, height) * rng.uniform(25, 45)
    pixels = base[None, None, :] + (ramp + blobs)[..., None]
    img = Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8), "RGB")
    draw = ImageDraw.Draw(img)
    kind = pattern % 3
    strands = 60 if kind == 0 else 220
    _hair(draw, rng, width, height, strands)
    if kind == 0:
        _bald_patches(draw, rng, width, height, base)
    elif kind == 1:
        _plaques(draw, rng, width, height)
    else:
        _pustules(draw, rng, width, height)
    img = img.filter(ImageFilter.GaussianBlur(radius=0.8))
    noise = rng.normal(0, 4, size=(height, width, 3))
    return Image.fromarray(np.clip(np.asarray(img, dtype=np.float32) + noise, 0, 255).astype(np.uint8))


def textured(seed: int, size: tuple[int, int] = (480, 360)) -> Image.Image:
    """A distinct photo-like image for ``seed``, of no class: smooth lighting, blobs, a random
    1/f texture (the spectrum natural photos have) and grain. Unlike :func:`photo`, whose
    images share a skin tone and a pattern per class, any two seeds differ at every scale:
    for checking that distinct photos stay apart at scale (benchmarks/ingest_scale.py)."""
    rng = np.random.default_rng(seed)
    w, h = size
    light = _smooth(rng.uniform(0, 255, (6, 8, 3)), w, h)
    blobs = _smooth(rng.uniform(-60, 60, (24, 32, 3)), w, h)
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None, :]
    falloff = 1.0 / np.maximum(np.hypot(fx, fy), 1.0 / max(w, h)) ** rng.uniform(0.8, 1.2)
    spectrum = falloff * np.exp(2j * np.pi * rng.random(falloff.shape))
    texture = np.fft.irfft2(spectrum, s=(h, w)).astype(np.float32)
    texture *= rng.uniform(15, 35) / (texture.std() + 1e-6)
    tint = rng.uniform(0.6, 1.0, 3).astype(np.float32)
    grain = rng.normal(0, 6, (h, w, 1)).astype(np.float32)
    pixels = light + blobs + texture[..., None] * tint + grain
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


def _smooth(coarse: np.ndarray, width: int, height: int) -> np.ndarray:
    """A coarse (rows, cols, 3) grid of values, cubic-interpolated up to width x height."""
    import cv2  # only here: the demo's photo() needs no OpenCV

    return np.asarray(cv2.resize(coarse.astype(np.float32), (width, height), interpolation=cv2.INTER_CUBIC))


def encode(img: Image.Image, fmt: str = "JPEG", **params: object) -> bytes:
    """Encode ``img`` to bytes (JPEG quality 90 unless given)."""
    buf = io.BytesIO()
    if fmt.upper() in ("JPEG", "JPG"):
        params.setdefault("quality", 90)
        img.convert("RGB").save(buf, "JPEG", **params)
    else:
        img.save(buf, fmt, **params)
    return buf.getvalue()


def _pattern_index(label: str) -> int:
    if label in PATTERNS:
        return PATTERNS.index(label)
    return sum(label.encode()) % 3


def _skin_tone(rng: np.random.Generator) -> tuple[float, float, float]:
    tones = [(224, 190, 160), (198, 150, 120), (160, 110, 80), (120, 80, 55), (235, 205, 185)]
    r, g, b = tones[int(rng.integers(len(tones)))]
    jitter = rng.uniform(-12, 12, size=3)
    return (r + jitter[0], g + jitter[1], b + jitter[2])


def _low_frequency_noise(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    coarse = rng.normal(0, 1, size=(6, 8)).astype(np.float32)
    small = Image.fromarray(((coarse - coarse.min()) / (np.ptp(coarse) + 1e-6) * 255).astype(np.uint8))
    big = small.resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(big, dtype=np.float32) / 255.0 - 0.5


def _hair(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int, count: int) -> None:
    color = tuple(int(c) for c in rng.integers(10, 70, size=3))
    for _ in range(count):
        x, y = rng.uniform(0, width), rng.uniform(0, height)
        length = rng.uniform(20, 90)
        angle = rng.normal(1.2, 0.35)
        points = [(x, y)]
        for _step in range(4):
            angle += rng.normal(0, 0.15)
            x += np.cos(angle) * length / 4
            y += np.sin(angle) * length / 4
            points.append((x, y))
        draw.line(points, fill=color, width=int(rng.integers(1, 3)))


def _bald_patches(
    draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int, base: np.ndarray
) -> None:
    for _ in range(int(rng.integers(2, 4))):
        r = rng.uniform(0.12, 0.22) * min(width, height)
        cx, cy = rng.uniform(r, width - r), rng.uniform(r, height - r)
        tone = tuple(int(min(255, c + 25)) for c in base)
        draw.ellipse([cx - r, cy - r * 0.8, cx + r, cy + r * 0.8], fill=tone)


def _plaques(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int) -> None:
    for _ in range(int(rng.integers(3, 6))):
        r = rng.uniform(0.06, 0.14) * min(width, height)
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        red = (int(rng.integers(170, 215)), int(rng.integers(60, 95)), int(rng.integers(60, 90)))
        draw.ellipse([cx - r * 1.4, cy - r, cx + r * 1.4, cy + r], fill=red)
        for _ in range(40):
            fx, fy = cx + rng.normal(0, r * 0.6), cy + rng.normal(0, r * 0.4)
            s = rng.uniform(1, 4)
            draw.ellipse([fx - s, fy - s, fx + s, fy + s], fill=(235, 230, 225))


def _pustules(draw: ImageDraw.ImageDraw, rng: np.random.Generator, width: int, height: int) -> None:
    for _ in range(int(rng.integers(40, 80))):
        cx, cy = rng.uniform(0, width), rng.uniform(0, height)
        r = rng.uniform(3, 8)
        draw.ellipse([cx - r * 1.8, cy - r * 1.8, cx + r * 1.8, cy + r * 1.8], fill=(200, 80, 80))
        draw.ellipse([cx - r * 0.6, cy - r * 0.6, cx + r * 0.6, cy + r * 0.6], fill=(245, 240, 200))
