"""``curator baseline``."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from curator.errors import EXIT_GATE

if TYPE_CHECKING:
    from curator.cli import App


@click.command()
@click.argument("version", required=False)
@click.option("--repo", metavar="NS/NAME", help="Score a published release on the Hub (HF_ENDPOINT).")
@click.option("--revision", metavar="REV", help="Hub revision for --repo: a tag vX.Y.Z or a commit.")
@click.option("--epochs", type=int, help="Most epochs to train (early stopping may end sooner).")
@click.option("--batch-size", type=int, help="Images per training step.")
@click.option("--image-size", type=int, help="Input size in pixels (images are resized to a square).")
@click.option("--learning-rate", type=float, help="Adam learning rate.")
@click.option("--patience", type=int, help="Epochs without a better validation loss before stopping.")
@click.option("--augment/--no-augment", default=None, help="Random flips and transposes while training.")
@click.option("--seed", type=int, help="Seed for weights, augmentation, batch order and the bootstrap.")
@click.option("--bootstrap", type=int, metavar="N", help="Bootstrap resamples for the 95% intervals.")
@click.option("--cv", type=int, default=None, metavar="K",
              help="Repeated grouped K-fold cross-validation over train+validation (0: off). It runs by "
                   "default when the test split is small, and is then the headline.")
@click.option("--cv-repeats", type=int, metavar="R", help="Repeats of the K folds, each with new folds.")
@click.option("--fail-under", multiple=True, metavar="METRIC=VALUE",
              help="Exit with code 7 if METRIC (accuracy, macro_f1, cv.accuracy...) is below VALUE.")
@click.option("--max-drop", multiple=True, metavar="METRIC=DELTA",
              help="Exit with code 7 if METRIC fell by more than DELTA since the previous release.")
@click.pass_obj
def baseline(app: App, version: str | None, repo: str | None, revision: str | None, epochs: int | None,
             batch_size: int | None, image_size: int | None, learning_rate: float | None,
             patience: int | None, augment: bool | None, seed: int | None, bootstrap: int | None,
             cv: int | None, cv_repeats: int | None, fail_under: tuple[str, ...],
             max_drop: tuple[str, ...]) -> None:
    """Train the baseline CNN on a release and score it beside a majority-class and a chance guess.

    VERSION defaults to the newest local release; --repo NS/NAME --revision vX.Y.Z scores a
    published one as users download it. Settings come from [baseline] in curator.toml, and
    the flags override them. A local release gets baseline.json, baseline/*.png and a filled
    baseline section in its card (its data files never change); every run adds a row to the
    catalog and is compared with the previous release's baseline of the same settings;
    --fail-under / --max-drop then exit with code 7, naming the metric (the result is still
    recorded). With a test split under [baseline] small_test images (default 50), the headline is
    repeated grouped cross-validation (--cv K x --cv-repeats R, default 5x5), each fold trained
    exactly like the headline model; the verdict says whether the model beats the majority
    guess. Keras runs on KERAS_BACKEND (default jax), on a GPU when the backend sees one.

    Example: curator baseline v1.0.0 --fail-under cv.accuracy=0.6
    """
    ws = app.workspace()
    if repo is None:  # a bad version fails before the ML stack loads (seconds, hundreds of MB)
        from curator.released import resolve_version

        resolve_version(ws, version)
    from baseline import gate
    from baseline import run as stage

    thresholds = gate.parse(fail_under, "--fail-under") + gate.parse(max_drop, "--max-drop")
    overrides = {"epochs": epochs, "batch_size": batch_size, "image_size": image_size,
                 "learning_rate": learning_rate, "patience": patience, "augment": augment, "seed": seed,
                 "bootstrap": bootstrap, "cv_repeats": cv_repeats}
    with contextlib.ExitStack() as bars:
        result = stage.score_release(ws, version, repo=repo, revision=revision, overrides=overrides, cv=cv,
                                     thresholds=thresholds, on_epoch=epoch_bars(app, bars))
    value = result.as_json()
    app.out.result(value, lambda console: _render(console, value))
    for note in result.gate.notes:
        app.out.warn(note)
    if not result.passed:
        for failure in result.gate.failures:
            app.out.error(f"gate failed: {failure}")
        raise click.exceptions.Exit(EXIT_GATE)


def _render(console: Any, value: dict[str, Any]) -> None:
    from baseline import report

    report.render(console, value)


def epoch_bars(app: App, bars: contextlib.ExitStack) -> Callable[[Any], None]:
    """One progress bar per training phase (the run, then each fold), advanced per epoch."""
    state: dict[str, Any] = {"phase": None, "advance": None}

    def on_epoch(entry: Any) -> None:
        if entry.phase != state["phase"]:
            bars.close()
            state["phase"] = entry.phase
            label = "training" if entry.phase == "train" else f"cross-validation {entry.phase}"
            state["advance"] = bars.enter_context(app.out.progress(label, entry.epochs))
        state["advance"](1)

    return on_epoch


COMMANDS = [baseline]
