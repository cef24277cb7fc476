"""What a baseline run leaves behind: baseline.json, two PNGs, the card section, the terminal table.

Everything here is a pure function of the result's JSON (``BaselineResult.as_json()``),
rendered in memory; :mod:`baseline.run` writes the bytes atomically. The PNGs are drawn
with matplotlib's object API (no pyplot global state, Agg canvas):

    baseline/confusion_matrix.png    test split, counts, shaded by row (recall)
    baseline/training_curves.png     loss and accuracy per epoch, train vs validation,
                                     the kept (best) epoch marked
"""

from __future__ import annotations

import io
import json
from typing import Any

from rich.console import Console
from rich.table import Table

CONFUSION_PNG = "baseline/confusion_matrix.png"
CURVES_PNG = "baseline/training_curves.png"
SCORE_NAMES = {"accuracy": "accuracy", "balanced_accuracy": "balanced accuracy", "macro_f1": "macro-F1"}


def json_bytes(result: dict[str, Any]) -> bytes:
    return (json.dumps(result, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def _png(fig: Any) -> bytes:
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    FigureCanvasAgg(fig)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def confusion_png(result: dict[str, Any]) -> bytes:
    import numpy as np

    classes = result["data"]["classes"]
    cm = np.asarray(result["metrics"]["test"]["confusion_matrix"], dtype=float)
    rows = cm.sum(axis=1, keepdims=True)
    shade = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    size = 1.2 + 0.9 * len(classes)
    fig = _figure(size + 1.2, size)
    ax = fig.add_subplot()
    ax.imshow(shade, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(cm):
        ax.text(j, i, f"{int(count)}", ha="center", va="center",
                color="white" if shade[i, j] > 0.6 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=30, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    acc = result["metrics"]["test"]["accuracy"]["value"]
    ax.set_title(f"{result['version_label']} test: accuracy {acc:.3f}")
    fig.tight_layout()
    return _png(fig)


def curves_png(result: dict[str, Any]) -> bytes:
    history = result["training"]["history"]
    epochs = [e["epoch"] for e in history]
    best = result["training"]["best_epoch"]
    fig = _figure(9, 3.6)
    for position, (key, title) in enumerate((("loss", "loss"), ("accuracy", "accuracy")), start=1):
        ax = fig.add_subplot(1, 2, position)
        ax.plot(epochs, [e[key] for e in history], marker="o", markersize=3, label="train")
        val = [e[f"val_{key}"] for e in history]
        if any(v is not None for v in val):
            ax.plot(epochs, [float("nan") if v is None else v for v in val], marker="o", markersize=3,
                    label="validation")
        ax.axvline(best, color="grey", linestyle="--", linewidth=1, label=f"kept epoch {best}")
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"{result['version_label']} baseline training")
    fig.tight_layout()
    return _png(fig)


def _ci(metric: dict[str, Any]) -> str:
    low, high = metric["ci95"]
    return f"{low:.3f}–{high:.3f}"


def card_markdown(result: dict[str, Any]) -> str:
    """The card's baseline section (between the markers)."""
    m = result["metrics"]
    cfg = result["config"]
    hw = result["hardware"]
    test_rows = m["test"]["rows"]
    lines = [
        f"Scored with `curator baseline` on {result['created_at'][:10]}: a small 2D CNN trained on the "
        f"train split (seed {cfg['seed']}, early stopping on validation loss), scored on the **test split "
        f"({test_rows} images)**. Intervals are bootstrap 95% intervals over test images "
        f"({cfg['bootstrap']} resamples); with this few images they are wide, so read the interval, not "
        "only the point.",
        "",
        "| metric | test | 95% interval | validation |",
        "| --- | ---: | :---: | ---: |",
    ]
    for key, name in SCORE_NAMES.items():
        lines.append(f"| {name} | {m['test'][key]['value']:.3f} | {_ci(m['test'][key])} | "
                     f"{m['validation'][key]['value']:.3f} |")
    lines += [
        "",
        f"Train accuracy {m['train_accuracy']['value']:.3f} (originals only); gap to test accuracy: "
        f"{m['overfit_gap']:+.3f}.",
    ]
    if result.get("cv"):
        cv = result["cv"]
        parts = [f"{SCORE_NAMES[k]} {cv['mean'][k]:.3f} ± {cv['std'][k]:.3f}" for k in SCORE_NAMES]
        lines += ["", f"{cv['k']}-fold cross-validation over train+validation, grouped by near-duplicate "
                      f"cluster: {', '.join(parts)}."]
    lines += ["", "| class (test) | precision | recall | F1 | images |",
              "| --- | ---: | ---: | ---: | ---: |"]
    for name, scores in m["test"]["per_class"].items():
        lines.append(f"| {name} | {scores['precision']['value']:.3f} | {scores['recall']['value']:.3f} | "
                     f"{scores['f1']['value']:.3f} | {scores['support']} |")
    model = result["model"]
    lines += [
        "",
        f"![Confusion matrix on the test split]({CONFUSION_PNG}) ![Training curves]({CURVES_PNG})",
        "",
        f"Model: `{model['architecture']}`, {model['params']:,} parameters, {cfg['image_size']} px input, "
        f"Adam lr {cfg['learning_rate']:g}, batch {cfg['batch_size']}, {result['training']['epochs_run']} "
        f"epochs run (best: {result['training']['best_epoch']}), augmentation "
        f"{'flips and transposes' if cfg['augment'] else 'off'}. "
        f"Keras {result['versions'].get('keras', '?')} "
        f"on {hw['backend']} ({hw['device']}). Full numbers: `baseline.json`.",
    ]
    return "\n".join(lines) + "\n"


def render(console: Console, result: dict[str, Any]) -> None:
    """The terminal summary: scores with intervals, per-class scores, gap, comparison, gate."""
    m = result["metrics"]
    table = Table(title=f"Baseline {result['version_label']} (test: {m['test']['rows']} images)")
    table.add_column("metric")
    table.add_column("test", justify="right")
    table.add_column("95% CI", justify="center")
    table.add_column("validation", justify="right")
    table.add_column("Δ prev", justify="right")
    deltas = result["comparison"]["deltas"]
    for key, name in SCORE_NAMES.items():
        delta = deltas.get(f"test.{key}")
        table.add_row(name, f"{m['test'][key]['value']:.3f}", _ci(m['test'][key]),
                      f"{m['validation'][key]['value']:.3f}", "" if delta is None else f"{delta:+.3f}")
    delta = deltas.get("train_accuracy")
    table.add_row("train accuracy", f"{m['train_accuracy']['value']:.3f}", _ci(m["train_accuracy"]), "",
                  "" if delta is None else f"{delta:+.3f}")
    console.print(table)
    per_class = Table(title="Per class (test)")
    for column in ("class", "precision", "recall", "F1", "images"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for name, s in m["test"]["per_class"].items():
        per_class.add_row(name, f"{s['precision']['value']:.3f}", f"{s['recall']['value']:.3f}",
                          f"{s['f1']['value']:.3f}", str(s["support"]))
    console.print(per_class)
    t = result["training"]
    console.print(
        f"Over-fitting gap (train - test accuracy): {m['overfit_gap']:+.3f}; epochs run {t['epochs_run']}, "
        f"kept {t['best_epoch']}; {result['hardware']['backend']} on {result['hardware']['device']}; "
        f"{result['timings']['seconds_per_epoch']:.2f} s/epoch.", markup=False)
    if result.get("cv"):
        cv = result["cv"]
        text = ", ".join(f"{SCORE_NAMES[k]} {cv['mean'][k]:.3f} ± {cv['std'][k]:.3f}" for k in SCORE_NAMES)
        console.print(f"{cv['k']}-fold CV by cluster: {text}", markup=False)
    previous = result["comparison"]["previous"]
    console.print(f"Compared with: {previous if previous else 'no previous baseline with the same config'}",
                  markup=False)
    for path in result.get("files", []):
        console.print(f"Wrote {path}", markup=False)
