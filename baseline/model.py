"""The baseline CNN: a small 2D CNN in the spirit of the study's model.

Roy & Protity (2023) report only "a 2D CNN" (96.2% train / 91.1% validation
accuracy on ~150 images); they give no layers, sizes or optimizer. What we
chose, layer by layer, and why:

    Input (S, S, 3), pixels 0..255        S = baseline.image_size (default 128): scalp
                                          lesions (plaques, pustules, bald patches) are
                                          visible at 128 px, and compute grows with S².
    Rescaling(1/255)                      the model owns its normalisation, so the data
                                          loader stays a plain decoder.
    RandomFlip("horizontal_and_vertical") photos of a scalp have no canonical orientation,
    RandomTranspose                       so each training image is shown in one of the 8
                                          symmetries of the square (flips x transpose), per
                                          image, seeded, only in training; off with
                                          baseline.augment = false. Exact pixel moves, no
                                          interpolation. Not RandomRotation: on XLA's CPU it
                                          took the first (compiling) epoch from 9 s to 44 s
                                          and each later one from 2.2 s to 3.8 s (128 px,
                                          120 images, measured here).
    4 x block(f), f = 16, 32, 64, 128:    the classic conv -> normalise -> non-linearity ->
        Conv2D(f, 3x3, same, no bias)     downsample stack; four halvings take 128 px to
        BatchNormalization(momentum=0.8)  8 x 8. BatchNorm lets Adam use lr 1e-3 on tiny,
        ReLU                              unnormalised data. Momentum 0.8 (not Keras' 0.99):
        MaxPooling2D(2)                   a small release gives only a few steps per epoch,
                                          and with slower running statistics the validation
                                          loss of the first epochs is noise that trips early
                                          stopping (seen with 0.9 on 30 training images).
                                          No bias: BN has its own shift.
    GlobalAveragePooling2D                instead of Flatten + Dense: ~128 weights per class
                                          rather than ~8k, so ~150 images cannot be memorised
                                          by the head, and the parameter count does not grow
                                          with the input size.
    Dropout(0.3)                          more regularisation for tiny training sets.
    Dense(n_classes, softmax)             one probability per class.

About 99k parameters for three classes at any input size. Trained with Adam
(baseline.learning_rate, default 1e-3) on sparse categorical cross-entropy; see
:mod:`baseline.train`.

Keras 3 picks its backend from ``KERAS_BACKEND``; JAX is the installed default,
so :func:`keras_module` sets it when unset, before keras is first imported.
"""

from __future__ import annotations

import functools
import os
from typing import Any

from curator.errors import BaselineError

ARCHITECTURE = "cnn4-gap-v1"  # part of the config hash: change it when the layers change
FILTERS = (16, 32, 64, 128)
DROPOUT = 0.3
BN_MOMENTUM = 0.8


def keras_module() -> Any:
    """Import keras with the JAX backend unless ``KERAS_BACKEND`` says otherwise; a backend that
    cannot be loaded is a one-line BaselineError."""
    os.environ.setdefault("KERAS_BACKEND", "jax")
    try:
        import keras
    except (ImportError, ValueError) as err:  # a missing library; an unknown backend name
        backend = os.environ["KERAS_BACKEND"]
        raise BaselineError(f"KERAS_BACKEND={backend}: keras cannot load this backend ({err})",
                            hint="install it, or unset KERAS_BACKEND to use JAX") from err
    return keras


@functools.cache
def random_transpose_layer() -> Any:
    """The RandomTranspose layer class (defined on first use so keras is imported lazily)."""
    keras = keras_module()
    ops = keras.ops

    class RandomTranspose(keras.layers.Layer):  # type: ignore[name-defined]
        """Swap height and width of each image with probability 1/2, in training only."""

        def __init__(self, seed: int | None = None, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.seed = seed
            self.generator = keras.random.SeedGenerator(seed)

        def call(self, images: Any, training: bool | None = None) -> Any:
            if not training:
                return images
            batch = ops.shape(images)[0]
            swap = keras.random.uniform((batch, 1, 1, 1), seed=self.generator) < 0.5
            return ops.where(swap, ops.transpose(images, (0, 2, 1, 3)), images)

        def compute_output_shape(self, input_shape: Any) -> Any:
            return input_shape

        def get_config(self) -> dict[str, Any]:
            return {**super().get_config(), "seed": self.seed}

    return RandomTranspose


def build(n_classes: int, image_size: int, seed: int, augment: bool = True) -> Any:
    """The compiled-ready (not yet compiled) :class:`keras.Model`; every random layer is seeded."""
    keras = keras_module()
    layers = keras.layers
    inputs = keras.Input(shape=(image_size, image_size, 3), name="image")
    x = layers.Rescaling(1.0 / 255, name="rescale")(inputs)
    if augment:
        x = layers.RandomFlip("horizontal_and_vertical", seed=seed, name="flip")(x)
        x = random_transpose_layer()(seed=seed + 1, name="transpose")(x)
    for i, filters in enumerate(FILTERS):
        x = layers.Conv2D(
            filters, 3, padding="same", use_bias=False,
            kernel_initializer=keras.initializers.HeNormal(seed=seed + 10 + i), name=f"conv{i + 1}",
        )(x)
        x = layers.BatchNormalization(momentum=BN_MOMENTUM, name=f"bn{i + 1}")(x)
        x = layers.ReLU(name=f"relu{i + 1}")(x)
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    x = layers.Dropout(DROPOUT, seed=seed + 2, name="dropout")(x)
    outputs = layers.Dense(
        n_classes, activation="softmax",
        kernel_initializer=keras.initializers.GlorotUniform(seed=seed + 3), name="classes",
    )(x)
    return keras.Model(inputs, outputs, name="baseline_cnn")


def compile_model(model: Any, learning_rate: float) -> None:
    keras = keras_module()
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate=learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )


def describe(model: Any) -> list[dict[str, Any]]:
    """Layer by layer: name, class, output shape and parameter count (for baseline.json)."""
    rows = []
    for layer in model.layers:
        shape = getattr(layer, "output", None)
        rows.append({
            "name": layer.name,
            "type": type(layer).__name__,
            "output_shape": list(shape.shape) if shape is not None else None,
            "params": int(layer.count_params()),
        })
    return rows
