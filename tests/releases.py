"""Real releases for tests, built through the real path: ``curator init``, ingest a folder of
generated photos with --hint-from-folder, ``label --accept-hints``, ``release.build``.

Nothing here writes a release folder or a catalog row by hand, so a new column or manifest
field reaches every test that reads a release. Preprocessing is cut to a 64 px resize so that
a build takes a second or two.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from curator import release, synthetic
from curator.workspace import open_workspace
from tests.conftest import CLASSES, run_cli

CHEAP_PREPROCESS = '\n[preprocess]\nsteps = [{op = "resize", size = 64, mode = "longest"}]\n'
PINNED = "2026-01-01T00:00:00.000000+00:00"


def write_images(folder: Path, counts: dict[str, int], first_seed: int) -> list[Path]:
    """``counts[label]`` generated JPEGs per class under ``folder/<label>/``; seeds from ``first_seed``."""
    paths = []
    seed = first_seed
    for label, n in counts.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for _ in range(n):
            path = folder / label / f"img{seed:04d}.jpg"
            path.write_bytes(synthetic.encode(synthetic.photo(seed, label, (80, 80)), "JPEG"))
            paths.append(path)
            seed += 1
    return paths


def ingest_labelled(ws: Path, folder: Path) -> None:
    result = run_cli("ingest", str(folder), "--hint-from-folder", workspace=ws)
    assert result.exit_code == 0, result.output
    result = run_cli("label", "--accept-hints", workspace=ws)
    assert result.exit_code == 0, result.output


def make_workspace(root: Path, counts: dict[str, int], extra_toml: str = "", first_seed: int = 0) -> Path:
    ws = root / "ws"
    result = run_cli("init", "scalp-test", "--classes", ",".join(CLASSES), workspace=ws)
    assert result.exit_code == 0, result.output
    with (ws / "curator.toml").open("a", encoding="utf-8") as fh:
        fh.write(CHEAP_PREPROCESS + extra_toml)
    write_images(root / f"in{first_seed}", counts, first_seed)
    ingest_labelled(ws, root / f"in{first_seed}")
    return ws


def build(ws: Path, **kwargs: object) -> release.BuildResult:
    kwargs.setdefault("created_at", PINNED)
    opened = open_workspace(ws)
    try:
        return release.build(opened, **kwargs)  # type: ignore[arg-type]
    finally:
        opened.close()


def manifest(ws: Path, version: str) -> dict[str, Any]:
    return json.loads((ws / "releases" / f"v{version}" / "manifest.json").read_text())


def released_workspace(root: Path, counts: dict[str, int], extra_toml: str = "", **kwargs: Any) -> Path:
    """A workspace (``root/ws``) with release v1.0.0 built from ``counts`` generated photos per class."""
    ws = make_workspace(root, counts, extra_toml)
    build(ws, **kwargs)
    return ws


def add_images(ws: Path, root: Path, counts: dict[str, int], first_seed: int) -> None:
    """Ingest and label ``counts`` more generated photos per class (seeds from ``first_seed``)."""
    write_images(root / f"in{first_seed}", counts, first_seed)
    ingest_labelled(ws, root / f"in{first_seed}")
