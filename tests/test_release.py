"""``curator release``: contents, versions, sticky splits, licences, atomicity, determinism.

Workspaces are built through the real CLI (tests/releases.py: init, ingest a folder of
generated images with --hint-from-folder, label --accept-hints); preprocessing is cut to a
64 px resize so that each build takes a second or two.
"""

from __future__ import annotations

import json
import re
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from PIL import Image

from curator import hashing, release, released, synthetic
from curator.errors import InputError
from curator.workspace import open_workspace
from tests.conftest import CLASSES, run_cli, snapshot
from tests.releases import (
    CHEAP_PREPROCESS,
    build,
    ingest_labelled,
    make_workspace,
    manifest,
    write_images,
)


def catalog_dump(ws: Path) -> list[str]:
    """The catalog's full content (snapshot() skips the WAL, where fresh writes live)."""
    conn = sqlite3.connect(ws / "catalog.sqlite")
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def splits_of(ws: Path) -> dict[str, str]:
    conn = sqlite3.connect(ws / "catalog.sqlite")
    try:
        return dict(conn.execute("SELECT sha256, split FROM image_splits").fetchall())
    finally:
        conn.close()


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[Path]:
    yield make_workspace(tmp_path, {"alopecia": 8, "psoriasis": 6, "folliculitis": 5})


MANIFEST_KEYS = [
    "format_version",
    "version",
    "name",
    "parent",
    "created_at",
    "classes",
    "splits",
    "files",
    "rows",
    "cluster_members",
    "balance",
    "config",
    "versions",
    "bump",
    "include_restricted",
]


def test_release_end_to_end_loads_and_matches_manifest(ws: Path, tmp_path: Path) -> None:
    from datasets import load_dataset

    result = run_cli("release", workspace=ws)
    assert result.exit_code == 0, result.output
    assert "Built v1.0.0" in result.stdout
    assert "Bump: initial (first release)" in result.stdout
    folder = ws / "releases" / "v1.0.0"
    m = manifest(ws, "1.0.0")
    assert list(m) == MANIFEST_KEYS
    assert m["classes"] == CLASSES and m["parent"] is None and m["include_restricted"] is False
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "card", "data", "manifest.json"]
    assert (folder / "card" / "composition.png").read_bytes().startswith(b"\x89PNG")
    assert set(m["files"]) == {f"data/{p.name}" for p in (folder / "data").iterdir()}
    for rel, info in m["files"].items():
        assert (folder / rel).stat().st_size == info["bytes"]
    loaded = load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert set(loaded) == {s for s, c in m["splits"].items() if c["rows"]}
    for split in loaded:
        assert loaded[split].features["label"].names == CLASSES
        assert loaded[split].num_rows == m["splits"][split]["rows"]
        assert loaded[split]["sha256"] == [r["sha256"] for r in m["rows"] if r["split"] == split]
    # 19 originals; oversampling brings train classes up to the largest, only in train
    originals = [r for r in m["rows"] if r["augmented_from"] is None]
    assert len(originals) == 19
    augmented = [r for r in m["rows"] if r["augmented_from"] is not None]
    assert augmented and all(r["split"] == "train" for r in augmented)
    per_class = m["splits"]["train"]["per_class"]
    assert len(set(per_class.values())) == 1
    train_originals = {r["sha256"] for r in originals if r["split"] == "train"}
    assert {r["augmented_from"] for r in augmented} <= train_originals
    # the sticky splits are recorded for every original, and only for them
    assert splits_of(ws) == {r["sha256"]: r["split"] for r in originals}
    assert "local:img" in loaded["train"][0]["source_url"]
    opened = open_workspace(ws)
    assert {r["preprocess_hash"] for r in m["rows"]} == {release.preprocess_hash(opened.config)}
    opened.close()


def test_release_twice_from_the_same_catalog_is_byte_identical(ws: Path, tmp_path: Path) -> None:
    """Parquet and card are byte-identical with no clock pinned; the manifest differs only in created_at."""
    twin = tmp_path / "twin"
    shutil.copytree(ws, twin)
    build(ws, created_at=None)
    build(twin, created_at=None)
    first, second = snapshot(ws / "releases"), snapshot(twin / "releases")
    assert sorted(first) == sorted(second)
    assert any(name.endswith(".parquet") for name in first)
    for name in first:
        if not name.endswith("manifest.json"):
            assert first[name] == second[name], name
    a, b = (json.loads(m[str(Path("v1.0.0") / "manifest.json")]) for m in (first, second))
    assert a.pop("created_at") != b.pop("created_at")
    assert a == b


def test_dry_run_writes_nothing(ws: Path) -> None:
    before, dump = snapshot(ws), catalog_dump(ws)
    result = run_cli("release", "--dry-run", workspace=ws)
    assert result.exit_code == 0, result.output
    assert "Would build v1.0.0" in result.stdout
    assert "Bump: initial (first release)" in result.stdout
    report = json.loads(run_cli("--json", "release", "--dry-run", workspace=ws).stdout)
    assert (report["version"], report["dry_run"], report["path"]) == ("1.0.0", True, None)
    assert sum(s["originals"] for s in report["splits"].values()) == 19
    assert report["splits"]["train"]["per_class"]["alopecia"] > 0
    assert snapshot(ws) == before and catalog_dump(ws) == dump
    assert not (ws / "releases").exists()


def test_source_date_epoch_pins_the_whole_folder(
    ws: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    twin = tmp_path / "twin"
    shutil.copytree(ws, twin)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    for folder in (ws, twin):
        assert run_cli("release", workspace=folder).exit_code == 0
    assert snapshot(ws / "releases") == snapshot(twin / "releases")
    assert manifest(ws, "1.0.0")["created_at"] == "2023-11-14T22:13:20.000000+00:00"


def test_sticky_splits_and_minor_bump_after_adding_images(ws: Path, tmp_path: Path) -> None:
    build(ws)
    first = splits_of(ws)
    write_images(tmp_path / "more", {"alopecia": 3, "psoriasis": 3, "folliculitis": 3}, first_seed=500)
    ingest_labelled(ws, tmp_path / "more")
    result = build(ws)
    assert (result.version, result.bump.kind) == ("1.1.0", "minor")
    assert result.bump.reason == "9 image(s) added, 0 removed"
    second = splits_of(ws)
    assert {sha: second[sha] for sha in first} == first
    assert len(second) == len(first) + 9
    m = manifest(ws, "1.1.0")
    assert m["parent"] == "1.0.0"
    card = (ws / "releases" / "v1.1.0" / "README.md").read_text()
    assert "Changes since v1.0.0:" in card and "- Images added: 9" in card


def test_relabel_only_is_a_patch(ws: Path, tmp_path: Path) -> None:
    build(ws)
    row = next(r for r in manifest(ws, "1.0.0")["rows"] if r["label"] == "alopecia")
    csv = tmp_path / "labels.csv"
    csv.write_text(f"sha256,label,annotator\n{row['sha256']},psoriasis,alice\n")
    assert run_cli("label", "--import", str(csv), workspace=ws).exit_code == 0
    result = build(ws)
    assert (result.version, result.bump.kind) == ("1.0.1", "patch")
    assert result.bump.reason == "1 image(s) relabelled"
    relabelled = next(r for r in manifest(ws, "1.0.1")["rows"] if r["sha256"] == row["sha256"])
    assert (relabelled["label"], relabelled["split"]) == ("psoriasis", row["split"])


def test_class_set_change_is_major(ws: Path) -> None:
    build(ws)
    toml = ws / "curator.toml"
    toml.write_text(
        toml.read_text().replace(
            'classes = ["alopecia", "psoriasis", "folliculitis"]',
            'classes = ["alopecia", "psoriasis", "folliculitis", "healthy"]',
        )
    )
    result = build(ws)
    assert (result.version, result.bump.kind) == ("2.0.0", "major")
    assert result.bump.reason == "class set changed: added healthy"
    assert manifest(ws, "2.0.0")["classes"] == [*CLASSES, "healthy"]


def test_settings_change_is_a_patch(ws: Path) -> None:
    build(ws)
    with (ws / "curator.toml").open("a") as fh:
        fh.write('\n[[sources]]\nprefix = "local"\nlicense = "cc-by-4.0"\nattribution = "The lab"\n')
    result = build(ws)
    assert (result.version, result.bump.reason) == ("1.0.1", "settings changed: sources")
    card = (ws / "releases" / "v1.0.1" / "README.md").read_text()
    assert "| local | 19 | cc-by-4.0 | The lab | yes |" in card


def test_nothing_changed_is_refused(ws: Path) -> None:
    build(ws)
    before, dump = snapshot(ws), catalog_dump(ws)
    result = run_cli("release", workspace=ws)
    assert result.exit_code == 1
    assert result.stderr.strip() == "Error: nothing changed since v1.0.0; no release built"
    assert snapshot(ws) == before and catalog_dump(ws) == dump


def test_restricted_source_is_refused_without_the_flag(ws: Path) -> None:
    with (ws / "curator.toml").open("a") as fh:
        fh.write('\n[[sources]]\nprefix = "local"\nlicense = "cc-by-nd-4.0"\nredistributable = false\n')
    before, dump = snapshot(ws), catalog_dump(ws)
    result = run_cli("release", workspace=ws)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        "Error: 19 image(s) come from sources marked redistributable = false: local (19)"
    )
    assert snapshot(ws) == before and catalog_dump(ws) == dump
    result = run_cli("release", "--include-restricted", workspace=ws)
    assert result.exit_code == 0, result.output
    assert manifest(ws, "1.0.0")["include_restricted"] is True
    assert "built with `--include-restricted`" in (ws / "releases" / "v1.0.0" / "README.md").read_text()


def test_unknown_licence_is_a_warning(ws: Path) -> None:
    result = run_cli("release", "--dry-run", workspace=ws)
    assert "Warning: 19 image(s) come from sources with no known licence: local (19)" in result.stderr


def test_failed_build_leaves_no_folder_and_an_unchanged_catalog(ws: Path) -> None:
    conn = sqlite3.connect(ws / "catalog.sqlite")
    sha = conn.execute("SELECT sha256 FROM images ORDER BY sha256 LIMIT 1").fetchone()[0]
    conn.close()
    obj = ws / "objects" / sha[:2] / sha
    obj.unlink()
    before, dump = snapshot(ws), catalog_dump(ws)
    result = run_cli("release", workspace=ws)
    assert result.exit_code == 1
    assert result.stderr.strip() == (
        f"Error: {obj}: original bytes are missing or unreadable (No such file or directory)"
    )
    assert snapshot(ws) == before and catalog_dump(ws) == dump
    assert list((ws / "releases").iterdir()) == []  # not even a temp folder


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (
            ["--version", "1.2"],
            5,
            "Error: version '1.2' is not a semantic version (expected X.Y.Z, e.g. 1.2.0)",
        ),
        (
            ["--version", "v1.0.0-rc1"],
            5,
            "Error: version 'v1.0.0-rc1' is not a semantic version (expected X.Y.Z, e.g. 1.2.0)",
        ),
    ],
)
def test_bad_version_is_refused(ws: Path, args: list[str], code: int, line: str) -> None:
    before = snapshot(ws)
    result = run_cli("release", *args, workspace=ws)
    assert result.exit_code == code
    assert result.stderr.strip() == line
    assert snapshot(ws) == before


def test_explicit_version_must_be_new(ws: Path) -> None:
    result = run_cli("release", "--version", "2.5.0", workspace=ws)
    assert result.exit_code == 0, result.output
    assert (ws / "releases" / "v2.5.0").is_dir()
    with (ws / "curator.toml").open("a") as fh:
        fh.write('\n[[sources]]\nprefix = "local"\nlicense = "cc0-1.0"\n')
    for version, line in [
        ("2.5.0", "Error: release v2.5.0 already exists; built releases never change"),
        ("2.4.9", "Error: version 2.4.9 is not newer than the last release v2.5.0"),
    ]:
        before = snapshot(ws)
        result = run_cli("release", "--version", version, workspace=ws)
        assert result.exit_code == 1
        assert result.stderr.strip() == line
        assert snapshot(ws) == before


def test_no_labelled_images_is_refused(tmp_path: Path) -> None:
    ws = tmp_path / "empty"
    assert run_cli("init", "scalp", "--classes", ",".join(CLASSES), workspace=ws).exit_code == 0
    write_images(tmp_path / "raw", {"unsorted": 3}, 0)
    assert run_cli("ingest", str(tmp_path / "raw"), workspace=ws).exit_code == 0
    before, dump = snapshot(ws), catalog_dump(ws)
    result = run_cli("release", workspace=ws)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "Error: no labelled images to release"
    assert snapshot(ws) == before and catalog_dump(ws) == dump


def test_shards_stay_under_the_size_bound(ws: Path, tmp_path: Path) -> None:
    from datasets import load_dataset

    result = build(ws, max_shard_bytes=30_000)
    m = manifest(ws, result.version)
    train = sorted(name for name in m["files"] if name.startswith("data/train-"))
    assert len(train) > 1
    assert train[0] == f"data/train-00000-of-{len(train):05d}.parquet"
    loaded = load_dataset(str(ws / "releases" / "v1.0.0"), cache_dir=str(tmp_path / "cache"))
    assert loaded["train"].num_rows == m["splits"]["train"]["rows"]


def test_cluster_members_stay_out(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, {"alopecia": 4, "psoriasis": 4, "folliculitis": 4})
    # a smaller re-encoded copy of one alopecia photo joins its cluster as a member
    photo = synthetic.photo(0, "alopecia", (80, 80)).resize((72, 72))
    (tmp_path / "copy" / "alopecia").mkdir(parents=True)
    (tmp_path / "copy" / "alopecia" / "copy.png").write_bytes(synthetic.encode(photo, "PNG"))
    ingest_labelled(ws, tmp_path / "copy")
    build(ws)
    m = manifest(ws, "1.0.0")
    assert len(m["cluster_members"]) == 1
    member = m["cluster_members"][0]
    assert member["sha256"] not in {r["sha256"] for r in m["rows"]}
    assert member["representative"] in {r["sha256"] for r in m["rows"]}


def test_list_and_resolve_versions(ws: Path, tmp_path: Path) -> None:
    build(ws)
    opened = open_workspace(ws)
    try:
        assert [r.version for r in released.list_releases(opened)] == ["1.0.0"]
        assert released.resolve_version(opened, None) == "1.0.0"
        assert released.resolve_version(opened, "v1.0.0") == "1.0.0"
        loaded = released.load(opened, "1.0.0", tmp_path / "cache")
        assert sum(loaded[s].num_rows for s in loaded) == len(manifest(ws, "1.0.0")["rows"])
        expected = r"no release v9\.0\.0 in this workspace \(built: v1\.0\.0\)"
        with pytest.raises(InputError, match=expected):
            released.resolve_version(opened, "9.0.0")
    finally:
        opened.close()


def test_shard_plan_bounds() -> None:
    assert release.shard_plan([10, 10, 10], 25) == [(0, 2), (2, 3)]
    assert release.shard_plan([40, 5], 25) == [(0, 1), (1, 2)]
    assert release.shard_plan([], 25) == []


def set_dedup(toml: Path, body: str) -> None:
    """Replace the [dedup] table of ``toml`` with ``body``."""
    text = toml.read_text()
    start = text.index("[dedup]\n")
    end = text.index("\n[", start + 1)
    toml.write_text(text[:start] + "[dedup]\n" + body + "\n" + text[end:])


def _direct_hashes(img: Image.Image) -> tuple[int, ...]:
    """The hashes a direct match compares (curator.match): every flip and quarter turn."""
    hashes = hashing.perceptual_hashes(hashing.normalize(img))
    return tuple(hashes[name] for name in hashing.DIHEDRAL)


def test_a_near_duplicate_across_splits_fails_the_build(tmp_path: Path) -> None:
    """Copies that dedup did not cluster (threshold 0 at ingest) are caught by the check after writing."""
    from PIL import ImageDraw

    ws = tmp_path / "ws"
    assert run_cli("init", "scalp", "--classes", ",".join(CLASSES), workspace=ws).exit_code == 0
    toml = ws / "curator.toml"
    set_dedup(toml, "threshold = 0\ncandidate_threshold = 0\nconfirm = false")
    with toml.open("a") as fh:
        fh.write(CHEAP_PREPROCESS)
    write_images(tmp_path / "in", {"alopecia": 4, "psoriasis": 4, "folliculitis": 4}, 100)
    base = synthetic.photo(0, "alopecia", (96, 96))
    (tmp_path / "in" / "alopecia" / "base.png").write_bytes(synthetic.encode(base, "PNG"))
    # Ten marked copies 1-6 bits from the original whose direct hashes all differ: separate clusters
    # at threshold 0 whatever the ingest order, so the (sha-keyed) split is fixed, and 11 near copies
    # of one photo among 15 alopecia clusters cannot all land in train.
    seen = set(_direct_hashes(base))
    chosen = 0
    for x, y in ((x, y) for x in range(0, 90, 6) for y in range(0, 90, 6)):
        copy = base.copy()
        ImageDraw.Draw(copy).rectangle([x, y, x + 10, y + 10], fill=(200, 50, 50))
        views = _direct_hashes(copy)
        if seen & set(views) or not 1 <= hashing.hamming(views[0], _direct_hashes(base)[0]) <= 6:
            continue
        seen |= set(views)
        (tmp_path / "in" / "alopecia" / f"copy{chosen}.png").write_bytes(synthetic.encode(copy, "PNG"))
        chosen += 1
        if chosen == 10:
            break
    assert chosen == 10
    ingest_labelled(ws, tmp_path / "in")
    conn = sqlite3.connect(ws / "catalog.sqlite")
    clusters = conn.execute("SELECT COUNT(DISTINCT cluster_id) FROM images").fetchone()[0]
    conn.close()
    assert clusters == 23, "precondition: every copy is its own cluster at threshold 0"
    set_dedup(toml, "threshold = 10\ncandidate_threshold = 12\nconfirm = false")
    before, dump = snapshot(ws), catalog_dump(ws)
    result = run_cli("release", workspace=ws)
    assert result.exit_code == 1
    error, hint = result.stderr.strip().splitlines()
    assert re.fullmatch(
        r"Error: \d+ duplicate pair\(s\) cross splits, e\.g\. (train|validation)\[\d+\] local:\S+ ~ "
        r"(validation|test)\[\d+\] local:\S+ \(near via phash\S*, hash, distance [2-9]\); release not built",
        error,
    ), error
    assert hint == "Hint: exclude one image of each pair (curator label), or re-cluster with curator dups"
    assert snapshot(ws) == before and catalog_dump(ws) == dump
    assert list((ws / "releases").iterdir()) == []


def test_licence_rules_longest_prefix_wins() -> None:
    from curator import licences
    from curator.config import SourceRule

    rules = (
        SourceRule("atlas.example", "cc-by-4.0", "Atlas"),
        SourceRule("https://atlas.example/restricted/", "", "Atlas", redistributable=False),
        SourceRule("local", "cc0-1.0"),
    )
    open_ = licences.describe_source("https://img.atlas.example/a.jpg", "url", rules)
    assert (open_.domain, open_.license, open_.redistributable) == ("img.atlas.example", "cc-by-4.0", True)
    closed = licences.describe_source("https://atlas.example/restricted/b.jpg", "url", rules)
    assert (closed.license, closed.redistributable) == ("", False)
    local = licences.describe_source("/home/me/photos/c.png", "file", rules)
    assert (local.url, local.domain, local.license) == ("local:c.png", "local", "cc0-1.0")
    other = licences.describe_source("https://notatlas.example/d.jpg", "url", rules)
    assert (other.domain, other.license) == ("notatlas.example", "")
    assert licences.check([open_, local], include_restricted=False) == []
    assert licences.check([other], include_restricted=False) == [
        "1 image(s) come from sources with no known licence: notatlas.example (1)"
    ]


def test_a_new_larger_representative_keeps_its_clusters_split(ws: Path, tmp_path: Path) -> None:
    build(ws)
    old = manifest(ws, "1.0.0")
    first = next(r for r in old["rows"] if r["augmented_from"] is None and r["split"] != "train")
    # the same photo, larger: it joins the cluster and becomes its representative (largest area)
    seed = int(re.fullmatch(r"local:img(\d+)\.jpg", first["source_url"]).group(1))  # type: ignore[union-attr]
    label = first["label"]
    (tmp_path / "bigger" / label).mkdir(parents=True)
    bigger = synthetic.photo(seed, label, (80, 80)).resize((120, 120))
    (tmp_path / "bigger" / label / "bigger.png").write_bytes(synthetic.encode(bigger, "PNG"))
    ingest_labelled(ws, tmp_path / "bigger")
    result = build(ws)
    assert result.bump.reason == "1 image(s) added, 1 removed"
    new = manifest(ws, result.version)
    replacement = next(r for r in new["rows"] if r["cluster_id"] == first["cluster_id"])
    assert replacement["sha256"] != first["sha256"]
    assert (replacement["split"], replacement["label"]) == (first["split"], label)
    assert {"sha256": first["sha256"], "cluster_id": first["cluster_id"],
            "representative": replacement["sha256"]} in new["cluster_members"]


def test_class_weights_are_recorded_without_synthetic_rows(ws: Path) -> None:
    toml = ws / "curator.toml"
    toml.write_text(toml.read_text().replace('method = "oversample"', 'method = "class-weights"'))
    build(ws)
    m = manifest(ws, "1.0.0")
    assert m["balance"]["method"] == "class-weights"
    assert set(m["balance"]["class_weights"]) == set(CLASSES)
    assert all(r["augmented_from"] is None for r in m["rows"])
    assert "class weights for training are recorded" in (ws / "releases" / "v1.0.0" / "README.md").read_text()
