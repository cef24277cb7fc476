"""`curator status`: counts of images, clusters, duplicates, rejections and label hints."""

from __future__ import annotations

import json
from pathlib import Path

from curator import status
from curator.workspace import Workspace
from tests import ingest_data as data
from tests.conftest import run_cli


def _ingest_mixed(workspace: Workspace, tmp_path: Path) -> None:
    base = data.photo(21, "psoriasis", (200, 150))
    folder = tmp_path / "in"
    folder.mkdir()
    (folder / "a.jpg").write_bytes(data.jpeg(base))
    (folder / "a-small.jpg").write_bytes(data.jpeg(base.resize((150, 112))))
    (folder / "b.jpg").write_bytes(data.jpeg(data.photo(22, "alopecia")))
    (folder / "tiny.png").write_bytes(data.png(data.photo(23, size=(32, 32))))
    (folder / "broken.jpg").write_bytes(b"<html>oops</html>")
    listing = tmp_path / "list.txt"
    listing.write_text(
        f"{folder / 'a.jpg'}\tpsoriasis\n{folder / 'a-small.jpg'}\tpsoriasis\n{folder / 'b.jpg'}\tbaldness\n"
        f"{folder / 'a.jpg'}\n{folder / 'tiny.png'}\n{folder / 'broken.jpg'}\nftp://x.example/y.jpg\n"
    )
    result = run_cli("ingest", str(listing), workspace=workspace.root)
    assert result.exit_code == 0, result.output


def test_status_counts(workspace: Workspace, tmp_path: Path) -> None:
    _ingest_mixed(workspace, tmp_path)
    value = status.collect(workspace)
    assert value["images"] == 3
    assert value["clusters"] == {"total": 2, "with_near_duplicates": 1, "images_in_shared_clusters": 2}
    assert value["sources"] == {"total": 6, "stored": 2, "exact_duplicates": 0, "near_duplicates": 1,
                                "rejected": 3, "retryable": 0, "pending": 0}
    assert value["rejected_by_reason"] == {"not-an-image": 1, "too-small": 1, "unsupported-scheme": 1}
    assert value["hints"] == {"per_class": {"alopecia": 0, "psoriasis": 2, "folliculitis": 0},
                              "not_a_class": {"baldness": 1}, "images_without_hint": 0}
    assert "labels" in value  # the labels helper's part


def test_status_cli_json_and_text(workspace: Workspace, tmp_path: Path) -> None:
    _ingest_mixed(workspace, tmp_path)
    as_json = run_cli("--json", "status", workspace=workspace.root)
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["images"] == 3
    text = run_cli("status", workspace=workspace.root).stdout
    assert "Images: 3" in text and "rejected too-small: 1" in text and "psoriasis 2" in text
    assert "hint 'baldness' is not a class: 1" in text


def test_status_of_an_empty_workspace(workspace: Workspace) -> None:
    value = status.collect(workspace)
    assert (value["images"], value["sources"]["total"], value["rejected_by_reason"]) == (0, 0, {})
