"""curator.dedup: placing images into clusters, listing, re-clustering, and the hash index."""

from __future__ import annotations

import io
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageDraw, ImageOps

from curator import catalog, config, dedup, hashing, store, synthetic
from curator.config import DedupConfig
from curator.errors import ConfigError, InputError


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


def test_distinct_photos_sharing_a_logo_stay_apart(conn, objects) -> None:
    index = dedup.NearIndex.load(conn, objects, DedupConfig())
    placements = [add(index, conn, objects, with_logo(photo(seed)))[1] for seed in range(20, 28)]
    assert all(p.near_of is None for p in placements)
    assert len({p.cluster_id for p in placements}) == 8


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
