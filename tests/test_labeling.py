"""Label events, derived labels, conflict policies, import/export and hints."""

from __future__ import annotations

import dataclasses
import json
import sqlite3
from pathlib import Path

import pytest

from curator import catalog, labeling, store, synthetic
from curator.config import Config
from curator.labeling import EXCLUDED
from curator.workspace import Workspace
from tests.conftest import run_cli, snapshot


def add_image(ws: Workspace, seed: int, *, hint: str | None = None, cluster_of: str | None = None,
              size: tuple[int, int] = (96, 72), url: str | None = None) -> str:
    """Store a generated image and its catalog rows as ingest would (SQL, no ingest stage):
    a new cluster, or the cluster of ``cluster_of`` (as a near duplicate)."""
    data = synthetic.encode(synthetic.photo(seed, seed % 3, size))
    sha = store.put(ws.objects, data)
    conn = ws.conn
    with catalog.atomic(conn):
        if cluster_of is None:
            cid = conn.execute("INSERT INTO clusters (representative) VALUES (?)", (sha,)).lastrowid
        else:
            cid = conn.execute("SELECT cluster_id FROM images WHERE sha256 = ?", (cluster_of,)).fetchone()[0]
        conn.execute(
            "INSERT INTO images (sha256, fingerprint, width, height, format, bytes, cluster_id, created_at) "
            "VALUES (?, ?, ?, ?, 'JPEG', ?, ?, ?)",
            (sha, "fp" + sha, size[0], size[1], len(data), cid, catalog.utcnow()),
        )
        conn.execute(
            "INSERT INTO sources (locator, kind, hint, outcome, reason, sha256, added_at) "
            "VALUES (?, 'url', ?, ?, ?, ?, ?)",
            (url or f"https://img.example/{seed}.jpg", hint, "stored" if cluster_of is None else "duplicate",
             None if cluster_of is None else "near", sha, catalog.utcnow()),
        )
    return sha


def events(conn: sqlite3.Connection) -> list[tuple[str, str, str | None, str | None, str]]:
    return [tuple(r) for r in conn.execute(  # type: ignore[misc]
        "SELECT sha256, annotator, label, previous, action FROM label_events ORDER BY id")]


def with_labels(cfg: Config, **changes: object) -> Config:
    return dataclasses.replace(cfg, labels=dataclasses.replace(cfg.labels, **changes))  # type: ignore[arg-type]


def test_record_keeps_history_and_derives_current(workspace: Workspace) -> None:
    a = add_image(workspace, 1)
    conn, cfg = workspace.conn, workspace.config
    assert labeling.record(conn, a, "ann", "alopecia", "label") is None
    assert labeling.record(conn, a, "ann", "psoriasis", "label") == "alopecia"
    assert labeling.current_labels(conn, cfg) == {a: "psoriasis"}
    assert labeling.record(conn, a, "ann", "alopecia", "undo") == "psoriasis"
    assert labeling.record(conn, a, "ann", None, "undo") == "alopecia"
    assert labeling.current_labels(conn, cfg) == {}
    assert events(conn) == [
        (a, "ann", "alopecia", None, "label"),
        (a, "ann", "psoriasis", "alopecia", "label"),
        (a, "ann", "alopecia", "psoriasis", "undo"),
        (a, "ann", None, "alopecia", "undo"),
    ]


def test_majority_tie_is_unresolved_and_people_override_hints(workspace: Workspace) -> None:
    a, b, c = (add_image(workspace, s) for s in (1, 2, 3))
    conn, cfg = workspace.conn, workspace.config
    for who, label in (("ann", "alopecia"), ("bob", "psoriasis")):
        labeling.record(conn, a, who, label, "label")  # 1 vs 1: a tie
    for who, label in (("ann", "alopecia"), ("bob", "psoriasis"), ("cy", "alopecia")):
        labeling.record(conn, b, who, label, "label")  # 2 vs 1
    labeling.record(conn, c, "hint", "folliculitis", "hint")
    labeling.record(conn, c, "ann", "psoriasis", "label")  # one person beats the hint
    assert labeling.current_labels(conn, cfg) == {b: "alopecia", c: "psoriasis"}
    adjudicated = with_labels(cfg, policy="adjudicator", adjudicator="bob")
    assert labeling.current_labels(conn, adjudicated) == {a: "psoriasis", b: "psoriasis", c: "psoriasis"}
    summary = labeling.summary(conn, cfg)
    assert summary["unresolved"] == 1 and summary["unlabeled"] == 0
    assert summary["per_class"] == {"alopecia": 1, "psoriasis": 1, "folliculitis": 0}


def test_cluster_members_inherit_the_representative_label(workspace: Workspace) -> None:
    rep = add_image(workspace, 1, size=(128, 96))
    member = add_image(workspace, 2, cluster_of=rep)
    other = add_image(workspace, 3)
    labeling.record(workspace.conn, rep, "ann", EXCLUDED, "exclude")
    labeling.record(workspace.conn, other, "ann", "psoriasis", "label")
    assert labeling.current_labels(workspace.conn, workspace.config) == {
        rep: EXCLUDED, member: EXCLUDED, other: "psoriasis"}
    summary = labeling.summary(workspace.conn, workspace.config)
    assert (summary["images"], summary["clusters"], summary["excluded"], summary["labeled"]) == (3, 2, 1, 1)


def test_accept_hints_takes_only_class_hints_and_is_idempotent(workspace: Workspace) -> None:
    a = add_image(workspace, 1, hint="alopecia")
    b = add_image(workspace, 2, hint=" Psoriasis ")
    add_image(workspace, 3, hint="eczema")  # not a class: ignored
    add_image(workspace, 4)
    assert labeling.accept_hints(workspace.conn, workspace.config) == 2
    assert labeling.accept_hints(workspace.conn, workspace.config) == 0
    assert labeling.current_labels(workspace.conn, workspace.config) == {a: "alopecia", b: "psoriasis"}
    assert {e[1] for e in events(workspace.conn)} == {"hint"}
    result = run_cli("label", "--accept-hints", workspace=workspace.root)
    assert result.exit_code == 0 and result.stdout.strip() == "Accepted 0 hints as labels"


def test_queue_skips_clusters_labelled_by_this_annotator(workspace: Workspace) -> None:
    a = add_image(workspace, 1, hint="psoriasis")
    b = add_image(workspace, 2, hint="alopecia")
    member = add_image(workspace, 3, cluster_of=b)
    c = add_image(workspace, 4)
    labeling.record(workspace.conn, member, "ann", "alopecia", "label")  # labels b's cluster
    conn, cfg = workspace.conn, workspace.config
    assert [i.sha256 for i in labeling.queue(conn, cfg, "ann")] == [a, c]
    assert [i.sha256 for i in labeling.queue(conn, cfg, "bob")] == [a, b, c]
    assert [i.sha256 for i in labeling.queue(conn, cfg, "bob", order="hint")] == [b, a, c]
    assert [i.sha256 for i in labeling.queue(conn, cfg, "bob", review_class="alopecia")] == [b]
    labeling.record(conn, a, "bob", "alopecia", "label")  # disagrees with its hint
    assert [i.sha256 for i in labeling.queue(conn, cfg, "bob", conflicts=True)] == [a]
    shuffled = [i.sha256 for i in labeling.queue(conn, cfg, "zed", order="random")]
    assert sorted(shuffled) == sorted([a, b, c])
    assert shuffled == [i.sha256 for i in labeling.queue(conn, cfg, "zed", order="random")]


def test_import_export_round_trip(workspace: Workspace, tmp_path: Path) -> None:
    shas = [add_image(workspace, s) for s in range(4)]
    conn = workspace.conn
    labeling.record(conn, shas[0], "ann", "alopecia", "label")
    labeling.record(conn, shas[0], "bob", "psoriasis", "label")
    labeling.record(conn, shas[1], "ann", EXCLUDED, "exclude")
    labeling.record(conn, shas[2], "hint", "folliculitis", "hint")
    out = tmp_path / "labels.csv"
    result = run_cli("label", "--export", str(out), workspace=workspace.root)
    assert result.exit_code == 0, result.output
    text = out.read_text()
    assert text.splitlines()[0] == "sha256,source_url,label,annotator"
    assert len(text.splitlines()) == 4  # the hint is not exported: import refuses annotator 'hint'
    # Into a second workspace holding the same images: the same labels come out.
    from curator.workspace import init_workspace

    other = init_workspace(tmp_path / "other", "scalp-test", ["alopecia", "psoriasis", "folliculitis"])
    for s in range(4):
        add_image(other, s)
    result = run_cli("label", "--import", str(out), workspace=other.root)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"Imported 3 rows from {out} (3 changed a label)"
    again = tmp_path / "again.csv"
    run_cli("label", "--export", str(again), workspace=other.root)
    assert again.read_text() == text
    labeling.record(other.conn, shas[2], "hint", "folliculitis", "hint")
    assert labeling.current_labels(other.conn, other.config) == labeling.current_labels(
        conn, workspace.config)
    # Importing the same file again changes nothing.
    result = run_cli("label", "--import", str(out), workspace=other.root)
    assert result.stdout.strip() == f"Imported 3 rows from {out} (0 changed a label)"
    other.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("sha256,label\n{a},alopecia\n{b},eczema\n", "row 3: unknown class 'eczema'"),
        ("sha256,label\n{a},alopecia\n{b},psoriasis\n" + "ab" * 32 + ",alopecia\n",
         "row 4: unknown image sha256 '" + "ab" * 32 + "'"),
        ("url,label\nhttps://img.example/0.jpg,alopecia\nhttps://nowhere/x.jpg,alopecia\n",
         "row 3: unknown image url 'https://nowhere/x.jpg'"),
        ("sha256,label,annotator\n{a},alopecia,ann\n{b},psoriasis\n", "row 3: expected 3 columns, found 2"),
        ("sha256,label\n{a},\n", "row 2: empty label"),
        ("image,label\n{a},alopecia\n",
         "row 1: the header needs a 'label' or 'group_id' column and a 'sha256' or 'url' column"),
        ("sha256,label,group_id\n{a},alopecia,p1\n{b},psoriasis, \n", "row 3: empty group_id"),
        ("sha256,group_id\n{a},p1\n{b},p1\n{a},p2\n", "row 4: image {a12} is in group 'p2' here but in group "
         "'p1' on row 2"),
        ("sha256,url,group_id\n,https://img.example/0.jpg,p1\n{a},,p2\n", "row 3: image {a12} is in group "
         "'p2' here but in group 'p1' on row 2"),
        ("sha256,label,annotator\n{a},alopecia,hint\n",
         "row 2: annotator 'hint' is reserved for accepted ingest hints"),
    ],
)
def test_bad_import_changes_nothing_and_names_the_row(workspace: Workspace, tmp_path: Path,
                                                      body: str, message: str) -> None:
    a, b = add_image(workspace, 0), add_image(workspace, 1)
    labeling.record(workspace.conn, a, "ann", "psoriasis", "label")
    path = tmp_path / "labels.csv"
    path.write_text(body.format(a=a, b=b))
    workspace.close()
    before = snapshot(workspace.root)
    result = run_cli("label", "--import", str(path), workspace=workspace.root)
    assert result.exit_code == 5
    assert result.stderr.strip() == f"Error: {path} {message.format(a12=a[:12])}"
    assert snapshot(workspace.root) == before
    assert len(events(workspace.conn)) == 1


def test_import_sets_groups_on_every_source_of_the_image(workspace: Workspace, tmp_path: Path) -> None:
    a = add_image(workspace, 0)
    copy = add_image(workspace, 1, cluster_of=a)
    # A second source of the same image.
    workspace.conn.execute("UPDATE sources SET sha256 = ? WHERE sha256 = ?", (a, copy))
    path = tmp_path / "groups.csv"
    path.write_text(f"sha256,group_id\n{a},case-7\n")
    result = run_cli("label", "--import", str(path), workspace=workspace.root)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == (
        f"Imported 1 rows from {path} (0 changed a label, 1 images given a group id)")
    rows = workspace.conn.execute("SELECT group_id FROM sources WHERE sha256 = ?", (a,)).fetchall()
    assert [r[0] for r in rows] == ["case-7", "case-7"]
    assert events(workspace.conn) == []


def test_conflicting_rows_are_refused_naming_both(workspace: Workspace, tmp_path: Path) -> None:
    a = add_image(workspace, 0)
    path = tmp_path / "labels.csv"
    path.write_text(f"sha256,label,annotator\n{a},alopecia,ann\n{a},alopecia,ann\n{a},psoriasis,ann\n"
                    f"{a},psoriasis,bob\n")
    workspace.close()
    before = snapshot(workspace.root)
    result = run_cli("label", "--import", str(path), workspace=workspace.root)
    assert (result.exit_code, result.stderr.strip()) == (5, (
        f"Error: {path} rows 2 and 4: conflicting labels for image {a[:12]} by 'ann' "
        "('alopecia', 'psoriasis')"))
    assert snapshot(workspace.root) == before


def test_export_escapes_formulas_and_import_reads_them_back(workspace: Workspace, tmp_path: Path) -> None:
    a = add_image(workspace, 0, url="=HYPERLINK(\"http://evil.example\")")
    b = add_image(workspace, 1, url="@SUM(1+1)")
    labeling.record(workspace.conn, a, "-ann", "alopecia", "label")
    labeling.record(workspace.conn, b, "+bob", "psoriasis", "label")
    out = tmp_path / "labels.csv"
    assert run_cli("label", "--export", str(out), workspace=workspace.root).exit_code == 0
    import csv

    cells = [cell for row in csv.reader(out.read_text().splitlines()) for cell in row]
    assert not [c for c in cells if c[:1] in ("=", "+", "-", "@", "\t", "\r")]
    assert "'=HYPERLINK(\"http://evil.example\")" in cells and "'-ann" in cells
    again = tmp_path / "by-url.csv"
    again.write_text(out.read_text().replace("sha256,source_url", "sha,url"))
    result = run_cli("label", "--import", str(again), workspace=workspace.root)
    assert result.stdout.strip() == f"Imported 2 rows from {again} (0 changed a label)"


def test_import_uses_annotator_column_then_flag(workspace: Workspace, tmp_path: Path) -> None:
    a, b = add_image(workspace, 0), add_image(workspace, 1)
    path = tmp_path / "in.csv"
    path.write_text(f"sha256,label,annotator\n{a},alopecia,dr-x\n{b},{EXCLUDED},\n")
    result = run_cli("label", "--import", str(path), "--annotator", "dr-y", workspace=workspace.root)
    assert result.exit_code == 0, result.output
    assert events(workspace.conn) == [(a, "dr-x", "alopecia", None, "import"),
                                      (b, "dr-y", EXCLUDED, None, "import")]


def test_label_flags_conflict_and_reserved_annotator(workspace: Workspace) -> None:
    result = run_cli("label", "--export", "x.csv", "--accept-hints", workspace=workspace.root)
    assert result.exit_code == 5
    assert result.stderr.strip() == (
        "Error: --export and --accept-hints cannot be combined; give one at a time")
    result = run_cli("label", "--annotator", "hint", "--accept-hints", workspace=workspace.root)
    assert result.stderr.strip() == "Error: --annotator: 'hint' is reserved for accepted ingest hints"


def test_label_without_a_terminal_points_to_import(workspace: Workspace) -> None:
    result = run_cli("label", workspace=workspace.root)
    assert result.exit_code == 5
    assert result.stderr.strip() == (
        "Error: curator label needs a terminal; without one use `curator label --import labels.csv`")


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        ({"keys": {"a": "1", "b": "1"}}, "curator.toml: 'labels.keys.a' uses the same key as labels.keys.b"),
        ({"keys": {"a": "s"}},
         "curator.toml: 'labels.keys.a' must be one character other than s, u, x, o, ?, q"),
        ({"keys": {"c": "1"}}, "curator.toml: 'labels.keys.c' is not one of dataset.classes"),
        ({"annotator": "hint"},
         "curator.toml: 'labels.annotator' must not be 'hint' (reserved for accepted ingest hints)"),
        ({"policy": "adjudicator"},
         "curator.toml: 'labels.adjudicator' must name an annotator when labels.policy = 'adjudicator'"),
        ({"policy": "vote"}, "curator.toml: 'labels.policy' must be 'majority' or 'adjudicator'"),
    ],
)
def test_labels_config_checks(labels: dict[str, object], message: str) -> None:
    from curator import config
    from curator.errors import ConfigError

    with pytest.raises(ConfigError) as info:
        config.from_dict({"dataset": {"name": "x", "classes": ["a", "b"]}, "labels": labels})
    assert str(info.value) == message


def test_configured_keys_and_defaults_share_the_keyboard(workspace: Workspace) -> None:
    from curator import prompt

    cfg = dataclasses.replace(workspace.config,
                              labels=dataclasses.replace(workspace.config.labels, keys={"psoriasis": "1"}))
    assert prompt.class_keys(cfg) == {"1": "psoriasis", "2": "alopecia", "3": "folliculitis"}


def test_accept_hints_after_a_real_ingest(tmp_path: Path) -> None:
    folder = tmp_path / "photos"
    for seed, hint in ((1, "alopecia"), (2, "psoriasis"), (3, "unsorted")):
        (folder / hint).mkdir(parents=True)
        (folder / hint / f"{seed}.jpg").write_bytes(synthetic.encode(synthetic.photo(seed, hint, (96, 72))))
    ws = tmp_path / "ws"
    result = run_cli("init", "scalp", "--classes", "alopecia,psoriasis,folliculitis", workspace=ws)
    assert result.exit_code == 0, result.output
    result = run_cli("ingest", str(folder), "--hint-from-folder", workspace=ws)
    assert result.exit_code == 0, result.output
    result = run_cli("label", "--accept-hints", workspace=ws)
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "Accepted 2 hints as labels"  # 'unsorted' is not a class
    result = run_cli("--json", "status", workspace=ws)
    labels = json.loads(result.stdout)["labels"]
    assert labels["per_class"] == {"alopecia": 1, "psoriasis": 1, "folliculitis": 0}
    assert (labels["unlabeled"], labels["annotators"], labels["agreement"]) == (1, {"hint": 2}, None)


def test_conflicts_cover_annotators_hints_and_cluster_members(workspace: Workspace) -> None:
    conn, cfg = workspace.conn, workspace.config
    agree = add_image(workspace, 1, hint="alopecia")
    people = add_image(workspace, 2)
    hinted = add_image(workspace, 3, hint="psoriasis")
    rep = add_image(workspace, 4, size=(128, 96))
    member = add_image(workspace, 5, cluster_of=rep)
    excluded = add_image(workspace, 6, hint="psoriasis")
    labeling.record(conn, agree, "ann", "alopecia", "label")  # agrees with its hint: no conflict
    labeling.record(conn, people, "ann", "alopecia", "label")
    labeling.record(conn, people, "bob", "psoriasis", "label")  # two people disagree
    labeling.record(conn, hinted, "ann", "folliculitis", "label")  # disagrees with its hint
    labeling.record(conn, rep, "ann", "alopecia", "label")
    labeling.record(conn, member, "hint", "psoriasis", "hint")  # a member labelled otherwise
    labeling.record(conn, excluded, "ann", EXCLUDED, "exclude")  # excluding is not disagreeing
    found = [i.sha256 for i in labeling.queue(conn, cfg, "ann", conflicts=True)]
    assert found == [people, hinted, rep]
    # Settling them: bob agrees, ann follows the hint, the member gets the cluster's label.
    labeling.record(conn, people, "bob", "alopecia", "label")
    labeling.record(conn, hinted, "ann", "psoriasis", "label")
    labeling.record(conn, member, "ann", "alopecia", "label")
    assert labeling.queue(conn, cfg, "ann", conflicts=True) == []


def test_import_by_source_url(workspace: Workspace, tmp_path: Path) -> None:
    a = add_image(workspace, 0, url="https://atlas.example/a.jpg")
    path = tmp_path / "by-url.csv"
    path.write_text("source_url,label,annotator\nhttps://atlas.example/a.jpg,folliculitis,dr-x\n\n")
    result = run_cli("label", "--import", str(path), workspace=workspace.root)
    assert result.exit_code == 0, result.output
    assert events(workspace.conn) == [(a, "dr-x", "folliculitis", None, "import")]
