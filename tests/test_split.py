"""Split: by cluster, stratified, sticky across releases, deterministic (properties under hypothesis)."""

from __future__ import annotations

import hashlib
import random
from collections import Counter, defaultdict
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from curator.config import SplitConfig
from curator.errors import ReleaseError
from curator.split import SPLITS, Item, assign, per_class

# Hypothesis imports a deprecated mypy_extensions API while it writes the patch for a failing
# example; without this, a real failure turns into an INTERNALERROR.
pytestmark = pytest.mark.filterwarnings("ignore:mypy_extensions.TypedDict is deprecated:DeprecationWarning")

CLASSES = ("alopecia", "psoriasis", "folliculitis")
RATIOS = [(0.70, 0.15, 0.15), (0.80, 0.10, 0.10), (0.60, 0.20, 0.20), (0.50, 0.25, 0.25)]

# a decorator, not a loaded profile: a profile would change every other module's hypothesis settings
examples = settings(deadline=None, max_examples=60)


def sha(*parts: object) -> str:
    return hashlib.sha256(":".join(map(str, parts)).encode()).hexdigest()


def config(seed: int = 7, ratios: tuple[float, float, float] = RATIOS[0]) -> SplitConfig:
    return SplitConfig(train=ratios[0], validation=ratios[1], test=ratios[2], seed=seed)


@st.composite
def catalogs(draw: st.DrawFn, max_clusters: int = 60, max_size: int = 3) -> list[Item]:
    """Clusters of 1..max_size images; all members of a cluster share its label."""
    sizes = draw(st.lists(st.integers(1, max_size), max_size=max_clusters))
    labels = draw(st.lists(st.sampled_from(CLASSES), min_size=len(sizes), max_size=len(sizes)))
    return [Item(sha(c, k), c, labels[c]) for c, size in enumerate(sizes) for k in range(size)]


def splits_of_clusters(items: list[Item], assignment: dict[str, str]) -> dict[int, set[str]]:
    seen: dict[int, set[str]] = defaultdict(set)
    for item in items:
        seen[item.cluster_id].add(assignment[item.sha256])
    return seen


def some(data: st.DataObject, pool: list[Any], most: int) -> list[Any]:
    """A few distinct elements of ``pool`` (none if it is empty)."""
    return data.draw(st.lists(st.sampled_from(pool), max_size=most, unique=True)) if pool else []


# --- properties ---------------------------------------------------------------------------


@examples
@given(catalogs(), st.integers(0, 2**32))
def test_every_image_gets_a_split_and_no_cluster_straddles(items: list[Item], seed: int) -> None:
    result = assign(items, {}, config(seed))
    assert set(result.assignment) == {i.sha256 for i in items}
    assert set(result.assignment.values()) <= set(SPLITS)
    assert all(len(s) == 1 for s in splits_of_clusters(items, result.assignment).values())


@examples
@given(catalogs(), st.integers(0, 2**32), st.randoms(use_true_random=False))
def test_deterministic_whatever_the_input_order(items: list[Item], seed: int, rnd: random.Random) -> None:
    shuffled = list(items)
    rnd.shuffle(shuffled)
    first = assign(items, {}, config(seed))
    again = assign(shuffled, {}, config(seed))
    assert first.assignment == again.assignment
    assert first.warnings == again.warnings


@examples
@given(catalogs(max_clusters=120), st.sampled_from(RATIOS), st.integers(0, 2**32))
def test_per_class_proportions_stay_near_the_target(
    items: list[Item], ratios: tuple[float, float, float], seed: int
) -> None:
    result = assign(items, {}, config(seed, ratios))
    table = per_class(items, result.assignment)
    for label, row in table.items():
        members = [i for i in items if i.label == label]
        clusters = Counter(i.cluster_id for i in members)
        if len(clusters) < 20:
            continue
        biggest = max(clusters.values())
        for split, ratio in zip(SPLITS, ratios, strict=True):
            # greedy by deficit: a split overshoots by at most one cluster, so undershoots by at most two
            assert abs(row[split] - ratio * len(members)) <= 2 * biggest, (label, row)


@examples
@given(catalogs(max_clusters=90, max_size=1), st.sampled_from(RATIOS), st.integers(0, 2**32))
def test_singleton_clusters_hit_the_target_within_one_image(
    items: list[Item], ratios: tuple[float, float, float], seed: int
) -> None:
    result = assign(items, {}, config(seed, ratios))
    for label, row in per_class(items, result.assignment).items():
        n = sum(row.values())
        if n >= len(SPLITS):
            assert min(row.values()) >= 1, (label, row)
        if n * min(ratios) >= 1:  # below that, one image in every split outranks the ratios
            for split, ratio in zip(SPLITS, ratios, strict=True):
                assert abs(row[split] - ratio * n) <= 1 + 1e-9, (label, row)


@examples
@given(st.lists(catalogs(max_clusters=40), min_size=2, max_size=4), st.sampled_from(RATIOS))
def test_proportions_hold_as_releases_add_clusters(
    batches: list[list[Item]], ratios: tuple[float, float, float]
) -> None:
    """Each release adds clusters to the sticky ones before: no split overshoots its target by more
    than one cluster, so none undershoots by more than two."""
    cfg = config(3, ratios)
    items: list[Item] = []
    recorded: dict[str, str] = {}
    for b, batch in enumerate(batches):
        items += [Item(sha(b, i.sha256), 1000 * b + i.cluster_id, i.label) for i in batch]
        result = assign(items, recorded, cfg)
        recorded = result.assignment
        for label, row in per_class(items, recorded).items():
            members = [i for i in items if i.label == label]
            if len({i.cluster_id for i in members}) < 20:
                continue
            biggest = max(Counter(i.cluster_id for i in members).values())
            for split, ratio in zip(SPLITS, ratios, strict=True):
                assert row[split] - ratio * len(members) <= biggest + 1e-9, (b, label, row)
                assert ratio * len(members) - row[split] <= 2 * biggest + 1e-9, (b, label, row)


@examples
@given(st.data())
def test_sticky_across_a_sequence_of_releases(data: st.DataObject) -> None:
    """Add clusters, grow clusters, remove and re-add images, relabel: nothing released ever moves."""
    cfg = config(data.draw(st.integers(0, 2**32)))
    items: dict[str, Item] = {i.sha256: i for i in data.draw(catalogs(max_clusters=30))}
    removed: dict[str, Item] = {}
    recorded: dict[str, str] = {}  # image_splits: every split ever written
    next_cluster = 1000
    for release in range(data.draw(st.integers(2, 5))):
        result = assign(list(items.values()), recorded, cfg)
        assert set(result.assignment) == set(items)
        for key in items.keys() & recorded.keys():
            assert result.assignment[key] == recorded[key], f"release {release} moved {key}"
        assert all(len(s) == 1 for s in splits_of_clusters(list(items.values()), result.assignment).values())
        assert not [w for w in result.warnings if w.startswith("cluster ")]
        recorded.update(result.assignment)
        # the catalog changes before the next release
        current = sorted(items)
        for key in some(data, current, 5):
            removed[key] = items.pop(key)
        for key in some(data, sorted(removed), 2):
            items[key] = removed.pop(key)
        for key in some(data, sorted(items), 5):
            items[key] = Item(key, items[key].cluster_id, data.draw(st.sampled_from(CLASSES)))
        for cid in some(data, sorted({i.cluster_id for i in items.values()}), 3):
            joined = Item(sha("near", release, cid), cid, data.draw(st.sampled_from(CLASSES)))
            items[joined.sha256] = joined
        for _ in range(data.draw(st.integers(0, 15))):
            next_cluster += 1
            new = Item(sha("new", next_cluster), next_cluster, data.draw(st.sampled_from(CLASSES)))
            items[new.sha256] = new


@examples
@given(catalogs(max_clusters=40), st.data())
def test_merged_clusters_straddle_only_with_a_warning_naming_them(
    items: list[Item], data: st.DataObject
) -> None:
    cfg = config(data.draw(st.integers(0, 2**32)))
    recorded = assign(items, {}, cfg).assignment
    ids = sorted({i.cluster_id for i in items})
    merge = {c: data.draw(st.sampled_from(ids)) for c in some(data, ids, 6)}  # cluster -> the one it joins
    merged = [Item(i.sha256, merge.get(i.cluster_id, i.cluster_id), i.label) for i in items]
    result = assign(merged, recorded, cfg)
    assert result.assignment == recorded
    for cid, splits in splits_of_clusters(merged, result.assignment).items():
        named = [w for w in result.warnings if w.startswith(f"cluster {cid} ")]
        assert len(named) == (1 if len(splits) > 1 else 0)
        if named:
            assert "release check will refuse it" in named[0]


# --- examples -----------------------------------------------------------------------------


def test_three_clusters_of_a_class_land_one_in_each_split() -> None:
    items = [Item(sha(c), c, "alopecia") for c in range(3)]
    result = assign(items, {}, config())
    assert sorted(result.assignment.values()) == sorted(SPLITS)
    assert result.warnings == []


def test_a_class_too_small_for_every_split_is_named_with_its_counts() -> None:
    items = [Item(sha(c), c, "psoriasis") for c in range(5)]
    items += [Item(sha("f", 0), 50, "folliculitis"), Item(sha("f", 1), 51, "folliculitis")]
    items += [Item(sha("f", 2), 51, "folliculitis")]  # a near duplicate: still two clusters
    items += [Item(sha("a", 0), 60, "alopecia")]
    result = assign(items, {}, config())
    assert result.warnings == [
        "class 'alopecia' has 1 cluster: too few for train/validation/test (needs at least 3)",
        "class 'folliculitis' has 2 clusters: too few for train/validation/test (needs at least 3)",
    ]


def test_a_sticky_member_pulls_its_whole_cluster() -> None:
    items = [Item(sha(c, k), c, "alopecia") for c in range(10) for k in range(2)]
    existing = {sha(4, 0): "test"}
    result = assign(items, existing, config())
    assert result.assignment[sha(4, 0)] == result.assignment[sha(4, 1)] == "test"


def test_new_clusters_fill_the_splits_that_fall_short() -> None:
    # 20 images released, all in train (say the ratios were 100/0/0 before): 10 new ones
    # should mostly go to validation and test to bring the class back toward 70/15/15
    old = [Item(sha("old", c), c, "psoriasis") for c in range(20)]
    new = [Item(sha("new", c), 100 + c, "psoriasis") for c in range(10)]
    existing = {i.sha256: "train" for i in old}
    result = assign(old + new, existing, config())
    row = per_class(old + new, result.assignment)["psoriasis"]
    assert row["train"] == 21 and sorted([row["validation"], row["test"]]) == [4, 5]


def test_merged_clusters_keep_sticky_splits_and_warn() -> None:
    a, b, c = sha("a"), sha("b"), sha("c")
    first = assign(
        [Item(a, 1, "alopecia"), Item(b, 2, "alopecia")], {}, config()
    )  # two clusters; force them apart below
    assert set(first.assignment) == {a, b}
    existing = {a: "train", b: "test"}
    merged = [Item(a, 1, "alopecia"), Item(b, 1, "alopecia"), Item(c, 1, "alopecia")]
    result = assign(merged, existing, config())
    assert result.assignment[a] == "train" and result.assignment[b] == "test"
    assert result.assignment[c] == "train"  # a tie follows the first split in order
    conflict = [w for w in result.warnings if w.startswith("cluster 1 ")]
    assert conflict == [
        "cluster 1 has images already released in different splits (1 in train, 1 in test): each keeps "
        "its split, so this release would leak near duplicates across splits and the release check will "
        "refuse it; exclude or relabel members, or undo the merge"
    ]


def test_removed_images_disappear() -> None:
    items = [Item(sha(c), c, "alopecia") for c in range(6)]
    existing = {sha(c): "train" for c in range(10)}
    result = assign(items, existing, config())
    assert set(result.assignment) == {sha(c) for c in range(6)}


def test_relabelled_image_keeps_its_split() -> None:
    existing = {sha(0): "validation"}
    result = assign([Item(sha(0), 0, "psoriasis")], existing, config())
    assert result.assignment == {sha(0): "validation"}


def test_seed_changes_the_assignment() -> None:
    items = [Item(sha(c), c, CLASSES[c % 3]) for c in range(60)]
    assert assign(items, {}, config(1)).assignment != assign(items, {}, config(2)).assignment


def test_an_image_listed_twice_is_refused() -> None:
    with pytest.raises(ReleaseError, match=f"^split: image {sha(0)} is listed twice$"):
        assign([Item(sha(0), 0, "alopecia"), Item(sha(0), 1, "alopecia")], {}, config())


def test_an_unknown_recorded_split_is_refused() -> None:
    with pytest.raises(ReleaseError, match=f"^split: image {sha(0)} has an unknown recorded split 'dev'$"):
        assign([Item(sha(0), 0, "alopecia")], {sha(0): "dev"}, config())
