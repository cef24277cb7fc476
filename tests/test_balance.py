"""Balance: oversampling plans, class weights, deterministic augmentation without metadata."""

from __future__ import annotations

import hashlib
import io
import random
from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from curator import balance, preprocess, synthetic
from curator.errors import ConfigError

# Hypothesis imports a deprecated mypy_extensions API while it writes the patch for a failing
# example; without this, a real failure turns into an INTERNALERROR.
pytestmark = pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")

CLASSES = ("alopecia", "psoriasis", "folliculitis")


def sha(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


@st.composite
def train_rows(draw: st.DrawFn) -> list[tuple[str, str]]:
    counts = draw(st.lists(st.integers(0, 40), min_size=3, max_size=3))
    return [(sha(label, i), label) for label, n in zip(CLASSES, counts, strict=True) for i in range(n)]


@settings(deadline=None)
@given(train_rows())
def test_oversampling_brings_every_class_to_the_largest(rows: list[tuple[str, str]]) -> None:
    result = balance.plan(rows, "oversample")
    label_of = dict(rows)
    counts = Counter(label for _, label in rows)
    counts.update(label_of[source] for source, _ in result.synthetic)
    if rows:
        assert set(counts.values()) == {max(Counter(label for _, label in rows).values())}
    assert all(source in label_of for source, _ in result.synthetic)  # every row names a train original
    assert len(set(result.synthetic)) == len(result.synthetic)  # (source, index) pairs are distinct
    assert result.class_weights is None


@settings(deadline=None)
@given(train_rows(), st.randoms(use_true_random=False))
def test_plans_are_deterministic_whatever_the_row_order(
    rows: list[tuple[str, str]], rnd: random.Random
) -> None:
    shuffled = list(rows)
    rnd.shuffle(shuffled)
    for method in balance.METHODS:
        assert balance.plan(rows, method) == balance.plan(shuffled, method)


def test_oversampling_draws_round_robin_from_sorted_originals() -> None:
    rows = [(sha("a", i), "alopecia") for i in range(7)] + [("c" * 64, "psoriasis"), ("b" * 64, "psoriasis")]
    result = balance.plan(rows, "oversample")
    assert result.synthetic == [
        ("b" * 64, 0),
        ("c" * 64, 0),
        ("b" * 64, 1),
        ("c" * 64, 1),
        ("b" * 64, 2),
    ]


def test_class_weights_follow_the_formula() -> None:
    rows = [(sha("a", i), "alopecia") for i in range(6)] + [(sha("p", i), "psoriasis") for i in range(2)]
    result = balance.plan(rows, "class-weights")
    assert result.synthetic == []
    assert result.class_weights == {"alopecia": 8 / (2 * 6), "psoriasis": 8 / (2 * 2)}


def test_none_leaves_the_rows_alone() -> None:
    assert balance.plan([(sha(1), "alopecia"), (sha(2), "alopecia"), (sha(3), "psoriasis")], "none") == (
        balance.Plan("none", [], None)
    )


def test_an_unknown_method_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^curator.toml: 'balance.method' must be one of none, oversample"):
        balance.plan([], "smote")


# --- augment ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def source() -> bytes:
    return preprocess.encode(np.array(synthetic.photo(5, "folliculitis", (128, 96))))


def test_augment_is_deterministic_and_each_copy_differs(source: bytes) -> None:
    copies = [balance.augment(source, i, seed=11) for i in range(6)]
    assert copies == [balance.augment(source, i, seed=11) for i in range(6)]
    assert len(set(copies) | {source}) == 7
    assert balance.augment(source, 0, seed=12) != copies[0]


@settings(deadline=None)
@given(st.binary(min_size=1, max_size=64), st.integers(0, 10_000), st.integers(0, 2**32))
def test_jitter_stays_small(data: bytes, index: int, seed: int) -> None:
    j = balance.jitter(data, index, seed)
    assert 1.0 <= abs(j.angle) <= 10.0
    assert 0.85 <= j.contrast <= 1.15 and -20.0 <= j.brightness <= 20.0
    assert j == balance.jitter(data, index, seed)


def test_about_half_the_copies_are_mirrored(source: bytes) -> None:
    flips = sum(balance.jitter(source, i, seed=3).flip for i in range(400))
    assert 160 < flips < 240


def test_augment_applies_its_jitter(source: bytes) -> None:
    for i in range(4):
        expected = balance.apply_jitter(preprocess.decode(source), balance.jitter(source, i, seed=9))
        assert np.array_equal(preprocess.decode(balance.augment(source, i, seed=9)), expected)


def test_jitter_effects() -> None:
    img = np.full((60, 80, 3), 100, dtype=np.uint8)
    img[:, :20] = 200  # a bright band on the left
    same = balance.Jitter(flip=False, angle=0.0, contrast=1.0, brightness=0.0)
    assert np.array_equal(balance.apply_jitter(img, same), img)
    mirrored = balance.apply_jitter(img, balance.Jitter(True, 0.0, 1.0, 0.0))
    assert np.array_equal(mirrored, img[:, ::-1])
    brighter = balance.apply_jitter(img, balance.Jitter(False, 0.0, 1.0, 20.0))
    assert np.array_equal(brighter, img + 20)
    contrast = balance.apply_jitter(img, balance.Jitter(False, 0.0, 1.1, 0.0))
    assert contrast[0, 0].tolist() == [207] * 3 and contrast[0, 50].tolist() == [97] * 3  # about 128
    rotated = balance.apply_jitter(img, balance.Jitter(False, 10.0, 1.0, 0.0))
    assert rotated.shape == img.shape and not np.array_equal(rotated, img)
    assert rotated[30, 5].tolist() == [200] * 3 and rotated[30, 70].tolist() == [100] * 3


def test_augmented_output_has_no_metadata(source: bytes) -> None:
    out = balance.augment(source, 0, seed=1)
    img = Image.open(io.BytesIO(out))
    assert img.format == "PNG" and img.info == {}
    jpeg = Image.open(io.BytesIO(balance.augment(source, 0, seed=1, fmt="jpeg")))
    assert jpeg.format == "JPEG" and not jpeg.getexif() and "icc_profile" not in jpeg.info


def test_augment_many_matches_one_by_one_on_any_worker_count(source: bytes) -> None:
    other = preprocess.encode(np.array(synthetic.photo(8, "alopecia", (96, 64))))
    jobs = [(source, 0), (other, 0), (source, 1), (other, 1), (source, 2)]
    expected = [balance.augment(data, index, seed=4) for data, index in jobs]
    done: list[int] = []
    assert balance.augment_many(jobs, seed=4, workers=1) == expected
    assert balance.augment_many(jobs, seed=4, workers=2, on_progress=done.append) == expected
    assert sum(done) == len(jobs)
