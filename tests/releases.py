"""Real releases for tests, built through the real path: ``curator init``, ingest a folder of
generated photos with --hint-from-folder, ``label --accept-hints``, ``release.build``.

Nothing here writes a release folder or a catalog row by hand, so a new column or manifest
field reaches every test that reads a release. Preprocessing is cut to a 64 px resize so that
a build takes a second or two.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from curator import release, synthetic
from curator.workspace import open_workspace
from tests.conftest import CLASSES, run_cli

CHEAP_PREPROCESS = '\n[preprocess]\nsteps = [{op = "resize", size = 64, mode = "longest"}]\n'
PINNED = "2026-01-01T00:00:00.000000+00:00"


def write_images(folder: Path, counts: dict[str, int], first_seed: int, shuffled: bool = False) -> list[Path]:
    """``counts[label]`` generated JPEGs per class under ``folder/<label>/``; seeds from ``first_seed``.

    ``shuffled``: each photo shows a class drawn at random (seeded), so its folder's label says
    nothing about it."""
    paths = []
    seed = first_seed
    draw = random.Random(first_seed)
    for label, n in counts.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for _ in range(n):
            path = folder / label / f"img{seed:04d}.jpg"
            shown = draw.choice(CLASSES) if shuffled else label
            path.write_bytes(synthetic.encode(synthetic.photo(seed, shown, (80, 80)), "JPEG"))
            paths.append(path)
            seed += 1
    return paths


def set_keys(path: Path, settings: dict[str, str]) -> None:
    """Replace ``key = ...`` lines of ``[section]`` in a curator.toml (each key must be there)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    section = ""
    for i, line in enumerate(lines):
        if line.startswith("["):
            section = line.split("]")[0].strip("[")
        key = line.split("=")[0].strip()
        if f"{section}.{key}" in settings:
            lines[i] = f"{key} = {settings.pop(f'{section}.{key}')}"
    assert not settings, f"not in {path}: {sorted(settings)}"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def ingest_labelled(ws: Path, folder: Path) -> None:
    result = run_cli("ingest", str(folder), "--hint-from-folder", workspace=ws)
    assert result.exit_code == 0, result.output
    result = run_cli("label", "--accept-hints", workspace=ws)
    assert result.exit_code == 0, result.output


def make_workspace(root: Path, counts: dict[str, int], extra_toml: str = "", first_seed: int = 0,
                   shuffled: bool = False, settings: dict[str, str] | None = None) -> Path:
    """``settings``: 'section.key' -> a TOML value, replacing that key in the curator.toml init wrote."""
    ws = root / "ws"
    result = run_cli("init", "scalp-test", "--classes", ",".join(CLASSES), workspace=ws)
    assert result.exit_code == 0, result.output
    set_keys(ws / "curator.toml", settings or {})
    with (ws / "curator.toml").open("a", encoding="utf-8") as fh:
        fh.write(CHEAP_PREPROCESS + extra_toml)
    write_images(root / f"in{first_seed}", counts, first_seed, shuffled)
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


def released_workspace(root: Path, counts: dict[str, int], settings: dict[str, str] | None = None,
                       shuffled: bool = False, **kwargs: Any) -> Path:
    """A workspace (``root/ws``) with release v1.0.0 built from ``counts`` generated photos per class."""
    ws = make_workspace(root, counts, shuffled=shuffled, settings=settings)
    build(ws, **kwargs)
    return ws


# Sized for the baseline tests: a test split under 50 images (so repeated CV is the headline), and
# enough photos per class that a small CNN learns the generated classes in a few epochs.
BASELINE_PHOTOS = {"alopecia": 28, "psoriasis": 26, "folliculitis": 24}
BASELINE_SPLIT = {"split.train": "0.4", "split.validation": "0.3", "split.test": "0.3"}


def baseline_release(root: Path, settings: dict[str, str] | None = None, **kwargs: Any) -> Path:
    """A workspace with release v1.0.0 for ``curator baseline`` (see BASELINE_PHOTOS)."""
    return released_workspace(root, BASELINE_PHOTOS, {**BASELINE_SPLIT, **(settings or {})}, **kwargs)


def add_images(ws: Path, root: Path, counts: dict[str, int], first_seed: int) -> None:
    """Ingest and label ``counts`` more generated photos per class (seeds from ``first_seed``)."""
    write_images(root / f"in{first_seed}", counts, first_seed)
    ingest_labelled(ws, root / f"in{first_seed}")
