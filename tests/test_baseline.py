"""A real training run of the baseline CNN on a small generated release (slow: JAX compiles once)."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from baseline import data, metrics, run, train
from curator.config import BaselineConfig
from curator.workspace import init_workspace
from tests.baseline_release import CLASSES, add_release, write_release

# Keras' EarlyStopping copies weights with np.array(variable), which numpy 2 warns about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

# Small and fast: 64 px, 10/8/8 images per class, batch 8. Every test here uses this one shape,
# so JAX compiles the train step once per test process.
FAST = {"image_size": 64, "epochs": 12, "batch_size": 8, "patience": 4, "bootstrap": 200}


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One workspace with release v1.0.0, scored twice with the same seed."""
    ws = init_workspace(tmp_path_factory.mktemp("baseline") / "ws", "scalp-test", list(CLASSES))
    folder = add_release(ws)
    before = _digests(folder)
    card_before = (folder / "README.md").read_text(encoding="utf-8")
    epochs: list[train.EpochLog] = []
    first = run.score_release(ws, "v1.0.0", overrides=FAST, cv=3, on_epoch=epochs.append)
    after_first = _digests(folder)
    card_first = (folder / "README.md").read_text(encoding="utf-8")
    second = run.score_release(ws, "1.0.0", overrides=FAST)
    yield {"ws": ws, "folder": folder, "before": before, "after": after_first, "card_before": card_before,
           "card_first": card_first, "first": first, "second": second, "epochs": epochs}
    ws.close()


@pytest.mark.slow
def test_learns_the_classes_well_above_chance(scored: dict[str, Any]) -> None:
    m = scored["first"].result["metrics"]
    # chance is 1/3; the generated classes differ in colour and texture, so the CNN gets most right
    assert m["test"]["accuracy"]["value"] >= 0.75, m["test"]
    assert m["validation"]["accuracy"]["value"] >= 0.75, m["validation"]
    assert m["test"]["rows"] == 24
    low, high = m["test"]["accuracy"]["ci95"]
    assert low <= m["test"]["accuracy"]["value"] <= high


@pytest.mark.slow
def test_same_seed_same_metrics(scored: dict[str, Any]) -> None:
    first, second = scored["first"].result, scored["second"].result
    assert first["metrics"] == second["metrics"]
    losses = [[e["loss"] for e in r["training"]["history"]] for r in (first, second)]
    assert losses[0] == losses[1]
    assert first["config_hash"] == second["config_hash"]


@pytest.mark.slow
def test_epochs_are_reported_as_they_finish(scored: dict[str, Any]) -> None:
    result = scored["first"].result
    epochs = [e for e in scored["epochs"] if e.phase == "train"]
    folds = [e for e in scored["epochs"] if e.phase != "train"]
    best = result["training"]["best_epoch"]
    assert [e.phase for e in folds] == [f"fold {f}/3" for f in (1, 2, 3) for _ in range(best)]
    assert [e.epoch for e in epochs] == list(range(1, result["training"]["epochs_run"] + 1))
    assert all(e.phase == "train" and e.epochs == FAST["epochs"] for e in epochs)
    assert all(e.val_loss is not None for e in epochs)
    losses = [e.val_loss for e in epochs]
    assert best == int(np.argmin(losses)) + 1


@pytest.mark.slow
def test_only_card_and_baseline_files_change(scored: dict[str, Any]) -> None:
    before, after, folder = scored["before"], scored["after"], scored["folder"]
    changed = {path for path in after if before.get(path) != after[path]}
    assert changed == {"README.md", "baseline.json", "baseline/confusion_matrix.png",
                       "baseline/training_curves.png"}
    for path in ("manifest.json", *(p for p in before if p.startswith("data/"))):
        assert after[path] == before[path]
    card = (folder / "README.md").read_text(encoding="utf-8")
    old = scored["card_before"]
    head, tail = old.split("<!-- baseline:start -->")[0], old.split("<!-- baseline:end -->")[1]
    assert card.startswith(head + "<!-- baseline:start -->\n")
    assert card.endswith("<!-- baseline:end -->" + tail)
    assert "| accuracy |" in card and "baseline/confusion_matrix.png" in card
    assert (folder / "baseline" / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.slow
def test_baseline_json_records_the_run(scored: dict[str, Any]) -> None:
    saved = json.loads((scored["folder"] / "baseline.json").read_text(encoding="utf-8"))
    assert saved["version"] == "1.0.0" and saved["seed"] == 1337
    assert saved["config"]["image_size"] == 64 and saved["config"]["epochs"] == 12
    assert saved["hardware"]["backend"] == "jax" and saved["hardware"]["device"] in ("cpu", "gpu")
    assert {"keras", "jax", "numpy", "datasets"} <= set(saved["versions"])
    assert saved["timings"]["train_seconds"] > 0 and saved["timings"]["images_per_second"] > 0
    assert saved["model"]["params"] == sum(layer["params"] for layer in saved["model"]["layers"])
    test = saved["metrics"]["test"]
    assert set(test["per_class"]) == set(CLASSES)
    assert np.sum(test["confusion_matrix"]) == 24
    gap = saved["metrics"]["train_accuracy"]["value"] - test["accuracy"]["value"]
    assert saved["metrics"]["overfit_gap"] == pytest.approx(gap)
    # the second run compared itself with nothing: v1.0.0 has no parent
    assert saved["comparison"]["previous"] is None


@pytest.mark.slow
def test_catalog_rows(scored: dict[str, Any]) -> None:
    conn = scored["ws"].conn
    rows = conn.execute("SELECT version, config_hash, metrics FROM baselines ORDER BY id").fetchall()
    assert [r["version"] for r in rows][:2] == ["1.0.0", "1.0.0"]
    assert json.loads(rows[0]["metrics"]) == scored["first"].result["metrics"]


@pytest.mark.slow
def test_cross_validation_by_cluster(scored: dict[str, Any]) -> None:
    """3 folds over train+validation originals, grouped by cluster, reported as mean and std."""
    result = scored["first"].result["cv"]
    assert scored["second"].result["cv"] is None
    assert result["k"] == 3 and len(result["folds"]) == 3
    assert result["epochs"] == scored["first"].result["training"]["best_epoch"]
    assert sum(f["rows"] for f in result["folds"]) == 30 + 24
    accuracies = [f["accuracy"] for f in result["folds"]]
    assert result["mean"]["accuracy"] == pytest.approx(np.mean(accuracies))
    assert result["std"]["accuracy"] == pytest.approx(np.std(accuracies, ddof=1))
    assert result["mean"]["accuracy"] > 0.5
    assert "3-fold cross-validation over train+validation" in scored["card_first"]
    release = data.load_folder(scored["folder"], 64, "v1.0.0")
    cfg = BaselineConfig(**FAST)
    tr, va = release.splits["train"], release.splits["validation"]
    folds = metrics.grouped_stratified_folds(np.concatenate([tr.labels, va.labels]),
                                             np.concatenate([tr.cluster_ids, va.cluster_ids]), 3, cfg.seed)
    groups = np.concatenate([tr.cluster_ids, va.cluster_ids])
    assert all(len(set(folds[groups == g])) == 1 for g in np.unique(groups))


@pytest.mark.slow
def test_summary_line(scored: dict[str, Any]) -> None:
    line = scored["second"].summary_line()
    assert line.startswith("baseline v1.0.0: test accuracy ")
    assert "on 24 images" in line and "(jax, cpu)" in line


@pytest.mark.slow
def test_same_metrics_in_a_fresh_process(scored: dict[str, Any]) -> None:
    """The same release and seed give the same metrics in another process (its own compile)."""
    args = [f"--{k.replace('_', '-')}={v}" for k, v in FAST.items()]
    done = subprocess.run([sys.executable, "-c", "from curator.cli import main; main()",
                           "--workspace", str(scored["ws"].root), "--json", "baseline", "v1.0.0", *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["metrics"] == scored["second"].result["metrics"]


def test_release_balancing_reaches_training(tmp_path: Path) -> None:
    """Oversampled rows are marked (and left out of train accuracy and CV); class weights from the
    manifest become per-row sample weights."""
    weights = {"alopecia": 0.5, "psoriasis": 1.0, "folliculitis": 2.0}
    write_release(tmp_path / "r", augmented=3, class_weights=weights)
    release = data.load_folder(tmp_path / "r", 32, "v1.0.0",
                               manifest=json.loads((tmp_path / "r" / "manifest.json").read_text()))
    train_split = release.splits["train"]
    assert len(train_split) == 30 + 9 and int(train_split.augmented.sum()) == 9
    assert len(train_split.originals()) == 30 and not train_split.originals().augmented.any()
    assert release.class_weights == weights
    as_index = {i: weights[name] for i, name in enumerate(release.classes)}
    batches = train.make_batches(train_split.images, train_split.labels, 8, seed=1, class_weight=as_index)
    x, y, w = batches[0]
    assert x.shape == (8, 32, 32, 3)
    assert w.tolist() == [as_index[int(label)] for label in y]
    # the batch order is a function of (seed, epoch) only, and every row is visited each epoch
    again = train.make_batches(train_split.images, train_split.labels, 8, seed=1, class_weight=as_index)
    assert np.array_equal(again[0][1], y)
    assert sorted(batches.order[: len(train_split)].tolist()) == list(range(len(train_split)))
