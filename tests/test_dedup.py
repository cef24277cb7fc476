"""curator.dedup: placing images into clusters, listing, re-clustering, and the hash index."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageEnhance, ImageOps

from curator import audit, catalog, config, dedup, hashing, match, store, synthetic
from curator.config import DedupConfig
from curator.errors import ConfigError, InputError
from tests.test_hashing import FLIPS, turned


@pytest.fixture
def conn(tmp_path: Path) -> Iterator[sqlite3.Connection]:
    connection = catalog.connect(tmp_path / "catalog.sqlite")
    yield connection
    connection.close()


@pytest.fixture
def objects(tmp_path: Path) -> Path:
    return tmp_path / "objects"


def photo(seed: int, size: tuple[int, int] = (320, 240)) -> Image.Image:
    return synthetic.photo(seed, seed % 3, size)


def add(
    index: dedup.NearIndex, conn: sqlite3.Connection, objects: Path, img: Image.Image, quality: int = 90
) -> tuple[str, dedup.Placement]:
    data = synthetic.encode(img, "JPEG", quality=quality)
    sha = store.put(objects, data)
    rgb = hashing.normalize(Image.open(io.BytesIO(data)))
    hashes = hashing.perceptual_hashes(rgb)
    fingerprint = hashing.fingerprint(rgb.width, rgb.height, hashes)
    new = dedup.NewImage(sha, fingerprint, None, rgb.width, rgb.height, "JPEG", len(data))
    with catalog.atomic(conn):
        return sha, index.add_image(conn, new, hashing.grey_copy(rgb), hashes)


def cluster_of(conn: sqlite3.Connection, sha: str) -> int:
    return int(conn.execute("SELECT cluster_id FROM images WHERE sha256 = ?", (sha,)).fetchone()[0])


def test_copies_join_and_distinct_images_start_clusters(conn, objects) -> None:
    index = dedup.NearIndex.load(conn, objects, DedupConfig())
    a, first = add(index, conn, objects, photo(1))
    assert first.near_of is None
    _, copy = add(index, conn, objects, photo(1).resize((160, 120)), quality=50)
    assert (copy.cluster_id, copy.near_of) == (first.cluster_id, a)
    assert copy.distance is not None and copy.distance <= DedupConfig().threshold
    _, other = add(index, conn, objects, photo(2))
    assert other.near_of is None and other.cluster_id != first.cluster_id
    (packed,) = conn.execute("SELECT hashes FROM images WHERE sha256 = ?", (a,)).fetchone()
    assert set(hashing.unpack_hashes(packed)) == set(hashing.NAMES)
    assert dedup.stored_hashes(conn)[a] == hashing.unpack_hashes(packed)


@pytest.mark.parametrize(
    "name, change",
    [
        ("mirror", ImageOps.mirror),
        ("rotate 4", lambda im: im.rotate(-4, resample=Image.Resampling.BICUBIC)),
        ("crop 15%", lambda im: im.crop((30, 12, 302, 216))),
    ],
)
def test_hard_copies_are_caught(conn, objects, name, change) -> None:
    index = dedup.NearIndex.load(conn, objects, DedupConfig())
    a, first = add(index, conn, objects, photo(3))
    _, copy = add(index, conn, objects, change(photo(3)))
    assert copy.near_of == a, name


def with_logo(img: Image.Image) -> Image.Image:
    out = img.copy()
    mark = Image.new("RGB", (110, 36), (250, 250, 250))
    draw = ImageDraw.Draw(mark)
    draw.rectangle([1, 1, 108, 34], outline=(20, 40, 140), width=3)
    draw.text((8, 10), "DermAtlas.org", fill=(20, 40, 140))
    out.paste(mark, (img.width - 118, img.height - 44))
    return out


def test_a_group_finds_what_one_image_at_a_time_finds() -> None:
    """NearIndex.group searches the stored images once for the whole group; every image's
    candidates are still those of a search on its own, its group's earlier images included."""
    bases = [photo(seed) for seed in range(70, 76)]
    imgs = [*bases, bases[0].transpose(FLIPS["phash_rot90"]), turned(bases[1], 11, "crop"),
            ImageEnhance.Brightness(bases[2]).enhance(1.2), photo(76), turned(photo(76), -7, "reflect"),
            bases[3].transpose(FLIPS["phash_flip"])]  # fmt: skip
    hashes = {str(i): hashing.perceptual_hashes(img) for i, img in enumerate(imgs)}
    stored, new = dict(list(hashes.items())[:4]), dict(list(hashes.items())[4:])

    def placed(grouped: bool) -> list[list[dedup.Candidate]]:
        index = dedup.NearIndex(objects=Path("/nowhere"), policy=match.Policy.of(DedupConfig()))
        index.extend(stored)
        found = []
        with index.group(new) if grouped else contextlib.nullcontext():
            for sha, h in new.items():
                asked_apart = index.candidates(h)  # a query the group's search did not cover
                found.append(index.candidates(h, sha))
                assert asked_apart == found[-1]
                index.extend({sha: h})
        assert len(index.views.plain) == len(hashes)  # the group's images joined the stored ones
        return found

    index = dedup.NearIndex(objects=Path("/nowhere"), policy=match.Policy.of(DedupConfig()))
    with index.group({}):  # a group whose every source was refused or an exact duplicate
        index.extend(stored)
    assert len(index.views.plain) == len(stored)
    alone = placed(grouped=False)
    assert sum(len(c) for c in alone) >= 5  # copies of stored images and of the group's own
    assert placed(grouped=True) == alone


def test_same_phash_finds_the_images_a_group_has_placed_so_far() -> None:
    """Ingest asks it (for pixels hashed the other way) while a group's images are not in the
    index yet."""
    index = dedup.NearIndex(objects=Path("/nowhere"), policy=match.Policy.of(DedupConfig()))
    a, b = (hashing.perceptual_hashes(photo(seed)) for seed in (50, 51))
    index.extend({"a": a})
    with index.group({"b": b}):
        assert index.same_phash(b[hashing.PHASH], 0) == []
        index.extend({"b": b})
        assert index.same_phash(b[hashing.PHASH], 0) == ["b"]
        assert index.same_phash(a[hashing.PHASH], 0) == ["a"]
    assert index.same_phash(b[hashing.PHASH], 0) == ["b"]


def test_a_copy_of_an_image_of_its_own_group_has_its_check_prepared(objects) -> None:
    """The group's images are matched among themselves up front: the keypoint check of a copy
    whose original came in the same group is prepared on the pool (against the original's grey
    copy, not stored yet), and the original counts only once it is placed."""
    original = photo(90)
    imgs = {"original": original, "copy": turned(original, 11, "crop"), "other": photo(91)}
    hashes = {name: hashing.perceptual_hashes(img) for name, img in imgs.items()}
    greys = {name: hashing.grey_copy(img) for name, img in imgs.items()}

    def index() -> dedup.NearIndex:
        return dedup.NearIndex(objects=objects, policy=match.Policy.of(DedupConfig()))

    unplaced = index()
    with unplaced.group(hashes, greys):
        assert unplaced.candidates(hashes["copy"], "copy") == []  # its original never placed
    placed = index()
    confirmer = placed.confirmer
    assert confirmer is not None
    with placed.group(hashes, greys):
        assert list(confirmer._prepared) == [(id(greys["copy"]), "original", False)]
        assert placed.candidates(hashes["original"], "original") == []
        placed.extend({"original": hashes["original"]})
        (found,) = placed.candidates(hashes["copy"], "copy")
        assert found.sha256 == "original" and not found.match.direct
        for future in confirmer._prepared.values():
            future.result()
        confirmer._detect = None  # type: ignore[assignment,method-assign]  # the check ran on the pool
        assert confirmer.same_photo(greys["copy"], "original", found.match.reflected)
        assert confirmer._prepared == {} and confirmer.checked == 1
        assert placed.candidates(hashes["other"], "other") == []


def test_distinct_photos_sharing_a_logo_stay_apart(conn, objects) -> None:
    index = dedup.NearIndex.load(conn, objects, DedupConfig())
    placements = [add(index, conn, objects, with_logo(photo(seed)))[1] for seed in range(20, 28)]
    assert all(p.near_of is None for p in placements)
    assert len({p.cluster_id for p in placements}) == 8


@pytest.mark.parametrize(
    "name, change",
    [(view, lambda im, v=view: im.transpose(FLIPS[v])) for view in sorted(FLIPS)]
    + [
        (f"turn {angle} {fill}", lambda im, a=angle, f=fill: turned(im, a, f))
        for angle in (-10, 25)
        for fill in hashing.FILLS
    ]
    + [
        ("flip + 12 deg + brighter", lambda im: ImageEnhance.Brightness(
            turned(im.transpose(FLIPS["phash_flip"]), 12, "reflect")).enhance(1.2)),
        ("quarter turn + 8 deg + darker", lambda im: ImageEnhance.Brightness(
            turned(im.transpose(FLIPS["phash_rot90"]), -8, "constant")).enhance(0.75)),
    ],
)
def test_flipped_and_turned_copies_join_their_original(conn, objects, name, change) -> None:
    index = dedup.NearIndex.load(conn, objects, DedupConfig())
    a, _ = add(index, conn, objects, photo(13))
    _, copy = add(index, conn, objects, change(photo(13)))
    assert copy.near_of == a, name
    other, _ = add(index, conn, objects, photo(14))  # and a distinct photo is not drawn in
    assert cluster_of(conn, other) != cluster_of(conn, a)


def with_stamp(img: Image.Image) -> Image.Image:
    out = img.copy()
    ImageDraw.Draw(out).text((img.width - 100, img.height - 20), "'19 07 23 14:02", fill=(255, 140, 0))
    return out


@pytest.mark.parametrize(
    "name, mark",
    [
        ("date stamp", with_stamp),
        ("turned 25 deg, black corners", lambda im: turned(im, 25, "constant")),
        ("turned 20 deg, grown canvas", lambda im: turned(im, -20, "expand")),
    ],
)
def test_distinct_photos_marked_alike_stay_apart(conn, objects, name, mark) -> None:
    """What distinct photos share (a stamp; corners a turn left black) must not join them."""
    index = dedup.NearIndex.load(conn, objects, DedupConfig())
    placements = [add(index, conn, objects, mark(photo(seed)))[1] for seed in range(40, 48)]
    assert [p.near_of for p in placements] == [None] * 8, name


def test_representative_is_largest_then_earliest(conn, objects) -> None:
    index = dedup.NearIndex.load(conn, objects, DedupConfig())
    small, placed = add(index, conn, objects, photo(4, (160, 120)))
    big, _ = add(index, conn, objects, photo(4, (320, 240)))
    also_big, _ = add(index, conn, objects, photo(4, (320, 240)), quality=70)
    rep = conn.execute("SELECT representative FROM clusters WHERE id = ?", (placed.cluster_id,)).fetchone()[0]
    assert rep == big != also_big
    assert {small, big, also_big} == {
        r[0] for r in conn.execute("SELECT sha256 FROM images WHERE cluster_id = ?", (placed.cluster_id,))
    }


def test_new_images_are_compared_with_the_whole_catalog(conn, objects) -> None:
    a, _ = add(dedup.NearIndex.load(conn, objects, DedupConfig()), conn, objects, photo(5))
    later = dedup.NearIndex.load(conn, objects, DedupConfig())  # a second run
    assert len(later) == 1
    _, copy = add(later, conn, objects, ImageOps.mirror(photo(5)))
    assert copy.near_of == a and copy.cluster_id == cluster_of(conn, a)


def test_rolled_back_insert_leaves_no_stale_match(conn, objects) -> None:
    index = dedup.NearIndex.load(conn, objects, DedupConfig())
    with pytest.raises(RuntimeError), catalog.atomic(conn):
        add(index, conn, objects, photo(6))
        raise RuntimeError("the caller's transaction fails")
    assert conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 0
    sha, placement = add(index, conn, objects, photo(6), quality=80)
    assert placement.near_of is None
    assert cluster_of(conn, sha) == placement.cluster_id


def test_add_image_needs_the_callers_transaction(conn, objects) -> None:
    index = dedup.NearIndex.load(conn, objects, DedupConfig())
    rgb = photo(7)
    hashes = hashing.perceptual_hashes(rgb)
    new = dedup.NewImage("a" * 64, hashing.fingerprint(*rgb.size, hashes), None, *rgb.size, "JPEG", 1)
    with pytest.raises(RuntimeError, match="transaction"):
        index.add_image(conn, new, hashing.grey_copy(rgb), hashes)
    assert conn.execute("SELECT COUNT(*) FROM clusters").fetchone()[0] == 0
    assert len(index) == 0


def test_keypoint_check_of_a_featureless_image_says_no(objects) -> None:
    """A flat image has no keypoints at all: the check refuses the pair instead of failing."""
    confirmer = dedup.Confirmer(objects)
    flat = np.full((192, 256), 128, dtype=np.uint8)
    grey = hashing.grey_copy(photo(8))
    assert not confirmer.same(flat, grey)
    assert not confirmer.same(grey, flat, mirrored=True)
    assert confirmer.same(grey, grey)


def test_prepared_keypoint_checks_give_the_verdicts_of_checks_done_in_place(objects) -> None:
    """Confirmer.prepare reads the stored copy and computes both sides' keypoints on its own
    threads; the check then uses them (no detection on the caller's thread) and says what a
    check done in place says, for copies, mirrored copies and other photos alike."""
    stored = {seed: store.put(objects, synthetic.encode(photo(seed), "JPEG")) for seed in (40, 41)}
    greys = [hashing.grey_copy(img) for img in (photo(40).rotate(-9), ImageOps.mirror(photo(41)), photo(42))]
    checks = [(stored[seed], mirrored) for seed in stored for mirrored in (False, True)]
    in_place = dedup.Confirmer(objects)
    want = [[in_place.same_photo(grey, sha, mirrored) for sha, mirrored in checks] for grey in greys]
    assert want[0][0] and want[1][3] and not any(want[2])  # a turned copy, a mirrored one, another photo
    ahead = dedup.Confirmer(objects)
    for grey in greys:
        for sha, mirrored in checks:
            ahead.prepare(grey, sha, mirrored)
    for future in ahead._prepared.values():
        future.result()
    ahead._detect = None  # type: ignore[assignment,method-assign]  # any detection now fails
    assert [[ahead.same_photo(grey, sha, mirrored) for sha, mirrored in checks] for grey in greys] == want
    assert ahead._prepared == {} and ahead.checked == in_place.checked
    ahead.prepare(greys[0], *checks[0])
    ahead.forget_prepared()  # a group's unused work is dropped when it ends
    assert ahead._prepared == {}


def test_clusters_list_members_distances_and_sources(conn, objects) -> None:
    index = dedup.NearIndex.load(conn, objects, DedupConfig())
    a, placed = add(index, conn, objects, photo(7))
    b, _ = add(index, conn, objects, photo(7).resize((200, 150)))
    add(index, conn, objects, photo(8))
    with catalog.atomic(conn):
        for i, (sha, outcome) in enumerate([(a, "stored"), (a, "duplicate"), (b, "duplicate")]):
            conn.execute(
                "INSERT INTO sources (locator, kind, outcome, sha256, added_at) VALUES (?, 'url', ?, ?, ?)",
                (f"http://x/{i}", outcome, sha, catalog.utcnow()),
            )
    (info,) = dedup.clusters(conn)
    assert info.id == placed.cluster_id and info.representative == a
    assert [m.sha256 for m in info.members] == [a, b]
    assert info.members[0].distance == 0 and info.members[0].urls == ("http://x/0", "http://x/1")
    assert info.members[1].urls == ("http://x/2",) and info.members[1].distance is not None
    assert len(dedup.clusters(conn, min_size=1)) == 2


def test_recluster_with_another_threshold(conn, objects) -> None:
    cfg = DedupConfig(confirm=False)
    index = dedup.NearIndex.load(conn, objects, cfg)
    a, placed = add(index, conn, objects, photo(2))
    b, copy = add(index, conn, objects, photo(2).crop((4, 3, 316, 237)))
    assert copy.distance is not None and copy.distance > 0
    split = dedup.recluster(conn, objects, cfg, threshold=0)
    assert (split.clusters, split.moved) == (2, 1)
    assert cluster_of(conn, a) == placed.cluster_id != cluster_of(conn, b)
    merged = dedup.recluster(conn, objects, cfg, threshold=8)
    assert merged.clusters == 1 and cluster_of(conn, b) == placed.cluster_id
    assert conn.execute("SELECT COUNT(*) FROM clusters").fetchone()[0] == 1


def test_recluster_confirms_hard_copies(conn, objects) -> None:
    index = dedup.NearIndex.load(conn, objects, DedupConfig())
    a, _ = add(index, conn, objects, photo(10))
    b, _ = add(index, conn, objects, photo(10).rotate(5, resample=Image.Resampling.BICUBIC))
    c, _ = add(index, conn, objects, photo(11))
    result = dedup.recluster(conn, objects, DedupConfig(), threshold=8)
    assert result.clusters == 2
    assert cluster_of(conn, a) == cluster_of(conn, b) != cluster_of(conn, c)


hashes64 = st.integers(min_value=0, max_value=2**64 - 1)


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(hashes64, min_size=1, max_size=300),
    flips=st.lists(st.integers(0, 63), max_size=12),
    radius=st.integers(0, 14),
    chunks=st.sampled_from([0, 3, 4, 5, 8]),
    split=st.integers(0, 300),
)
def test_index_matches_brute_force(values, flips, radius, chunks, split) -> None:
    arr = np.array(values, dtype=np.uint64)
    index = hashing.HashIndex()
    index.extend(arr[:split], np.arange(min(split, len(arr))), np.zeros(min(split, len(arr))))
    index._fold()  # part in the multi-index tables, part in the scanned tail
    index.extend(arr[split:], np.arange(split, len(arr)), np.zeros(max(0, len(arr) - split)))
    near = values[0]
    for bit in flips:
        near ^= 1 << bit
    queries = np.array([near, *values[:5]], dtype=np.uint64)
    qi, ei, dist = index.search(queries, radius, chunks=chunks)
    got = set(zip(qi.tolist(), ei.tolist(), dist.tolist(), strict=True))
    want = {
        (q, e, (int(queries[q]) ^ v).bit_count())
        for q in range(len(queries))
        for e, v in enumerate(values)
        if (int(queries[q]) ^ v).bit_count() <= radius
    }
    assert got == want


def test_index_finds_the_same_when_probes_expand_in_small_steps(monkeypatch) -> None:
    """Crowded chunk values are expanded a bounded number of entries at a time; the steps'
    boundaries (here every 7 entries) must not lose or repeat a pair."""
    rng = np.random.default_rng(3)
    base = rng.integers(0, 2**64 - 1, size=40, dtype=np.uint64, endpoint=True)
    # Many entries share their low 16 bits: one crowded chunk value, as photos' hashes give.
    values = np.concatenate([base, (base[:20] & ~np.uint64(0xFFFF)) | np.uint64(0x1234)])
    index = hashing.HashIndex()
    index.extend(values, np.arange(len(values)), np.zeros(len(values)))
    plan = index.prepare(len(values), 12)
    want = index.search(values, 12, chunks=4)
    monkeypatch.setattr(hashing, "_EXPAND", 7)
    for chunks in (4, plan):
        got = index.search(values, 12, chunks=chunks)
        assert [col.tolist() for col in got] == [col.tolist() for col in want]


def test_distinct_textured_photos_stay_apart_and_copies_join(conn, objects) -> None:
    """Photo-like images with texture at every scale (as at scale in benchmarks/ingest_scale.py):
    none of 120 distinct ones is merged, at ingest or re-clustered at threshold 10, while a
    mirrored, a turned and a brightened copy each join their original."""
    index = dedup.NearIndex.load(conn, objects, DedupConfig())
    originals = [add(index, conn, objects, synthetic.textured(seed, (240, 180)))[0] for seed in range(120)]
    copies = {
        0: synthetic.textured(0, (240, 180)).transpose(Image.Transpose.FLIP_LEFT_RIGHT),
        1: synthetic.textured(1, (240, 180)).rotate(10, resample=Image.Resampling.BICUBIC),
        2: ImageEnhance.Brightness(synthetic.textured(2, (240, 180))).enhance(1.25),
    }
    joined = {k: add(index, conn, objects, img)[0] for k, img in copies.items()}
    for threshold in (None, 10):
        if threshold is not None:
            dedup.recluster(conn, objects, DedupConfig(), threshold)
        assert len({cluster_of(conn, sha) for sha in originals}) == len(originals)
        assert all(cluster_of(conn, joined[k]) == cluster_of(conn, originals[k]) for k in copies)


@pytest.mark.parametrize(
    "dedup_table, key",
    [
        ({"threshold": 40}, "dedup.threshold"),
        ({"threshold": 8, "candidate_threshold": 6}, "dedup.candidate_threshold"),
        ({"candidate_threshold": 33}, "dedup.candidate_threshold"),
        ({"confirm": "yes"}, "dedup.confirm"),
        ({"radius": 3}, "dedup.radius"),
    ],
)
def test_bad_dedup_settings_name_the_key(dedup_table: dict[str, object], key: str) -> None:
    raw = {"dataset": {"name": "x", "classes": ["a", "b"]}, "dedup": dedup_table}
    with pytest.raises(ConfigError) as err:
        config.from_dict(raw)
    assert err.value.key == key and f"'{key}'" in err.value.message


def test_recluster_refuses_a_threshold_out_of_range(conn, objects) -> None:
    index = dedup.NearIndex.load(conn, objects, DedupConfig())
    a, placed = add(index, conn, objects, photo(12))
    with pytest.raises(InputError) as err:
        dedup.recluster(conn, objects, DedupConfig(), threshold=33)
    assert err.value.message == "threshold 33 is out of range: use 0 to 32 bits (of 64)"
    assert cluster_of(conn, a) == placed.cluster_id


def _partition(groups: list[int]) -> set[frozenset[int]]:
    """Item indices grouped by their group label."""
    by: dict[int, set[int]] = {}
    for i, g in enumerate(groups):
        by.setdefault(g, set()).add(i)
    return {frozenset(v) for v in by.values()}


def _three_callers(tmp_path: Path, images: list[bytes]) -> tuple[set, set, set]:
    """The near-duplicate groups that ingest, re-clustering and audit each find in ``images``."""
    tmp_path.mkdir()
    conn = catalog.connect(tmp_path / "catalog.sqlite")
    objects = tmp_path / "objects"
    index = dedup.NearIndex.load(conn, objects, DedupConfig())
    shas = [add(index, conn, objects, Image.open(io.BytesIO(data)).convert("RGB"))[0] for data in images]
    ingested = _partition([cluster_of(conn, sha) for sha in shas])
    dedup.recluster(conn, objects, DedupConfig(), threshold=DedupConfig().threshold)
    reclustered = _partition([cluster_of(conn, sha) for sha in shas])
    conn.close()
    rows = []
    for i, data in enumerate(images):  # every image in a split of its own: every pair is checked
        rgb = hashing.normalize(Image.open(io.BytesIO(data)))
        item = audit.Item(f"s{i}", 0, None, None, str(i))
        rows.append(audit.RowHash(item, hashing.pixel_sha256(rgb), hashing.perceptual_hashes(rgb), None))

    def grey(item: audit.Item) -> np.ndarray:
        return hashing.grey_copy(hashing.normalize(Image.open(io.BytesIO(images[int(item.sha256)]))))

    sets = dedup.DisjointSets(len(images))
    for leak in audit.find_leaks(rows, match.Policy.of(DedupConfig()), grey):
        sets.union(int(leak.a.sha256), int(leak.b.sha256))
    return ingested, reclustered, _partition([sets.find(i) for i in range(len(images))])


def test_ingest_recluster_and_audit_decide_through_the_one_policy(tmp_path: Path, monkeypatch) -> None:
    """The three callers agree, and changing the policy's rule changes all three."""
    base, other = photo(50), photo(51)
    copies = [
        base, base.transpose(FLIPS["phash_rot90"]), turned(base, 12, "reflect"), turned(base, -20, "crop"),
        ImageEnhance.Brightness(base).enhance(1.25),
        other, turned(other.transpose(FLIPS["phash_flip"]), 8, "constant"),
        with_logo(photo(52)), with_logo(photo(53)),
    ]  # fmt: skip
    images = [synthetic.encode(img, "JPEG", quality=90) for img in copies]
    want = {frozenset(range(5)), frozenset({5, 6}), frozenset({7}), frozenset({8})}
    assert _three_callers(tmp_path / "a", images) == (want, want, want)
    monkeypatch.setattr(match.Policy, "match", lambda self, *args: None)  # "nothing is near"
    alone = {frozenset({i}) for i in range(len(images))}
    assert _three_callers(tmp_path / "b", images) == (alone, alone, alone)


def test_policy_radii_single_composite_and_moved_thresholds() -> None:
    cfg = DedupConfig()  # 8 and 10
    policy = match.Policy.of(cfg)
    assert policy.radius_for("phash", "phash_turn+11_reflect") == 10  # single: the image as it is
    assert policy.radius_for("phash_crop80_00", "phash") == 10
    assert policy.radius_for("phash_rot90", "phash_flip") == 10  # two flips or quarter turns
    assert policy.radius_for("phash_rot90", "phash_turn+11_reflect") == 8  # composite
    assert policy.radius_for("phash_crop80_00", "phash_flip") == 8
    assert policy.match("phash_flip", "phash_crop80_00", 10) is None
    assert policy.match("phash", "phash_crop80_00", 10) is not None
    # A higher re-clustering threshold widens direct matches only; a lower one narrows all.
    assert dataclasses.astuple(match.Policy.of(cfg, 10)) == (10, 10, 8, True)
    assert dataclasses.astuple(match.Policy.of(cfg, 12)) == (12, 12, 8, True)
    assert dataclasses.astuple(match.Policy.of(cfg, 4)) == (4, 6, 4, True)


@pytest.mark.parametrize("threshold", [None, 4, 10])
@pytest.mark.parametrize("confirm", [True, False])
@pytest.mark.parametrize("scan_pairs", [0, 1 << 30], ids=["indexed", "scanned"])
def test_near_pairs_finds_exactly_what_the_policy_counts(
    threshold: int | None, confirm: bool, scan_pairs: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The search (dedup.ViewIndex: indexed, or all pairs at once for small indexes) against
    every pair of views compared one by one."""
    monkeypatch.setattr(dedup, "_SCAN_PAIRS", scan_pairs)
    rng = np.random.default_rng(threshold or 0)
    names = hashing.NAMES
    hashes = [{n: int(v) for n, v in zip(names, rng.integers(0, 2**63, len(names)), strict=True)}
              for _ in range(30)]  # fmt: skip

    def near(value: int) -> int:
        return value ^ sum(1 << int(x) for x in rng.choice(64, int(rng.integers(0, 13)), replace=False))

    for k in range(90):  # plant views near other images' flips and quarter turns, or whole copies
        a, b = rng.choice(len(hashes), 2, replace=False)
        if k % 6:
            hashes[b][str(rng.choice(names))] = near(hashes[a][str(rng.choice(hashing.DIHEDRAL))])
        else:
            hashes[b].update({n: near(hashes[a][n]) for n in (*hashing.DIHEDRAL, *hashing.CENTRES)})
    policy = match.Policy.of(DedupConfig(confirm=confirm), threshold)
    want: dict[tuple[int, int], match.Match] = {}
    searched = [n for n in names if n not in hashing.CENTRES]
    _rank = dedup._match_rank
    for i, x in enumerate(hashes):
        for j, y in enumerate(hashes):
            for qn in (n for n in hashing.DIHEDRAL if i != j):
                for sn in searched:
                    d = hashing.hamming(x[qn], y[sn])
                    found = policy.match(qn, sn, d, dedup.centre_distance(x, y, qn, sn))
                    key = (min(i, j), max(i, j))
                    if found is not None and (key not in want or _rank(found) < _rank(want[key])):
                        want[key] = found
    assert any(m.direct for m in want.values()) and (not confirm or any(not m.direct for m in want.values()))
    assert dedup.near_pairs(policy, hashes) == want


@pytest.mark.parametrize("confirm", [True, False])
def test_a_small_view_index_compares_all_pairs_and_finds_what_its_indexed_search_does(
    confirm: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ViewIndex._scan against the indexed search, with every kind of view as a query (as
    NearIndex.candidates asks), and both against what the policy counts pair by pair."""
    rng = np.random.default_rng(7)
    names = [n for n in hashing.NAMES if n not in hashing.CENTRES]

    def image() -> dict[str, int]:
        return {n: int(v) for n, v in zip(names, rng.integers(0, 2**63, len(names)), strict=True)}

    def near(value: int) -> int:
        return value ^ sum(1 << int(x) for x in rng.choice(64, int(rng.integers(0, 12)), replace=False))

    stored, asked = [image() for _ in range(12)], [image() for _ in range(6)]
    for _ in range(200):  # any view of an asked image near any view of a stored one
        x, y = asked[rng.integers(len(asked))], stored[rng.integers(len(stored))]
        x[str(rng.choice(names))] = near(y[str(rng.choice(names))])
    index = dedup.ViewIndex()
    index.extend(*dedup._entries(stored))
    values, _, kinds = dedup._entries(asked)
    policy = match.Policy.of(DedupConfig(confirm=confirm))
    found = {}
    for way, pairs in (("indexed", 0), ("scanned", 1 << 30)):
        monkeypatch.setattr(dedup, "_SCAN_PAIRS", pairs)
        found[way] = set(zip(*(col.tolist() for col in index.search(policy, values, kinds)), strict=True))
    assert found["indexed"] == found["scanned"]
    stored_values, owners, stored_kinds = dedup._entries(stored)
    counted = {
        (q, o, k, hashing.hamming(int(v), int(w)))
        for q, v in enumerate(values.tolist())
        for w, o, k in zip(stored_values.tolist(), owners.tolist(), stored_kinds.tolist(), strict=True)
        # Relations have a flip or quarter turn (or the image as it is) on one side at least.
        if {dedup._NAME[kinds[q]], dedup._NAME[k]} & set(hashing.DIHEDRAL)
        and policy.match(dedup._NAME[kinds[q]], dedup._NAME[k], hashing.hamming(int(v), int(w))) is not None
    }
    assert counted <= found["scanned"]
    views = {dedup._NAME[kinds[q]] for q, *_ in counted}
    assert views & set(hashing.DIHEDRAL) - {hashing.PHASH}
    assert bool(views - set(hashing.DIHEDRAL)) == confirm  # turns and crops are loose matches only


def test_every_threshold_range_is_the_policys(conn, objects) -> None:
    from curator.cli import cli

    for name in ("dups", "audit"):
        (option,) = [p for p in cli.commands[name].params if p.name == "threshold"]
        assert (option.type.min, option.type.max) == (0, match.MAX_THRESHOLD), name
    raw = {"dataset": {"name": "x", "classes": ["a", "b"]}}
    most = match.MAX_THRESHOLD
    config.from_dict({**raw, "dedup": {"threshold": most, "candidate_threshold": most}})
    for table in ({"threshold": match.MAX_THRESHOLD + 1}, {"candidate_threshold": match.MAX_THRESHOLD + 1}):
        with pytest.raises(ConfigError, match=f"between .* and {match.MAX_THRESHOLD}"):
            config.from_dict({**raw, "dedup": table})
    with pytest.raises(InputError, match=f"use 0 to {match.MAX_THRESHOLD} bits"):
        dedup.recluster(conn, objects, DedupConfig(), threshold=match.MAX_THRESHOLD + 1)


def test_catalogs_with_the_legacy_views_keep_working_and_are_rehashed(tmp_path: Path) -> None:
    """Migration 4: images hashed with the 22 views of before keep them (read by name, matched
    with what they have); re-clustering gives them today's views from their originals."""
    path, objects = tmp_path / "catalog.sqlite", tmp_path / "objects"
    old = sqlite3.connect(path, isolation_level=None)
    catalog.migrate(old, [m for m in catalog.MIGRATIONS if m.version <= 3])
    data = synthetic.encode(photo(60), "JPEG", quality=90)
    sha = store.put(objects, data)
    rgb = hashing.normalize(Image.open(io.BytesIO(data)))
    today = hashing.perceptual_hashes(rgb)
    legacy = {name: today.get(name, 12345) for name in hashing.LEGACY_NAMES}  # rot+-4: any value
    with catalog.atomic(old):
        old.execute("INSERT INTO clusters (id, representative) VALUES (1, ?)", (sha,))
        old.execute(
            "INSERT INTO images (sha256, fingerprint, hashes, width, height, format, bytes, cluster_id,"
            " created_at) VALUES (?, 'f', ?, ?, ?, 'JPEG', ?, 1, 't')",
            (sha, hashing.pack_hashes(legacy), rgb.width, rgb.height, len(data)),
        )
    old.close()
    conn = catalog.connect(path)
    (hashed_from,) = conn.execute("SELECT hashed_from FROM images").fetchone()
    assert hashed_from == hashing.RGB + hashing.LEGACY_SUFFIX
    assert dedup.stored_hashes(conn) == {sha: legacy}
    index = dedup.NearIndex.load(conn, objects, DedupConfig())
    _, mirrored = add(index, conn, objects, ImageOps.mirror(photo(60)))
    assert mirrored.near_of == sha  # its phash_mirror still matches
    assert dedup.rehash_legacy(conn, objects) == 1
    sql = "SELECT hashes, hashed_from FROM images WHERE sha256 = ?"
    (packed, hashed_from) = conn.execute(sql, (sha,)).fetchone()
    assert set(hashing.unpack_hashes(packed)) == set(hashing.NAMES) and hashed_from == hashing.LUMA
    assert dedup.rehash_legacy(conn, objects) == 0
    conn.close()
