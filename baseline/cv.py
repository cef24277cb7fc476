"""Repeated grouped K-fold cross-validation that runs the headline model's own procedure.

The headline model trains on the release's (balanced) train split and chooses its epoch by
early stopping on the validation split. Each fold here does the same, with nothing taken from
outside the fold:

    pool        train + validation originals (never test, never balancing copies)
    groups      rows joined by near-duplicate cluster and by patient/lesion ``group_id`` where
                the manifest has one: a group never straddles folds, nor the selection split
    outer       K grouped, stratified folds, drawn afresh for each of R repeats (seed + repeat)
    selection   inside each fold's training part, a grouped, stratified share the size of the
                release's validation share: it chooses the epoch (early stopping on its loss,
                best weights kept), like the validation split does for the headline model
    balancing   the release's method (curator.balance.plan) applied to the fold's own
                remaining training rows: oversampled copies of them (same jitter as a release
                build), or class weights from their counts, or none
    scores      on the held-out fold, beside the majority and stratified-chance guesses
                learned from the same training rows

:func:`summarise` turns the R x K fold scores into means with the corrected resampled t
interval, and the paired model-minus-majority difference that the verdict reads.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from baseline import metrics, references, train
from curator.config import BaselineConfig
from curator.errors import BaselineError, InputError

SCORES = references.SCORES
CHANCE_DRAWS = 200  # per fold; the fold means are averaged again over R x K folds


@dataclass(frozen=True)
class Pool:
    """The rows cross-validation draws from, with the group of each (an int per connected group)."""

    images: np.ndarray
    labels: np.ndarray
    sha256: tuple[str, ...]
    groups: np.ndarray


@dataclass(frozen=True)
class Fold:
    repeat: int  # 1-based
    index: int  # 1-based
    train: np.ndarray  # pool rows the model learns from (before balancing)
    selection: np.ndarray  # pool rows that choose the epoch
    held_out: np.ndarray  # pool rows it is scored on

    @property
    def phase(self) -> str:
        return f"repeat {self.repeat} fold {self.index}"


def group_keys(cluster_ids: np.ndarray, group_ids: tuple[str | None, ...]) -> np.ndarray:
    """One int per row: rows sharing a cluster or a (non-null) group_id get the same key, and so
    do rows linked through a chain of both (union-find)."""
    parent = list(range(len(cluster_ids)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, Any], int] = {}
    for i, (cluster, group) in enumerate(zip(np.asarray(cluster_ids).tolist(), group_ids, strict=True)):
        for key in (("cluster", cluster), ("group", group)):
            if key[1] is None:
                continue
            if key in first:
                parent[find(i)] = find(first[key])
            else:
                first[key] = i
    return np.asarray([find(i) for i in range(len(parent))], dtype=np.int64)


def plan(labels: np.ndarray, groups: np.ndarray, k: int, repeats: int, seed: int, selection_share: float,
         classes: tuple[str, ...]) -> list[Fold]:
    """The R x K folds: outer folds from :func:`metrics.grouped_stratified_folds` (seed + repeat),
    and in each fold's training part a selection share chosen the same way."""
    if repeats < 1:
        raise InputError(f"cv_repeats {repeats}: must be at least 1", key="cv_repeats", value=str(repeats),
                            reason="too-small")
    folds = []
    for r in range(repeats):
        outer = metrics.grouped_stratified_folds(labels, groups, k, seed + r, classes)
        for f in range(k):
            rest = np.flatnonzero(outer != f)
            inner_k = _selection_folds(labels[rest], groups[rest], selection_share, classes, k)
            inner = metrics.grouped_stratified_folds(labels[rest], groups[rest], inner_k,
                                                     seed + 1000 * (r + 1) + f, classes)
            folds.append(Fold(r + 1, f + 1, rest[inner != 0], rest[inner == 0], np.flatnonzero(outer == f)))
    return folds


def _selection_folds(labels: np.ndarray, groups: np.ndarray, share: float, classes: tuple[str, ...],
                     k: int) -> int:
    """How many inner folds make one of them about ``share`` of the rows, capped so that every
    class has a group in each; a class with a single group cannot be both trained and selected on."""
    wanted = max(2, round(1 / share)) if share > 0 else 5
    fewest = min(len(np.unique(groups[labels == c])) for c in np.unique(labels))
    if fewest < 2:
        raise InputError(f"cv {k}: a fold's training part has a class with a single cluster, "
                            f"too few to also choose the epoch on; use {max(2, k - 1)} folds or fewer",
                            key="cv", value=str(k), reason="too-few-clusters")
    return min(wanted, fewest)


@dataclass(frozen=True)
class Balanced:
    x: np.ndarray
    y: np.ndarray
    class_weight: dict[int, float] | None
    synthetic: int


def balance_rows(pool: Pool, rows: np.ndarray, method: str, classes: tuple[str, ...], seed: int) -> Balanced:
    """The rows ``rows`` of ``pool`` balanced by ``method`` exactly as a release build balances its
    train split (curator.balance), computed from these rows alone."""
    from curator import balance

    planned = balance.plan([(pool.sha256[i], classes[int(pool.labels[i])]) for i in rows], method)
    x, y = pool.images[rows], pool.labels[rows]
    weights = None
    if planned.class_weights is not None:
        index = {name: i for i, name in enumerate(classes)}
        weights = {index[name]: float(w) for name, w in planned.class_weights.items()}
    if planned.synthetic:
        where = {pool.sha256[i]: int(i) for i in rows}
        copies = []
        for source, copy in planned.synthetic:
            pixels = pool.images[where[source]]
            copies.append(balance.apply_jitter(pixels, balance.jitter(pixels.tobytes(), copy, seed)))
        x = np.concatenate([x, np.stack(copies)])
        y = np.concatenate([y, pool.labels[[where[source] for source, _ in planned.synthetic]]])
    return Balanced(x, y, weights, len(planned.synthetic))


def run_fold(pool: Pool, fold: Fold, classes: tuple[str, ...], cfg: BaselineConfig, method: str,
             on_epoch: train.EpochCallback | None = None) -> dict[str, Any]:
    """Train one fold by the headline procedure and score it beside the two references."""
    k = len(classes)
    started, cpu_started = time.perf_counter(), time.process_time()
    balanced = balance_rows(pool, fold.train, method, classes, cfg.seed)
    selection = (pool.images[fold.selection], pool.labels[fold.selection])
    fitted = train.fit(balanced.x, balanced.y, selection, k, cfg, class_weight=balanced.class_weight,
                       phase=fold.phase, on_epoch=on_epoch)
    held_y = pool.labels[fold.held_out]
    predicted = train.predict(fitted.model, pool.images[fold.held_out])
    model = metrics.scores(metrics.confusion_matrix(held_y, predicted, k))
    train_y = pool.labels[fold.train]
    guess = references.majority_class(train_y, k)
    majority = metrics.scores(metrics.confusion_matrix(held_y, np.full(len(held_y), guess), k))
    chance = references.chance(train_y, held_y, k, cfg.seed + fold.repeat * 100 + fold.index, CHANCE_DRAWS)
    return {
        "repeat": fold.repeat, "fold": fold.index, "rows": int(len(fold.held_out)),
        "groups": int(len(np.unique(pool.groups[fold.held_out]))),
        "train_rows": int(len(balanced.y)), "selection_rows": int(len(fold.selection)),
        "class_counts": np.bincount(balanced.y, minlength=k).tolist(),
        "class_weights": ({classes[c]: w for c, w in balanced.class_weight.items()}
                          if balanced.class_weight else None),
        "synthetic_rows": balanced.synthetic,
        "epochs_run": len(fitted.history), "best_epoch": fitted.best_epoch,
        "selection_loss": [e.val_loss for e in fitted.history],
        "model": {name: float(model[name]) for name in SCORES},
        "majority": {name: float(majority[name]) for name in SCORES},
        "chance": {name: chance[name]["value"] for name in SCORES},
        "seconds": round(time.perf_counter() - started, 3),
        "cpu_seconds": round(time.process_time() - cpu_started, 3),  # all threads of this process
    }


def run_all(pool: Pool, folds: list[Fold], classes: tuple[str, ...], cfg: BaselineConfig, method: str,
            on_epoch: train.EpochCallback | None = None, workers: int = 1) -> list[dict[str, Any]]:
    """Every fold, in order. With ``workers`` > 1 the folds run in that many spawned processes:
    XLA's CPU convolutions keep about one core busy, so two processes on two cores nearly halve the
    time. Each fold is seeded on its own, so the records are the same either way; ``on_epoch``
    then gets a fold's epochs when the fold finishes."""
    if workers <= 1 or len(folds) < 2:
        return [run_fold(pool, fold, classes, cfg, method, on_epoch) for fold in folds]
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor
    from concurrent.futures.process import BrokenProcessPool

    context = multiprocessing.get_context("spawn")  # never fork a process that holds JAX threads
    records = []
    try:
        with ProcessPoolExecutor(min(workers, len(folds)), mp_context=context, initializer=_start_worker,
                                 initargs=(pool, classes, cfg, method)) as executor:
            for record, history in executor.map(_worker_fold, folds):
                for entry in history:
                    if on_epoch is not None:
                        on_epoch(entry)
                records.append(record)
    except BrokenProcessPool as err:
        raise BaselineError(f"cross-validation: a worker process died ({err}); "
                            "set [baseline] cv_workers = 1 to run the folds one by one") from err
    return records


_WORKER: dict[str, Any] = {}  # set once per worker process by _start_worker


def _start_worker(pool: Pool, classes: tuple[str, ...], cfg: BaselineConfig, method: str) -> None:
    import os

    # one XLA CPU thread per worker (before keras/jax load here): the workers share the cores, and
    # threads spinning for work on a busy core only burn it
    if "XLA_FLAGS" not in os.environ:
        os.environ["XLA_FLAGS"] = "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"
    _WORKER.update(pool=pool, classes=classes, cfg=cfg, method=method)


def _worker_fold(fold: Fold) -> tuple[dict[str, Any], list[train.EpochLog]]:
    history: list[train.EpochLog] = []
    record = run_fold(_WORKER["pool"], fold, _WORKER["classes"], _WORKER["cfg"], _WORKER["method"],
                      history.append)
    return record, history


def summarise(folds: list[dict[str, Any]], pool_rows: int, k: int, repeats: int,
              method: str) -> dict[str, Any]:
    """Means over the R x K folds with corrected resampled t intervals, per guesser, and the paired
    model-minus-majority accuracy difference."""
    held_share = float(np.mean([f["rows"] for f in folds])) / pool_rows

    def aggregate(who: str) -> dict[str, Any]:
        out = {name: metrics.corrected_mean(np.array([f[who][name] for f in folds]), held_share, pool_rows)
               for name in SCORES}
        if who != "model" and out["accuracy"]["ci95"] is None:
            # a guess scores the same on every stratified fold: its uncertainty is that of a
            # proportion over all the rows it was scored on
            low, high = metrics.wilson(out["accuracy"]["value"] * pool_rows, pool_rows)
            out["accuracy"] = metrics.interval(out["accuracy"]["value"], low, high, pool_rows, "wilson")
        if who == "majority":
            out["balanced_accuracy"] = metrics.interval(out["balanced_accuracy"]["value"], None, None,
                                                        pool_rows, "exact", "exact: 1/classes")
        return out

    difference = np.array([f["model"]["accuracy"] - f["majority"]["accuracy"] for f in folds])
    return {
        "folds": k, "repeats": repeats, "rows": pool_rows, "grouped_by": ["cluster_id", "group_id"],
        "epoch_selection": "early stopping on a grouped selection share of each fold's own training rows",
        "balancing": method,
        "model": aggregate("model"), "majority": aggregate("majority"), "chance": aggregate("chance"),
        "difference": metrics.corrected_mean(difference, held_share, pool_rows, bounded=False),
        "per_fold": folds,
    }
