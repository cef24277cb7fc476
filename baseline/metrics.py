"""Classification scores, their bootstrap intervals, and grouped K-fold, in plain numpy.

Every score is computed from a confusion matrix ``cm[true, predicted]``; the
functions accept a stack of them (shape ``(..., k, k)``), which is how the
bootstrap scores all its resamples at once:

    accuracy            trace / total
    precision[c]        cm[c, c] / column c   (0 when nothing was predicted as c)
    recall[c]           cm[c, c] / row c      (undefined, NaN, when c has no rows)
    f1[c]               harmonic mean of precision and recall (0 when both are 0)
    balanced_accuracy   mean recall over the classes that have rows
    macro_f1            mean f1 over the classes that have rows or predictions
                        (scikit-learn's definitions, zero_division=0)

:func:`bootstrap` resamples rows with replacement (seeded) and reports the 2.5th and
97.5th percentiles of each score: the percentile 95% interval. With the few dozen
test images of a small release these intervals are wide, and that is the point.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from curator.errors import BaselineError

CHUNK = 256  # resamples scored per vectorised batch (bounds memory: CHUNK * n row indices)


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> np.ndarray:
    """``cm[t, p]`` = number of rows of class t predicted as p."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    return np.bincount(t * n_classes + p, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def scores(cm: np.ndarray) -> dict[str, np.ndarray]:
    """All scores of one confusion matrix or a stack of them (leading axes are kept)."""
    cm = np.asarray(cm, dtype=np.float64)
    diag = np.diagonal(cm, axis1=-2, axis2=-1)
    support = cm.sum(axis=-1)
    predicted = cm.sum(axis=-2)
    total = support.sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        precision = np.where(predicted > 0, diag / predicted, 0.0)
        recall = np.where(support > 0, diag / support, np.nan)
        r0 = np.nan_to_num(recall)
        f1 = np.where(precision + r0 > 0, 2 * precision * r0 / (precision + r0), 0.0)
        accuracy = diag.sum(axis=-1) / total
        has_rows = support > 0
        balanced = np.nansum(recall, axis=-1) / has_rows.sum(axis=-1)
        seen = has_rows | (predicted > 0)
        macro_f1 = (f1 * seen).sum(axis=-1) / seen.sum(axis=-1)
    return {
        "accuracy": accuracy,
        "balanced_accuracy": balanced,
        "macro_f1": macro_f1,
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
    }


def bootstrap(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, resamples: int,
              seed: int) -> dict[str, np.ndarray]:
    """Scores of ``resamples`` seeded resamples (rows drawn with replacement); arrays lead with
    the resample axis. Vectorised: one bincount per chunk of resamples."""
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    n = len(t)
    rng = np.random.default_rng(seed)
    k2 = n_classes * n_classes
    cells = t * n_classes + p
    stacks = []
    for start in range(0, resamples, CHUNK):
        b = min(CHUNK, resamples - start)
        rows = rng.integers(0, n, size=(b, n))
        flat = cells[rows] + (np.arange(b) * k2)[:, None]
        stacks.append(np.bincount(flat.ravel(), minlength=b * k2).reshape(b, n_classes, n_classes))
    return scores(np.concatenate(stacks))


@dataclass(frozen=True)
class Interval:
    value: float
    low: float
    high: float

    def as_dict(self) -> dict[str, Any]:
        return {"value": self.value, "ci95": [self.low, self.high]}


def _interval(value: float, samples: np.ndarray) -> Interval:
    finite = samples[np.isfinite(samples)]
    if finite.size == 0:
        return Interval(float(value), float("nan"), float("nan"))
    low, high = np.percentile(finite, [2.5, 97.5])
    return Interval(float(value), float(low), float(high))


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...], resamples: int,
             seed: int) -> dict[str, Any]:
    """Point scores with bootstrap 95% intervals, per-class scores and the confusion matrix, as JSON."""
    k = len(classes)
    cm = confusion_matrix(y_true, y_pred, k)
    point = scores(cm)
    boot = bootstrap(y_true, y_pred, k, resamples, seed)
    out: dict[str, Any] = {"rows": int(len(y_true))}
    for name in ("accuracy", "balanced_accuracy", "macro_f1"):
        out[name] = _interval(float(point[name]), boot[name]).as_dict()
    out["per_class"] = {
        cls: {
            "precision": _interval(float(point["precision"][c]), boot["precision"][:, c]).as_dict(),
            "recall": _interval(float(point["recall"][c]), boot["recall"][:, c]).as_dict(),
            "f1": _interval(float(point["f1"][c]), boot["f1"][:, c]).as_dict(),
            "support": int(point["support"][c]),
        }
        for c, cls in enumerate(classes)
    }
    out["confusion_matrix"] = cm.tolist()
    return out


def accuracy_with_interval(y_true: np.ndarray, y_pred: np.ndarray, resamples: int,
                           seed: int) -> dict[str, Any]:
    """Accuracy alone (for the train split), with its bootstrap interval."""
    correct = (np.asarray(y_true) == np.asarray(y_pred)).astype(np.float64)
    rng = np.random.default_rng(seed)
    means = np.concatenate([
        correct[rng.integers(0, len(correct), size=(min(CHUNK, resamples - s), len(correct)))].mean(axis=1)
        for s in range(0, resamples, CHUNK)
    ])
    return _interval(float(correct.mean()), means).as_dict()


def grouped_stratified_folds(labels: np.ndarray, groups: np.ndarray, k: int, seed: int,
                             classes: tuple[str, ...] | None = None) -> np.ndarray:
    """The fold (0..k-1) of each row: every group (cluster) lies wholly in one fold, and each
    class's groups are spread so that every fold gets about 1/k of that class.

    A group's class is its most common label. Groups are dealt class by class, largest first
    (seeded shuffle among equal sizes), each to the fold that holds the fewest rows of that class
    (then the fewest rows, then the lowest index). A class with fewer than ``k`` groups cannot be
    present in every fold: that is a :class:`~curator.errors.BaselineError`.
    """
    labels = np.asarray(labels, dtype=np.int64)
    groups = np.asarray(groups)
    if k < 2:
        raise BaselineError(f"--cv {k}: needs at least 2 folds")
    rng = np.random.default_rng(seed)
    unique, inverse = np.unique(groups, return_inverse=True)
    n_classes = int(labels.max()) + 1 if labels.size else 0
    per_group = np.zeros((len(unique), n_classes), dtype=np.int64)
    np.add.at(per_group, (inverse, labels), 1)
    group_class = per_group.argmax(axis=1)
    group_size = per_group.sum(axis=1)
    fold_of_group = np.full(len(unique), -1, dtype=np.int64)
    class_rows = np.zeros((k, n_classes), dtype=np.int64)
    for c in range(n_classes):
        members = np.flatnonzero(group_class == c)
        if len(members) == 0:
            continue
        if len(members) < k:
            name = repr(classes[c]) if classes is not None and c < len(classes) else str(c)
            raise BaselineError(
                f"--cv {k}: class {name} has only {len(members)} clusters in train+validation; "
                f"use --cv {max(2, len(members))} or fewer"
            )
        members = rng.permutation(members)
        members = members[np.argsort(-group_size[members], kind="stable")]
        for g in members:
            totals = class_rows.sum(axis=1)
            fold = min(range(k), key=lambda f: (class_rows[f, c], totals[f], f))
            fold_of_group[g] = fold
            class_rows[fold] += per_group[g]
    return fold_of_group[inverse]
