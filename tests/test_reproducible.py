"""The same inputs give the same clusters, cluster ids, representatives and release bytes.

Two fresh workspaces ingest one URL list from a real loopback server at default
concurrency, through the real CLI; the server answers in opposite orders for the
two runs (originals slow in one, copies slow in the other), so sources finish
and reach the catalog in different orders. Both release with SOURCE_DATE_EPOCH
and must agree byte for byte. Copies are listed before their originals, so the
input order alone would pick the copies: the representative rule must not.
"""

from __future__ import annotations

import dataclasses
import io
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageOps

from curator import catalog, dedup, hashing, store
from curator.workspace import Workspace
from tests import ingest_data as data
from tests.conftest import CLASSES, run_cli, snapshot
from tests.imageserver import ImageServer, Reply
from tests.test_release import CHEAP_PREPROCESS

SLOW = 0.25  # seconds: long enough that every fast reply is placed first


def _inputs() -> list[tuple[str, str, bytes, bool]]:
    """(path, label, bytes, is_copy) in list order: each original's copies come before it."""
    items = []
    for i in range(12):
        label = CLASSES[i % 3]
        img = data.photo(100 + i, label, (200, 150))
        if i < 5:  # same size, lower quality; mirrored; smaller
            items.append((f"/copy/{i}-q35.jpg", label, data.jpeg(img, quality=35), True))
            items.append((f"/copy/{i}-mirror.jpg", label, data.jpeg(ImageOps.mirror(img), quality=80), True))
            items.append((f"/copy/{i}-small.jpg", label, data.jpeg(img.resize((150, 112)), quality=90), True))
        if i == 5:  # a small rotation: confirmed by keypoints
            turned = img.rotate(6, resample=Image.Resampling.BICUBIC)
            items.append((f"/copy/{i}-rot6.jpg", label, data.jpeg(turned, quality=90), True))
        original = data.jpeg(img, quality=92)
        if i == 6:  # the same pixels in other bytes: one image, from the file listed first
            items.append((f"/copy/{i}.png", label, data.png(data.decoded(original)), True))
        items.append((f"/orig/{i}.jpg", label, original, False))
    return items


def _sources(ws: Path) -> list[tuple[object, ...]]:
    """Every source's outcome: which of two near copies is 'stored' follows input order too."""
    conn = sqlite3.connect(ws / "catalog.sqlite")
    try:
        return [tuple(r) for r in conn.execute(
            "SELECT locator, position, outcome, reason, sha256 FROM sources ORDER BY locator")]
    finally:
        conn.close()


def _catalog(ws: Path) -> tuple[list[tuple[str, int]], list[tuple[int, str]]]:
    conn = sqlite3.connect(ws / "catalog.sqlite")
    try:
        images = conn.execute("SELECT sha256, cluster_id FROM images ORDER BY sha256").fetchall()
        clusters = conn.execute("SELECT id, representative FROM clusters ORDER BY id").fetchall()
    finally:
        conn.close()
    return images, clusters


def _ids_follow_positions(ws: Path) -> bool:
    conn = sqlite3.connect(ws / "catalog.sqlite")
    try:
        rows = conn.execute(
            "SELECT i.cluster_id, MIN(s.position) FROM images i JOIN sources s ON s.sha256 = i.sha256 "
            "GROUP BY i.cluster_id"
        ).fetchall()
    finally:
        conn.close()
    return len(rows) > 12 and all(cid == first + 1 for cid, first in rows)


def test_two_fresh_ingests_give_byte_identical_releases(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    items = _inputs()
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    with ImageServer() as server:
        server.route("/robots.txt", Reply(404, b"", "text/plain"))
        urls = tmp_path / "urls.txt"
        urls.write_text("".join(f"{server.url(path)}\t{label}\n" for path, label, _, _ in items))
        workspaces = []
        for run, slow_copies in enumerate((False, True)):
            for path, _, body, is_copy in items:
                server.route(path, Reply(body=body, delay=SLOW if is_copy == slow_copies else 0.0))
            ws = tmp_path / f"ws{run}"
            assert run_cli("init", "scalp-test", "--classes", ",".join(CLASSES), workspace=ws).exit_code == 0
            with (ws / "curator.toml").open("a", encoding="utf-8") as fh:
                fh.write(CHEAP_PREPROCESS)
            report = ["--report", str(tmp_path / f"report{run}.jsonl")]
            for args in (["ingest", str(urls), *report], ["label", "--accept-hints"], ["release"]):
                result = run_cli(*args, workspace=ws)
                assert result.exit_code == 0, result.output
            workspaces.append(ws)
    first, second = workspaces
    assert _catalog(first) == _catalog(second)
    assert _sources(first) == _sources(second)
    assert (tmp_path / "report0.jsonl").read_text() == (tmp_path / "report1.jsonl").read_text()
    # Re-clustering at the same threshold settles on the same ids and representatives.
    ingested = _catalog(second)
    result = run_cli("dups", "--threshold", "8", workspace=second)
    assert result.exit_code == 0 and "0 images moved" in result.stderr, result.output
    assert _catalog(second) == ingested
    # Split apart at 0 bits and joined again: every id is 1 + its members' earliest input position.
    assert run_cli("dups", "--threshold", "0", workspace=second).exit_code == 0
    assert _ids_follow_positions(second)
    assert run_cli("dups", "--threshold", "8", workspace=second).exit_code == 0
    assert _catalog(second) == ingested
    images, clusters = _catalog(first)
    assert len(images) == len(items) - 1 and len(clusters) == 12  # every copy found its original
    png = next(body for path, _, body, _ in items if path.endswith(".png"))
    assert store.sha256_bytes(png) in dict(images)
    for ws in workspaces:  # in the second run the JPEG came first and was replaced by the PNG
        conn = sqlite3.connect(ws / "catalog.sqlite")
        outcomes = dict(conn.execute(
            "SELECT substr(locator, instr(locator, '/6.')), outcome || ' ' || COALESCE(reason, '') "
            "FROM sources WHERE locator LIKE '%/6.%'"))
        conn.close()
        assert outcomes == {"/6.png": "stored ", "/6.jpg": "duplicate exact"}
    originals = {data.decoded(body).tobytes() for _, _, body, is_copy in items if not is_copy}
    for _, rep in clusters:
        body = (first / "objects" / rep[:2] / rep).read_bytes()
        assert data.decoded(body).tobytes() in originals, f"a copy represents its cluster: {rep}"
    assert snapshot(first / "releases") == snapshot(second / "releases")


def _contender(objects: Path, body: bytes, position: int) -> dedup.Contender:
    sha = store.put(objects, body)
    with Image.open(store.object_path(objects, sha)) as img:
        return dedup.Contender(sha, img.width, img.height, str(img.format), len(body), position)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    seed=st.integers(0, 10_000),
    original_quality=st.one_of(st.none(), st.integers(60, 98)),  # None: a PNG original
    drop=st.integers(3, 50),
    copy_first=st.booleans(),
)
def test_a_reencoded_copy_never_beats_its_original(
    tmp_path: Path, seed: int, original_quality: int | None, drop: int, copy_first: bool
) -> None:
    img = data.photo(seed, CLASSES[seed % 3], (120, 90))
    if original_quality is None:
        original, copy_quality = data.png(img), 95 - drop
    else:
        original, copy_quality = data.jpeg(img, original_quality), max(5, original_quality - drop)
    copy = data.jpeg(data.decoded(original), copy_quality)  # same size, re-encoded, lower quality
    objects = tmp_path / f"objects-{seed}-{original_quality}-{drop}"
    first, second = (copy, original) if copy_first else (original, copy)
    members = [_contender(objects, first, 1), _contender(objects, second, 2)]
    best, why = dedup.choose_representative(members, objects)
    assert best.sha256 == store.sha256_bytes(original), why
    assert why.startswith("least lossy: ")


def test_the_reason_names_the_rule_that_decided(tmp_path: Path) -> None:
    img = data.photo(7, "psoriasis", (120, 90))
    big = _contender(tmp_path, data.jpeg(img, 90), 2)
    small = _contender(tmp_path, data.jpeg(img.resize((60, 45)), 90), 1)
    assert dedup.choose_representative([small, big], tmp_path) == (big, "most pixels: 120x90 vs 60x45")
    png = _contender(tmp_path, data.png(img), 3)
    why = dedup.choose_representative([big, png], tmp_path)[1]
    assert why == "least lossy: PNG, lossless vs JPEG quality ~90"
    twin = dataclasses.replace(big, sha256="f" * 64, position=1)  # same size and bytes, listed earlier
    assert dedup.choose_representative([big, twin], None) == (twin, "earliest in the input: position 1 vs 2")
    assert dedup.choose_representative([big], tmp_path) == (big, "the only member")
    fine = _contender(tmp_path, data.encode(img, "WEBP", quality=90), 5)  # no quality to estimate
    coarse = _contender(tmp_path, data.encode(img, "WEBP", quality=30), 4)
    assert dedup.choose_representative([coarse, fine], tmp_path) == (
        fine, f"least lossy: {fine.bytes_per_pixel:g} vs {coarse.bytes_per_pixel:g} bytes per pixel")


def _grey(img: Image.Image) -> np.ndarray:
    with Image.open(io.BytesIO(data.jpeg(img, 85))) as opened:
        return hashing.grey_of(opened).pixels


@pytest.mark.parametrize("seed", [16, 19, 25, 28])
def test_keypoint_confirmation_gives_one_answer_either_way_round(seed: int) -> None:
    # Photos whose cropped and brightened copy got different answers from the two orders before
    # the pair was put in a fixed order: then which one arrived first decided the cluster.
    img = data.photo(seed, CLASSES[seed % 3], (240, 180))
    a, b = _grey(img), _grey(data.brighter(data.crop(img, 0.18), 1.2))
    confirmer = dedup.Confirmer(Path("."))
    for mirrored in (False, True):
        assert confirmer.same(a, b, mirrored) == confirmer.same(b, a, mirrored)


def test_settling_rotates_ids_or_keeps_those_held_outside(workspace: Workspace, tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for i in range(3):
        (folder / f"{i}.jpg").write_bytes(data.jpeg(data.photo(40 + i, CLASSES[i])))
    assert run_cli("ingest", str(folder), workspace=workspace.root).exit_code == 0
    conn = workspace.conn

    def ids() -> list[int]:  # cluster id of the images at input positions 1, 2, 3
        return [r[0] for r in conn.execute(
            "SELECT i.cluster_id FROM images i JOIN sources s ON s.sha256 = i.sha256 ORDER BY s.position")]

    assert ids() == [2, 3, 4]
    with catalog.atomic(conn):  # as a catalog clustered before positions: ids rotated
        conn.execute("PRAGMA defer_foreign_keys = ON")
        for table, column in (("images", "cluster_id"), ("clusters", "id")):
            conn.execute(f"UPDATE {table} SET {column} = -{column}")
            rotate = f"CASE {column} WHEN -2 THEN 4 WHEN -3 THEN 2 ELSE 3 END"
            conn.execute(f"UPDATE {table} SET {column} = {rotate}")
    assert ids() == [4, 2, 3]
    with catalog.atomic(conn):  # 2 wants 3, held by a cluster left alone; so 4 cannot have 2
        dedup.settle_clusters(conn, [4, 2], workspace.objects)
    assert ids() == [4, 2, 3]
    with catalog.atomic(conn):  # all three move, through negative ids
        dedup.settle_clusters(conn, [2, 3, 4], workspace.objects)
    assert ids() == [2, 3, 4]
    reps = {int(cid): rep for cid, rep in conn.execute("SELECT id, representative FROM clusters")}
    assert reps == {int(cid): sha for sha, cid in conn.execute("SELECT sha256, cluster_id FROM images")}
