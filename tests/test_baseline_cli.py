"""``curator baseline`` through the CLI: bad input (one line, nothing written), a Hub revision
served by the local Hub server, and the whole path init -> ingest -> label -> release -> baseline
with a planted worse release tripping the gate."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from baseline import data
from curator import synthetic
from curator.errors import EXIT_GATE, BaselineError
from curator.workspace import Workspace, init_workspace, open_workspace
from tests import hub_fixtures
from tests.conftest import CLASSES, run_cli, snapshot
from tests.hub_fixtures import TEST_TOKEN
from tests.hubserver import HubServer
from tests.releases import baseline_release, manifest, released_workspace

hub_server = hub_fixtures.hub_server  # pytest fixtures, shared with the other Hub tests
hub_env = hub_fixtures.hub_env

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")

FAST = ["--image-size", "64", "--epochs", "12", "--batch-size", "8", "--patience", "4", "--bootstrap", "200",
        "--cv", "3", "--cv-repeats", "1"]
CLI = [sys.executable, "-c", "from curator.cli import main; main()"]


SMALL = {"alopecia": 8, "psoriasis": 8, "folliculitis": 8}


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with a real release v1.0.0 of 24 generated photos, built once for this file."""
    return released_workspace(tmp_path_factory.mktemp("built"), SMALL)


@pytest.fixture
def released(built: Path, tmp_path: Path) -> Iterator[Workspace]:
    """A copy of ``built`` for one test."""
    shutil.copytree(built, tmp_path / "ws")
    ws = open_workspace(tmp_path / "ws")
    yield ws
    ws.close()


def _clusters(ws: Path, label: str) -> int:
    """Distinct clusters of ``label`` in train and validation originals (what --cv K is checked against)."""
    rows = manifest(ws, "1.0.0")["rows"]
    return len({r["cluster_id"] for r in rows if r["label"] == label and r["split"] != "test"
                and r["augmented_from"] is None})


@pytest.mark.parametrize(("args", "code", "line"), [
    (["v9.9.9"], 5, "Error: no release v9.9.9 in this workspace (built: v1.0.0)"),
    (["--fail-under", "accuracy"], 5,
     "Error: --fail-under 'accuracy': expected METRIC=VALUE, e.g. --fail-under accuracy=0.8"),
    (["--max-drop", "f1=0.1"], 5,
     "Error: --max-drop 'f1=0.1': unknown metric 'f1' (use accuracy, balanced_accuracy, macro_f1, "
     "validation.<score>, cv.<score>, train_accuracy)"),
    (["--cv-repeats", "0"], 5, "Error: --cv-repeats 0: must be at least 1"),
    (["--cv", "0", "--fail-under", "cv.accuracy=0.5"], 5,
     "Error: --cv 0 (or baseline.cv_folds = 0) turns off cross-validation, which a cv.* threshold needs"),
    (["--fail-under", "accuracy=1.5"], 5,
     "Error: --fail-under 'accuracy=1.5': the value must be between 0 and 1"),
    (["--revision", "v1.0.0"], 5, "Error: --revision v1.0.0: needs a Hub repo (ns/name)"),
    (["--repo", "lab/scalp"], 5,
     "Error: --repo lab/scalp: needs a revision (a tag such as v1.0.0, or a commit)"),
    (["v1.0.0", "--repo", "lab/scalp", "--revision", "v1.0.0"], 5,
     "Error: --repo lab/scalp: give either it or a VERSION (v1.0.0), not both"),
    (["--epochs", "0"], 5, "Error: --epochs 0: must be at least 1"),
    (["--seed", "-1"], 5, "Error: --seed -1: must be 0 or more"),
    (["--image-size", "8"], 5, "Error: --image-size 8: must be at least 16 (four 2x poolings)"),
    (["--cv", "1"], 5, "Error: --cv 1: needs at least 2 folds"),
    (["--cv", "20"], 5,
     "Error: --cv 20: class 'alopecia' has only {n} clusters in train+validation; use {n} folds or fewer"),
])
def test_bad_input_is_one_line_and_writes_nothing(released: Workspace, args: list[str], code: int,
                                                  line: str) -> None:
    before = snapshot(released.root)
    result = run_cli("baseline", *args, workspace=released.root)
    assert result.exit_code == code, result.output
    assert result.stderr.splitlines()[0] == line.format(n=_clusters(released.root, "alopecia"))
    assert snapshot(released.root) == before


def test_class_missing_from_test_split(tmp_path: Path) -> None:
    ws = released_workspace(tmp_path, {**SMALL, "folliculitis": 1})
    assert {r["split"] for r in manifest(ws, "1.0.0")["rows"] if r["label"] == "folliculitis"} == {"train"}
    before = snapshot(ws)
    result = run_cli("baseline", *FAST, workspace=ws)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: release v1.0.0: class 'folliculitis' has no rows in the test split",
        "Hint: a baseline scores every class; label more images of it and build a new release",
    ]
    assert snapshot(ws) == before


def test_a_data_file_changed_after_the_build_is_one_line_naming_it(released: Workspace) -> None:
    shard = released.releases / "v1.0.0/data/train-00000-of-00001.parquet"
    shard.write_bytes(shard.read_bytes()[:-1] + b"!")
    before = snapshot(released.root)
    result = run_cli("baseline", *FAST, workspace=released.root)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: {shard}: changed since v1.0.0 was built (its size or SHA-256 is not the one "
        "manifest.json lists)")
    assert snapshot(released.root) == before


def test_unreadable_image_is_one_line(released: Workspace, tmp_path: Path) -> None:
    """A parquet whose image cell is no image (a Hub revision is read without a local manifest check)."""
    import datasets

    folder = released.releases / "v1.0.0"
    shard = folder / "data/train-00000-of-00001.parquet"
    table = datasets.Dataset.from_parquet(str(shard), cache_dir=str(tmp_path / "cache"))
    table = table.cast_column("image", datasets.Image(decode=False))
    columns = table.to_dict()
    columns["image"][3] = {"bytes": b"this is not an image", "path": None}
    datasets.Dataset.from_dict(columns, features=table.features).to_parquet(str(shard))
    with pytest.raises(BaselineError) as err:
        data.load_folder(folder, 64, "v1.0.0", cache_dir=tmp_path / "cache")
    assert str(err.value) == (f"release v1.0.0: train split: row 3 (sha256 {columns['sha256'][3][:12]}) "
                              "is not a readable image")


def test_card_without_baseline_section(released: Workspace) -> None:
    (released.releases / "v1.0.0/README.md").write_text("---\nlicense: other\n---\n# hand-edited card\n")
    ws = released
    before = snapshot(ws.root)
    result = run_cli("baseline", *FAST, workspace=ws.root)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: release v1.0.0: README.md has no single baseline section between "
        "'<!-- baseline:start -->' and '<!-- baseline:end -->'"]
    assert snapshot(ws.root) == before


@pytest.mark.parametrize(("toml", "line"), [
    ("[baseline]\nimage_size = 8\n", "Error: curator.toml: 'baseline.image_size' must be at least 16"),
    ("[baseline]\nlayers = 5\n", "Error: curator.toml: unknown key 'baseline.layers'"),
    ("[baseline]\ncv_folds = 1\n", "Error: curator.toml: 'baseline.cv_folds' must be 0 (off) or at least 2"),
])
def test_bad_baseline_settings_name_the_key(released: Workspace, toml: str, line: str) -> None:
    with (released.root / "curator.toml").open("a", encoding="utf-8") as fh:
        fh.write(toml)
    before = snapshot(released.root)
    result = run_cli("baseline", workspace=released.root)
    assert result.exit_code == 4
    assert result.stderr.splitlines() == [line]
    assert snapshot(released.root) == before


def test_unusable_backend_is_one_line(released: Workspace) -> None:
    before = snapshot(released.root)
    env = {**os.environ, "KERAS_BACKEND": "nonexistent"}
    done = subprocess.run([*CLI, "--workspace", str(released.root), "baseline"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert done.stderr.splitlines()[0].startswith(
        "Error: KERAS_BACKEND=nonexistent: keras cannot load this backend (")
    assert snapshot(released.root) == before


def test_no_release_yet(workspace: Workspace) -> None:
    result = run_cli("baseline", workspace=workspace.root)
    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "Error: no release has been built yet"


# ------------------------------------------------------------------ a revision on the (local) Hub


def _serve_release(server: HubServer, folder: Path, repo: str = "lab/scalp", tag: str = "v1.0.0") -> str:
    from huggingface_hub import HfApi

    server.create_repo(repo)
    files = {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    oid = server.commit(repo, add=files, message=f"release {tag}")
    HfApi(endpoint=server.url, token=TEST_TOKEN).create_tag(repo, tag=tag, revision=oid, repo_type="dataset")
    return oid


def _curator(env: dict[str, str], ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    # huggingface_hub and datasets read HF_ENDPOINT at import time: a subprocess gets the test server
    return subprocess.run([*CLI, "--workspace", str(ws), *args], env=env, capture_output=True, text=True,
                          timeout=300)


@pytest.mark.slow
def test_scores_a_hub_revision(tmp_path: Path, hub_server: HubServer, hub_env: dict[str, str]) -> None:
    source = baseline_release(tmp_path / "source")
    oid = _serve_release(hub_server, source / "releases/v1.0.0")
    ws = init_workspace(tmp_path / "ws", "scalp-test", list(CLASSES))
    ws.close()
    before = snapshot(ws.root)
    done = _curator(hub_env, ws.root, "--json", "baseline", "--repo", "lab/scalp", "--revision", "v1.0.0",
                    *FAST)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["version"] == "lab/scalp@v1.0.0"
    assert result["source"] == {"kind": "hub", "repo": "lab/scalp", "revision": "v1.0.0", "commit": oid}
    assert result["metrics"]["test"]["rows"] == manifest(source, "1.0.0")["splits"]["test"]["rows"]
    assert result["metrics"]["test"]["accuracy"]["value"] >= 0.75
    assert result["files"] == []
    # only the catalog changed: no baseline.json or card for a Hub revision, no cache in the workspace
    after = snapshot(ws.root)
    assert {k for k in after if after[k] != before.get(k)} <= {"catalog.sqlite"}
    assert set(after) == set(before)
    import sqlite3

    rows = sqlite3.connect(ws.root / "catalog.sqlite").execute("SELECT version FROM baselines").fetchall()
    assert rows == [("lab/scalp@v1.0.0",)]


@pytest.mark.slow
def test_hub_bad_revisions_are_one_line(tmp_path: Path, hub_server: HubServer,
                                        hub_env: dict[str, str]) -> None:
    _serve_release(hub_server, released_workspace(tmp_path / "source", SMALL) / "releases/v1.0.0")
    ws = init_workspace(tmp_path / "ws", "scalp-test", list(CLASSES))
    ws.close()
    before = snapshot(ws.root)
    cases = [
        (hub_env, ["--repo", "lab/scalp", "--revision", "v9.9.9"],
         f"Error: lab/scalp@v9.9.9: no revision 'v9.9.9' in lab/scalp on {hub_server.url}"),
        (hub_env, ["--repo", "lab/nothing", "--revision", "v1.0.0"],
         f"Error: lab/nothing@v1.0.0: no dataset repo 'lab/nothing' on {hub_server.url}"),
        ({**hub_env, "HF_ENDPOINT": "http://127.0.0.1:9"}, ["--repo", "lab/scalp", "--revision", "v1.0.0"],
         "Error: lab/scalp@v1.0.0: cannot reach the Hub at http://127.0.0.1:9 (ConnectError)"),
    ]
    for env, args, line in cases:
        done = _curator(env, ws.root, "baseline", *args)
        assert done.returncode == 1, done.stderr
        assert done.stderr.splitlines()[0] == line
    assert snapshot(ws.root) == before


# ------------------------------------------------------------------ the whole path, and the gate


def _photos(folder: Path, count: int, seed: int, shift: int = 0) -> Path:
    """``count`` generated photos per class in folder/<class>/; with ``shift`` each class folder
    holds the pattern of another class (wrongly labelled images)."""
    for c, name in enumerate(CLASSES):
        (folder / name).mkdir(parents=True, exist_ok=True)
        pattern = CLASSES[(c + shift) % len(CLASSES)]
        for i in range(count):
            image = synthetic.photo(seed + 1000 * c + i, pattern, size=(96, 96))
            (folder / name / f"{seed}-{i}.png").write_bytes(synthetic.encode(image, "PNG"))
    return folder


def _ok(*args: str, ws: Path) -> None:
    result = run_cli(*args, workspace=ws)
    assert result.exit_code == 0, (args, result.output)


@pytest.mark.slow
def test_end_to_end_and_a_planted_worse_release_fails_the_gate(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    _ok("init", "scalp-e2e", "--classes", ",".join(CLASSES), ws=ws)
    with (ws / "curator.toml").open("a", encoding="utf-8") as fh:  # keep the release build quick
        fh.write('\n[preprocess]\nsteps = [{op = "resize", size = 64, mode = "longest"}]\n')
    _ok("ingest", str(_photos(tmp_path / "good", 30, seed=0)), "--hint-from-folder", ws=ws)
    _ok("label", "--accept-hints", ws=ws)
    _ok("release", ws=ws)
    folder = ws / "releases" / "v1.0.0"
    data_before = {p: p.read_bytes() for p in [*folder.glob("data/*"), folder / "manifest.json"]}

    result = run_cli("--json", "baseline", *FAST, workspace=ws)
    assert result.exit_code == 0, result.output
    good = json.loads(result.stdout)
    assert good["version"] == "1.0.0" and good["metrics"]["test"]["accuracy"]["value"] >= 0.75
    assert sorted(good["files"]) == ["releases/v1.0.0/README.md", "releases/v1.0.0/baseline.json",
                                     "releases/v1.0.0/baseline/confusion_matrix.png",
                                     "releases/v1.0.0/baseline/training_curves.png"]
    assert {p: p.read_bytes() for p in data_before} == data_before

    # v1.1.0 adds images whose folders (and so labels) name the wrong class: a worse dataset
    _ok("ingest", str(_photos(tmp_path / "wrong", 15, seed=50_000, shift=1)), "--hint-from-folder", ws=ws)
    _ok("label", "--accept-hints", ws=ws)
    _ok("release", ws=ws)
    result = run_cli("baseline", "v1.1.0", *FAST, "--max-drop", "accuracy=0.1", workspace=ws)
    assert result.exit_code == EXIT_GATE, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1
    assert errors[0].startswith("Error: gate failed: test.accuracy dropped by ")
    assert errors[0].endswith(", more than --max-drop test.accuracy=0.1")
    assert "(v1.0.0: " in errors[0] and "the noise)" in errors[0]
    # the score itself is valid and recorded; only the verdict fails
    worse = json.loads((ws / "releases" / "v1.1.0" / "baseline.json").read_text(encoding="utf-8"))
    assert worse["comparison"]["previous"] == "v1.0.0"
    assert worse["comparison"]["deltas"]["test.accuracy"] < -0.1
    assert worse["format"] == 2 and worse["headline"]["basis"] == "cv"
    assert set(worse["comparison"]["noise"]) >= {"test.accuracy", "cv.accuracy"}
