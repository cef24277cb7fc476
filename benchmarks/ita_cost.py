"""What the skin-tone estimate (curator.skintone, ITA over skin pixels) adds to a release build, per image.

    python benchmarks/ita_cost.py                # 20 generated JPEG photos at each of three sizes
    python benchmarks/ita_cost.py --count 50

The build takes the estimate inside the preprocessing worker (``preprocess.process_with_tone``), on
the pixels the worker has already decoded and shrunk for the default resize step. Columns, per
image, CPU time of one thread, medians over the photos:

- ``added ms``: ``process_with_tone`` minus ``process`` (decode, the default steps, PNG encode),
  each the fastest of 3 alternated runs on the same photo: what the estimate adds to the build;
- ``estimate ms``: the estimate alone on the resized pixels (its own work, without timer noise
  from the steps around it);
- ``own decode ms``: the estimate from the stored bytes in a pass of its own (``ita_of_bytes``,
  a JPEG decoded at reduced scale), which is what the build did before;
- ``full decode ms``, the peer: the same estimate from a plain full-size decode.

The issue's target is 5 ms added per image.
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from collections.abc import Callable

import numpy as np
from PIL import Image

from curator import preprocess, skintone, synthetic
from curator.config import PreprocessConfig
from curator.engine import single_threaded_opencv

LABELS = ("alopecia", "psoriasis", "folliculitis")
SIZES = ((640, 480), (1600, 1200), (3000, 2000))
TARGET_MS = 5.0
ROUNDS = 3


def full_decode(data: bytes) -> float | None:
    with Image.open(io.BytesIO(data)) as img:
        return skintone.ita_of_pixels(np.asarray(img.convert("RGB")))


def ms(function: Callable[[], object]) -> float:
    """CPU milliseconds of this thread (everything runs on it, OpenCV with one thread): other work
    on a shared machine slows the wall clock far more than it moves this."""
    start = time.thread_time()
    function()
    return (time.thread_time() - start) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=20, help="photos per size")
    args = parser.parse_args()
    steps = preprocess.normalize_steps(PreprocessConfig().steps)
    resize = preprocess.normalize_steps([{"op": "resize"}])
    with single_threaded_opencv():  # as in a build worker
        print(f"{'size':>11}  {'added ms':>8}  {'estimate ms':>11}  {'own decode ms':>13}  "
              f"{'full decode ms':>14}  target ms")
        for size in SIZES:
            blobs = [synthetic.encode(synthetic.photo(i, LABELS[i % 3], size)) for i in range(args.count)]
            preprocess.process_with_tone(blobs[0], steps)  # warm up OpenCV and libjpeg
            added, alone, own, full = [], [], [], []
            for data in blobs:
                plain, toned = [], []
                for _ in range(ROUNDS):  # alternated; the fastest of each, as other work shares the cores
                    plain.append(ms(lambda: preprocess.process(data, steps)))  # noqa: B023
                    toned.append(ms(lambda: preprocess.process_with_tone(data, steps)))  # noqa: B023
                added.append(min(toned) - min(plain))
                fitted = preprocess.apply_steps(preprocess.decode(data), resize)
                alone.append(ms(lambda: skintone.ita_of_pixels(fitted)))  # noqa: B023
                own.append(ms(lambda: skintone.ita_of_bytes(data)))  # noqa: B023
                full.append(ms(lambda: full_decode(data)))  # noqa: B023
            verdict = "ok" if statistics.median(added) < TARGET_MS else "OVER"
            added_ms, alone_ms, own_ms, full_ms = (statistics.median(v) for v in (added, alone, own, full))
            print(f"{size[0]:>6}x{size[1]:<4}  {added_ms:>8.2f}  {alone_ms:>11.2f}  {own_ms:>13.2f}  "
                  f"{full_ms:>14.2f}  {TARGET_MS:.1f} {verdict}")


if __name__ == "__main__":
    main()
