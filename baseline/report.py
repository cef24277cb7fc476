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


def figure_of(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100)


def png_of(fig: Any) -> bytes:
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
    fig = figure_of(size + 1.2, size)
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
    return png_of(fig)


def curves_png(result: dict[str, Any]) -> bytes:
    history = result["training"]["history"]
    epochs = [e["epoch"] for e in history]
    best = result["training"]["best_epoch"]
    fig = figure_of(9, 3.6)
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
    return png_of(fig)


def ci_text(metric: dict[str, Any]) -> str:
    """The 95% interval as printed everywhere, or why there is none."""
    if metric.get("ci95") is None:
        return metric.get("note", "no interval")
    low, high = metric["ci95"]
    return f"{low:.3f}–{high:.3f}"


def with_ci(metric: dict[str, Any], show_n: bool = False) -> str:
    """'0.538 (0.291–0.768)': a value with its interval in one cell; with ``show_n`` also its n
    (where the row's n column does not already say it)."""
    n = f", n={metric['n']}" if show_n else ""
    return f"{metric['value']:.3f} ({ci_text(metric)}{n})"


def score_rows(block: dict[str, Any]) -> list[list[str]]:
    """[metric, model, 95% interval, n, majority guess, chance guess] per score: the one source of
    the figures in the terminal table and the card (``block`` has model/majority/chance)."""
    return [[name, f"{block['model'][key]['value']:.3f}", ci_text(block["model"][key]),
             str(block["model"][key]["n"]), with_ci(block["majority"][key]), with_ci(block["chance"][key])]
            for key, name in SCORE_NAMES.items()]


SCORE_HEADER = ["metric", "model", "95% interval", "n", "majority-class guess", "stratified chance"]


def split_block(m: dict[str, Any]) -> dict[str, Any]:
    test = m["test"]
    return {"model": test, "majority": test["majority"], "chance": test["chance"]}


def cv_title(cv: dict[str, Any]) -> str:
    return f"{cv['repeats']}×{cv['folds']} folds over {cv['rows']} train+validation images"


def headline_title(result: dict[str, Any]) -> str:
    h = result["headline"]
    if h["basis"] == "cv":
        return f"repeated grouped cross-validation, {cv_title(result['cv'])} ({h['why']})"
    return f"test split ({h['why']})"


def _md_table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "| --- |" + " ---: |" * (len(header) - 1)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _why_differ(result: dict[str, Any]) -> str:
    test, cv = result["metrics"]["test"], result["cv"]
    return (f"The test split's score is one draw: accuracy {test['accuracy']['value']:.3f} "
            f"({ci_text(test['accuracy'])}) on {test['rows']} images. It can differ from the cross-validated "
            f"estimate because one small split can be lucky or unlucky, while the estimate averages "
            f"{cv['repeats'] * cv['folds']} held-out folds over {cv['rows']} images.")


def _selection_sentence(result: dict[str, Any]) -> str:
    t, va = result["training"], result["metrics"]["validation"]
    text = (f"Model selection: the epoch was chosen on the validation split ({va['rows']} images; early "
            f"stopping on its loss, epoch {t['best_epoch']} of {t['epochs_run']} kept), so the validation "
            f"accuracy ({va['accuracy']['value']:.3f}) is not an independent estimate and is not reported as "
            "one.")
    if result.get("cv"):
        text += (" In cross-validation each fold chose its own epoch the same way, on a grouped share of its "
                 "own training rows, and balanced those rows itself "
                 f"(balancing: {result['cv']['balancing']}).")
    return text


def card_markdown(result: dict[str, Any]) -> str:
    """The card's baseline section (between the markers)."""
    m = result["metrics"]
    cfg = result["config"]
    hw = result["hardware"]
    h = result["headline"]
    lines = [
        f"Scored with `curator baseline` on {result['created_at'][:10]}: a small 2D CNN "
        f"(seed {cfg['seed']}).",
        "",
        f"**Verdict:** {h['verdict']['sentence']}",
        "",
        f"Headline estimate: {headline_title(result)}.",
        "",
        *_md_table(SCORE_HEADER, score_rows(h)),
        "",
    ]
    if h["basis"] == "cv":
        lines += [_why_differ(result), "", "Test split (one draw):", "",
                  *_md_table(SCORE_HEADER, score_rows(split_block(m))), ""]
    elif result.get("cv"):
        lines += [f"Repeated grouped cross-validation ({cv_title(result['cv'])}):", "",
                  *_md_table(SCORE_HEADER, score_rows(result["cv"])), ""]
    lines += [
        _selection_sentence(result),
        "",
        "Intervals are 95%: Wilson score intervals for accuracy, precision and recall; BCa bootstrap "
        f"({cfg['bootstrap']} resamples) for balanced accuracy, macro-F1 and F1, shown as \"n too small\" "
        "when the resamples have no spread; the cross-validated means use the corrected resampled t "
        "interval. The majority-class guess always predicts the most common training class; the "
        "stratified chance guess picks classes at random in their training proportions.",
        "",
        f"Train accuracy {with_ci(m['train_accuracy'], show_n=True)} (originals only); gap to test "
        f"accuracy: {m['overfit_gap']:+.3f}.",
        "",
        *_md_table(["class (test)", "precision", "recall", "F1", "images"], per_class_rows(m["test"])),
    ]
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


def per_class_rows(test: dict[str, Any]) -> list[list[str]]:
    rows = []
    for name, s in test["per_class"].items():
        images = f"{s['support']} (fewer than 5)" if s["few"] else str(s["support"])
        rows.append([name, *(with_ci(s[key], show_n=True) for key in ("precision", "recall", "f1")), images])
    return rows


def _table(title: str, header: list[str]) -> Table:
    table = Table(title=title)
    for i, column in enumerate(header):
        table.add_column(column, justify="left" if i == 0 else "right")
    return table


def render(console: Console, result: dict[str, Any]) -> None:
    """The terminal summary: the headline with references and verdict, the test draw, per class,
    model selection, comparison, gate."""
    m, h, hw = result["metrics"], result["headline"], result["hardware"]
    deltas = result["comparison"]["deltas"]
    prefix = "cv" if h["basis"] == "cv" else "test"
    table = _table(f"Baseline {result['version_label']}: {headline_title(result)}", [*SCORE_HEADER, "Δ prev"])
    for key, row in zip(SCORE_NAMES, score_rows(h), strict=True):
        delta = deltas.get(f"{prefix}.{key}")
        table.add_row(*row, "" if delta is None else f"{delta:+.3f}")
    console.print(table)
    console.print(f"Verdict: {h['verdict']['sentence']}", markup=False)
    if h["basis"] == "cv" or result.get("cv"):
        title, block = ((f"Test split, one draw ({m['test']['rows']} images)", split_block(m))
                        if h["basis"] == "cv" else
                        (f"Repeated grouped cross-validation ({cv_title(result['cv'])})", result["cv"]))
        second = _table(title, SCORE_HEADER)
        for row in score_rows(block):
            second.add_row(*row)
        console.print(second)
    per_class = _table("Per class (test)", ["class", "precision", "recall", "F1", "images"])
    for row in per_class_rows(m["test"]):
        per_class.add_row(*row)
    console.print(per_class)
    console.print(_selection_sentence(result), markup=False)
    console.print(
        f"Train accuracy {with_ci(m['train_accuracy'], show_n=True)}; over-fitting gap (train - test "
        f"accuracy): {m['overfit_gap']:+.3f}; {hw['backend']} on {hw['device']}; "
        f"{result['timings']['seconds_per_epoch']:.2f} s/epoch.", markup=False)
    previous = result["comparison"]["previous"]
    console.print(f"Compared with: {previous if previous else 'no previous baseline with the same config'}",
                  markup=False)
    for name, said in result["comparison"].get("noise", {}).items():
        console.print(f"  {name}: {deltas[name]:+.3f}, {said}", markup=False)
    for path in result.get("files", []):
        console.print(f"Wrote {path}", markup=False)
