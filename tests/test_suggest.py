"""`curator label --suggest`, `--order uncertain`, the blind subset and migration 8: the real
CLI in a pseudo-terminal, real SQLite."""

from __future__ import annotations

import hashlib
import os
import re
import sqlite3
from pathlib import Path

import numpy as np
import pexpect
import pytest

from curator import catalog, config, labeling, suggest
from curator.workspace import Workspace, open_workspace
from dataset_card import render
from tests.conftest import run_cli, snapshot
from tests.serving import serving
from tests.test_card import facts
from tests.test_labeling import add_image
from tests.test_prompt import TIMEOUT, curator_exe, finish, step
from tests.test_serve import login

CLASSES = ("alopecia", "psoriasis", "folliculitis")


def spawn(ws: Workspace, *args: str) -> pexpect.spawn:
    return pexpect.spawn(curator_exe(), ["--workspace", str(ws.root), "label", "--annotator", "ann",
                                         "--graphics", "blocks", *args],
                         env=dict(os.environ, TERM="xterm-256color", NO_COLOR="1"), dimensions=(40, 100),
                         timeout=TIMEOUT)


def set_blind_fraction(ws: Workspace, fraction: float) -> None:
    toml = ws.root / "curator.toml"
    text = toml.read_text()
    assert "blind_fraction = 0.0" in text
    toml.write_text(text.replace("blind_fraction = 0.0", f"blind_fraction = {fraction!r}", 1))


def blind_value(sha: str) -> float:
    """Where an image falls in the hash range (it is blind below [labels] blind_fraction)."""
    digest = hashlib.sha256(b"curator-blind:" + sha.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def only_first_blind(shas: list[str]) -> tuple[str, float]:
    """The image lowest in the hash range, and a fraction that makes it, and only it, blind."""
    ranked = sorted(shas, key=blind_value)
    return ranked[0], (blind_value(ranked[0]) + blind_value(ranked[1])) / 2


def suggested_flags(path: Path) -> list[tuple[str, str, int | None]]:
    conn = catalog.connect(path)
    try:
        return [tuple(r) for r in conn.execute(  # type: ignore[misc]
            "SELECT sha256, action, suggested FROM label_events ORDER BY id")]
    finally:
        conn.close()


@pytest.fixture
def three(workspace: Workspace) -> list[str]:
    """Three hinted images with stored probabilities (margins 0.5, 0.2, 0.7)."""
    shas = [add_image(workspace, seed, hint="psoriasis") for seed in range(3)]
    suggest.save(workspace.conn, CLASSES, {shas[0]: [0.2, 0.7, 0.1], shas[1]: [0.5, 0.3, 0.2],
                                           shas[2]: [0.1, 0.1, 0.8]}, "cv")
    return shas


@pytest.mark.slow
def test_suggestions_are_shown_recorded_and_never_shown_on_blind_images(workspace: Workspace,
                                                                        three: list[str]) -> None:
    blind, fraction = only_first_blind(three)
    set_blind_fraction(workspace, fraction)
    workspace.close()
    expected = {three[0]: "model: psoriasis 0.70, alopecia 0.20",
                three[1]: "model: alopecia 0.50, psoriasis 0.30",
                three[2]: "model: folliculitis 0.80, alopecia 0.10"}
    child = spawn(workspace, "--suggest")
    for pos, sha in enumerate(three, start=1):
        child.expect_exact(f"[{pos}/3]")
        child.expect_exact(sha[:12])
        if sha == blind:
            child.expect_exact("source: hidden (blind subset)")
            child.expect_exact("hint: hidden (blind subset)   label: hidden (blind subset)")
            child.expect_exact("model: hidden (blind subset)")
        else:
            child.expect_exact("hint: psoriasis")
            child.expect_exact(expected[sha])
        child.expect_exact("s skip")  # the whole screen is drawn before the key
        child.send("1")
    child.expect_exact("[done 3/3]")
    child.send("q")
    finish(child)
    assert suggested_flags(workspace.catalog_path) == [
        (sha, "label", 0 if sha == blind else 1) for sha in three]


@pytest.mark.slow
def test_without_suggest_the_events_record_none_shown(workspace: Workspace, three: list[str]) -> None:
    workspace.close()
    child = spawn(workspace)
    child.expect_exact("[1/3]")
    child.expect_exact("s skip")
    assert b"model:" not in child.before
    step(child, "2", "[2/3]")
    step(child, "u", "[1/3]")
    child.send("q")
    finish(child)
    flags = suggested_flags(workspace.catalog_path)
    assert flags == [(three[0], "label", 0), (three[0], "undo", 0)]


@pytest.mark.slow
def test_order_uncertain_puts_the_smallest_margin_first_one_image_per_cluster(
        workspace: Workspace, three: list[str]) -> None:
    # A near copy of image 1 with a tiny margin of its own: the cluster shows once, by its
    # representative's probabilities.
    member = add_image(workspace, 7, cluster_of=three[1])
    suggest.save(workspace.conn, CLASSES, {three[0]: [0.2, 0.7, 0.1], three[1]: [0.5, 0.3, 0.2],
                                           three[2]: [0.1, 0.1, 0.8], member: [0.34, 0.33, 0.33]}, "cv")
    unscored = add_image(workspace, 8)  # no probabilities: last
    items = labeling.queue(workspace.conn, workspace.config, "ann", order="uncertain")
    assert [i.sha256 for i in items] == [three[1], three[0], three[2], unscored]
    assert [round(suggest.margin(i.suggestion), 2) for i in items[:3] if i.suggestion] == [0.2, 0.5, 0.7]
    workspace.close()
    child = spawn(workspace, "--order", "uncertain", "--suggest")
    child.expect_exact("[1/4]")
    child.expect_exact(three[1][:12])
    child.expect_exact("model: alopecia 0.50, psoriasis 0.30")
    step(child, "1", "[2/4]")
    child.expect_exact(three[0][:12])
    step(child, "1", "[3/4]")
    child.expect_exact(three[2][:12])
    step(child, "1", "[4/4]")
    child.expect_exact(unscored[:12])
    child.expect_exact("model: no prediction for this image")
    step(child, "x", "[done 4/4]")
    child.send("q")
    finish(child)
    assert suggested_flags(workspace.catalog_path) == [
        (three[1], "label", 1), (three[0], "label", 1), (three[2], "label", 1), (unscored, "exclude", 0)]


@pytest.mark.slow
@pytest.mark.parametrize("flags", [("--suggest",), ("--order", "uncertain")])
def test_without_stored_probabilities_it_says_what_to_run(workspace: Workspace,
                                                          flags: tuple[str, ...]) -> None:
    add_image(workspace, 1)
    workspace.close()
    before = snapshot(workspace.root)
    child = spawn(workspace, *flags)
    out = re.sub(r"\x1b\[[0-9;]*m", "", finish(child, 5))  # the error line is styled on a terminal
    flag = "--suggest" if flags == ("--suggest",) else "--order uncertain"
    assert out.strip() == (f"Error: {flag}: no model probabilities are stored in this workspace; "
                           "run `curator review --run --with-cv` first")
    assert snapshot(workspace.root) == before
    assert suggested_flags(workspace.catalog_path) == []


@pytest.mark.slow
def test_with_cv_suggests_for_unlabelled_images_at_the_prompt(workspace: Workspace) -> None:
    with (workspace.root / "curator.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n[baseline]\nimage_size = 16\nepochs = 1\nbatch_size = 4\n")
    for seed in range(15):  # five clusters per class: one per fold
        sha = add_image(workspace, seed)
        labeling.record(workspace.conn, sha, "ann", CLASSES[seed % 3], "label")
    new = add_image(workspace, 20)
    workspace.close()
    result = run_cli("review", "--run", "--with-cv", workspace=workspace.root)
    assert result.exit_code == 0, result.stderr
    conn = catalog.connect(workspace.catalog_path)
    try:
        tops = suggest.top_two(conn, CLASSES)
    finally:
        conn.close()
    assert len(tops) == 16 and new in tops  # out of fold for the labelled, the folds' mean for the new one
    (first, p1), (second, p2) = tops[new]
    child = spawn(workspace, "--suggest")
    child.expect_exact("[1/1]")
    child.expect_exact(new[:12])
    child.expect_exact(f"model: {first} {p1:.2f}, {second} {p2:.2f}")
    step(child, "1", "[done 1/1]")
    child.send("q")
    finish(child)
    assert suggested_flags(workspace.catalog_path)[-1] == (new, "label", 1)


def test_review_run_stores_the_latest_probabilities(workspace: Workspace, tmp_path: Path) -> None:
    a, b = add_image(workspace, 1), add_image(workspace, 2)
    suggest.save(workspace.conn, CLASSES, {a: [0.1, 0.1, 0.8], b: [0.1, 0.1, 0.8]}, "cv")
    table = tmp_path / "p.csv"
    table.write_text(f"sha256,alopecia,psoriasis,folliculitis\n{a},0.6,0.3,0.1\n{'f' * 64},0.6,0.3,0.1\n")
    workspace.close()
    result = run_cli("review", "--run", "--probabilities", str(table), workspace=workspace.root)
    assert result.exit_code == 0, result.stderr
    conn = catalog.connect(workspace.catalog_path)
    try:
        # The previous model's rows are gone; an image not in the catalog is left out.
        assert suggest.top_two(conn, CLASSES) == {a: (("alopecia", 0.6), ("psoriasis", 0.3))}
        assert [tuple(r) for r in conn.execute("SELECT source FROM label_suggestions")] == [(str(table),)]
        # A model trained for another class list is not shown.
        assert suggest.top_two(conn, ("alopecia", "psoriasis")) == {}
    finally:
        conn.close()


def test_blind_subset_is_stable_and_grows_with_the_fraction() -> None:
    shas = [hashlib.sha256(str(i).encode()).hexdigest() for i in range(2000)]
    tenth = {s for s in shas if suggest.is_blind(s, 0.1)}
    fifth = {s for s in shas if suggest.is_blind(s, 0.2)}
    assert tenth < fifth
    assert 150 < len(tenth) < 250 and 330 < len(fifth) < 470
    assert not any(suggest.is_blind(s, 0.0) for s in shas) and all(suggest.is_blind(s, 1.0) for s in shas)
    assert tenth == {s for s in shas if suggest.is_blind(s, 0.1)}


def test_status_and_card_report_the_blind_subset(workspace: Workspace, three: list[str]) -> None:
    set_blind_fraction(workspace, 1.0)  # every image blind
    for sha, (a, b) in zip(three, [("alopecia", "alopecia"), ("psoriasis", "psoriasis"),
                                   ("folliculitis", "alopecia")], strict=True):
        labeling.record(workspace.conn, sha, "alice", a, "label", suggested=False)
        labeling.record(workspace.conn, sha, "bob", b, "label", suggested=False)
    workspace.close()
    cfg = config.load(workspace.root / "curator.toml")
    conn = catalog.connect(workspace.catalog_path)
    try:
        summary = labeling.summary(conn, cfg)
    finally:
        conn.close()
    blind = summary["blind"]
    assert isinstance(blind, dict)
    assert (blind["fraction"], blind["clusters"], blind["labels"]) == (1.0, 3, 6)
    assert blind["agreement"] == summary["agreement"] and blind["agreement"]["items"] == 3
    assert summary["suggested"] == {"shown": 0, "recorded": 6}
    result = run_cli("status", workspace=workspace.root)
    assert result.exit_code == 0, result.stderr
    assert ("Blind subset (no suggestions or hints, [labels] blind_fraction 1.0): 3 clusters, "
            "6 labels given; agreement there: Cohen's kappa") in result.stdout
    card = render(facts(labeling={**summary}))
    assert ("- Blind subset: 3 clusters (a fixed 100% of images, chosen by hash) never show a model "
            "suggestion, hint or source at the label prompt or page, so agreement there is free of "
            "anchoring; 6 labels were given in it; agreement there: cohen = ") in card
    no_blind = render(facts(labeling={**summary, "blind": {**blind, "fraction": 0.0}}))
    assert "Blind subset" not in no_blind


def test_card_counts_labels_given_with_a_suggestion(workspace: Workspace, three: list[str]) -> None:
    labeling.record(workspace.conn, three[0], "alice", "alopecia", "label", suggested=True)
    labeling.record(workspace.conn, three[1], "alice", "alopecia", "label", suggested=False)
    labeling.record(workspace.conn, three[2], "alice", "alopecia", "import")  # not known: not counted
    summary = labeling.summary(workspace.conn, workspace.config)
    assert summary["suggested"] == {"shown": 1, "recorded": 2}
    card = render(facts(labeling=summary))
    assert ("- Model suggestions (`curator label --suggest`) were on screen for 1 of 2 label decisions made "
            "at the label prompt or page") in card


@pytest.mark.parametrize(("value", "message"), [
    ("1.5", "'labels.blind_fraction' must be between 0 and 1"),
    ("-0.1", "'labels.blind_fraction' must be between 0 and 1"),
    ('"half"', "'labels.blind_fraction' must be float, not 'half'"),
    ("nan", "'labels.blind_fraction' must be a finite number, not nan"),
])
def test_blind_fraction_is_validated(workspace: Workspace, value: str, message: str) -> None:
    set_blind_fraction(workspace, 0.0)
    toml = workspace.root / "curator.toml"
    toml.write_text(toml.read_text().replace("blind_fraction = 0.0", f"blind_fraction = {value}", 1))
    workspace.close()
    before = snapshot(workspace.root)
    result = run_cli("status", workspace=workspace.root)
    assert (result.exit_code, result.stderr.strip()) == (4, f"Error: curator.toml: {message}")
    assert snapshot(workspace.root) == before


def test_migration_8_adds_suggested_null_for_older_events(tmp_path: Path) -> None:
    path = tmp_path / "catalog.sqlite"
    conn = catalog.connect(path, migrate_schema=False)
    catalog.migrate(conn, [m for m in catalog.MIGRATIONS if m.version < 8])
    with catalog.atomic(conn):
        cid = conn.execute("INSERT INTO clusters (representative) VALUES ('a')").lastrowid
        conn.execute("INSERT INTO images (sha256, fingerprint, width, height, format, bytes, cluster_id,"
                     " created_at) VALUES ('a', 'fp', 1, 1, 'PNG', 1, ?, 'now')", (cid,))
        conn.execute("INSERT INTO label_events (sha256, annotator, label, previous, action, at)"
                     " VALUES ('a', 'ann', 'alopecia', NULL, 'label', 'now')")
    assert catalog.migrate(conn)[0] == 8
    assert catalog.schema_version(conn) == catalog.MIGRATIONS[-1].version
    assert [tuple(r) for r in conn.execute("SELECT suggested FROM label_events")] == [(None,)]
    labeling.record(conn, "a", "ann", "psoriasis", "label", suggested=True)
    assert [r[0] for r in conn.execute("SELECT suggested FROM label_events ORDER BY id")] == [None, 1]
    assert conn.execute("SELECT name FROM schema_migrations WHERE version = 8").fetchone()[0] == (
        "label suggestions and whether each label event showed one")
    with pytest.raises(sqlite3.IntegrityError):  # probabilities only for images in the catalog
        with catalog.atomic(conn):
            conn.execute("INSERT INTO label_suggestions VALUES ('zz', '{}', 'cv', 'now')")
    conn.close()


def test_serve_label_page_shows_no_suggestion_hides_hints_on_blind_and_records_false(
        workspace: Workspace, three: list[str]) -> None:
    set_blind_fraction(workspace, 1.0)
    workspace.close()
    with serving(workspace.root, "--annotator", "alice") as served:
        client, csrf = login(served, "alice")
        view = client.get("/api/label").json()
        assert view["item"]["sha256"] == three[0]
        item = view["item"]
        assert (item["blind"], item["hint"], item["source"], item["label"]) == (True, "", "", None)
        assert item["suggestion"] is None
        client.post("/api/label", json={"key": "1"}, headers={"X-CSRF-Token": csrf})
        client.close()
    assert suggested_flags(workspace.catalog_path) == [(three[0], "label", 0)]


def test_serve_suggest_shows_the_model_except_on_blind_images_and_records_it(
        workspace: Workspace, three: list[str]) -> None:
    blind, fraction = only_first_blind(three)
    set_blind_fraction(workspace, fraction)
    workspace.close()
    with serving(workspace.root, "--annotator", "alice", "--suggest") as served:
        client, csrf = login(served, "alice")
        shown = []
        for _ in three:
            item = client.get("/api/label").json()["item"]
            shown.append((item["sha256"], item["suggestion"]))
            client.post("/api/label", json={"key": "1"}, headers={"X-CSRF-Token": csrf})
        client.close()
    assert shown == [(three[0], None if three[0] == blind else "model: psoriasis 0.70, alopecia 0.20"),
                     (three[1], None if three[1] == blind else "model: alopecia 0.50, psoriasis 0.30"),
                     (three[2], None if three[2] == blind else "model: folliculitis 0.80, alopecia 0.10")]
    assert suggested_flags(workspace.catalog_path) == [
        (sha, "label", 0 if sha == blind else 1) for sha in three]


def test_serve_suggest_without_probabilities_is_one_line(workspace: Workspace) -> None:
    add_image(workspace, 1)
    workspace.close()
    before = snapshot(workspace.root)
    result = run_cli("serve", "--suggest", workspace=workspace.root)
    assert (result.exit_code, result.stderr.splitlines()[0]) == (5, (
        "Error: --suggest: no model probabilities are stored in this workspace; "
        "run `curator review --run --with-cv` first"))
    assert snapshot(workspace.root) == before


def test_oof_folds_keep_a_patient_group_and_a_cluster_together(workspace: Workspace) -> None:
    from curator.review import oof

    a, b, c = add_image(workspace, 1), add_image(workspace, 2), add_image(workspace, 3)
    copy = add_image(workspace, 4, cluster_of=c)
    workspace.conn.execute("UPDATE sources SET group_id = 'patient-1' WHERE sha256 IN (?, ?)", (a, b))
    keys = oof.fold_keys(workspace, [a, b, c, copy])
    assert keys[0] == keys[1] and keys[2] == keys[3] and keys[0] != keys[2]
    assert isinstance(keys, np.ndarray)


def test_a_label_issue_relabel_records_the_suggestion_and_stays_out_of_blind_agreement(
        workspace: Workspace) -> None:
    from curator.review import findings
    from curator.review import run as review_run

    set_blind_fraction(workspace, 1.0)
    workspace.close()
    ws = open_workspace(workspace.root)
    try:
        shas = [add_image(ws, seed) for seed in range(8)]
        given = ["alopecia"] * 4 + ["psoriasis"] * 4
        probs = {sha: ([0.9, 0.05, 0.05] if label == "alopecia" else [0.05, 0.9, 0.05])
                 for sha, label in zip(shas, given, strict=True)}
        probs[shas[0]] = [0.05, 0.9, 0.05]  # labelled alopecia, confidently psoriasis
        for sha, label in zip(shas, given, strict=True):
            labeling.record(ws.conn, sha, "alice", label, "label", suggested=False)
        check = review_run.default_checks(ws.config.review)["label-issue"]
        review_run.run(ws, probabilities=probs, checks={"label-issue": check})
        (issue,) = findings.listing(ws.conn, kind="label-issue")
        assert issue["sha256"] == shas[0]
        findings.decide(ws.conn, issue["id"], "rev", "relabel", "psoriasis", CLASSES)
        labeling.record(ws.conn, shas[1], "rev", "alopecia", "label", suggested=False)
        assert suggested_flags(ws.catalog_path)[-2:] == [(shas[0], "review", 1), (shas[1], "label", 0)]
        blind = labeling.summary(ws.conn, ws.config)["blind"]
        assert isinstance(blind, dict)
        assert (blind["clusters"], blind["labels"], blind["with_suggestion"]) == (8, 9, 1)
        assert blind["agreement"]["items"] == 1  # only image 1 has two unanchored labels
    finally:
        ws.close()
