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
from rich.console import Console

from baseline import cv, data, report, run, train
from curator.config import BaselineConfig
from curator.released import Manifest
from curator.workspace import open_workspace
from tests.conftest import CLASSES
from tests.releases import baseline_release, manifest, released_workspace

# Keras' EarlyStopping copies weights with np.array(variable), which numpy 2 warns about.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

# Small and fast: 64 px, 10/8/8 images per class, batch 8, 3 folds x 2 repeats, in this process (a
# worker process would pay its own imports and compile). Every test here uses this one shape, so JAX
# compiles the train step once per test process.
FAST = {"image_size": 64, "epochs": 12, "batch_size": 8, "patience": 4, "bootstrap": 200, "cv_folds": 3,
        "cv_repeats": 2, "cv_workers": 1}


def _digests(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def scored(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """One workspace with a real release v1.0.0 (oversampled train split), scored twice with the
    same seed; its test split is under 50 images, so repeated CV runs and is the headline."""
    ws = open_workspace(baseline_release(tmp_path_factory.mktemp("baseline")))
    folder = ws.releases / "v1.0.0"
    splits = manifest(ws.root, "1.0.0")["splits"]
    assert splits["train"]["augmented"] > 0 and splits["test"]["rows"] < 50
    before = _digests(folder)
    card_before = (folder / "README.md").read_text(encoding="utf-8")
    epochs: list[train.EpochLog] = []
    first = run.score_release(ws, "v1.0.0", overrides=FAST, on_epoch=epochs.append)
    after_first = _digests(folder)
    card_first = (folder / "README.md").read_text(encoding="utf-8")
    second = run.score_release(ws, "1.0.0", overrides=FAST)
    yield {"ws": ws, "folder": folder, "before": before, "after": after_first, "card_before": card_before,
           "card_first": card_first, "first": first, "second": second, "epochs": epochs,
           "test_rows": splits["test"]["rows"],
           "cv_rows": splits["train"]["originals"] + splits["validation"]["rows"]}
    ws.close()


@pytest.mark.slow
def test_learns_the_classes_and_the_verdict_says_it_beats_the_guess(scored: dict[str, Any]) -> None:
    result = scored["first"].result
    m = result["metrics"]
    # chance is 1/3; the generated classes differ in colour and texture, so the CNN gets most right
    assert m["test"]["accuracy"]["value"] >= 0.75, m["test"]
    n = scored["test_rows"]
    assert m["test"]["rows"] == n and m["test"]["accuracy"]["n"] == n
    low, high = m["test"]["accuracy"]["ci95"]
    assert low <= m["test"]["accuracy"]["value"] <= high
    headline = result["headline"]
    assert headline["basis"] == "cv" and headline["why"] == f"the test split holds {n} images, fewer than 50"
    assert headline["model"]["accuracy"]["value"] >= 0.75
    assert headline["verdict"]["outcome"] == "beats", headline["verdict"]
    assert headline["verdict"]["sentence"].startswith(
        "The model beats a majority-class guess in repeated cross-validation by ")
    assert m["cv"] == result["cv"]["model"]  # what --fail-under cv.accuracy reads


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
    expected = [(f"repeat {f['repeat']} fold {f['fold']}", n) for f in result["cv"]["per_fold"]
                for n in range(1, f["epochs_run"] + 1)]
    assert [(e.phase, e.epoch) for e in folds] == expected
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
    assert np.sum(test["confusion_matrix"]) == scored["test_rows"]
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


def _pool_and_folds(folder: Path) -> tuple[Any, list[Any], BaselineConfig]:
    """The CV pool and folds of the scored release, rebuilt independently of baseline.run."""
    release = data.load_folder(folder, 64, "v1.0.0")
    tr, va = release.splits["train"].originals(), release.splits["validation"]
    labels = np.concatenate([tr.labels, va.labels])
    groups = cv.group_keys(np.concatenate([tr.cluster_ids, va.cluster_ids]), tr.groups() + va.groups())
    pool = cv.Pool(np.concatenate([tr.images, va.images]), labels, tr.sha256 + va.sha256, groups)
    cfg = BaselineConfig(**FAST)
    folds = cv.plan(labels, groups, 3, 2, cfg.seed, len(va) / (len(tr) + len(va)), release.classes)
    return pool, folds, cfg


@pytest.mark.slow
def test_repeated_cross_validation_by_group(scored: dict[str, Any]) -> None:
    """3 folds x 2 repeats over train+validation originals, no group in two parts of a fold."""
    n = scored["cv_rows"]
    result = scored["first"].result["cv"]
    assert (result["folds"], result["repeats"], result["rows"]) == (3, 2, n)
    assert len(result["per_fold"]) == 6
    assert sum(f["rows"] for f in result["per_fold"]) == 2 * n
    accuracies = [f["model"]["accuracy"] for f in result["per_fold"]]
    assert result["model"]["accuracy"]["value"] == pytest.approx(np.mean(accuracies))
    assert result["model"]["accuracy"]["method"] == "corrected t" and result["model"]["accuracy"]["n"] == n
    assert result["balancing"] == "oversample"
    pool, folds, _ = _pool_and_folds(scored["folder"])
    for fold, record in zip(folds, result["per_fold"], strict=True):
        assert (fold.repeat, fold.index) == (record["repeat"], record["fold"])
        assert len(fold.held_out) == record["rows"]
        for g in np.unique(pool.groups):
            rows = set(np.flatnonzero(pool.groups == g))
            parts = (set(fold.train), set(fold.selection), set(fold.held_out))
            assert sum(bool(rows & part) for part in parts) == 1


@pytest.mark.slow
def test_each_fold_trains_by_the_headline_procedure_on_its_own_rows(scored: dict[str, Any]) -> None:
    """Fails if a fold's epoch count or balancing came from outside that fold: every fold stops early
    on its own selection rows (best epoch = the lowest of its own selection losses), its class counts
    are what oversampling its own training rows gives, and retraining one fold from only its own rows
    reproduces the recorded losses, epoch and counts exactly."""
    result = scored["first"].result
    pool, folds, cfg = _pool_and_folds(scored["folder"])
    loaded = data.load_folder(scored["folder"], 64, "v1.0.0")
    release_train = np.bincount(loaded.splits["train"].labels).tolist()
    for fold, record in zip(folds, result["cv"]["per_fold"], strict=True):
        losses = record["selection_loss"]
        assert None not in losses and len(losses) == record["epochs_run"]
        assert record["best_epoch"] == int(np.argmin(losses)) + 1
        assert record["epochs_run"] in (FAST["epochs"], record["best_epoch"] + FAST["patience"])
        own = np.bincount(pool.labels[fold.train], minlength=3)
        assert record["class_counts"] == [int(own.max())] * 3
        assert record["synthetic_rows"] == int((own.max() - own).sum())
        assert record["selection_rows"] == len(fold.selection)
        assert record["class_counts"] != release_train  # not the release's oversampled train split
    fold, record = folds[4], result["cv"]["per_fold"][4]
    balanced = cv.balance_rows(pool, fold.train, "oversample", CLASSES, cfg.seed)
    selection = (pool.images[fold.selection], pool.labels[fold.selection])
    again = train.fit(balanced.x, balanced.y, selection, 3, cfg, class_weight=balanced.class_weight)
    assert [e.val_loss for e in again.history] == record["selection_loss"]
    assert again.best_epoch == record["best_epoch"]
    predicted = train.predict(again.model, pool.images[fold.held_out])
    assert float(np.mean(predicted == pool.labels[fold.held_out])) == record["model"]["accuracy"]


@pytest.mark.slow
def test_card_json_and_terminal_carry_the_same_figures(scored: dict[str, Any]) -> None:
    saved = json.loads((scored["folder"] / "baseline.json").read_text(encoding="utf-8"))
    assert saved["format"] == 2
    card = (scored["folder"] / "README.md").read_text(encoding="utf-8")
    console = Console(record=True, width=250)
    report.render(console, {**saved, "files": []})
    terminal = console.export_text()
    assert saved["headline"]["verdict"]["sentence"] in card
    assert "Verdict: " + saved["headline"]["verdict"]["sentence"] in " ".join(terminal.split())
    headline_part, test_part = terminal.split(f"Test split, one draw ({scored['test_rows']} images)")
    blocks = ((saved["headline"], headline_part), (report.split_block(saved["metrics"]), test_part))
    for block, part in blocks:
        for key, row in zip(report.SCORE_NAMES, report.score_rows(block), strict=True):
            assert "| " + " | ".join(row) + " |" in card, row
            line = next(t for t in part.splitlines() if t.strip("│ ").startswith(row[0] + " "))
            assert [c.strip() for c in line.split("│")[1:7]] == row
            assert float(row[1]) == round(block["model"][key]["value"], 3)
            assert row[3] == str(block["model"][key]["n"])
            majority = block["majority"][key]
            assert row[4].startswith(f"{majority['value']:.3f} (")
    test_accuracy = saved["metrics"]["test"]["accuracy"]
    score = f"accuracy {test_accuracy['value']:.3f} ({report.ci_text(test_accuracy)})"
    assert f"{score} on {scored['test_rows']} images" in card


@pytest.mark.slow
def test_shuffled_labels_do_not_beat_the_majority_guess(tmp_path: Path) -> None:
    """Labels that say nothing about the images: the verdict must not claim a win, and the
    cross-validated accuracy's interval holds the majority-class rate."""
    ws = open_workspace(baseline_release(tmp_path, shuffled=True))
    result = run.score_release(ws, "v1.0.0", overrides=FAST).result
    ws.close()
    headline = result["headline"]
    assert headline["verdict"]["outcome"] == "does not beat", headline["verdict"]
    assert headline["verdict"]["sentence"].startswith("The model does not beat a majority-class guess")
    low, high = headline["model"]["accuracy"]["ci95"]
    assert low <= headline["majority"]["accuracy"]["value"] <= high


@pytest.mark.slow
def test_summary_line(scored: dict[str, Any]) -> None:
    line = scored["second"].summary_line()
    assert line.startswith("baseline v1.0.0: repeated CV accuracy ")
    assert f"on {scored['cv_rows']} images, majority guess " in line
    assert ": beats;" in line and "(jax, cpu)" in line


@pytest.mark.slow
def test_same_metrics_in_a_fresh_process(scored: dict[str, Any]) -> None:
    """The same release and seed give the same metrics in another process (its own compile)."""
    args = [f"--{k.replace('_', '-')}={v}" for k, v in FAST.items() if not k.startswith("cv_")]
    args += ["--cv=3", "--cv-repeats=2"]
    done = subprocess.run([sys.executable, "-c", "from curator.cli import main; main()",
                           "--workspace", str(scored["ws"].root), "--json", "baseline", "v1.0.0", *args],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KERAS_BACKEND": "jax"})
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["metrics"] == scored["second"].result["metrics"]


def test_release_balancing_reaches_training(tmp_path: Path) -> None:
    """Oversampled rows are marked (and left out of train accuracy and CV); class weights from the
    manifest become per-row sample weights; a manifest's group_id reaches each row."""
    counts = {"alopecia": 9, "psoriasis": 6, "folliculitis": 4}
    oversampled = released_workspace(tmp_path / "over", counts)
    built = manifest(oversampled, "1.0.0")
    release = data.load_folder(oversampled / "releases/v1.0.0", 32, "v1.0.0", Manifest.parse(
        (oversampled / "releases/v1.0.0/manifest.json").read_bytes(), "manifest.json"))
    train_split = release.splits["train"]
    copies = built["splits"]["train"]["augmented"]
    assert copies > 0 and int(train_split.augmented.sum()) == copies
    assert len(train_split.originals()) == built["splits"]["train"]["originals"]
    assert not train_split.originals().augmented.any() and release.balance_method == "oversample"

    settings = {"balance.method": '"class-weights"', "groups.pattern": "'img[0-9]{3}([0-9])'"}  # 10 groups
    weighted = released_workspace(tmp_path / "weighted", {"alopecia": 12, "psoriasis": 10, "folliculitis": 8},
                                  settings)
    built = manifest(weighted, "1.0.0")
    release = data.load_folder(weighted / "releases/v1.0.0", 32, "v1.0.0", Manifest.parse(
        (weighted / "releases/v1.0.0/manifest.json").read_bytes(), "manifest.json"))
    train_split = release.splits["train"]
    weights = built["balance"]["class_weights"]
    assert release.class_weights == weights and release.balance_method == "class-weights"
    recorded = tuple(r["group_id"] for r in built["rows"] if r["split"] == "train")
    assert train_split.group_ids == recorded and all(recorded)
    as_index = {i: weights[name] for i, name in enumerate(release.classes)}
    batches = train.make_batches(train_split.images, train_split.labels, 8, seed=1, class_weight=as_index)
    x, y, w = batches[0]
    assert x.shape == (8, 32, 32, 3)
    assert w.tolist() == [as_index[int(label)] for label in y]
    # the batch order is a function of (seed, epoch) only, and every row is visited each epoch
    again = train.make_batches(train_split.images, train_split.labels, 8, seed=1, class_weight=as_index)
    assert np.array_equal(again[0][1], y)
    assert sorted(batches.order[: len(train_split)].tolist()) == list(range(len(train_split)))


@pytest.mark.slow
def test_folds_in_worker_processes_match_one_by_one(scored: dict[str, Any]) -> None:
    """Folds run in two spawned worker processes give the same records as the fixture's run, which
    trained them one by one in this process, and report every epoch."""
    import dataclasses

    pool, folds, cfg = _pool_and_folds(scored["folder"])
    assert run.cv_workers(dataclasses.replace(cfg, cv_workers=0)) == min(4, os.cpu_count() or 1)
    recorded = scored["first"].result["cv"]["per_fold"]
    seen: list[train.EpochLog] = []
    both = cv.run_all(pool, folds[:2], CLASSES, dataclasses.replace(cfg, cv_workers=2), "oversample",
                      seen.append, workers=2)
    def timeless(record: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in record.items() if k not in ("seconds", "cpu_seconds")}

    assert [timeless(r) for r in both] == [timeless(r) for r in recorded[:2]]
    assert [(e.phase, e.epoch) for e in seen] == [(f.phase, n) for f, r in zip(folds, both, strict=False)
                                                  for n in range(1, r["epochs_run"] + 1)]
