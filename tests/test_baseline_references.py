"""Intervals that hold at small n, the two references, the verdict, and the cross-validation plan
(groups, selection share, balancing from the fold's own rows), against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from baseline import cv, metrics, references
from curator import balance

CLASSES = ("a", "b", "c")


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    # Wilson by hand: centre (p + z²/2n) / (1 + z²/n), half-width z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n)
    (13, 13, 13 / (13 + 1.959964 ** 2), 1.0),  # 0.7719: a perfect 13/13 is not "1.000-1.000"
    (7, 13, 0.29144, 0.76794),
    (0, 10, 0.0, 0.38415 / 1.38415),  # 0.2775
    (50, 100, 0.40383, 0.59617),
])
def test_wilson_by_hand(k: int, n: int, low: float, high: float) -> None:
    assert metrics.wilson(k, n) == pytest.approx((low, high), abs=1e-4)
    entry = metrics.proportion(k, n)
    assert entry["n"] == n and entry["method"] == "wilson" and entry["value"] == pytest.approx(k / n)


def test_perfect_small_test_split_gets_an_honest_interval() -> None:
    y = np.array([0] * 7 + [1] * 4 + [2] * 2)  # the 13 test images, 7/4/2
    scored = metrics.evaluate(y, y, CLASSES, resamples=500, seed=0)
    assert scored["accuracy"]["ci95"][0] == pytest.approx(0.7719, abs=1e-4)
    # every resample of a perfect prediction scores 1.0: no spread, so no interval, and it says why
    assert scored["macro_f1"]["ci95"] is None and scored["macro_f1"]["note"] == "n too small"
    assert scored["per_class"]["c"]["few"] and not scored["per_class"]["a"]["few"]
    assert scored["per_class"]["c"]["recall"]["ci95"][0] == pytest.approx(0.3424, abs=1e-4)  # 2/2


@pytest.mark.parametrize(("df", "exact"), [(4, 2.776445), (9, 2.262157), (24, 2.063899), (100, 1.983972)])
def test_t_quantile_against_tables(df: int, exact: float) -> None:
    assert metrics.t_quantile(df) == pytest.approx(exact, abs=1e-3)


def test_corrected_cv_interval_by_hand() -> None:
    # mean 0.65, s² = 0.016667; Nadeau-Bengio: s² (1/4 + 0.2/0.8) = 0.008333; t(3) = 3.1824 -> ±0.2905
    got = metrics.corrected_mean(np.array([0.5, 0.7, 0.6, 0.8]), held_share=0.2, n=40)
    assert got["value"] == pytest.approx(0.65)
    assert got["ci95"] == pytest.approx([0.3595, 0.9405], abs=2e-3)
    assert got["n"] == 40 and got["method"] == "corrected t"
    flat = metrics.corrected_mean(np.array([0.5, 0.5, 0.5]), 0.2, 40)
    assert flat["ci95"] is None and flat["note"] == "no spread between folds"


def test_bca_matches_scipy_on_a_mean() -> None:
    stats = pytest.importorskip("scipy.stats")
    values = np.random.default_rng(0).normal(size=40)
    ours = metrics.mean_bca(values, resamples=4000, seed=1)["ci95"]
    theirs = stats.bootstrap((values,), np.mean, method="BCa", n_resamples=4000, random_state=1)
    assert ours == pytest.approx([theirs.confidence_interval.low, theirs.confidence_interval.high], abs=0.03)


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 2), min_size=3, max_size=15), st.data())
def test_bca_never_collapses_silently(truth: list[int], data: st.DataObject) -> None:
    """Either a real interval around the estimate, or none with a note: never zero width."""
    pred = data.draw(st.lists(st.integers(0, 2), min_size=len(truth), max_size=len(truth)))
    scored = metrics.evaluate(np.array(truth), np.array(pred), CLASSES, resamples=200, seed=3)
    for name in ("balanced_accuracy", "macro_f1"):
        entry = scored[name]
        if entry["ci95"] is None:
            assert entry["note"] == "n too small"
        else:
            assert entry["ci95"][0] < entry["ci95"][1]


def test_majority_reference_by_hand() -> None:
    train = np.array([0, 0, 0, 1, 1, 2])  # guesses class 0
    truth = np.array([0, 0, 1, 1, 2, 2, 2])
    ref = references.majority(train, truth, CLASSES, resamples=500, seed=0)
    assert ref["class"] == "a"
    assert ref["accuracy"]["value"] == pytest.approx(2 / 7)
    assert ref["accuracy"]["ci95"] == pytest.approx(list(metrics.wilson(2, 7)))
    assert ref["balanced_accuracy"]["value"] == pytest.approx(1 / 3)  # a constant guess: exactly 1/k
    # class a: precision 2/7, recall 1, F1 4/9; b and c: 0; macro over 3 classes
    assert ref["macro_f1"]["value"] == pytest.approx(4 / 27)


def test_stratified_chance_reference() -> None:
    train = np.array([0] * 6 + [1] * 3 + [2] * 1)  # guesses 0, 1, 2 with 0.6, 0.3, 0.1
    truth = np.array([0] * 10 + [1] * 10 + [2] * 10)
    ref = references.chance(train, truth, 3, seed=0)
    # expected accuracy: sum over classes of share in truth x guess probability = (0.6+0.3+0.1)/3
    assert ref["accuracy"]["value"] == pytest.approx(1 / 3, abs=0.01)
    assert ref["balanced_accuracy"]["value"] == pytest.approx(1 / 3, abs=0.01)  # mean recall = mean p
    low, high = ref["accuracy"]["ci95"]
    assert low < 1 / 3 < high and high - low > 0.2  # 30 rows: a chance guess lands anywhere near
    assert ref["accuracy"]["n"] == 30


@pytest.mark.parametrize(("value", "ci", "outcome", "sentence"), [
    (0.1, [-0.1, 0.3], "does not beat",
     "The model does not beat a majority-class guess on the test split: the accuracy difference, +0.100 "
     "(95% interval -0.100 to +0.300), includes zero, so its interval overlaps the reference."),
    (0.1, [0.05, 0.35], "beats",
     "The model beats a majority-class guess on the test split by 0.100 accuracy (95% interval 0.050 to "
     "0.350)."),
    (-0.1, [-0.35, -0.05], "worse",
     "The model does worse than a majority-class guess on the test split, by 0.100 accuracy (95% interval "
     "0.050 to 0.350)."),
])
def test_verdict_inside_and_outside_the_reference(value: float, ci: list[float], outcome: str,
                                                  sentence: str) -> None:
    got = references.verdict(metrics.interval(value, ci[0], ci[1], 13, "bca"), "on the test split")
    assert got["outcome"] == outcome
    assert got["sentence"] == sentence


def test_verdict_without_an_interval_does_not_claim_a_win() -> None:
    got = references.verdict(metrics.interval(0.2, None, None, 3, "bca", "n too small"), "on the test split")
    assert got["outcome"] == "cannot tell" and "n is too small" in got["sentence"]


def test_groups_join_clusters_and_patients() -> None:
    keys = cv.group_keys(np.array([1, 1, 2, 3, 4, 5]), (None, "p1", "p1", None, "p2", "p2"))
    assert keys[0] == keys[1] == keys[2]  # cluster 1 and patient p1 chain rows 0-2
    assert keys[4] == keys[5] and len({keys[0], keys[3], keys[4]}) == 3


def _pool(n_per_class: int = 12) -> cv.Pool:
    labels = np.repeat(np.arange(3), n_per_class)
    n = len(labels)
    clusters = np.arange(n) // 2  # pairs of near duplicates
    patients = tuple(f"p{i // 3}" if i % 5 == 0 else None for i in range(n))  # some rows share a patient
    images = np.random.default_rng(0).integers(0, 255, size=(n, 8, 8, 3), dtype=np.uint8)
    return cv.Pool(images, labels, tuple(f"{i:064x}" for i in range(n)), cv.group_keys(clusters, patients))


def test_cv_plan_keeps_groups_whole_and_selection_inside_the_fold() -> None:
    pool = _pool()
    folds = cv.plan(pool.labels, pool.groups, k=3, repeats=2, seed=7, selection_share=0.2, classes=CLASSES)
    assert len(folds) == 6
    for fold in folds:
        parts = [set(fold.train), set(fold.selection), set(fold.held_out)]
        assert set().union(*parts) == set(range(len(pool.labels)))
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2])
        for g in np.unique(pool.groups):
            rows = set(np.flatnonzero(pool.groups == g))
            assert sum(bool(rows & part) for part in parts) == 1, "a group straddles train/selection/held-out"
        assert set(pool.labels[fold.selection]) == {0, 1, 2}
    first, second = folds[0].held_out, folds[3].held_out
    assert not np.array_equal(first, second)  # each repeat draws new folds


def test_fold_balancing_comes_from_the_folds_own_rows() -> None:
    """Weights and oversampled copies are computed from the fold's training rows alone: they differ
    from what the whole pool gives, and no copy is made of a held-out or selection row."""
    pool = _pool()
    rows = np.concatenate([np.flatnonzero(pool.labels == 0)[:9], np.flatnonzero(pool.labels == 1)[:5],
                           np.flatnonzero(pool.labels == 2)[:3]])
    weighted = cv.balance_rows(pool, rows, "class-weights", CLASSES, seed=1)
    assert weighted.class_weight == pytest.approx({0: 17 / 27, 1: 17 / 15, 2: 17 / 9})
    whole = balance.plan([(pool.sha256[i], CLASSES[int(pool.labels[i])]) for i in range(36)], "class-weights")
    assert whole.class_weights == pytest.approx({"a": 1.0, "b": 1.0, "c": 1.0})  # would hide the imbalance
    over = cv.balance_rows(pool, rows, "oversample", CLASSES, seed=1)
    assert np.bincount(over.y).tolist() == [9, 9, 9] and over.synthetic == 10 and over.class_weight is None
    copies = over.x[len(rows):]
    sources = {pool.images[i].tobytes() for i in rows}
    assert all(copy.tobytes() not in sources for copy in copies)  # jittered, not duplicated
    assert np.array_equal(over.x[: len(rows)], pool.images[rows])
    plain = cv.balance_rows(pool, rows, "none", CLASSES, seed=1)
    assert len(plain.y) == len(rows) and plain.class_weight is None
