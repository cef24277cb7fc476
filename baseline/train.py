"""Seeded training with early stopping on the validation split.

One call to :func:`fit` trains the CNN of :mod:`baseline.model` on arrays:

* **Seeded.** ``keras.utils.set_random_seed(seed)`` resets Python's, NumPy's and
  the backend's generators before the model is built, every random layer has its
  own seed, and the batches come from :class:`Batches`, whose order in epoch *e*
  is a permutation drawn from ``(seed, e)`` alone. On CPU the same data and seed
  give the same weights and so the same metrics, in any process and on any run.
* **Balanced.** Oversampled rows are already in the release's train split; a
  release balanced by class weights passes them as per-row sample weights.
* **Early stopping** on validation loss (``patience`` epochs), restoring the best
  epoch's weights: the test split never steers training.
* **One compile per shape.** JAX compiles the train step per model; a model of
  the same shape and settings is reused (weights, optimizer and seed state reset
  to their initial values), so cross-validation folds and repeated runs in one
  process pay the compile once.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from baseline import model as cnn
from curator.config import BaselineConfig


@dataclass(frozen=True)
class EpochLog:
    phase: str  # "train", or "fold 2/5" in cross-validation
    epoch: int  # 1-based
    epochs: int  # the most this phase will run
    loss: float
    accuracy: float
    val_loss: float | None
    val_accuracy: float | None
    seconds: float


EpochCallback = Callable[[EpochLog], None]


@dataclass
class TrainResult:
    model: Any = field(repr=False)
    history: list[EpochLog]
    best_epoch: int  # 1-based epoch whose weights were kept
    stopped_early: bool
    seconds: float  # the fit itself
    train_rows: int
    setup_seconds: float = 0.0  # building the model and compiling its train step (0 when reused)

    @property
    def epoch_seconds(self) -> list[float]:
        return [e.seconds for e in self.history]

    def images_per_second(self) -> float:
        """Training throughput, excluding the first epoch (it includes the compile)."""
        steady = self.epoch_seconds[1:] or self.epoch_seconds
        return self.train_rows / float(np.median(steady)) if steady else 0.0


# (backend, n_classes, image_size, augment, seed) -> (model, initial variable values)
_MODELS: dict[tuple[Any, ...], tuple[Any, list[np.ndarray]]] = {}


def fresh_model(n_classes: int, cfg: BaselineConfig) -> Any:
    """A compiled model in its initial state; reused (reset) when the same shape was built before."""
    keras = cnn.keras_module()
    key = (keras.backend.backend(), n_classes, cfg.image_size, cfg.augment, cfg.seed)
    if key not in _MODELS:
        keras.utils.set_random_seed(cfg.seed)
        model = cnn.build(n_classes, cfg.image_size, cfg.seed, cfg.augment)
        cnn.compile_model(model, cfg.learning_rate)
        model.optimizer.build(model.trainable_variables)
        initial = [np.array(keras.ops.convert_to_numpy(v.value)) for v in _state(model)]
        # Warm up: the first fit of a model builds and traces what it lazily needs, and its
        # results differ slightly from later fits; one throwaway step on zeros makes every
        # real fit start from the same point (and pays the compile here).
        zeros = np.zeros((cfg.batch_size, cfg.image_size, cfg.image_size, 3), dtype=np.float32)
        model.fit(make_batches(zeros, np.zeros(cfg.batch_size, dtype=np.int64), cfg.batch_size, cfg.seed),
                  epochs=1, verbose=0)
        _MODELS[key] = (model, initial)
    model, initial = _MODELS[key]
    for variable, value in zip(_state(model), initial, strict=True):
        variable.assign(value)
    model.optimizer.learning_rate.assign(cfg.learning_rate)  # a variable: no recompile per rate
    return model


def _state(model: Any) -> list[Any]:
    """Everything a fit changes: weights, BatchNorm statistics, seed-generator state, optimizer slots."""
    return [*model.variables, *model.optimizer.variables]


def fit(
    x: np.ndarray,
    y: np.ndarray,
    validation: tuple[np.ndarray, np.ndarray] | None,
    n_classes: int,
    cfg: BaselineConfig,
    *,
    class_weight: dict[int, float] | None = None,
    epochs: int | None = None,
    phase: str = "train",
    on_epoch: EpochCallback | None = None,
) -> TrainResult:
    """Train from the seeded initial state. With ``validation``, stop early on its loss and keep the
    best epoch; without it (cross-validation folds), run exactly ``epochs`` epochs."""
    keras = cnn.keras_module()
    setup = time.perf_counter()
    model = fresh_model(n_classes, cfg)
    setup_seconds = time.perf_counter() - setup
    keras.utils.set_random_seed(cfg.seed)  # anything left unseeded draws the same numbers each run
    total = epochs or cfg.epochs
    history: list[EpochLog] = []

    batches = make_batches(x, y, cfg.batch_size, cfg.seed, class_weight)

    class Report(keras.callbacks.Callback):  # type: ignore[name-defined]
        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            entry = EpochLog(
                phase=phase, epoch=epoch + 1, epochs=total,
                loss=float(logs["loss"]), accuracy=float(logs["accuracy"]),
                val_loss=_maybe(logs.get("val_loss")), val_accuracy=_maybe(logs.get("val_accuracy")),
                seconds=time.perf_counter() - self.started,
            )
            history.append(entry)
            if on_epoch is not None:
                on_epoch(entry)

    callbacks: list[Any] = [Report(), keras.callbacks.TerminateOnNaN()]
    stopper = None
    if validation is not None:
        stopper = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=cfg.patience, restore_best_weights=True
        )
        callbacks.append(stopper)
    started = time.perf_counter()
    if validation is not None:  # small; Keras batches it itself
        validation = (validation[0].astype(np.float32), validation[1])
    model.fit(batches, epochs=total, validation_data=validation, callbacks=callbacks, verbose=0)
    seconds = time.perf_counter() - started
    best = len(history)
    if validation is not None:
        losses = [e.val_loss if e.val_loss is not None else np.inf for e in history]
        best = int(np.argmin(losses)) + 1  # EarlyStopping restored this epoch's weights
    return TrainResult(
        model=model, history=history, best_epoch=best,
        stopped_early=bool(stopper is not None and stopper.stopped_epoch > 0),
        seconds=seconds, train_rows=int(len(y)), setup_seconds=setup_seconds,
    )


@functools.cache
def _batches_class() -> Any:
    keras = cnn.keras_module()

    class Batches(keras.utils.PyDataset):  # type: ignore[name-defined]
        """Seeded mini-batches of one fixed shape: epoch e visits the rows in permutation(seed, e),
        and the last batch is filled up from the start of that permutation. One shape (and always
        (x, y, weight)) means JAX compiles the train step once."""

        def __init__(self, x: np.ndarray, y: np.ndarray, weights: np.ndarray, batch_size: int,
                     seed: int) -> None:
            super().__init__()
            self.x, self.y, self.weights = x, y, weights
            self.batch_size, self.seed = batch_size, seed
            self.epoch = 0
            self.order = self._order()

        def _order(self) -> np.ndarray:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.y))
            return np.resize(order, len(self) * self.batch_size)  # wraps around to fill the last batch

        def __len__(self) -> int:
            return -(-len(self.y) // self.batch_size)

        def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
            rows = self.order[index * self.batch_size:(index + 1) * self.batch_size]
            return self.x[rows].astype(np.float32), self.y[rows], self.weights[rows]

        def on_epoch_end(self) -> None:
            self.epoch += 1
            self.order = self._order()

    return Batches


def make_batches(x: np.ndarray, y: np.ndarray, batch_size: int, seed: int,
                 class_weight: dict[int, float] | None = None) -> Any:
    weights = np.asarray([(class_weight or {}).get(int(label), 1.0) for label in y], dtype=np.float32)
    return _batches_class()(x, y, weights, batch_size, seed)


PREDICT_BATCH = 32
PREDICT_CHUNK = 16 * PREDICT_BATCH  # rows converted to float32 at a time


def predict(model: Any, x: np.ndarray) -> np.ndarray:
    """Predicted class index per row. Rows go in chunks, each padded to a multiple of
    PREDICT_BATCH, so every call uses one compiled shape and memory stays bounded."""
    out = []
    for start in range(0, len(x), PREDICT_CHUNK):
        chunk = x[start:start + PREDICT_CHUNK].astype(np.float32)
        n = len(chunk)
        padded = -(-n // PREDICT_BATCH) * PREDICT_BATCH
        if padded > n:
            chunk = np.concatenate([chunk, np.zeros((padded - n, *chunk.shape[1:]), dtype=np.float32)])
        probabilities = model.predict(chunk, batch_size=PREDICT_BATCH, verbose=0)[:n]
        out.append(np.argmax(probabilities, axis=1))
    return np.asarray(np.concatenate(out) if out else np.zeros(0), dtype=np.int64)


def _maybe(value: Any) -> float | None:
    return None if value is None else float(value)
