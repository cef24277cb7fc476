"""Out-of-fold class probabilities for label issues (``curator review --run --with-cv``).

The baseline's own pieces, as they are on main: its CNN and training loop
(baseline.train.fit, seeded, exactly ``[baseline] epochs`` per fold with balanced class
weights, as its cross-validation does) and its folds (baseline.metrics.grouped_stratified_folds
over baseline.cv.group_keys: every near-duplicate cluster and every patient group
(curator.groups), and whatever chains of the two link, wholly in one fold; each class spread
over the folds). Every labelled image of the workspace is predicted by the model of the fold
that held it out, so no image is scored by a model that saw it, a near copy of it or another
photo of its patient. Unlabelled images, which no model saw, get the mean of the folds'
predictions: the suggestions of ``curator label --suggest`` (curator.suggest).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image

from curator import groups, hashing, labeling, store
from curator.errors import InputError
from curator.workspace import Workspace

FOLDS = 5


def probabilities(ws: Workspace, folds: int = FOLDS,
                  on_fold: Callable[[int], None] | None = None) -> dict[str, list[float]]:
    """sha256 -> class probabilities (``[dataset] classes`` order) for every image: out of
    fold for the labelled ones, the folds' mean for the rest."""
    from baseline import metrics, train

    cfg, classes = ws.config, ws.config.dataset.classes
    labels = {sha: label for sha, label in labeling.current_labels(ws.conn, cfg).items() if label in classes}
    if len({*labels.values()}) < 2:
        raise InputError("with_cv needs labelled images of at least two classes; "
                         "label with `curator label`", key="with_cv", reason="too-few-classes")
    shas = sorted(labels)
    y = np.array([classes.index(labels[sha]) for sha in shas], dtype=np.int64)
    fold_of = metrics.grouped_stratified_folds(y, fold_keys(ws, shas), folds, cfg.baseline.seed, classes)
    x = np.stack([_pixels(ws, sha, cfg.baseline.image_size) for sha in shas])
    unlabelled = [sha for (sha,) in ws.conn.execute("SELECT sha256 FROM images ORDER BY sha256")
                  if sha not in labels]
    x_new = (np.stack([_pixels(ws, sha, cfg.baseline.image_size) for sha in unlabelled])
             if unlabelled else None)
    n_classes = len(classes)
    out = np.zeros((len(shas), n_classes), dtype=np.float64)
    out_new = np.zeros((len(unlabelled), n_classes), dtype=np.float64)
    for fold in range(folds):
        held = fold_of == fold
        counts = np.bincount(y[~held], minlength=n_classes)
        weights = {c: float(len(y[~held]) / (n_classes * counts[c])) for c in range(n_classes) if counts[c]}
        fitted = train.fit(x[~held], y[~held], None, n_classes, cfg.baseline, class_weight=weights,
                           epochs=cfg.baseline.epochs, phase=f"fold {fold + 1}/{folds}")
        out[held] = _predict(fitted.model, x[held])
        if x_new is not None:
            out_new += _predict(fitted.model, x_new) / folds
        if on_fold is not None:
            on_fold(1)
    both = np.concatenate([out, out_new])
    both /= both.sum(axis=1, keepdims=True)
    return {sha: both[i].tolist() for i, sha in enumerate([*shas, *unlabelled])}


def fold_keys(ws: Workspace, shas: list[str]) -> np.ndarray:
    """One key per image, shared by images of one near-duplicate cluster or one patient group
    (its first, as a release reports it), the baseline's cross-validation rule."""
    from baseline import cv

    clusters = dict(ws.conn.execute("SELECT sha256, cluster_id FROM images").fetchall())
    patient = groups.of_images(ws.conn, ws.config.groups)
    return cv.group_keys(np.array([clusters[sha] for sha in shas], dtype=np.int64),
                         tuple(patient[sha][0] if sha in patient else None for sha in shas))


def _predict(model: Any, x: np.ndarray) -> np.ndarray:
    from baseline import train

    return np.asarray(model.predict(x.astype(np.float32), batch_size=train.PREDICT_BATCH, verbose=0))


def _pixels(ws: Workspace, sha: str, size: int) -> np.ndarray:
    """The image as the baseline sees a released one: upright RGB, resized to ``size`` square."""
    with Image.open(store.object_path(ws.objects, sha)) as img:
        rgb = hashing.normalize(img).resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)
