"""Patient/lesion groups: from a URL list's third column, a [groups] pattern or a label import,
counted by `curator status` and the card, and never split across train/validation/test."""

from __future__ import annotations

import json
import sqlite3
from collections import defaultdict
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import ImageOps

from curator import catalog, split
from curator.config import SplitConfig
from tests import ingest_data as data
from tests.conftest import CLASSES, run_cli, snapshot
from tests.imageserver import ImageServer, Reply
from tests.test_release import CHEAP_PREPROCESS


@st.composite
def grouped_items(draw: st.DrawFn, first_cluster: int = 1, groups: int = 8) -> list[split.Item]:
    count = draw(st.integers(1, 40))
    items = []
    for i in range(count):
        mine = draw(st.lists(st.sampled_from([f"p{g}" for g in range(groups)]), max_size=2, unique=True))
        label = draw(st.sampled_from(CLASSES))
        items.append(split.Item(f"{first_cluster + i:064x}", first_cluster + i, label, tuple(mine)))
    return items


def _splits_per_group(items: list[split.Item], assignment: dict[str, str]) -> dict[str, set[str]]:
    found: dict[str, set[str]] = defaultdict(set)
    for item in items:
        for group in item.groups:
            found[group].add(assignment[item.sha256])
    return found


@settings(max_examples=150, deadline=None)
@given(first=grouped_items(), later=grouped_items(first_cluster=1000), seed=st.integers(0, 2**31))
def test_groups_never_straddle_splits_even_when_splits_are_sticky(
    first: list[split.Item], later: list[split.Item], seed: int
) -> None:
    cfg = SplitConfig(seed=seed)
    before = split.assign(first, {}, cfg)
    assert all(len(s) == 1 for s in _splits_per_group(first, before.assignment).values())
    # A later release: the first images keep their splits; new ones in one group each join it.
    later = [split.Item(i.sha256, i.cluster_id, i.label, i.groups[:1]) for i in later]
    after = split.assign(first + later, before.assignment, cfg)
    assert {sha: after.assignment[sha] for sha in before.assignment} == before.assignment
    assert all(len(s) == 1 for s in _splits_per_group(first + later, after.assignment).values())
    assert not [w for w in after.warnings if "patient group" in w]


def _serve(server: ImageServer, tmp_path: Path, lines: list[tuple[str, bytes, str]]) -> Path:
    """Route each (path, body) and write a URL list of ``url<TAB>rest`` lines."""
    server.route("/robots.txt", Reply(404, b"", "text/plain"))
    for path, body, _ in lines:
        server.route(path, Reply(body=body))
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"{server.url(path)}\t{rest}\n" for path, _, rest in lines))
    return urls


def _workspace(tmp_path: Path, pattern: str = "") -> Path:
    """A fresh workspace with cheap preprocessing and ``[groups] pattern`` set (a TOML literal string)."""
    ws = tmp_path / "ws"
    assert run_cli("init", "scalp-test", "--classes", ",".join(CLASSES), workspace=ws).exit_code == 0
    toml = ws / "curator.toml"
    text = toml.read_text(encoding="utf-8")
    assert text.count('pattern = ""') == 1
    text = text.replace('pattern = ""', f"pattern = '{pattern}'")
    toml.write_text(text + CHEAP_PREPROCESS, encoding="utf-8")
    return ws


def test_groups_from_the_list_and_a_pattern_stay_in_one_split(tmp_path: Path) -> None:
    lines = []
    for patient in range(12):  # three photos per patient; groups 0-5 from the list, 6-11 from the pattern
        label = CLASSES[patient % 3]
        for k in range(3):
            body = data.jpeg(data.photo(1000 + 10 * patient + k, label, (120, 90)))
            if patient < 6:
                lines.append((f"/atlas/{patient}-{k}.jpg", body, f"{label}\tpatient-{patient}"))
            else:
                lines.append((f"/case-{patient}/{k}.jpg", body, label))
    # A mirrored copy of patient 0's first photo listed under patient 1: the cluster joins the groups.
    mirrored = ImageOps.mirror(data.decoded(lines[0][1]))
    lines.append(("/atlas/copy.jpg", data.jpeg(mirrored), f"{CLASSES[0]}\tpatient-1"))
    lines += [(f"/loose/{i}.jpg", data.jpeg(data.photo(2000 + i, CLASSES[i % 3], (120, 90))), CLASSES[i % 3])
              for i in range(6)]
    ws = _workspace(tmp_path, "/case-(\\d+)/")
    with ImageServer() as server:
        urls = _serve(server, tmp_path, lines)
        for args in (["ingest", str(urls)], ["label", "--accept-hints"]):
            result = run_cli(*args, workspace=ws)
            assert result.exit_code == 0, result.output
    status = json.loads(run_cli("--json", "status", workspace=ws).stdout)
    assert status["groups"] == {"images_with_group": 37, "groups": 12}  # 36 photos and the copy
    text = run_cli("status", workspace=ws).stdout
    assert "Patient/lesion groups: 37 of 43 images had a group id, in 12 groups" in text
    result = run_cli("release", workspace=ws)
    assert result.exit_code == 0, result.output
    manifest = json.loads((ws / "releases" / "v1.0.0" / "manifest.json").read_text())
    originals = [r for r in manifest["rows"] if r["augmented_from"] is None]
    by_group: dict[str, set[str]] = defaultdict(set)
    for row in originals:
        if row["group_id"] is not None:
            by_group[row["group_id"]].add(row["split"])
    assert sorted(by_group) == sorted([f"patient-{p}" for p in range(6)] + [str(p) for p in range(6, 12)])
    assert all(len(splits) == 1 for splits in by_group.values()), by_group
    assert by_group["patient-0"] == by_group["patient-1"]  # linked through the mirrored copy
    assert sum(1 for r in originals if r["group_id"] is None) == 6
    loaded = run_release_parquet(ws)
    assert sorted(loaded) == sorted((r["sha256"], r["group_id"]) for r in manifest["rows"])
    card = (ws / "releases" / "v1.0.0" / "README.md").read_text()
    assert "36 of 42 images had a patient or lesion group id (12 groups)" in card


def run_release_parquet(ws: Path) -> list[tuple[str, str | None]]:
    import pyarrow.parquet as pq

    rows = []
    for path in sorted((ws / "releases" / "v1.0.0" / "data").glob("*.parquet")):
        table = pq.read_table(path, columns=["sha256", "group_id"])
        assert str(table.schema.field("group_id").type) == "string"
        rows += list(zip(table["sha256"].to_pylist(), table["group_id"].to_pylist(), strict=True))
    return rows


def _released_folder(tmp_path: Path, photos: int, first_seed: int) -> Path:
    """A workspace that ingested ``photos`` generated photos from class folders (no groups),
    accepted the folder hints and built v1.0.0."""
    ws = _workspace(tmp_path)
    folder = tmp_path / "in"
    for i in range(photos):
        name = CLASSES[i % 3]
        (folder / name).mkdir(parents=True, exist_ok=True)
        (folder / name / f"{i}.jpg").write_bytes(data.jpeg(data.photo(first_seed + i, name)))
    for args in (["ingest", str(folder), "--hint-from-folder"], ["label", "--accept-hints"], ["release"]):
        assert run_cli(*args, workspace=ws).exit_code == 0
    return ws


def test_a_card_without_groups_says_so(tmp_path: Path) -> None:
    ws = _released_folder(tmp_path, photos=9, first_seed=300)
    card = (ws / "releases" / "v1.0.0" / "README.md").read_text()
    assert ("No image had a patient or lesion group id: photos of the same patient may sit in different "
            "splits.") in card
    assert "no image had a group id" in run_cli("status", workspace=ws).stdout


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["/a.jpg\talopecia\tp1", "/b.jpg\tpsoriasis\t ", "/c.jpg"],
         "line 2: empty group id (the third, tab-separated column)"),
        (["/a.jpg\t\tp1", "# a comment", "/b.jpg\t\tp2", "/a.jpg\t\tp3"],
         "line 4: {url} is in group 'p3' here but in group 'p1' on line 1"),
    ],
)
def test_a_bad_group_column_is_one_line_naming_the_row(
    tmp_path: Path, lines: list[str], message: str
) -> None:
    ws = _workspace(tmp_path)
    urls = tmp_path / "urls.txt"
    urls.write_text("".join(f"http://127.0.0.1:9{line}\n" if line.startswith("/") else line + "\n"
                            for line in lines))
    before = snapshot(ws)
    result = run_cli("ingest", str(urls), workspace=ws)
    assert result.exit_code == 5
    expected = message.format(url="http://127.0.0.1:9/a.jpg")
    assert result.stderr.strip() == f"Error: {urls} {expected}"
    assert snapshot(ws) == before


def test_a_group_pattern_that_does_not_compile_names_the_key(tmp_path: Path) -> None:
    ws = _workspace(tmp_path, "case-(\\d+")
    result = run_cli("status", workspace=ws)
    assert result.exit_code == 4
    assert result.stderr.strip() == (
        "Error: curator.toml: 'groups.pattern' is not a valid regular expression "
        "(missing ), unterminated subpattern at position 5)"
    )


def test_migration_5_gives_existing_sources_their_order(tmp_path: Path) -> None:
    conn = sqlite3.connect(tmp_path / "c.sqlite", isolation_level=None)
    catalog.migrate(conn, [m for m in catalog.MIGRATIONS if m.version < 5])
    for locator in ("https://b.example/2.jpg", "https://a.example/1.jpg"):
        conn.execute("INSERT INTO sources (locator, kind, added_at) VALUES (?, 'url', 't')", (locator,))
    conn.close()
    conn = catalog.connect(tmp_path / "c.sqlite")
    rows = conn.execute("SELECT id, locator, position, group_id FROM sources ORDER BY id").fetchall()
    assert [tuple(r) for r in rows] == [
        (1, "https://b.example/2.jpg", 1, None), (2, "https://a.example/1.jpg", 2, None)]
    conn.close()


def test_a_group_given_after_its_photos_were_released_apart_is_said_plainly(tmp_path: Path) -> None:
    ws = _released_folder(tmp_path, photos=12, first_seed=500)
    rows = json.loads((ws / "releases" / "v1.0.0" / "manifest.json").read_text())["rows"]
    train = next(r["sha256"] for r in rows if r["split"] == "train")
    test = next(r["sha256"] for r in rows if r["split"] == "test")
    groups = tmp_path / "groups.csv"
    groups.write_text(f"sha256,group_id\n{train},case-1\n{test},case-1\n")
    assert run_cli("label", "--import", str(groups), workspace=ws).exit_code == 0
    result = run_cli("--json", "release", workspace=ws)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["bump"] == {"kind": "patch", "reason": "2 image(s) changed patient/lesion group"}
    assert any(w.startswith("patient group case-1 has images already released in different splits "
                            "(1 in train, 1 in test)") for w in report["warnings"])
    card = (ws / "releases" / "v1.0.1" / "README.md").read_text()
    assert ("2 of 12 images had a patient or lesion group id (1 group); 1 of them sits in more than one "
            "split, because earlier releases had fixed their images' splits before the group was known."
            ) in card
