"""``curator diff`` between releases and ``curator audit`` on any dataset folder."""

from __future__ import annotations

import ast
import hashlib
import io
import json
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from curator import synthetic
from curator.diff import compare
from curator.released import Manifest
from tests.conftest import CLASSES, run_cli, snapshot
from tests.test_release import build, ingest_labelled, make_workspace, write_images


def _manifest(version: str, rows: list[tuple[str, str, str]], classes: list[str] = CLASSES) -> Manifest:
    """Only what compare reads: the version, the classes and the rows (one augmented copy among them)."""
    listed = [{"sha256": sha, "label": label, "split": split, "augmented_from": None}
              for sha, label, split in rows]
    listed.append({"sha256": "aug", "label": "alopecia", "split": "train", "augmented_from": "a"})
    return Manifest(version=version, name="scalp-test", parent=None, created_at="", classes=classes,
                    splits={}, files={}, rows=listed, cluster_members=[], balance={}, config={}, versions={},
                    bump={}, include_restricted=False)


def test_compare_reports_every_kind_of_change() -> None:
    old = _manifest(
        "1.0.0", [("a", "alopecia", "train"), ("b", "psoriasis", "test"), ("c", "alopecia", "test")]
    )
    new = _manifest(
        "1.1.0", [("a", "psoriasis", "train"), ("b", "psoriasis", "train"), ("d", "alopecia", "test")],
        classes=[*CLASSES, "healthy"],
    )
    d = compare(old, new)
    assert d.counts() == {"added": 1, "removed": 1, "relabelled": 1, "moved": 1}
    assert d.added == [{"sha256": "d", "label": "alopecia", "split": "test"}]
    assert d.removed == [{"sha256": "c", "label": "alopecia", "split": "test"}]
    assert d.relabelled == [{"sha256": "a", "old": "alopecia", "new": "psoriasis", "split": "train"}]
    assert d.moved == [{"sha256": "b", "old": "test", "new": "train", "label": "psoriasis"}]
    assert d.classes_added == ["healthy"] and not d.empty
    assert compare(new, new).empty


@pytest.fixture
def two_releases(tmp_path: Path) -> Path:
    ws = make_workspace(tmp_path, {"alopecia": 5, "psoriasis": 5, "folliculitis": 5})
    build(ws)
    write_images(tmp_path / "more", {"alopecia": 2, "psoriasis": 1}, first_seed=700)
    ingest_labelled(ws, tmp_path / "more")
    build(ws)
    return ws


def test_diff_after_adding_images(two_releases: Path) -> None:
    ws = two_releases
    result = run_cli("diff", "v1.0.0", "1.1.0", workspace=ws)
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[0] == (
        "v1.0.0 -> v1.1.0: 3 added, 0 removed, 0 relabelled, 0 moved between splits"
    )
    assert sum(line.startswith("+ ") for line in result.stdout.splitlines()) == 3
    as_json = json.loads(run_cli("--json", "diff", "v1.0.0", "v1.1.0", workspace=ws).stdout)
    assert as_json["counts"] == {"added": 3, "removed": 0, "relabelled": 0, "moved": 0}
    assert sorted(r["label"] for r in as_json["added"]) == ["alopecia", "alopecia", "psoriasis"]

    # a tampered manifest is refused, naming it: the catalog recorded another SHA-256
    path = ws / "releases" / "v1.1.0" / "manifest.json"
    manifest = json.loads(path.read_text())
    row = next(r for r in manifest["rows"] if r["split"] == "test")
    row["split"] = "train"
    path.write_text(json.dumps(manifest))
    result = run_cli("diff", "v1.0.0", "v1.1.0", workspace=ws)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {path}: changed since v1.1.0 was built (its SHA-256 is not the one the catalog recorded)")
    # a release whose recorded manifest moves an image (a build that broke the promise) is shown loudly
    conn = sqlite3.connect(ws / "catalog.sqlite")
    with conn:
        conn.execute("UPDATE releases SET manifest_sha256 = ? WHERE version = '1.1.0'",
                     (hashlib.sha256(path.read_bytes()).hexdigest(),))
    conn.close()
    result = run_cli("diff", "v1.0.0", "v1.1.0", workspace=ws)
    assert result.exit_code == 1
    assert f"! {row['sha256']}  MOVED test -> train" in result.stdout
    assert "Warning: 1 image(s) MOVED between splits" in result.stderr


@pytest.mark.parametrize(
    ("args", "code", "line"),
    [
        (["v1.0.0", "v9.9.9"], 5, "Error: no release v9.9.9 in this workspace (built: v1.0.0)"),
        (["latest", "v1.0.0"], 5,
         "Error: version 'latest' is not a semantic version (expected X.Y.Z, e.g. 1.2.0)"),
    ],
)
def test_diff_bad_versions(tmp_path: Path, args: list[str], code: int, line: str) -> None:
    ws = make_workspace(tmp_path, {"alopecia": 3, "psoriasis": 3, "folliculitis": 3})
    build(ws)
    before = snapshot(ws)
    result = run_cli("diff", *args, workspace=ws)
    assert result.exit_code == code
    assert result.stderr.strip() == line
    assert snapshot(ws) == before


def _photo(seed: int) -> Image.Image:
    return synthetic.photo(seed, seed % 3, (96, 96))


def _planted_parquet_folder(root: Path) -> Path:
    """train: photos 0-3; test: a re-encoded, resized copy of 0 (near), an exact copy of 1, photo 9."""
    from datasets import ClassLabel, Dataset, Features, Value
    from datasets import Image as ImageFeature

    features = Features(
        {"image": ImageFeature(), "label": ClassLabel(names=CLASSES), "note": Value("string")}
    )

    def write(split: str, images: list[bytes], notes: list[str]) -> None:
        data = {"image": [{"bytes": b, "path": None} for b in images],
                "label": [i % 3 for i in range(len(images))], "note": notes}
        target = root / "data" / f"{split}-00000-of-00001.parquet"
        Dataset.from_dict(data, features=features).to_parquet(str(target))

    (root / "data").mkdir(parents=True)
    train = [synthetic.encode(_photo(s), "PNG") for s in range(4)]
    write("train", train, ["0", "1", "2", "3"])
    near = synthetic.encode(_photo(0).crop((2, 2, 94, 94)).resize((88, 88)), "JPEG", quality=80)
    write("test", [near, train[1], synthetic.encode(_photo(9), "PNG")], ["near 0", "exact 1", "new"])
    return root


def test_audit_finds_planted_leaks(tmp_path: Path) -> None:
    folder = _planted_parquet_folder(tmp_path / "planted")
    result = run_cli("--json", "audit", str(folder), "--threshold", "10")
    assert result.exit_code == 1
    report = json.loads(result.stdout)
    assert report["splits"] == {"train": 4, "test": 3}
    pairs = {(leak["a"]["row"], leak["b"]["row"], leak["kind"]) for leak in report["leaks"]}
    assert pairs == {(0, 0, "near"), (1, 1, "exact")}
    near = next(leak for leak in report["leaks"] if leak["kind"] == "near")
    assert 0 < near["distance"] <= 10 and near["view"] and near["confirmed_by"] in ("hash", "keypoints")
    exact = next(leak for leak in report["leaks"] if leak["kind"] == "exact")
    sha = hashlib.sha256(synthetic.encode(_photo(1), "PNG")).hexdigest()
    assert exact["a"] == {"split": "train", "row": 1, "path": None, "source_url": None, "sha256": sha}
    assert exact["b"] == {"split": "test", "row": 1, "path": None, "source_url": None, "sha256": sha}
    text = run_cli("audit", str(folder), "--threshold", "10")
    assert f"LEAK train[1] sha256:{sha} ~ test[1] sha256:{sha} (exact, distance 0)" in text.stdout
    assert text.stdout.strip().endswith("2 leaked pair(s)")


def test_audit_names_hub_rows_by_source_url_and_finds_flips(tmp_path: Path) -> None:
    """A Hub-style parquet folder with a source_url column: a vertically flipped, quarter-turned
    copy in another split is found, and both rows are named by their URLs."""
    from datasets import Dataset, Features, Value
    from datasets import Image as ImageFeature

    features = Features({"image": ImageFeature(), "source_url": Value("string")})
    base = _photo(3)
    splits = {
        "train": [(base, "https://atlas.example/a.jpg"), (_photo(4), "https://atlas.example/b.jpg")],
        "test": [(base.transpose(Image.Transpose.ROTATE_90).transpose(Image.Transpose.FLIP_TOP_BOTTOM),
                  "https://forum.example/c.jpg")],
    }  # fmt: skip
    (tmp_path / "data").mkdir()
    for split, rows in splits.items():
        data = {"image": [{"bytes": synthetic.encode(img, "JPEG"), "path": None} for img, _ in rows],
                "source_url": [url for _, url in rows]}  # fmt: skip
        target = tmp_path / "data" / f"{split}-00000-of-00001.parquet"
        Dataset.from_dict(data, features=features).to_parquet(str(target))
    result = run_cli("--json", "audit", str(tmp_path))
    assert result.exit_code == 1
    (leak,) = json.loads(result.stdout)["leaks"]
    assert (leak["a"]["source_url"], leak["b"]["source_url"]) == ("https://atlas.example/a.jpg",
                                                                  "https://forum.example/c.jpg")
    assert leak["kind"] == "near" and leak["view"] in ("phash_transpose", "phash_transverse")
    text = run_cli("audit", str(tmp_path)).stdout
    assert "LEAK train[0] https://atlas.example/a.jpg ~ test[0] https://forum.example/c.jpg (near via" in text


def test_audit_reads_an_image_folder_too(tmp_path: Path) -> None:
    root = tmp_path / "imagefolder"
    for split, seeds in (("train", [0, 1, 2]), ("test", [2, 5])):
        for seed in seeds:
            target = root / split / CLASSES[seed % 3]
            target.mkdir(parents=True, exist_ok=True)
            _photo(seed).save(target / f"{seed}.png")
    result = run_cli("--json", "audit", str(root))
    assert result.exit_code == 1
    leaks = json.loads(result.stdout)["leaks"]
    assert [(leak["kind"], leak["distance"]) for leak in leaks] == [("exact", 0)]
    # Both files are named, so a person can delete one.
    a, b = root / "train" / CLASSES[2] / "2.png", root / "test" / CLASSES[2] / "2.png"
    assert (leaks[0]["a"]["path"], leaks[0]["b"]["path"]) == (str(a), str(b))
    text = run_cli("audit", str(root))
    rows = leaks[0]["a"]["row"], leaks[0]["b"]["row"]
    assert f"LEAK train[{rows[0]}] {a} ~ test[{rows[1]}] {b} (exact, distance 0)" in text.stdout


def test_audit_finds_the_same_pixels_in_a_jpeg_and_its_png(tmp_path: Path) -> None:
    """A JPEG is hashed from its luma plane, the PNG of its decoded pixels from RGB: their pixel
    keys are compared all the same (audit.with_pixel_keys), and only theirs."""
    root = tmp_path / "imagefolder"
    for split in ("train", "test"):
        (root / split / CLASSES[0]).mkdir(parents=True)
    jpeg = synthetic.encode(synthetic.photo(4, 0, (1024, 768)), "JPEG", quality=90)  # decoded at 1/2
    (root / "train" / CLASSES[0] / "a.jpg").write_bytes(jpeg)
    Image.open(io.BytesIO(jpeg)).save(root / "test" / CLASSES[0] / "a.png")
    synthetic.photo(5, 0, (320, 240)).save(root / "test" / CLASSES[0] / "b.png")
    leaks = json.loads(run_cli("--json", "audit", str(root)).stdout)["leaks"]
    assert [(leak["kind"], Path(leak["b"]["path"]).name) for leak in leaks] == [("exact", "a.png")]


def test_audit_finds_nothing_in_a_release(two_releases: Path) -> None:
    for version in ("v1.0.0", "v1.1.0"):
        result = run_cli("audit", str(two_releases / "releases" / version), workspace=two_releases)
        assert result.exit_code == 0, result.output
        assert result.stdout.strip().endswith("0 leaked pair(s)")


def test_audit_bad_paths(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    result = run_cli("audit", str(missing))
    assert (result.exit_code, result.stderr.strip()) == (5, f"Error: {missing}: not a folder")
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_cli("audit", str(empty))
    assert result.exit_code == 5
    assert result.stderr.strip() == (
        f"Error: {empty}: datasets cannot load it (The directory at {empty} doesn't contain any data files)"
    )
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "notes.txt").write_text("hello\n")
    result = run_cli("audit", str(texts))
    assert result.exit_code == 5
    assert result.stderr.strip() == f"Error: {texts} (split train): no image column (columns: text)"
    assert sorted(p.name for p in texts.iterdir()) == ["notes.txt"]  # nothing written, no cache left


def test_readers_of_releases_do_not_import_the_build_side() -> None:
    """diff, audit, the card and baseline read releases through curator.released: no import of
    curator.release anywhere in them (lazy imports included), so no cycle back to the build side."""
    root = Path(__file__).resolve().parents[1]
    readers = [root / "curator/diff.py", root / "curator/audit.py", root / "curator/released.py",
               root / "baseline/data.py", root / "baseline/run.py",
               *sorted((root / "dataset_card").glob("*.py"))]
    found = []
    for path in readers:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = []
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            if "curator.release" in names:
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert found == []
