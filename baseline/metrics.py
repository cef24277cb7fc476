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

Intervals hold at small n and never collapse silently:

    accuracy, per-class precision and recall   Wilson score interval (13/13 -> 0.772-1.000)
    balanced accuracy, macro-F1, per-class F1  BCa bootstrap; "n too small" (no interval)
                                               when the resampled statistic has no spread
    a repeated-CV mean                         corrected resampled t (Nadeau & Bengio)

Every interval carries the n it was computed on.
"""

from __future__ import annotations

import math
from statistics import NormalDist
from typing import Any

import numpy as np

from curator.errors import InputError

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


Z95 = NormalDist().inv_cdf(0.975)  # 1.959964...
FEW = 5  # a class with fewer test images than this is marked in every table


def interval(value: float, low: float | None, high: float | None, n: int, method: str,
             note: str | None = None) -> dict[str, Any]:
    """One score as JSON: ``ci95`` is ``None`` (with a ``note``) when no honest interval exists."""
    ci = None if low is None or high is None else [float(low), float(high)]
    out: dict[str, Any] = {"value": float(value), "ci95": ci, "n": int(n), "method": method}
    if note:
        out["note"] = note
    return out


def wilson(successes: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion: correct coverage at small n, never zero width at 0/n
    or n/n (13/13 gives 0.772-1.000)."""
    if n <= 0:
        raise ValueError("wilson: n must be positive")
    p = successes / n
    denominator = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denominator
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denominator
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(successes: int, n: int) -> dict[str, Any]:
    """A proportion with its Wilson 95% interval; no interval (and a note) when n is 0."""
    if n == 0:
        return interval(0.0, None, None, 0, "wilson", "no images")
    low, high = wilson(successes, n)
    return interval(successes / n, low, high, n, "wilson")


def bca(theta: float, boot: np.ndarray, jack: np.ndarray, n: int) -> dict[str, Any]:
    """Bias-corrected and accelerated bootstrap 95% interval (Efron 1987) of a statistic whose
    estimate is ``theta``, resampled values ``boot`` and leave-one-out values ``jack``.

    It cannot collapse silently: when the resampled statistic has no spread, or every resample
    falls on one side of the estimate, there is no interval and the note says "n too small"."""
    boot = boot[np.isfinite(boot)]
    jack = jack[np.isfinite(jack)]
    too_small = interval(theta, None, None, n, "bca", "n too small")
    if boot.size < 2 or np.ptp(boot) == 0:
        return too_small
    below = (np.count_nonzero(boot < theta) + 0.5 * np.count_nonzero(boot == theta)) / boot.size
    if not 0.0 < below < 1.0:
        return too_small
    normal = NormalDist()
    z0 = normal.inv_cdf(below)
    spread = jack.mean() - jack if jack.size else np.zeros(1)
    denominator = 6.0 * float(np.sum(spread ** 2)) ** 1.5
    accel = float(np.sum(spread ** 3)) / denominator if denominator > 0 else 0.0
    levels = []
    for z in (-Z95, Z95):
        shifted = z0 + (z0 + z) / (1 - accel * (z0 + z))
        levels.append(normal.cdf(shifted))
    low, high = np.quantile(boot, levels)
    if low == high:  # a discrete statistic whose resamples pile up on one value
        return too_small
    return interval(theta, float(low), float(high), n, "bca")


def _resample_rows(n: int, resamples: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, n, size=(min(CHUNK, resamples - s), n)) for s in range(0, resamples, CHUNK)]


def mean_bca(values: np.ndarray, resamples: int, seed: int) -> dict[str, Any]:
    """The mean of ``values`` (e.g. per-row differences) with its BCa interval."""
    values = np.asarray(values, dtype=np.float64)
    n = len(values)
    if n < 2:
        return interval(float(values.mean()) if n else 0.0, None, None, n, "bca", "n too small")
    boot = np.concatenate([values[rows].mean(axis=1) for rows in _resample_rows(n, resamples, seed)])
    jack = (values.sum() - values) / (n - 1)
    return bca(float(values.mean()), boot, jack, n)


def t_quantile(df: int, p: float = 0.975) -> float:
    """Student's t quantile by the Cornish-Fisher expansion (within 0.004 of the exact value at
    df = 3 and 1e-4 from df = 9; scipy is not a dependency)."""
    z = NormalDist().inv_cdf(p)
    g1 = (z ** 3 + z) / 4
    g2 = (5 * z ** 5 + 16 * z ** 3 + 3 * z) / 96
    g3 = (3 * z ** 7 + 19 * z ** 5 + 17 * z ** 3 - 15 * z) / 384
    g4 = (79 * z ** 9 + 776 * z ** 7 + 1482 * z ** 5 - 1920 * z ** 3 - 945 * z) / 92160
    return float(z + g1 / df + g2 / df ** 2 + g3 / df ** 3 + g4 / df ** 4)


def corrected_mean(values: np.ndarray, held_share: float, n: int, bounded: bool = True) -> dict[str, Any]:
    """Mean of repeated-CV fold scores with the corrected resampled t interval (Nadeau & Bengio
    2003): folds share training rows, so the plain standard error is too small; the variance is
    scaled by (1/J + n_held/n_train). ``n`` is the number of distinct images scored."""
    values = np.asarray(values, dtype=np.float64)
    j = len(values)
    mean = float(values.mean()) if j else 0.0
    if j < 2 or float(np.std(values)) == 0.0:
        return interval(mean, None, None, n, "corrected t", "no spread between folds")
    variance = float(np.var(values, ddof=1)) * (1 / j + held_share / (1 - held_share))
    half = t_quantile(j - 1) * math.sqrt(variance)
    low, high = mean - half, mean + half
    if bounded:
        low, high = max(0.0, low), min(1.0, high)
    return interval(mean, low, high, n, "corrected t")


def _jackknife(cells: np.ndarray, n_classes: int) -> dict[str, np.ndarray]:
    """Scores of the n leave-one-out confusion matrices (one per row)."""
    cm = np.bincount(cells, minlength=n_classes * n_classes)
    loo = np.broadcast_to(cm, (len(cells), cm.size)).copy()
    loo[np.arange(len(cells)), cells] -= 1
    return scores(loo.reshape(len(cells), n_classes, n_classes))


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...], resamples: int,
             seed: int) -> dict[str, Any]:
    """Point scores with 95% intervals (Wilson for accuracy and per-class precision/recall, BCa
    for balanced accuracy, macro-F1 and per-class F1), n beside each, and the confusion matrix."""
    k = len(classes)
    t = np.asarray(y_true, dtype=np.int64)
    p = np.asarray(y_pred, dtype=np.int64)
    cm = confusion_matrix(t, p, k)
    point = scores(cm)
    boot = bootstrap(t, p, k, resamples, seed)
    jack = _jackknife(t * k + p, k)
    n = int(len(t))
    out: dict[str, Any] = {"rows": n, "accuracy": proportion(int(np.trace(cm)), n)}
    for name in ("balanced_accuracy", "macro_f1"):
        out[name] = bca(float(point[name]), boot[name], jack[name], n)
    per_class = {}
    for c, cls in enumerate(classes):
        support, predicted = int(cm[c].sum()), int(cm[:, c].sum())
        precision = proportion(int(cm[c, c]), predicted)
        if predicted == 0:
            precision["note"] = "never predicted"
        per_class[cls] = {
            "precision": precision,
            "recall": proportion(int(cm[c, c]), support),
            "f1": bca(float(point["f1"][c]), boot["f1"][:, c], jack["f1"][:, c], support),
            "support": support,
            "few": support < FEW,
        }
    out["per_class"] = per_class
    out["confusion_matrix"] = cm.tolist()
    return out


def accuracy_with_interval(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Accuracy alone (for the train split), with its Wilson interval."""
    correct = int(np.count_nonzero(np.asarray(y_true) == np.asarray(y_pred)))
    return proportion(correct, len(y_true))


def grouped_stratified_folds(labels: np.ndarray, groups: np.ndarray, k: int, seed: int,
                             classes: tuple[str, ...] | None = None) -> np.ndarray:
    """The fold (0..k-1) of each row: every group (cluster) lies wholly in one fold, and each
    class's groups are spread so that every fold gets about 1/k of that class.

    A group's class is its most common label. Groups are dealt class by class, largest first
    (seeded shuffle among equal sizes), each to the fold that holds the fewest rows of that class
    (then the fewest rows, then the lowest index). A class with fewer than ``k`` groups cannot be
    present in every fold: that is an :class:`~curator.errors.InputError` (a K too large for the data).
    """
    labels = np.asarray(labels, dtype=np.int64)
    groups = np.asarray(groups)
    if k < 2:
        raise InputError(f"cv {k}: needs at least 2 folds", key="cv", value=str(k), reason="too-small")
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
            raise InputError(
                f"cv {k}: class {name} has only {len(members)} clusters in train+validation; "
                f"use {max(2, len(members))} folds or fewer", key="cv", value=str(k),
                reason="too-few-clusters",
            )
        members = rng.permutation(members)
        members = members[np.argsort(-group_size[members], kind="stable")]
        for g in members:
            totals = class_rows.sum(axis=1)
            fold = min(range(k), key=lambda f: (class_rows[f, c], totals[f], f))
            fold_of_group[g] = fold
            class_rows[fold] += per_group[g]
    return fold_of_group[inverse]
