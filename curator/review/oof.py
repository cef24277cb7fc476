"""Out-of-fold class probabilities for label issues (``curator review --run --with-cv``).

The baseline's own pieces, as they are on main: its CNN and training loop
(baseline.train.fit, seeded, exactly ``[baseline] epochs`` per fold with balanced class
weights, as its cross-validation does) and its folds (baseline.metrics.grouped_stratified_folds:
every near-duplicate cluster wholly in one fold, each class spread over the folds). Every
labelled image of the workspace is predicted by the model of the fold that held it out, so
no image is scored by a model that saw it or a near copy of it. Patient groups are not used
yet: the catalog on this branch has none.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from PIL import Image

from curator import hashing, labeling, store
from curator.errors import InputError
from curator.workspace import Workspace

FOLDS = 5


def probabilities(ws: Workspace, folds: int = FOLDS,
                  on_fold: Callable[[int], None] | None = None) -> dict[str, list[float]]:
    """sha256 -> class probabilities (``[dataset] classes`` order) for every labelled image."""
    from baseline import metrics, train

    cfg, classes = ws.config, ws.config.dataset.classes
    labels = {sha: label for sha, label in labeling.current_labels(ws.conn, cfg).items() if label in classes}
    if len({*labels.values()}) < 2:
        raise InputError("--with-cv needs labelled images of at least two classes; "
                         "label with `curator label`")
    shas = sorted(labels)
    clusters = dict(ws.conn.execute("SELECT sha256, cluster_id FROM images").fetchall())
    y = np.array([classes.index(labels[sha]) for sha in shas], dtype=np.int64)
    groups = np.array([clusters[sha] for sha in shas], dtype=np.int64)
    fold_of = metrics.grouped_stratified_folds(y, groups, folds, cfg.baseline.seed, classes)
    x = np.stack([_pixels(ws, sha, cfg.baseline.image_size) for sha in shas])
    n_classes = len(classes)
    out = np.zeros((len(shas), n_classes), dtype=np.float64)
    for fold in range(folds):
        held = fold_of == fold
        counts = np.bincount(y[~held], minlength=n_classes)
        weights = {c: float(len(y[~held]) / (n_classes * counts[c])) for c in range(n_classes) if counts[c]}
        fitted = train.fit(x[~held], y[~held], None, n_classes, cfg.baseline, class_weight=weights,
                           epochs=cfg.baseline.epochs, phase=f"fold {fold + 1}/{folds}")
        held_x = x[held].astype(np.float32)
        out[held] = np.asarray(fitted.model.predict(held_x, batch_size=train.PREDICT_BATCH, verbose=0))
        if on_fold is not None:
            on_fold(1)
    out /= out.sum(axis=1, keepdims=True)
    return {sha: out[i].tolist() for i, sha in enumerate(shas)}


def _pixels(ws: Workspace, sha: str, size: int) -> np.ndarray:
    """The image as the baseline sees a released one: upright RGB, resized to ``size`` square."""
    with Image.open(store.object_path(ws.objects, sha)) as img:
        rgb = hashing.normalize(img).resize((size, size), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)
