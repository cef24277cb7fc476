"""Hub datasets as sources: ``curator ingest hf://datasets/NS/NAME[@REV]`` against the local Hub
server (tests/hubserver.py). The CLI runs in a subprocess, because huggingface_hub and
datasets read HF_ENDPOINT at import time (tests/hub_fixtures.py).
"""

from __future__ import annotations

import io
import json
import sqlite3
import subprocess
import sys
from pathlib import Path

from curator import synthetic
from tests import hub_fixtures
from tests.conftest import CLASSES, run_cli
from tests.hubserver import HubServer
from tests.test_release import CHEAP_PREPROCESS, build, manifest

hub_server = hub_fixtures.hub_server
hub_env = hub_fixtures.hub_env

REPO = "derm-lab/scalp-photos"
COLUMNS = "hint=label,group=case_id,licence=license,diagnosis=dx_type,fitzpatrick=fitzpatrick"


def parquet_bytes(columns: dict[str, list[object]], features: object) -> bytes:
    from datasets import Dataset

    buf = io.BytesIO()
    Dataset.from_dict(columns, features=features).to_parquet(buf)  # type: ignore[arg-type]
    return buf.getvalue()


def publish_image_dataset(server: HubServer, n: int = 9) -> str:
    """An image dataset with a ClassLabel label and provenance columns on the server, ``n`` photos
    and one last row without an image; its commit."""
    from datasets import ClassLabel, Features, Image, Value

    features = Features({"image": Image(), "label": ClassLabel(names=CLASSES), "case_id": Value("string"),
                         "license": Value("string"), "dx_type": Value("string"),
                         "fitzpatrick": Value("int32")})
    columns: dict[str, list[object]] = {
        "image": [{"bytes": synthetic.encode(synthetic.photo(300 + i, CLASSES[i % 3], (96, 96)), "JPEG"),
                   "path": None} for i in range(n)] + [None],
        "label": [i % 3 for i in range(n + 1)],
        "case_id": [f"p{i // 3}" for i in range(n + 1)],
        "license": ["cc-by-4.0" if i % 2 else None for i in range(n + 1)],
        "dx_type": ["histopathology"] * (n + 1),
        "fitzpatrick": [1 + i % 6 for i in range(n + 1)],
    }
    server.create_repo(REPO)
    return server.commit(REPO, add={"README.md": b"# scalp photos\n",
                                    "data/train-00000-of-00001.parquet": parquet_bytes(columns, features)})


def curator(ws: Path, env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from curator.cli import main; main()", "--workspace", str(ws), *args],
        env=env, capture_output=True, text=True, timeout=180,
    )


def new_workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    assert run_cli("init", "derm", "--classes", ",".join(CLASSES), workspace=ws).exit_code == 0
    with (ws / "curator.toml").open("a", encoding="utf-8") as fh:
        fh.write(CHEAP_PREPROCESS)
    return ws


def test_a_hub_dataset_is_ingested_with_repo_sha_and_columns(hub_server: HubServer, hub_env: dict[str, str],
                                                             tmp_path: Path) -> None:
    sha = publish_image_dataset(hub_server)
    ws = new_workspace(tmp_path)
    result = curator(ws, hub_env, "ingest", f"hf://datasets/{REPO}", "--columns", COLUMNS)
    assert result.returncode == 0, result.stderr
    conn = sqlite3.connect(ws / "catalog.sqlite")
    conn.row_factory = sqlite3.Row
    rows = list(conn.execute("SELECT * FROM sources ORDER BY position"))
    conn.close()
    where = f"hf://datasets/{REPO}@{sha}/default/train"
    assert [r["locator"] for r in rows] == [f"{where}/{i}" for i in range(10)]
    outcomes = [("stored", None)] * 9 + [("rejected", "no-image-bytes")]
    assert [(r["outcome"], r["reason"]) for r in rows] == outcomes
    assert [r["hint"] for r in rows] == [CLASSES[i % 3] for i in range(10)]  # class names, not indices
    assert [r["group_id"] for r in rows] == [f"p{i // 3}" for i in range(10)]
    assert [r["licence"] for r in rows] == ["cc-by-4.0" if i % 2 else None for i in range(10)]
    assert {r["collection"] for r in rows} == {REPO} and {r["robots"] for r in rows} == {None}
    assert [r["fitzpatrick"] for r in rows] == [str(1 + i % 6) for i in range(10)]  # an int column, as text
    first = json.loads(rows[1]["metadata"])
    assert first == {"hub": {"repo": REPO, "revision": sha, "split": "train", "row": 1}}

    assert run_cli("label", "--accept-hints", workspace=ws).exit_code == 0
    build(ws)
    released = [r for r in manifest(ws, "1.0.0")["rows"] if r["augmented_from"] is None]
    assert len(released) == 9
    assert {r["collection"] for r in released} == {REPO}
    assert {r["diagnosis_provenance"] for r in released} == {"histopathology"}
    assert all(r["source_url"].startswith(f"hf://datasets/{REPO}@{sha}/") for r in released)
    from datasets import load_dataset

    loaded = load_dataset(str(ws / "releases" / "v1.0.0"), cache_dir=str(tmp_path / "cache"))
    originals = [item for split in loaded for item in loaded[split].remove_columns("image")
                 if item["augmented_from"] is None]
    assert sorted((o["group_id"], o["licence"] or "") for o in originals) == sorted(
        (f"p{i // 3}", "cc-by-4.0" if i % 2 else "") for i in range(9))
    assert sum(o["licence"] is None for o in originals) == 5  # null, not "", where the row had none
    assert sorted(o["fitzpatrick"] for o in originals) == sorted(1 + i % 6 for i in range(9))
    assert {json.loads(o["source_metadata"])["hub"]["revision"] for o in originals} == {sha}
    card = (ws / "releases" / "v1.0.0" / "README.md").read_text()
    assert f"| {REPO} | 9 | " in card and "| `licence` | cc-by-4.0 | 4 |" in card  # images per collection


def test_a_hub_dataset_without_an_image_column_is_one_line(hub_server: HubServer, hub_env: dict[str, str],
                                                           tmp_path: Path) -> None:
    from datasets import Features, Value

    hub_server.create_repo("derm-lab/urls")
    table = parquet_bytes({"url": ["https://a.example/1.jpg"], "label": ["alopecia"]},
                          Features({"url": Value("string"), "label": Value("string")}))
    hub_server.commit("derm-lab/urls", add={"README.md": b"# urls\n",
                                            "data/train-00000-of-00001.parquet": table})
    ws = new_workspace(tmp_path)
    result = curator(ws, hub_env, "ingest", "hf://datasets/derm-lab/urls@main", "--columns", "hint=label")
    assert result.returncode == 5
    assert result.stderr.strip() == ("Error: hf://datasets/derm-lab/urls@main: no image column "
                                     "(columns: url, label)")


def test_a_missing_revision_or_split_is_one_line(hub_server: HubServer, hub_env: dict[str, str],
                                                 tmp_path: Path) -> None:
    publish_image_dataset(hub_server, n=3)
    ws = new_workspace(tmp_path)
    result = curator(ws, hub_env, "ingest", f"hf://datasets/{REPO}@v9")
    assert result.returncode == 5
    assert result.stderr.strip() == f"Error: hf://datasets/{REPO}@v9: the Hub dataset has no revision 'v9'"
    result = curator(ws, hub_env, "ingest", f"hf://datasets/{REPO}", "--split", "test")
    assert result.returncode == 5
    assert result.stderr.strip() == f"Error: hf://datasets/{REPO}: no split 'test' (splits: train)"
