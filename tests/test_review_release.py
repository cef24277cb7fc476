"""curator review's effect on releases and status: exclusions leave, privacy findings block."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from curator import catalog
from curator.review import findings
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
