"""Baseline CNN training speed: seconds per epoch and images/s, per Keras backend.

    python benchmarks/baseline_speed.py                      # JAX and torch, 1,000 images, 128 px
    python benchmarks/baseline_speed.py --backends jax --images 200 --epochs 3   # a quick check
    python benchmarks/baseline_speed.py --cv 5x5 --images 100  # repeated CV as `curator baseline` runs it
    python benchmarks/baseline_speed.py --cv 5x5 --images 100 --max-folds 5    # shortened, extrapolated

``--cv RxK`` times the repeated grouped cross-validation of ``curator baseline`` (issue 16: a
5x5 run on 100 images at 128 px should take under 10 minutes on 2 CPU cores): the exact
``baseline.cv.run_fold`` per fold (balancing, early stopping on the fold's own selection
share, scoring beside the references), default [baseline] settings (up to 30 epochs, patience
5, batch 16), JAX unless ``KERAS_BACKEND`` says otherwise. It prints each fold's time and
epochs; with ``--max-folds N`` it stops after N folds and extrapolates the full run from the
mean fold time (said so in the output).

Generates ``--images`` photo-like images (``curator.synthetic``, three classes) at the
default input size, then trains the baseline CNN (``baseline.train.fit``, the exact code
``curator baseline`` runs, validation off) for ``--epochs`` epochs once per backend, each in
its own subprocess with ``KERAS_BACKEND`` set (a process can hold only one Keras backend).
The first epoch includes compiling/tracing, so it is reported apart; "s/epoch" and
"images/s" are medians over the later epochs. Prediction throughput is measured after
training, after one warm-up call. Each child prints the device its backend computes on:
the same script measures a GPU when the backend sees one (jax[cuda], a CUDA torch build).
A backend that is not installed is reported as such, not failed.

Full 5x5 CV, 100 images at 128 px, 2 workers, 2-core CPU with nothing else running (2026-12-07):
    25 folds in 485 s wall = 8.1 min (950 CPU-s); per fold mean 38.2 s, median 37.5 s, 9-30 epochs.
    Shortened runs (--max-folds) extrapolate from the first folds, which here ran the longest (30
    epochs): 6 folds gave ~9.3-9.7 min for the same run.

Reference (the issue): a 4-block CNN, ~390k parameters, 128 px, 120 images: ~2.3-3.5 s per
epoch with JAX on this 2-core CPU.

Quiet 2-core CPU (2026-11-26, nothing else running), 1,000 images, 128 px, batch 16:
    --epochs 4:  jax 8.34 s/epoch (120 img/s), torch 6.78 s/epoch (147 img/s); predict jax 380
                 img/s, torch 305 img/s
    --epochs 6:  jax 8.64 s/epoch (116 img/s), torch 6.49 s/epoch (154 img/s); predict jax 362
                 img/s, torch 305 img/s
    So torch trains ~1.3x faster on this CPU (XLA's CPU convolutions use about one core), JAX
    predicts ~1.2x faster and is ~5.5x faster on the GPU. JAX stays the documented default: the
    project installs jax[cpu], and a CPU-only torch has to be chosen by hand (a plain
    `pip install torch` pulls a multi-GB CUDA build); set KERAS_BACKEND=torch to use it.

Earlier sanity runs (2026-11-26, shared machines under load, so rough):
    2-core CPU, load ~3, --images 200 --epochs 3:  jax 3.67 s/epoch (54 img/s), torch 10.35 s/epoch
                                                    (19 img/s): JAX 2.8x faster
    2-core CPU, load ~3, --images 1000 --epochs 3 --backends jax: 12.4 s/epoch (80 img/s)
    NVIDIA H200 (jax 0.11.2 cuda, torch 2.11 cu130), --images 1000 --epochs 4:
                                                    jax 0.199 s/epoch (5013 img/s),
                                                    torch 1.095 s/epoch (913 img/s)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
CLASSES = ("alopecia", "psoriasis", "folliculitis")


def make_images(count: int, size: int, path: Path) -> None:
    from curator import synthetic

    x = np.empty((count, size, size, 3), dtype=np.uint8)
    y = np.arange(count) % len(CLASSES)
    for i in range(count):
        x[i] = np.asarray(synthetic.photo(i, CLASSES[y[i]], size=(size, size)), dtype=np.uint8)
    np.savez(path, x=x, y=y)


def child(args: argparse.Namespace) -> None:
    """Runs inside the subprocess: train, time, print one JSON line."""
    sys.path.insert(0, str(ROOT))
    from baseline import run as baseline_run
    from baseline import train
    from baseline.model import keras_module
    from curator.config import BaselineConfig

    keras = keras_module()
    loaded = np.load(args.data)
    x, y = loaded["x"], loaded["y"]
    cfg = BaselineConfig(image_size=x.shape[1], epochs=args.epochs, batch_size=args.batch_size,
                         augment=not args.no_augment)
    started = time.perf_counter()
    result = train.fit(x, y, None, len(CLASSES), cfg, epochs=args.epochs)
    wall = time.perf_counter() - started
    steady = result.epoch_seconds[1:] or result.epoch_seconds
    train.predict(result.model, x[:1])  # compiles the predict step (one padded shape for all calls)
    predicted = time.perf_counter()
    train.predict(result.model, x)
    predict_seconds = time.perf_counter() - predicted
    hw = baseline_run.hardware(keras)
    print(json.dumps({
        "backend": keras.backend.backend(), "device": hw["device"], "device_kind": hw["device_kind"],
        "keras": keras.__version__, "params": int(result.model.count_params()),
        "setup_s": round(result.setup_seconds, 2), "first_epoch_s": round(result.epoch_seconds[0], 2),
        "epoch_s": round(statistics.median(steady), 3),
        "images_per_s": round(len(y) / statistics.median(steady), 1),
        "predict_images_per_s": round(len(y) / predict_seconds, 1), "total_s": round(wall, 2),
        "epochs": result.epoch_seconds,
    }))


def cv_benchmark(args: argparse.Namespace) -> None:
    """Time R x K folds of baseline.cv on generated images; print per-fold and total figures."""
    sys.path.insert(0, str(ROOT))
    from baseline import cv
    from baseline import run as baseline_run
    from baseline.model import keras_module
    from curator import synthetic
    from curator.config import BaselineConfig

    repeats, folds_per_repeat = (int(v) for v in args.cv.lower().split("x"))
    keras = keras_module()
    y = np.arange(args.images) % len(CLASSES)
    x = np.stack([np.asarray(synthetic.photo(i, CLASSES[y[i]], size=(args.image_size, args.image_size)),
                             dtype=np.uint8) for i in range(args.images)])
    pool = cv.Pool(x, y, tuple(f"{i:064x}" for i in range(args.images)),
                   cv.group_keys(np.arange(args.images) // 2, (None,) * args.images))  # near-duplicate pairs
    cfg = BaselineConfig(image_size=args.image_size, batch_size=args.batch_size,
                         cv_folds=folds_per_repeat, cv_repeats=repeats, cv_workers=args.workers)
    workers = baseline_run.cv_workers(cfg)
    folds = cv.plan(y, pool.groups, folds_per_repeat, repeats, cfg.seed, 0.15 / 0.85, CLASSES)
    hw = baseline_run.hardware(keras)
    print(f"repeated CV {repeats}x{folds_per_repeat} on {args.images} images at {args.image_size} px, "
          f"{keras.backend.backend()} on {hw['device']} ({hw['device_kind']}), {os.cpu_count()} CPUs, "
          f"up to {cfg.epochs} epochs (patience {cfg.patience}), batch {cfg.batch_size}, "
          f"{workers} worker process(es)", flush=True)
    started = time.perf_counter()
    measured = folds[: args.max_folds or None]
    records = cv.run_all(pool, measured, CLASSES, cfg, "oversample", workers=workers)
    wall = time.perf_counter() - started
    seconds = []
    for fold, done in zip(measured, records, strict=True):
        seconds.append(done["seconds"])
        print(f"  {fold.phase}: {done['seconds']:6.1f} s wall, {done['cpu_seconds']:6.1f} CPU-s, "
              f"{done['epochs_run']:2d} epochs "
              f"(kept {done['best_epoch']}), {done['train_rows']} train / {done['selection_rows']} "
              f"selection / {done['rows']} held out, accuracy {done['model']['accuracy']:.3f}", flush=True)
    print(f"{len(seconds)} folds in {wall:.1f} s wall (including each worker's start and compile); "
          f"per fold: mean {statistics.mean(seconds):.1f} s, median {statistics.median(seconds):.1f} s "
          f"(a fold's own time; {workers} run at once)")
    cpu = sum(r["cpu_seconds"] for r in records)
    cores = min(workers, os.cpu_count() or 1)
    print(f"CPU time: {cpu:.1f} CPU-s in the folds; on {cores} otherwise idle core(s) that is at least "
          f"{cpu / cores:.1f} s of wall time")
    if len(seconds) < len(folds):
        scale = len(folds) / len(seconds)
        print(f"shortened run, all {len(folds)} folds extrapolated from the {len(seconds)} measured: "
              f"~{wall * scale / 60:.1f} min at this machine's load; "
              f"~{cpu * scale / cores / 60:.1f} min from CPU time on {cores} idle core(s) "
              "(plus each worker's start and compile)")
    else:
        print(f"full {repeats}x{folds_per_repeat} run: {wall / 60:.1f} min")


def run_backend(backend: str, args: argparse.Namespace, data: Path) -> dict[str, object]:
    env = {**os.environ, "KERAS_BACKEND": backend}
    command = [sys.executable, __file__, "--child", "--data", str(data), "--epochs", str(args.epochs),
               "--batch-size", str(args.batch_size), *(["--no-augment"] if args.no_augment else [])]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=args.timeout)
    if done.returncode != 0:
        missing = "No module named" in done.stderr
        last = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else f"exit {done.returncode}"
        return {"backend": backend, "error": "not installed" if missing else last}
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=1000)
    parser.add_argument("--image-size", type=int, default=128)
    parser.add_argument("--epochs", type=int, default=4, help="epochs per backend (the first one compiles)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--backends", default="jax,torch")
    parser.add_argument("--no-augment", action="store_true")
    parser.add_argument("--timeout", type=float, default=1800)
    parser.add_argument("--cv", metavar="RxK", help="time repeated cross-validation instead, e.g. 5x5")
    parser.add_argument("--max-folds", type=int, default=0, help="with --cv: stop after N folds, extrapolate")
    parser.add_argument("--workers", type=int, default=0,
                        help="with --cv: worker processes (default as curator baseline: one per core, max 4)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    if args.cv:
        cv_benchmark(args)
        return
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "images.npz"
        t = time.perf_counter()
        make_images(args.images, args.image_size, data)
        print(f"{args.images} generated images at {args.image_size} px in {time.perf_counter() - t:.1f} s; "
              f"batch {args.batch_size}, {args.epochs} epochs, "
              f"augmentation {'off' if args.no_augment else 'on'}; "
              f"{os.cpu_count()} CPUs", flush=True)
        rows = [run_backend(b.strip(), args, data) for b in args.backends.split(",") if b.strip()]
    header = (f"{'backend':<8}{'device':<22}{'params':>8}{'setup s':>9}{'1st epoch s':>12}{'s/epoch':>9}"
              f"{'images/s':>10}{'predict img/s':>14}")
    print(header)
    for r in rows:
        if "error" in r:
            print(f"{r['backend']:<8}{r['error']}")
            continue
        device = f"{r['device']} ({r['device_kind']})"[:21]
        print(f"{r['backend']:<8}{device:<22}{r['params']:>8}{r['setup_s']:>9}{r['first_epoch_s']:>12}"
              f"{r['epoch_s']:>9}{r['images_per_s']:>10}{r['predict_images_per_s']:>14}")
    done = [r for r in rows if "error" not in r]
    if len(done) == 2:
        a, b = done
        faster, slower = (a, b) if a["epoch_s"] <= b["epoch_s"] else (b, a)  # type: ignore[operator]
        ratio = float(slower["epoch_s"]) / float(faster["epoch_s"])  # type: ignore[arg-type]
        print(f"{faster['backend']} is {ratio:.2f}x faster per epoch than {slower['backend']}")


if __name__ == "__main__":
    main()
