"""`curator demo` runs every stage offline and leaves a loadable published release."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import run_cli

# Keras 3.15 converts its variables with np.array(copy=False) semantics that numpy 2 flags.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning")


@pytest.mark.slow
def test_demo_runs_every_stage(tmp_path: Path) -> None:
    folder = tmp_path / "demo"
    result = run_cli("--json", "demo", str(folder), "--per-class", "10", "--epochs", "2")
    assert result.exit_code == 0, result.stderr
    stages = json.loads(result.stdout)["stages"]
    assert [s["stage"] for s in stages] == ["generate", "ingest", "label", "release", "baseline", "publish"]
    summaries = {s["stage"]: s["summary"] for s in stages}
    assert "38 files: 30 stored, 3 exact and 3 near duplicates" in summaries["ingest"]
    assert "rejected: 1 not-an-image, 1 too-small" in summaries["ingest"]
    assert summaries["label"] == "33 folder-name hints became labels"
    published = folder / "published" / "v1.0.0"
    manifest = json.loads((published / "manifest.json").read_text())
    assert sum(s["originals"] for s in manifest["splits"].values()) == 30
    assert (published / "baseline.json").is_file()
    assert "30 rows" in summaries["publish"]


def test_demo_refuses_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    result = run_cli("demo", str(tmp_path))
    assert result.exit_code == 5
    assert result.stderr.strip() == (
        f"Error: {tmp_path}: folder is not empty; the demo needs a new or empty folder"
    )
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
