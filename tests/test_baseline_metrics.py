"""baseline.metrics, baseline.gate and the comparison point: hand-computed scores, bootstrap intervals,
grouped folds, the gate, the previous baseline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baseline import gate, metrics
from curator import catalog
from curator.errors import InputError

# 3 classes, 10 rows. Worked by hand:
#   cm = [[3, 1, 0],     class 0: precision 3/4, recall 3/4, F1 3/4
#         [1, 2, 1],     class 1: precision 2/4, recall 2/4, F1 1/2
#         [0, 1, 1]]     class 2: precision 1/2, recall 1/2, F1 1/2
#   accuracy 6/10; balanced accuracy (3/4 + 1/2 + 1/2) / 3 = 7/12; macro-F1 (3/4 + 1/2 + 1/2) / 3 = 7/12
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2])
Y_PRED = np.array([0, 0, 0, 1, 0, 1, 1, 2, 1, 2])


def test_confusion_matrix_by_hand() -> None:
    assert metrics.confusion_matrix(Y_TRUE, Y_PRED, 3).tolist() == [[3, 1, 0], [1, 2, 1], [0, 1, 1]]


def test_scores_by_hand() -> None:
    s = metrics.scores(metrics.confusion_matrix(Y_TRUE, Y_PRED, 3))
    assert s["accuracy"] == pytest.approx(0.6)
    assert s["balanced_accuracy"] == pytest.approx(7 / 12)
    assert s["macro_f1"] == pytest.approx(7 / 12)
    assert s["precision"].tolist() == pytest.approx([0.75, 0.5, 0.5])
    assert s["recall"].tolist() == pytest.approx([0.75, 0.5, 0.5])
    assert s["support"].tolist() == [4, 4, 2]


def test_scores_unbalanced_by_hand() -> None:
    # class 0: 8 rows all right; class 1: 2 rows, one right, one called 0.
    # accuracy 9/10; balanced (1 + 1/2) / 2 = 3/4
    # F1: class 0 precision 8/9, recall 1 -> 16/17; class 1 precision 1, recall 1/2 -> 2/3
    cm = metrics.confusion_matrix(np.array([0] * 8 + [1, 1]), np.array([0] * 8 + [1, 0]), 2)
    s = metrics.scores(cm)
    assert s["accuracy"] == pytest.approx(0.9)
    assert s["balanced_accuracy"] == pytest.approx(0.75)
    assert s["macro_f1"] == pytest.approx((16 / 17 + 2 / 3) / 2)


def test_class_never_predicted_scores_zero_not_nan() -> None:
    s = metrics.scores(metrics.confusion_matrix(np.array([0, 1, 2]), np.array([0, 0, 0]), 3))
    assert s["precision"].tolist() == pytest.approx([1 / 3, 0.0, 0.0])
    assert s["macro_f1"] == pytest.approx((0.5 + 0 + 0) / 3)
    assert s["balanced_accuracy"] == pytest.approx(1 / 3)


def test_stacked_scores_match_one_by_one() -> None:
    rng = np.random.default_rng(3)
    stack = rng.integers(0, 9, size=(5, 3, 3))
    together = metrics.scores(stack)
    for i in range(5):
        alone = metrics.scores(stack[i])
        for name in ("accuracy", "balanced_accuracy", "macro_f1"):
            assert together[name][i] == pytest.approx(alone[name])


def test_bootstrap_matches_a_plain_loop() -> None:
    """The vectorised resampling scores exactly what a loop over the same draws scores."""
    boot = metrics.bootstrap(Y_TRUE, Y_PRED, 3, resamples=300, seed=7)
    rng = np.random.default_rng(7)
    looped = []
    for _ in range(300):
        rows = rng.integers(0, len(Y_TRUE), size=len(Y_TRUE))
        cm = metrics.confusion_matrix(Y_TRUE[rows], Y_PRED[rows], 3)
        looped.append(float(metrics.scores(cm)["macro_f1"]))
    # same generator, same draw order (chunks of CHUNK rows are drawn in sequence)
    assert boot["macro_f1"].tolist() == pytest.approx(looped)


def test_bootstrap_interval_contains_the_estimate_and_narrows_with_n() -> None:
    rng = np.random.default_rng(0)

    def width(n: int) -> float:
        y = rng.integers(0, 3, size=n)
        wrong = rng.random(n) < 0.25
        pred = np.where(wrong, (y + 1) % 3, y)
        scored = metrics.evaluate(y, pred, ("a", "b", "c"), resamples=1000, seed=1)
        for name in ("accuracy", "balanced_accuracy", "macro_f1"):
            low, high = scored[name]["ci95"]
            assert low <= scored[name]["value"] <= high
        low, high = scored["accuracy"]["ci95"]
        return high - low

    small, large = width(30), width(1200)
    assert large < small / 3  # ~1/sqrt(n): 40x the rows, ~6x narrower


def test_bootstrap_is_seeded() -> None:
    a = metrics.evaluate(Y_TRUE, Y_PRED, ("a", "b", "c"), resamples=200, seed=5)
    b = metrics.evaluate(Y_TRUE, Y_PRED, ("a", "b", "c"), resamples=200, seed=5)
    c = metrics.evaluate(Y_TRUE, Y_PRED, ("a", "b", "c"), resamples=200, seed=6)
    assert a == b
    assert a["macro_f1"]["ci95"] != c["macro_f1"]["ci95"]  # BCa; accuracy's Wilson interval has no draws


def test_evaluate_reports_per_class_and_matrix() -> None:
    scored = metrics.evaluate(Y_TRUE, Y_PRED, ("a", "b", "c"), resamples=100, seed=0)
    assert scored["rows"] == 10
    assert scored["confusion_matrix"] == [[3, 1, 0], [1, 2, 1], [0, 1, 1]]
    assert scored["per_class"]["a"]["precision"]["value"] == pytest.approx(0.75)
    assert scored["per_class"]["c"]["support"] == 2


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(st.integers(1, 4), min_size=9, max_size=40),
    labels=st.data(),
    k=st.integers(2, 3),
    seed=st.integers(0, 2**16),
)
def test_grouped_folds_never_split_a_cluster(sizes: list[int], labels: st.DataObject, k: int,
                                             seed: int) -> None:
    cluster_label = [i % 3 for i in range(len(sizes))]  # >= 3 clusters of each class
    group = np.repeat(np.arange(len(sizes)) * 7 + 100, sizes)  # arbitrary cluster ids
    y = np.repeat(cluster_label, sizes)
    folds = metrics.grouped_stratified_folds(y, group, k, seed)
    for g in np.unique(group):
        assert len(set(folds[group == g].tolist())) == 1
    for f in range(k):  # every class is in every fold
        assert set(y[folds == f].tolist()) == {0, 1, 2}
    assert np.array_equal(folds, metrics.grouped_stratified_folds(y, group, k, seed))


def test_grouped_folds_balance_class_counts() -> None:
    y = np.repeat([0, 1], 30)
    group = np.arange(60)  # singletons: plain stratified K-fold
    folds = metrics.grouped_stratified_folds(y, group, 3, seed=0)
    for f in range(3):
        assert np.bincount(y[folds == f], minlength=2).tolist() == [10, 10]


def test_grouped_folds_refuse_too_few_clusters() -> None:
    y = np.array([0, 0, 0, 1, 1, 1])
    group = np.array([1, 1, 2, 3, 4, 5])  # class 0 lives in two clusters only
    with pytest.raises(InputError) as info:
        metrics.grouped_stratified_folds(y, group, 3, seed=0)
    assert str(info.value) == "cv 3: class 0 has only 2 clusters in train+validation; use 2 folds or fewer"
    assert (info.value.key, info.value.value, info.value.reason) == ("cv", "3", "too-few-clusters")


METRICS = {
    "test": {"accuracy": {"value": 0.80, "ci95": [0.70, 0.88]}, "balanced_accuracy": {"value": 0.78},
             "macro_f1": {"value": 0.75, "ci95": [0.6, 0.85]}},
    "cv": {"accuracy": {"value": 0.71, "ci95": [0.62, 0.80]}, "balanced_accuracy": {"value": 0.7},
           "macro_f1": {"value": 0.7}},
    "validation": {"accuracy": {"value": 0.7}, "balanced_accuracy": {"value": 0.7},
                   "macro_f1": {"value": 0.7}},
    "train_accuracy": {"value": 0.95},
}
BETTER = {
    "test": {"accuracy": {"value": 0.95, "ci95": [0.90, 0.98]}, "balanced_accuracy": {"value": 0.9},
             "macro_f1": {"value": 0.76, "ci95": [0.62, 0.88]}},
    "cv": {"accuracy": {"value": 0.80, "ci95": [0.70, 0.88]}, "balanced_accuracy": {"value": 0.7},
           "macro_f1": {"value": 0.7}},
    "validation": {"accuracy": {"value": 0.9}, "balanced_accuracy": {"value": 0.9},
                   "macro_f1": {"value": 0.9}},
    "train_accuracy": {"value": 0.99},
}


def test_gate_parses_metric_names() -> None:
    parsed = gate.parse(["accuracy=0.8", "validation.macro_f1=0.5", "train_accuracy=0.9"], "--fail-under")
    assert [(t.metric, t.value) for t in parsed] == [
        ("test.accuracy", 0.8), ("validation.macro_f1", 0.5), ("train_accuracy", 0.9)]


@pytest.mark.parametrize(("raw", "message"), [
    ("accuracy", "--fail-under 'accuracy': expected METRIC=VALUE, e.g. --fail-under accuracy=0.8"),
    ("accuracy=", "--fail-under 'accuracy=': expected METRIC=VALUE, e.g. --fail-under accuracy=0.8"),
    ("acc=0.8", "--fail-under 'acc=0.8': unknown metric 'acc' (use accuracy, balanced_accuracy, macro_f1, "
                "validation.<score>, cv.<score>, train_accuracy)"),
    ("accuracy=high", "--fail-under 'accuracy=high': 'high' is not a number"),
    ("accuracy=80", "--fail-under 'accuracy=80': the value must be between 0 and 1"),
])
def test_gate_rejects_malformed_thresholds(raw: str, message: str) -> None:
    with pytest.raises(InputError) as info:
        gate.parse([raw], "--fail-under")
    assert str(info.value) == message


def test_gate_fail_under_names_the_metric() -> None:
    result = gate.check(METRICS, None, None, gate.parse(["macro_f1=0.8", "accuracy=0.8"], "--fail-under"))
    assert result.failures == ["test.macro_f1 is 0.7500, below --fail-under test.macro_f1=0.8"]


def test_gate_max_drop_against_a_planted_better_previous() -> None:
    thresholds = gate.parse(["accuracy=0.1", "macro_f1=0.1"], "--max-drop")
    result = gate.check(METRICS, BETTER, "1.0.0", thresholds)
    assert result.failures == [
        "test.accuracy dropped by 0.1500 (v1.0.0: 0.9500 -> 0.8000, outside the noise), more than "
        "--max-drop test.accuracy=0.1"]
    assert result.deltas["test.accuracy"] == pytest.approx(-0.15)
    assert result.noise["test.macro_f1"] == "inside the noise"  # 0.60-0.85 overlaps 0.62-0.88
    assert result.noise["test.balanced_accuracy"] == "noise unknown (no interval)"
    assert result.deltas["train_accuracy"] == pytest.approx(-0.04)
    assert not result.passed


def test_gate_on_the_cross_validated_estimate() -> None:
    """cv.* names the repeated-CV estimate; a drop inside the noise says so, and a cv threshold on a
    run without cross-validation fails rather than passing unchecked."""
    assert [t.metric for t in gate.parse(["cv.accuracy=0.7"], "--fail-under")] == ["cv.accuracy"]
    result = gate.check(METRICS, BETTER, "1.0.0", gate.parse(["cv.accuracy=0.05"], "--max-drop"))
    assert result.failures == [
        "cv.accuracy dropped by 0.0900 (v1.0.0: 0.8000 -> 0.7100, inside the noise), more than "
        "--max-drop cv.accuracy=0.05"]
    assert gate.check(METRICS, None, None, gate.parse(["cv.accuracy=0.7"], "--fail-under")).passed
    without = {k: v for k, v in METRICS.items() if k != "cv"}
    failed = gate.check(without, None, None, gate.parse(["cv.accuracy=0.7"], "--fail-under"))
    assert failed.failures == ["cv.accuracy was not measured (cross-validation did not run), so "
                               "--fail-under cv.accuracy=0.7 cannot pass"]


def test_gate_max_drop_without_previous_passes_with_a_note() -> None:
    result = gate.check(METRICS, None, None, gate.parse(["accuracy=0.0"], "--max-drop"))
    assert result.passed and result.deltas == {}
    assert result.notes == [
        "--max-drop test.accuracy=0 not checked: no previous baseline with the same config"]


def test_previous_baseline_follows_parents_and_hub_versions(tmp_path: Path) -> None:
    """The comparison point: the nearest ancestor release with a baseline of the same config hash;
    for a Hub revision, the highest lower vX.Y.Z of the same repo."""
    from baseline import run

    conn = catalog.connect(tmp_path / "c.sqlite")
    with catalog.atomic(conn):
        for version, parent in (("1.0.0", None), ("1.1.0", "1.0.0"), ("1.2.0", "1.1.0")):
            conn.execute("INSERT INTO releases VALUES (?, ?, 'now', 'p', 'x', 1, '{}')", (version, parent))
        for version, digest, acc in (("1.0.0", "h1", 0.9), ("1.0.0", "h2", 0.1), ("lab/s@v1.0.0", "h1", 0.5),
                                     ("lab/s@v1.2.0", "h1", 0.6), ("lab/s@v2.0.0", "h1", 0.7),
                                     ("lab/t@v1.1.0", "h1", 0.8)):
            conn.execute("INSERT INTO baselines (version, config_hash, metrics, at) VALUES (?, ?, ?, 'now')",
                         (version, digest, json.dumps({"accuracy": acc})))
    local = run.Source(kind="local", version="1.2.0")
    assert run._previous(conn, local, "h1") == ("1.0.0", {"accuracy": 0.9})  # 1.1.0 has none: skipped
    assert run._previous(conn, local, "h3") == (None, None)
    hub = run.Source(kind="hub", version="lab/s@v1.3.0", repo="lab/s", revision="v1.3.0")
    assert run._previous(conn, hub, "h1") == ("lab/s@v1.2.0", {"accuracy": 0.6})
    pinned = run.Source(kind="hub", version="lab/s@abc123", repo="lab/s", revision="abc123")
    assert run._previous(conn, pinned, "h1") == (None, None)
