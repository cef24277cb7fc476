"""Turn stored originals into release images: an ordered, recorded list of steps.

Steps come from ``[[preprocess.steps]]`` in ``curator.toml``; each is a table
with an ``op`` and its parameters (every parameter has a default):

    op        method / parameters                                   what it does
    resize    size=224, mode="longest" | "pad-square"               longest side -> size (both ways);
                                                                    pad-square centres on a black square
    denoise   method="none"
              method="median", ksize=3                              removes salt-and-pepper specks
              method="bilateral", diameter=7, sigma_color=25,       edge-preserving smoothing
                  sigma_space=5
              method="nlmeans", strength=3, template=7, search=21   non-local means on colour (LAB)
    equalize  method="none" | "global"                              histogram equalisation of L (LAB)
              method="clahe", clip_limit=2.0, tile=8                contrast-limited, on L only
    enhance   method="none"
              method="unsharp", amount=0.5, radius=1.0              out = in + amount * (in - blur)
              method="gamma", gamma=1.0                             out = 255 * (in/255) ** (1/gamma)

The default chain (:class:`curator.config.PreprocessConfig`) is resize 224
longest -> bilateral (7, 25, 5) -> CLAHE (2.0, 8x8) on L -> unsharp (0.5, 1.0),
encoded as PNG (zlib level 6).

Why these. The study (Roy & Protity, 2023) denoised, equalised and enhanced
its images but states no filters or parameters, so the choice is ours, measured
with ``python benchmarks/preprocess_speed.py --tune`` on 12 generated photos
resized to 224 px, with Gaussian noise of sigma 0/3/6/10 added and JPEG q85
applied (the way scraped images arrive). PSNR gain in dB against the clean photo:

    denoise                           s=0    s=3    s=6    s=10   ms at 224 px
    bilateral d=7 sc=25 ss=5 (ours)  +0.85  +1.29  +2.44  +3.06    ~1
    bilateral d=5 sc=40 ss=5         +0.38  +0.84  +2.10  +3.60    <1
    nlmeans h=3 (t=7, s=21)          -0.40  +0.01  +1.30  +1.59   ~50
    nlmeans h=5                      -2.16  -1.56  +0.11  +2.71   ~50
    median 3x3                       -3.77  -3.21  -1.86  +0.41    <1

Non-local means at h=5 (the first default) costs 2 dB on a clean photo
(it wipes out hair strands) and only wins at heavy noise; the bilateral filter
never hurts, wins at the noise levels web images have, and is ~50x cheaper.
These are generated photos, not clinical ones: on real images with repeated
texture nlmeans may do better, and it stays one line of config away.
CLAHE at clip 2.0 raises global luminance contrast x1.37 and local detail
(Laplacian std) x1.64, but also residual noise x2.55 (clip 1.0: x1.21/x1.39/
x1.68; clip 4.0: x1.61/x2.04/x4.14; global equalisation: x3.62/x3.31/x4.41,
which blows out the lighting), hence denoising before it and a moderate clip.
Unsharp 0.5 at radius 1.0 adds x1.45 detail for x1.44 noise (amount 1.0:
x1.88/x1.87), a visible but unexaggerated sharpening.

Why this order. Resize first: every later step and the encoder cost scale with
the pixel count, and area-averaging down from 640x480 already divides
pixel noise by ~2.9. Non-local means is the extreme case: ~400-970 ms per
640x480 image on one core here versus ~50 ms at 224 px (the issue quoted ~800
and ~150). Equalise on luminance only, because colour is diagnostic (the red of
plaques and pustules). Sharpen last, so it does not amplify noise the denoiser
would otherwise remove.

Cost per image, one core, default chain at 224 px (medians, 2-core machine
shared with other jobs, so rough): decode 1.2 ms, resize 0.8, bilateral 1.4,
CLAHE 0.4, unsharp 0.1, PNG encode 11-18 (zlib level 6: level 1 would take
2.6 ms but make files 7 % larger). That is ~15-25 ms, 40-65 images/s per core
against the target of 12 images/s on two cores.

Outputs are built from the pixel array alone, so they carry no EXIF, GPS, ICC
or text metadata; EXIF orientation is applied on decoding (via
:func:`curator.hashing.normalize`, the same view the hashes are taken of). The
same input bytes and steps give the same output bytes on any worker count
(OpenCV runs with one thread per process). Originals are never touched: this
module only sees bytes.
"""

from __future__ import annotations

import io
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from curator import faultpoint
from curator.config import EngineConfig, PreprocessConfig, bad_value, config_hash, missing_key
from curator.engine import is_ray, single_threaded_opencv
from curator.errors import ConfigError, ReleaseError

if TYPE_CHECKING:  # numpy, PIL and cv2 load lazily: config checks must stay fast
    import numpy as np

# Bump when a step's implementation changes its output for the same parameters,
# so that steps_hash (recorded per release row) changes with it.
ALGORITHM_VERSION = 1

# run_many(workers=None) uses a process pool from this many images on
POOL_MIN_ITEMS = 32

Check = Callable[[Any], str | None]
J = TypeVar("J")
P = TypeVar("P")
R = TypeVar("R")


def _int(lo: int, hi: int, odd: bool = False) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
            return f"must be an integer from {lo} to {hi}" + (" (odd)" if odd else "")
        if odd and v % 2 == 0:
            return f"must be an odd integer from {lo} to {hi}"
        return None

    return check


def _num(lo: float, hi: float) -> Check:
    def check(v: Any) -> str | None:
        if isinstance(v, bool) or not isinstance(v, int | float) or not lo <= v <= hi:
            return f"must be a number from {lo:g} to {hi:g}"
        return None

    return check


def _one_of(*choices: str) -> Check:
    def check(v: Any) -> str | None:
        return None if v in choices else f"must be one of {', '.join(choices)}"

    return check


# op -> method ("" for ops without one) -> parameter -> (default, check)
SPEC: dict[str, dict[str, dict[str, tuple[Any, Check]]]] = {
    "resize": {"": {"size": (224, _int(16, 4096)), "mode": ("longest", _one_of("longest", "pad-square"))}},
    "denoise": {
        "none": {},
        "median": {"ksize": (3, _int(3, 15, odd=True))},
        "bilateral": {
            "diameter": (7, _int(1, 15)),
            "sigma_color": (25.0, _num(1, 200)),
            "sigma_space": (5.0, _num(1, 200)),
        },
        "nlmeans": {
            "strength": (3.0, _num(0.5, 30)),
            "template": (7, _int(3, 11, odd=True)),
            "search": (21, _int(5, 35, odd=True)),
        },
    },
    "equalize": {
        "none": {},
        "global": {},
        "clahe": {"clip_limit": (2.0, _num(0.5, 40)), "tile": (8, _int(1, 32))},
    },
    "enhance": {
        "none": {},
        "unsharp": {"amount": (0.5, _num(0, 5)), "radius": (1.0, _num(0.3, 10))},
        "gamma": {"gamma": (1.0, _num(0.1, 5))},
    },
}


def normalize_steps(steps: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """Check ``steps`` and return them with every default filled in (keys in a fixed order).

    Raises :class:`~curator.errors.ConfigError` naming the key, e.g.
    ``curator.toml: 'preprocess.steps[1].method' must be one of none, median, bilateral, nlmeans``.
    """
    out = []
    for i, step in enumerate(steps):
        where = f"preprocess.steps[{i}]"
        if not isinstance(step, dict):
            raise bad_value(where, "must be a table with an 'op'")
        op = _required_choice(step, "op", SPEC, where)
        methods = SPEC[op]
        method = "" if "" in methods else _required_choice(step, "method", methods, where)
        params = methods[method]
        normal: dict[str, Any] = {"op": op} | ({"method": method} if method else {})
        for key in step:
            if key not in params and key not in ("op", "method"):
                takes = ", ".join(params) or "no parameters"
                what = f"{op} {method}".strip()
                raise ConfigError(
                    f"curator.toml: unknown key '{where}.{key}' ({what} takes {takes})", key=f"{where}.{key}"
                )
        for key, (default, check) in params.items():
            value = step.get(key, default)
            problem = check(value)
            if problem:
                raise bad_value(f"{where}.{key}", problem)
            normal[key] = float(value) if isinstance(default, float) else value
        out.append(normal)
    return out


def _required_choice(step: dict[str, Any], key: str, allowed: dict[str, Any], where: str) -> str:
    """``step[key]``, which must be present and one of ``allowed``'s keys."""
    if key not in step:
        raise missing_key(f"{where}.{key}")
    problem = _one_of(*allowed)(step[key])
    if problem:
        raise bad_value(f"{where}.{key}", problem)
    return str(step[key])


def check_steps(steps: Iterable[dict[str, Any]]) -> None:
    """Raise ConfigError naming the first bad key in ``steps``; return None when they are fine."""
    normalize_steps(steps)


def steps_hash(steps: Iterable[dict[str, Any]]) -> str:
    """A short stable hash of the steps, defaults filled in (so spelling a default changes nothing)."""
    return config_hash({"algorithm": ALGORITHM_VERSION, "steps": normalize_steps(steps)})


# --- decoding and encoding (shared with curator.balance) ---------------------------------


def decode(data: bytes) -> np.ndarray:
    """Bytes -> RGB uint8 array (H, W, 3), first frame, EXIF orientation applied."""
    import numpy as np
    from PIL import Image

    from curator.hashing import normalize  # the one definition, shared with dedup

    with Image.open(io.BytesIO(data)) as img:
        rgb = normalize(img)
        return np.array(rgb, dtype=np.uint8)


def encode(pixels: np.ndarray, fmt: str = "png", jpeg_quality: int = 95) -> bytes:
    """RGB array -> PNG or JPEG bytes with no metadata at all.

    The image is built fresh from the pixel array, so nothing of the source
    (EXIF, GPS, ICC profile, XMP, text chunks) can survive. PNG compression and
    JPEG settings are pinned so the bytes depend on the pixels alone.
    """
    from PIL import Image

    img = Image.fromarray(pixels, "RGB")
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, "PNG", compress_level=6, optimize=False)
    elif fmt == "jpeg":
        # 4:4:4: no chroma subsampling, the red of a lesion is part of the signal
        img.save(buf, "JPEG", quality=jpeg_quality, subsampling=0, optimize=False, progressive=False)
    else:
        raise ValueError(f"unknown image format {fmt!r}")
    return buf.getvalue()


# --- the steps ----------------------------------------------------------------------------


def apply_steps(pixels: np.ndarray, steps: Sequence[dict[str, Any]]) -> np.ndarray:
    """Run normalised ``steps`` (from :func:`normalize_steps`) over an RGB array."""
    for step in steps:
        pixels = _OPS[step["op"]](pixels, step)
    return pixels


def _resize(a: np.ndarray, step: dict[str, Any]) -> np.ndarray:
    return _pad(_fit(a, step["size"]), step)


def _fit(a: np.ndarray, size: int) -> np.ndarray:
    """``a`` scaled to ``size`` pixels on its longest side."""
    import cv2

    h, w = a.shape[:2]
    scale = size / max(h, w)
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        # INTER_AREA when shrinking (no aliasing of hair strands), cubic when enlarging
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        a = cv2.resize(a, (nw, nh), interpolation=interp)
    return a


def _pad(a: np.ndarray, step: dict[str, Any]) -> np.ndarray:
    """A fitted image centred on a black square canvas in mode ``pad-square``."""
    import numpy as np

    size = step["size"]
    nh, nw = a.shape[:2]
    if step["mode"] == "pad-square" and (nw, nh) != (size, size):
        canvas = np.zeros((size, size, 3), dtype=np.uint8)
        top, left = (size - nh) // 2, (size - nw) // 2
        canvas[top : top + nh, left : left + nw] = a
        a = canvas
    return a


def _denoise(a: np.ndarray, step: dict[str, Any]) -> np.ndarray:
    import cv2
    import numpy as np

    method = step["method"]
    if method == "median":
        return cv2.medianBlur(a, step["ksize"])
    if method == "bilateral":
        return cv2.bilateralFilter(a, step["diameter"], step["sigma_color"], step["sigma_space"])
    if method == "nlmeans":
        # OpenCV's colour variant expects BGR (it works in LAB internally)
        bgr = np.ascontiguousarray(a[..., ::-1])
        h = step["strength"]
        out = cv2.fastNlMeansDenoisingColored(bgr, None, h, h, step["template"], step["search"])
        return np.ascontiguousarray(out[..., ::-1])
    return a


def _equalize(a: np.ndarray, step: dict[str, Any]) -> np.ndarray:
    import cv2

    method = step["method"]
    if method == "none":
        return a
    lab = cv2.cvtColor(a, cv2.COLOR_RGB2LAB)
    lum = lab[..., 0]
    if method == "global":
        lab[..., 0] = cv2.equalizeHist(lum)
    else:
        tile = step["tile"]
        clahe = cv2.createCLAHE(clipLimit=step["clip_limit"], tileGridSize=(tile, tile))
        lab[..., 0] = clahe.apply(lum)
    return cv2.cvtColor(lab, cv2.COLOR_LAB2RGB)


def _enhance(a: np.ndarray, step: dict[str, Any]) -> np.ndarray:
    import cv2
    import numpy as np

    method = step["method"]
    if method == "unsharp":
        blur = cv2.GaussianBlur(a, (0, 0), step["radius"])
        amount = step["amount"]
        return cv2.addWeighted(a, 1.0 + amount, blur, -amount, 0)
    if method == "gamma":
        table = np.clip(255.0 * (np.arange(256) / 255.0) ** (1.0 / step["gamma"]) + 0.5, 0, 255)
        return cv2.LUT(a, table.astype(np.uint8))
    return a


_OPS: dict[str, Callable[[np.ndarray, dict[str, Any]], np.ndarray]] = {
    "resize": _resize,
    "denoise": _denoise,
    "equalize": _equalize,
    "enhance": _enhance,
}


# --- running it ---------------------------------------------------------------------------


def process(data: bytes, steps: Sequence[dict[str, Any]], fmt: str = "png", jpeg_quality: int = 95) -> bytes:
    """One image: decode, apply normalised ``steps``, encode without metadata."""
    return encode(apply_steps(decode(data), steps), fmt, jpeg_quality)


@dataclass(frozen=True)
class Output:
    """One preprocessed image, and the skin-tone estimate of its original (curator.skintone)."""

    image: bytes
    ita: float | None


def process_with_tone(data: bytes, steps: Sequence[dict[str, Any]], fmt: str = "png",
                      jpeg_quality: int = 95) -> Output:
    """:func:`process`, plus the ITA estimate from the same decode. The estimate works at
    skintone.WORK_SIDE pixels, and shrinking a large photo that far is its main cost, so it is
    taken on the output of a leading resize step that shrank the image to no less than that
    (the same area average, once), else on the decoded original (benchmarks/ita_cost.py)."""
    from curator import skintone

    original = pixels = decode(data)
    if steps and steps[0]["op"] == "resize":
        pixels = _fit(original, steps[0]["size"])
        shrunk = skintone.WORK_SIDE <= max(pixels.shape[:2]) <= max(original.shape[:2])
        ita = skintone.ita_of_pixels(pixels if shrunk else original)
        pixels, steps = _pad(pixels, steps[0]), steps[1:]
    else:
        ita = skintone.ita_of_pixels(original)
    return Output(encode(apply_steps(pixels, steps), fmt, jpeg_quality), ita)


def run_many(
    items: list[tuple[str, bytes]],
    cfg: PreprocessConfig,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    engine: EngineConfig | None = None,
) -> dict[str, bytes]:
    """Preprocess ``(sha256, original bytes)`` pairs; returns sha256 -> output bytes, in input order.

    Runs in a pool of ``workers`` processes; 1 runs in this process. The default,
    None, means every core, except for batches under :data:`POOL_MIN_ITEMS`
    images, where starting processes (~0.5 s) costs more than it saves.
    ``on_progress(1)`` is called per finished image. An image that cannot be
    decoded raises :class:`~curator.errors.ReleaseError` naming it.
    """
    outputs = run_with_tone(items, cfg, workers, on_progress, engine)
    return {sha: out.image for sha, out in outputs.items()}


def run_with_tone(
    items: list[tuple[str, bytes]],
    cfg: PreprocessConfig,
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    engine: EngineConfig | None = None,
) -> dict[str, Output]:
    """:func:`run_many` with each original's skin-tone estimate (:func:`process_with_tone`)."""
    job = (normalize_steps(cfg.steps), cfg.format, cfg.jpeg_quality)
    results = map_parallel(_work, job, items, workers, on_progress, engine)
    out: dict[str, Output] = {}
    for sha, value in results.items():
        if isinstance(value, str):
            raise ReleaseError(f"preprocess: image {sha} cannot be processed ({value})", sha256=sha)
        out[sha] = value
    return out


def map_parallel(
    fn: Callable[[J, P], R],
    job: J,
    items: list[tuple[str, P]],
    workers: int | None = None,
    on_progress: Callable[[int], None] | None = None,
    engine: EngineConfig | None = None,
) -> dict[str, R]:
    """``{key: fn(job, payload)}`` for ``(key, payload)`` items, in input order, over a process pool
    (or as Ray tasks of ``engine.batch_size`` items with the Ray engine: curator.engine).

    ``fn`` must be a module-level function (it is pickled) that reports bad input
    in its return value rather than raising. OpenCV runs single-threaded in every
    worker and, for ``workers=1``, in this process for the duration of the call.
    ``workers=None``: every core from :data:`POOL_MIN_ITEMS` items on, else 1.
    """
    if engine is not None and is_ray(engine):
        return _run_ray(fn, job, items, engine.batch_size, on_progress)
    if workers is None:
        workers = (os.cpu_count() or 1) if len(items) >= POOL_MIN_ITEMS else 1
    workers = max(1, min(workers, len(items)))
    if workers > 1:
        results = _run_pool(fn, job, items, workers, on_progress)
        return {key: results[key] for key, _ in items}
    out: dict[str, R] = {}
    with single_threaded_opencv():
        for key, payload in items:
            out[key] = fn(job, payload)
            if on_progress:
                on_progress(1)
    return out


def _run_pool(
    fn: Callable[[J, P], R],
    job: J,
    items: list[tuple[str, P]],
    workers: int,
    on_progress: Callable[[int], None] | None,
) -> dict[str, R]:
    import multiprocessing

    # spawn, not fork: the parent may hold threads (JAX, httpx) that fork would copy mid-lock
    ctx = multiprocessing.get_context("spawn")
    results: dict[str, R] = {}
    pending: dict[Future[R], str] = {}
    queue = iter(items)
    parent = (os.getpid(),)
    with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker, initargs=parent) as pool:
        # a bounded window keeps memory flat: only ~4 images per worker in flight
        for key, payload in queue:
            pending[pool.submit(fn, job, payload)] = key
            if len(pending) >= workers * 4:
                break
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                results[pending.pop(future)] = future.result()
                faultpoint.reached("preprocess:result")
                if on_progress:
                    on_progress(1)
                nxt = next(queue, None)
                if nxt is not None:
                    pending[pool.submit(fn, job, nxt[1])] = nxt[0]
    return results


def _run_ray(
    fn: Callable[[J, P], R],
    job: J,
    items: list[tuple[str, P]],
    batch_size: int,
    on_progress: Callable[[int], None] | None,
) -> dict[str, R]:
    from curator import engine

    batches = [items[start : start + batch_size] for start in range(0, len(items), batch_size)]
    out: dict[str, R] = {}
    payloads = ([payload for _, payload in batch] for batch in batches)
    done = engine.map_batches(_single_threaded, (fn, job), payloads)
    for batch, results in zip(batches, done, strict=True):
        for (key, _), result in zip(batch, results, strict=True):
            out[key] = result
        if on_progress:
            on_progress(len(batch))
    return out


def _single_threaded(job: tuple[Callable[[J, P], R], J], payload: P) -> R:
    """``fn(job, payload)`` with OpenCV on one thread, as in every local worker (on a Ray worker)."""
    fn, inner = job
    _single_thread()
    return fn(inner, payload)


def _work(job: tuple[list[dict[str, Any]], str, int], data: bytes) -> Output | str:
    """Worker body: the output, or the reason (a string) it failed; never raises for bad input."""
    import cv2
    from PIL import UnidentifiedImageError

    steps, fmt, quality = job
    try:
        return process_with_tone(data, steps, fmt, quality)
    except (UnidentifiedImageError, OSError, ValueError, cv2.error) as err:
        return f"{type(err).__name__}: {err}"


def _init_worker(parent: int) -> None:
    _single_thread()
    threading.Thread(target=_exit_with_parent, args=(parent,), daemon=True, name="curator-parent").start()


def _exit_with_parent(parent: int) -> None:
    """A spawned worker never learns that a killed parent is gone (it holds the queue's pipes
    itself), so it watches: re-parented means orphaned, and it exits within half a second."""
    while os.getppid() == parent:
        time.sleep(0.5)
    os._exit(1)


def _single_thread() -> None:
    """One OpenCV thread for the rest of a worker process's life: the pool already uses every
    core, and results must not depend on how work was split across threads."""
    import cv2

    cv2.setNumThreads(1)
