"""What a model must beat: a majority-class guess and a stratified chance guess, and the verdict.

Both references learn only what a constant or random guesser could: the class frequencies of
the rows the model trained on. They are scored on the same rows as the model.

    majority     always predicts the most common training class; accuracy with a Wilson
                 interval, balanced accuracy and macro-F1 with BCa (like the model's)
    chance       predicts class c with its training frequency, at random; the value is the
                 mean over seeded draws and the interval the range (2.5-97.5 %) a chance guess
                 lands in on these n rows

:func:`verdict` turns the model-minus-majority accuracy difference and its interval into one
plain sentence.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from baseline import metrics

SCORES = ("accuracy", "balanced_accuracy", "macro_f1")
CHANCE_DRAWS = 2000
MAJORITY = "a majority-class guess"


def majority_class(train_labels: np.ndarray, n_classes: int) -> int:
    """The most common training class (the lowest index on a tie)."""
    return int(np.argmax(np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=n_classes)))


def majority(train_labels: np.ndarray, y_true: np.ndarray, classes: tuple[str, ...], resamples: int,
             seed: int) -> dict[str, Any]:
    """The majority-class guess scored on ``y_true``, intervals of the same kind as the model's."""
    guess = majority_class(train_labels, len(classes))
    scored = metrics.evaluate(y_true, np.full(len(y_true), guess), classes, resamples, seed)
    present = len(np.unique(y_true))
    exact = metrics.interval(1 / present, None, None, len(y_true), "exact", "exact: 1/classes")
    return {"class": classes[guess], "accuracy": scored["accuracy"], "balanced_accuracy": exact,
            "macro_f1": scored["macro_f1"]}


def chance(train_labels: np.ndarray, y_true: np.ndarray, n_classes: int, seed: int,
           draws: int = CHANCE_DRAWS) -> dict[str, Any]:
    """The stratified chance guess on ``y_true``: mean score over ``draws`` seeded random
    predictions with the training class frequencies, and the 95% range of those draws."""
    y = np.asarray(y_true, dtype=np.int64)
    frequencies = np.bincount(np.asarray(train_labels, dtype=np.int64), minlength=n_classes)
    p = frequencies / frequencies.sum()
    rng = np.random.default_rng(seed)
    out: dict[str, Any] = {}
    samples: dict[str, list[np.ndarray]] = {name: [] for name in SCORES}
    for start in range(0, draws, metrics.CHUNK):
        b = min(metrics.CHUNK, draws - start)
        guesses = rng.choice(n_classes, size=(b, len(y)), p=p)
        flat = (y * n_classes + guesses) + (np.arange(b) * n_classes * n_classes)[:, None]
        cms = np.bincount(flat.ravel(), minlength=b * n_classes * n_classes).reshape(b, n_classes, n_classes)
        stack = metrics.scores(cms)
        for name in SCORES:
            samples[name].append(stack[name])
    for name in SCORES:
        values = np.concatenate(samples[name])
        low, high = np.percentile(values, [2.5, 97.5])
        out[name] = metrics.interval(float(values.mean()), float(low), float(high), len(y), "chance draws")
    return out


def verdict(difference: dict[str, Any], basis: str) -> dict[str, Any]:
    """The outcome and one plain sentence from the model-minus-majority accuracy ``difference``
    (an interval dict); ``basis`` says where it was measured ("on the test split", ...)."""
    value, ci = difference["value"], difference["ci95"]
    if ci is None:
        outcome = "does not beat" if value <= 0 else "cannot tell"
        if outcome == "does not beat":
            sentence = (f"The model does not beat {MAJORITY} {basis}: its accuracy is {value:+.3f} from the "
                        "guess's, with no spread to give an interval.")
        else:
            sentence = (f"Cannot tell whether the model beats {MAJORITY} {basis}: the accuracy difference "
                        f"is {value:+.3f} but n is too small for an interval.")
    elif ci[0] > 0:
        outcome = "beats"
        sentence = (f"The model beats {MAJORITY} {basis} by {value:.3f} accuracy "
                    f"(95% interval {ci[0]:.3f} to {ci[1]:.3f}).")
    elif ci[1] < 0:
        outcome = "worse"
        sentence = (f"The model does worse than {MAJORITY} {basis}, by {-value:.3f} accuracy "
                    f"(95% interval {-ci[1]:.3f} to {-ci[0]:.3f}).")
    else:
        outcome = "does not beat"
        sentence = (f"The model does not beat {MAJORITY} {basis}: the accuracy difference, {value:+.3f} "
                    f"(95% interval {ci[0]:+.3f} to {ci[1]:+.3f}), includes zero, so its interval "
                    "overlaps the reference.")
    return {"outcome": outcome, "sentence": sentence, "reference": "majority", "metric": "accuracy",
            "difference": difference}
