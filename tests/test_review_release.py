"""curator review's effect on releases and status: exclusions leave, privacy findings block."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from curator import catalog
from curator.review import findings
from curator.review import run as review_run
from curator.review.quality import Result
from tests.conftest import run_cli
from tests.test_release import catalog_dump, make_workspace

FACES = findings.Check("privacy", ("face", "eye"), "privacy-1", {})


def images(ws: Path) -> list[str]:
    conn = sqlite3.connect(ws / "catalog.sqlite")
    try:
        return [r[0] for r in conn.execute("SELECT c.representative FROM clusters c ORDER BY 1")]
    finally:
        conn.close()


def save_faces(ws: Path, shas: list[str]) -> list[int]:
    conn = catalog.connect(ws / "catalog.sqlite")
    try:
        findings.save(conn, FACES, {sha: [Result("face", 1.5, {"confidence": 0.9})] for sha in shas})
        return [item["id"] for item in findings.listing(conn)]
    finally:
        conn.close()


def originals(ws: Path) -> int:
    report = json.loads(run_cli("--json", "release", "--dry-run", "--allow-unreviewed", workspace=ws).stdout)
    return sum(s["originals"] for s in report["splits"].values())


def test_open_privacy_findings_block_release_until_decided(tmp_path: Path) -> None:
    ws = make_workspace(tmp_path, {"alopecia": 4, "psoriasis": 4, "folliculitis": 4})
    first, second = images(ws)[:2]
    ids = save_faces(ws, [first, second])
    dump = catalog_dump(ws)
    result = run_cli("release", workspace=ws)
    assert result.exit_code != 0
    assert result.stderr.splitlines()[0] == (
        f"Error: 2 undecided privacy finding(s) on images to release: {min(first, second)[:12]} (face), "
        f"{max(first, second)[:12]} (face)")
    assert catalog_dump(ws) == dump and not (ws / "releases").exists()
    status = json.loads(run_cli("--json", "status", workspace=ws).stdout)
    assert status["open_findings"] == {"face": 2}
    result = run_cli("release", "--dry-run", "--allow-unreviewed", workspace=ws)
    assert result.exit_code == 0 and "undecided privacy finding(s) (--allow-unreviewed)" in result.stderr
    assert originals(ws) == 12
    # excluding one and keeping the other: the release goes ahead without the excluded image
    assert run_cli("review", "--decide", f"{ids[0]}=exclude", workspace=ws).exit_code == 0
    assert run_cli("review", "--decide", f"{ids[1]}=not-a-problem", workspace=ws).exit_code == 0
    result = run_cli("--json", "release", "--dry-run", workspace=ws)
    assert result.exit_code == 0, result.stderr
    assert sum(s["originals"] for s in json.loads(result.stdout)["splits"].values()) == 11
    assert json.loads(run_cli("--json", "status", workspace=ws).stdout)["open_findings"] == {}
    assert run_cli("review", "--undo", str(ids[0]), workspace=ws).exit_code == 0  # undone: blocks again
    assert run_cli("release", "--dry-run", workspace=ws).exit_code != 0


def test_the_card_data_review_section_matches_the_catalog(tmp_path: Path) -> None:
    from curator.workspace import open_workspace
    from tests.test_release import build

    ws = make_workspace(tmp_path, {"alopecia": 4, "psoriasis": 4, "folliculitis": 4})
    opened = open_workspace(ws)
    try:
        summary = review_run.run(opened)
        first, second = images(ws)[:2]
        blur = findings.Check("blur-test", ("blur",), "blur-test-1", {"blur_max": 1.1})
        planted = {first: [Result("blur", 2.0, {})], second: [Result("blur", 3.0, {})]}
        findings.save(opened.conn, blur, planted)
        blurred = {i["sha256"]: i["id"] for i in findings.listing(opened.conn, kind="blur")}
        findings.decide(opened.conn, blurred[first], "rev", "exclude")
        listed = findings.listing(opened.conn)
    finally:
        opened.close()
    result = build(ws)
    card = (result.path / "README.md").read_text()
    section = card.split("## Data review", 1)[1].split("\n## ", 1)[0]
    assert "- quality `quality-1` (" in section and f"): {summary.images} images" in section
    found = sum(1 for i in listed if i["kind"] == "blur")
    assert f"| blur | {found} | 1 | 1 | 1 |" in section  # second stays open and released
    assert f"- `{second}`: blur (score 3.0), not yet reviewed" in section
    assert first not in section.split("### Known issues")[1]
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert first not in {row["sha256"] for row in manifest["rows"]}
