"""curator review: each check on constructed images with known answers, label issues,
findings and decisions in the catalog, incremental runs, and the CLI."""

from __future__ import annotations

import dataclasses
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image, ImageFilter
from skimage import data as skdata

from curator import catalog, labeling, store, synthetic
from curator.config import ReviewConfig
from curator.review import findings, labelissues, offtopic, privacy, quality
from curator.review import run as review_run
from curator.workspace import Workspace
from tests.conftest import run_cli, snapshot

CFG = ReviewConfig()


def flagged(rgb: np.ndarray, size: tuple[int, int] | None = None) -> set[str]:
    width, height = size or (rgb.shape[1], rgb.shape[0])
    return {r.kind for r in quality.check(rgb, width, height, CFG) if r.flagged}


def scalp(seed: int = 1, size: tuple[int, int] = (640, 480)) -> np.ndarray:
    return np.asarray(synthetic.photo(seed, seed % 3, size))


# ---------------------------------------------------------------------------------------------
# Quality


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_clean_photo_is_flagged_for_nothing(seed: int) -> None:
    assert flagged(scalp(seed)) == set()
    assert flagged(skdata.astronaut()) == set()


def test_blur_is_found_at_any_scale_and_the_sharp_original_is_not() -> None:
    for size in ((640, 480), (1600, 1200)):
        img = synthetic.photo(4, 1, size)
        blurred = np.asarray(img.filter(ImageFilter.GaussianBlur(radius=size[0] / 160)))
        assert "blur" in flagged(blurred)
        assert "blur" not in flagged(np.asarray(img))
    # a darker copy of a sharp photo is dark, not blurred
    assert flagged((scalp(5) * 0.2).astype(np.uint8)) >= {"dark"}
    assert "blur" not in flagged((scalp(5) * 0.2).astype(np.uint8))


def test_dark_bright_uniform_tiny_odd_and_grey_images() -> None:
    photo = scalp(6)
    assert "dark" in flagged((photo * 0.2).astype(np.uint8))
    assert "bright" in flagged((photo * 0.3 + 0.7 * 255).astype(np.uint8))
    uniform = np.full((480, 640, 3), (180, 140, 120), dtype=np.uint8)
    noisy = np.clip(uniform + np.random.default_rng(0).normal(0, 2, uniform.shape), 0, 255).astype(np.uint8)
    assert flagged(noisy) == {"low-information"}  # not also blur or greyscale: nothing there to judge
    assert "low-resolution" in flagged(scalp(7, (160, 120)))
    assert "odd-aspect" in flagged(scalp(8, (1200, 300)))
    assert "odd-aspect" not in flagged(scalp(8, (800, 450)))  # 16:9 is a normal photo
    grey = np.repeat(np.asarray(Image.fromarray(photo).convert("L"))[..., None], 3, axis=2)
    assert flagged(grey) == {"greyscale"}


def test_scores_are_oriented_and_flagged_at_one() -> None:
    results = {r.kind: r for r in quality.check(scalp(9), 640, 480, CFG)}
    tiny = {r.kind: r for r in quality.check(scalp(9, (112, 84)), 112, 84, CFG)}
    assert tiny["low-resolution"].score == pytest.approx(224 / 84)
    assert results["low-resolution"].score == pytest.approx(224 / 480)
    assert all(r.flagged == (r.score >= 1) for r in results.values())


# ---------------------------------------------------------------------------------------------
# Privacy


def test_faces_and_partial_faces_are_found_and_scalp_photos_are_not() -> None:
    face = skdata.astronaut()
    kinds = {r.kind: r for r in privacy.check(face, CFG)}
    assert kinds["face"].flagged and not kinds["eye"].flagged
    eyes = {r.kind: r for r in privacy.check(face[100:150, 170:290], CFG)}  # an eye band, no whole face
    assert eyes["eye"].flagged and not eyes["face"].flagged
    half = privacy.check(face[60:220, 150:225], CFG)  # the left half of the face
    assert any(r.flagged for r in half)
    for seed in range(3):
        assert not any(r.flagged for r in privacy.check(scalp(seed), CFG))


@pytest.mark.parametrize("index", [10, 15, 40, 55])
def test_other_peoples_small_faces_in_a_scalp_photo_are_found(index: int) -> None:
    """Faces of scikit-image's LFW subset (25x25 grey, other people and poses), enlarged to
    under a sixth of the width of a scalp photo at the size the run decodes (320 px)."""
    face = Image.fromarray((skdata.lfw_subset()[index] * 255).astype(np.uint8)).convert("RGB")
    photo = synthetic.photo(index, index % 3, (320, 240))
    photo.paste(face.resize((48, 48)), (150, 90))
    kinds = {r.kind: r for r in privacy.check(np.asarray(photo), CFG)}
    assert kinds["face"].flagged


def test_few_scalp_photos_at_the_decoded_size_are_flagged() -> None:
    """A cascade flags the odd clean photo, so the bound is on a rate (5%), well inside the
    issue's 10% for anything."""
    flagged = sum(any(r.flagged for r in privacy.check(scalp(seed, (320, 240)), CFG)) for seed in range(40))
    assert flagged <= 2


# ---------------------------------------------------------------------------------------------
# Off-topic


def test_offtopic_scores_single_out_photos_unlike_the_rest() -> None:
    scalps = [offtopic.features(scalp(seed, (320, 240))) for seed in range(24)]
    odd = [offtopic.features(img) for img in (skdata.rocket(), skdata.colorwheel())]
    scores = offtopic.scores(np.stack(scalps + odd))
    assert scores is not None
    assert set(np.argsort(-scores)[:2]) == {24, 25}
    assert (scores[24:] >= CFG.offtopic_min).all() and (scores[:24] < CFG.offtopic_min).all()
    assert offtopic.scores(np.stack(scalps[: offtopic.MIN_IMAGES - 1])) is None


# ---------------------------------------------------------------------------------------------
# Label issues


def test_confident_joint_on_a_hand_made_example() -> None:
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.1, 0.9], [0.2, 0.8], [0.85, 0.15]])
    labels = np.array([0, 0, 0, 1, 1, 1])
    # thresholds: class 0 = mean(.9, .8, .3) = 2/3; class 1 = mean(.9, .8, .15) = 0.6167
    assert labelissues.thresholds(probs, labels) == pytest.approx([2 / 3, 1.85 / 3])
    joint, confident = labelissues.confident_joint(probs, labels)
    assert confident.tolist() == [0, 0, 1, 1, 1, 0]
    assert joint.tolist() == [[2, 1], [1, 2]]
    issues = labelissues.find_issues(probs, labels)
    assert [(i.index, i.given, i.suggested) for i in issues] == [(5, 1, 0), (2, 0, 1)]
    assert [i.quality for i in issues] == pytest.approx([0.15, 0.3])
    margin = labelissues.find_issues(probs, labels, "normalized-margin")
    assert [i.quality for i in margin] == pytest.approx([(0.15 - 0.85 + 1) / 2, (0.3 - 0.7 + 1) / 2])


def test_flipped_labels_rank_far_above_random() -> None:
    rng = np.random.default_rng(3)
    n, k = 3000, 3
    truth = rng.integers(0, k, n)
    logits = rng.normal(0, 1, (n, k))
    logits[np.arange(n), truth] += 2.0
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    flips = rng.random(n) < 0.1
    labels = truth.copy()
    labels[flips] = (labels[flips] + rng.integers(1, k, flips.sum())) % k
    top = [issue.index for issue in labelissues.find_issues(probs, labels)[: flips.sum()]]
    assert flips[top].mean() >= 3 * flips.mean()
    with pytest.raises(ValueError):
        labelissues.find_issues(probs, labels, "loss")


# ---------------------------------------------------------------------------------------------
# Findings in the catalog, and runs over a workspace


def add_image(ws: Workspace, rgb: np.ndarray | Image.Image, fmt: str = "JPEG") -> str:
    img = rgb if isinstance(rgb, Image.Image) else Image.fromarray(rgb)
    payload = synthetic.encode(img, fmt)
    sha = store.put(ws.objects, payload)
    with catalog.atomic(ws.conn):
        cid = ws.conn.execute("INSERT INTO clusters (representative) VALUES (?)", (sha,)).lastrowid
        ws.conn.execute(
            "INSERT INTO images (sha256, fingerprint, width, height, format, bytes, cluster_id, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (sha, "fp" + sha, img.width, img.height, fmt, len(payload), cid, catalog.utcnow()),
        )
    return sha


def kinds_of(ws: Workspace, sha: str) -> set[str]:
    return {item["kind"] for item in findings.listing(ws.conn) if item["sha256"] == sha}


def test_run_finds_planted_problems_and_is_incremental(workspace: Workspace) -> None:
    clean = [add_image(workspace, scalp(seed, (320, 240))) for seed in range(12)]
    dark = add_image(workspace, (scalp(20, (320, 240)) * 0.2).astype(np.uint8))
    face = add_image(workspace, skdata.astronaut(), "PNG")
    summary = review_run.run(workspace)
    assert summary.computed["quality"] == 14 and summary.errors == 0
    assert "dark" in kinds_of(workspace, dark)
    assert "face" in kinds_of(workspace, face)
    assert not any(kinds_of(workspace, sha) & {"face", "eye", "dark", "blur"} for sha in clean)
    assert summary.label_issues == review_run.NEEDS_LABELS
    again = review_run.run(workspace)
    assert again.computed == {"quality": 0, "privacy": 0, "off-topic features": 0}
    add_image(workspace, scalp(30, (320, 240)))
    assert review_run.run(workspace).computed["quality"] == 1
    stricter = dataclasses.replace(workspace.config.review, dark_max=60.0)
    checks = review_run.default_checks(stricter)
    assert review_run.run(workspace, checks=checks).computed["quality"] == 15  # a threshold changed


def test_the_pool_keeps_one_batch_queued_and_cancels_it_when_the_driver_stops() -> None:
    release, ran = threading.Event(), []

    def check(item: int) -> int:
        if item >= 100:  # the second batch waits until the driver has stopped
            release.wait(10)
        ran.append(item)
        return item * 2

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = review_run._ahead(pool, check, iter([[1, 2, 3], [100, 101, 102], [200]]))
        assert next(results) == [2, 4, 6]  # in input order, while the next batch is queued
        results.close()
        release.set()
    assert {1, 2, 3} <= set(ran) <= {1, 2, 3, 100, 101}  # 102 was cancelled, 200 never queued


@given(count=st.integers(0, 4 * review_run.BATCH), threads=st.integers(1, 16))
def test_a_batch_is_cut_into_even_chunks_for_every_thread(count: int, threads: int) -> None:
    chunks = review_run._even_chunks(list(range(count)), threads)
    assert [i for chunk in chunks for i in chunk] == list(range(count))  # all of it, in order
    sizes = [len(chunk) for chunk in chunks]
    assert all(0 < size <= review_run.CHUNK for size in sizes)
    assert len(sizes) == count or len(sizes) % threads == 0  # no thread left without a chunk
    assert not sizes or max(sizes) - min(sizes) <= 1


def test_a_short_last_batch_is_shared_by_the_threads() -> None:
    assert [len(c) for c in review_run._even_chunks(list(range(44)), 2)] == [11] * 4  # not 16 + 16 + 12
    full = review_run._even_chunks(list(range(review_run.BATCH)), 2)
    assert [len(c) for c in full] == [review_run.CHUNK] * 4


def test_a_corrupt_object_is_an_error_finding_and_the_run_goes_on(workspace: Workspace) -> None:
    good = add_image(workspace, scalp(1, (320, 240)))
    bad = add_image(workspace, scalp(2, (320, 240)))
    path = store.object_path(workspace.objects, bad)
    path.write_bytes(path.read_bytes()[:200])  # truncated on disk after ingest
    summary = review_run.run(workspace)
    assert summary.errors == 1
    errors = [item for item in findings.listing(workspace.conn, kind="error")]
    assert [item["sha256"] for item in errors] == [bad, bad]  # quality and privacy each say so
    assert {item["detail"]["check"] for item in errors} == {"quality", "privacy"}
    assert "cannot decode" in errors[0]["detail"]["reason"]
    assert kinds_of(workspace, good) == set()


def test_a_new_check_version_reopens_only_what_it_changes(workspace: Workspace) -> None:
    a, b, c = (add_image(workspace, scalp(seed, (320, 240))) for seed in range(3))
    v1 = findings.Check("quality", ("blur", "dark"), "quality-1", {"t": 1})
    v2 = dataclasses.replace(v1, version="quality-2")

    def results(blur: float, dark: float) -> list[quality.Result]:
        return [quality.Result("blur", blur, {}), quality.Result("dark", dark, {})]

    findings.save(workspace.conn, v1, {a: results(2.0, 0.1), b: results(1.5, 0.1), c: results(0.2, 0.1)})
    ids = {item["sha256"]: item["id"] for item in findings.listing(workspace.conn)}
    findings.decide(workspace.conn, ids[a], "rev", "not-a-problem")
    findings.decide(workspace.conn, ids[b], "rev", "exclude")
    assert findings.stale(workspace.conn, v2, [a, b, c]) == [a, b, c]
    # v2: a still blurred (decision kept), b no longer (its finding goes), c newly dark (open)
    findings.save(workspace.conn, v2, {a: results(3.0, 0.1), b: results(0.5, 0.1), c: results(0.2, 1.2)})
    items = {(i["sha256"], i["kind"]): i for i in findings.listing(workspace.conn)}
    assert set(items) == {(a, "blur"), (c, "dark")}
    assert items[a, "blur"]["status"] == "not-a-problem" and items[a, "blur"]["check_version"] == "quality-2"
    assert items[a, "blur"]["score"] == 3.0
    assert items[c, "dark"]["status"] == "open"


def test_decisions_are_events_and_undo_restores_label_and_status(workspace: Workspace) -> None:
    sha = add_image(workspace, scalp(1, (320, 240)))
    check = findings.Check("label-issue", ("label-issue",), "cl-1", {})
    issue = quality.Result("label-issue", 0.8, {"given_label": "alopecia", "suggested_label": "psoriasis"},
                           issue=True)
    findings.save(workspace.conn, check, {sha: [issue]})
    labeling.record(workspace.conn, sha, "ann", "alopecia", "label")
    (item,) = findings.listing(workspace.conn)
    assert item["given_label"] == "alopecia" and item["suggested_label"] == "psoriasis"
    classes = workspace.config.dataset.classes
    assert findings.decide(workspace.conn, item["id"], "rev", "relabel", "psoriasis", classes) == "open"
    assert labeling.annotator_label(workspace.conn, sha, "rev") == "psoriasis"
    assert findings.decide(workspace.conn, item["id"], "rev", "keep", None, classes) == "relabel"
    assert findings.undo(workspace.conn, item["id"], "rev") == "relabel"
    assert findings.undo(workspace.conn, item["id"], "rev") == "open"
    assert labeling.annotator_label(workspace.conn, sha, "rev") is None
    rows = workspace.conn.execute("SELECT decision, previous, action FROM review_events ORDER BY id")
    assert [tuple(r) for r in rows] == [("relabel", None, "decide"), ("keep", "relabel", "decide"),
                                        ("relabel", "keep", "undo"), (None, "relabel", "undo")]
    with pytest.raises(Exception, match="no decision to undo"):
        findings.undo(workspace.conn, item["id"], "rev")


def test_migration_6_creates_the_review_tables(tmp_path: Path) -> None:
    conn = catalog.connect(tmp_path / "c.sqlite")
    assert catalog.schema_version(conn) >= 6  # later migrations (7: annotators) come after
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"review_checks", "review_findings", "review_events", "review_features"} <= tables


def test_migration_12_finds_an_images_findings_by_index(tmp_path: Path) -> None:
    """Re-checking an image looks up its earlier finding of a kind, active or not (findings._upsert)."""
    conn = catalog.connect(tmp_path / "c.sqlite")
    assert catalog.schema_version(conn) >= 12
    plan = conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM review_findings WHERE sha256 = ? AND kind = ? AND verdict = ?"
        " ORDER BY active DESC, id DESC LIMIT 1", ("a", "blur", "open"),
    ).fetchall()
    assert any("USING INDEX review_findings_by_image" in row[-1] for row in plan), plan


# ---------------------------------------------------------------------------------------------
# CLI


def test_list_json_schema_and_label_issues_from_probabilities(workspace: Workspace, tmp_path: Path) -> None:
    shas = [add_image(workspace, scalp(seed, (320, 240))) for seed in range(12)]
    classes = workspace.config.dataset.classes
    rng = np.random.default_rng(0)
    rows = ["sha256," + ",".join(classes)]
    for index, sha in enumerate(shas):
        given = classes[index % 3]
        labeling.record(workspace.conn, sha, "ann", given, "label")
        # the model agrees with every label but the first image's: it is sure that one is class 2
        p = np.full(3, 0.05)
        p[2 if index == 0 else index % 3] = 0.9
        p = p + rng.uniform(0, 0.01, 3)
        rows.append(sha + "," + ",".join(f"{v / p.sum():.6f}" for v in p))
    probs = tmp_path / "probs.csv"
    probs.write_text("\n".join(rows) + "\n")
    result = run_cli("review", "--run", "--probabilities", str(probs), workspace=workspace.root)
    assert result.exit_code == 0, result.stderr
    result = run_cli("--json", "review", "--list", "--kind", "label-issue", workspace=workspace.root)
    assert result.exit_code == 0
    (item,) = json.loads(result.stdout)["findings"]
    assert {"sha256", "kind", "score", "status", "detail", "given_label", "suggested_label"} <= set(item)
    assert (item["sha256"], item["kind"], item["status"]) == (shas[0], "label-issue", "open")
    assert (item["given_label"], item["suggested_label"]) == ("alopecia", "folliculitis")
    result = run_cli("--json", "review", "--decide", f"{item['id']}=exclude", workspace=workspace.root)
    assert json.loads(result.stdout)["status"] == "exclude"
    listed = json.loads(run_cli("--json", "review", "--list", "--open", workspace=workspace.root).stdout)
    assert all(i["status"] == "open" for i in listed["findings"])
    assert item["id"] not in [i["id"] for i in listed["findings"]]


def test_bad_input_one_line_and_the_workspace_unchanged(workspace: Workspace, tmp_path: Path) -> None:
    before = snapshot(workspace.root)
    result = run_cli("review", "--run", workspace=workspace.root)
    assert result.exit_code != 0
    assert result.stderr.strip() == (f"Error: {workspace.root}: the workspace has no images to review; "
                                     "run `curator ingest` first")
    result = run_cli("review", "--list", "--kind", "blurry", workspace=workspace.root)
    assert result.exit_code != 0 and result.stderr.startswith("Error: --kind 'blurry' is not one of")
    result = run_cli("review", "--decide", "x=keep", workspace=workspace.root)
    assert result.exit_code != 0 and "expected ID=DECISION" in result.stderr
    result = run_cli("review", workspace=workspace.root)
    assert result.exit_code != 0 and "needs a terminal" in result.stderr
    assert snapshot(workspace.root) == before
    add_image(workspace, scalp(1, (320, 240)))
    result = run_cli("review", "--run", workspace=workspace.root)
    assert result.exit_code == 0
    assert "label issues need labelled images" in result.stderr
    bad = tmp_path / "p.csv"
    bad.write_text("sha256,alopecia\nabc,1\n")
    result = run_cli("review", "--run", "--probabilities", str(bad), workspace=workspace.root)
    assert result.exit_code != 0
    assert result.stderr.strip() == f"Error: {bad}: missing column(s) psoriasis, folliculitis"


@pytest.mark.slow
def test_with_cv_trains_out_of_fold_models_and_finds_label_issues(workspace: Workspace) -> None:
    with (workspace.root / "curator.toml").open("a", encoding="utf-8") as fh:
        fh.write("\n[baseline]\nimage_size = 16\nepochs = 1\nbatch_size = 4\n")
    classes = workspace.config.dataset.classes
    shas = []
    for seed in range(15):  # five clusters per class: one per fold
        shas.append(add_image(workspace, scalp(seed, (96, 72))))
        labeling.record(workspace.conn, shas[-1], "ann", classes[seed % 3], "label")
    workspace.close()
    result = run_cli("review", "--run", "--with-cv", workspace=workspace.root)
    assert result.exit_code == 0, result.stderr
    assert "label issues need" not in result.stderr
    conn = catalog.connect(workspace.catalog_path)
    try:
        sql = "SELECT COUNT(*) FROM review_checks WHERE check_name = 'label-issue'"
        assert conn.execute(sql).fetchone()[0] == 15
    finally:
        conn.close()


def test_with_cv_needs_labels(workspace: Workspace) -> None:
    add_image(workspace, scalp(1, (96, 72)))
    result = run_cli("review", "--run", "--with-cv", workspace=workspace.root)
    assert result.exit_code != 0
    assert result.stderr.strip() == ("Error: --with-cv needs labelled images of at least two classes; "
                                     "label with `curator label`")


@given(st.integers(min_value=2, max_value=5), st.integers(min_value=10, max_value=200), st.integers(0, 2**31))
@settings(max_examples=30, deadline=None)
def test_label_issue_properties(k: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    probs = rng.dirichlet(np.ones(k), size=n)
    labels = rng.integers(0, k, n)
    issues = labelissues.find_issues(probs, labels)
    # an issue is never an image the model agrees with, and its suggestion is another class
    assert all(probs[i.index].argmax() != i.given and i.suggested != i.given for i in issues)
    assert [i.quality for i in issues] == sorted(i.quality for i in issues)
    # the same images in another order give the same issues
    order = rng.permutation(n)
    shuffled = labelissues.find_issues(probs[order], labels[order])
    assert sorted(order[i.index] for i in shuffled) == sorted(i.index for i in issues)
    # labels that agree with confident predictions have no issues
    assert labelissues.find_issues(np.eye(k)[labels] * 0.9 + 0.1 / k, labels) == []
