"""``curator demo``: the whole path, offline, on generated images.

    <root>/
    ├── incoming/<class>/*.jpg   generated scalp-like photos, plus near and exact copies and junk
    ├── workspace/               a real workspace: curator.toml, catalog.sqlite, objects/, releases/
    └── published/v1.0.0/        the release as published to a local folder (loadable with datasets)

Each stage is the same library call the CLI makes; the demo only chains them and
collects one summary line per stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image

from curator import labeling, release, synthetic
from curator.errors import InputError
from curator.fsutil import write_atomic
from curator.ingest import IngestOptions
from curator.ingest import run as ingest_run
from curator.publish import publish
from curator.workspace import Workspace, init_workspace

CLASSES = ["alopecia", "psoriasis", "folliculitis"]
PHOTO_SIZE = (320, 240)


@dataclass
class Stage:
    name: str
    seconds: float
    summary: str


@dataclass
class DemoResult:
    root: Path
    stages: list[Stage] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        return {
            "root": str(self.root),
            "stages": [
                {"stage": s.name, "seconds": round(s.seconds, 2), "summary": s.summary} for s in self.stages
            ],
        }


StageCallback = Callable[[str], None]


def run_demo(
    root: Path,
    *,
    per_class: int = 50,
    epochs: int | None = None,
    on_stage: StageCallback | None = None,
    on_epoch: Callable[[object], None] | None = None,
) -> DemoResult:
    """Generate images, then init, ingest, label (accept hints), release, baseline and publish."""
    root = Path(root).expanduser().resolve()
    if root.exists() and any(root.iterdir()):
        raise InputError(f"{root}: folder is not empty; the demo needs a new or empty folder", path=str(root))
    result = DemoResult(root)
    announce = on_stage or (lambda name: None)

    def stage(name: str, work: Callable[[], str]) -> None:
        announce(name)
        started = time.perf_counter()
        summary = work()
        result.stages.append(Stage(name, time.perf_counter() - started, summary))

    incoming = root / "incoming"
    stage("generate", lambda: generate_images(incoming, per_class))
    ws = init_workspace(root / "workspace", "scalp-demo", CLASSES)
    try:
        stage("ingest", lambda: _ingest(ws, incoming))
        stage("label", lambda: f"{labeling.accept_hints(ws.conn, ws.config)} folder-name hints became labels")
        stage("release", lambda: _release(ws))
        stage("baseline", lambda: _baseline(ws, epochs, on_epoch))
        stage("publish", lambda: _publish(ws, root / "published" / "v1.0.0"))
    finally:
        ws.close()
    return result


def generate_images(folder: Path, per_class: int) -> str:
    """``per_class`` photos per class, one in ten with a resized, re-encoded near copy, a few exact
    copies under other names, and two files that must be rejected."""
    near = exact = 0
    for index, label in enumerate(CLASSES):
        for n in range(per_class):
            seed = 1000 * index + n
            img = synthetic.photo(seed, label, PHOTO_SIZE)
            write_atomic(folder / label / f"{label}-{n:03d}.jpg", synthetic.encode(img, "JPEG"))
            if n % 10 == 3:
                smaller = img.resize((256, 192), Image.Resampling.LANCZOS)
                small_copy = synthetic.encode(smaller, quality=60)
                write_atomic(folder / label / f"{label}-{n:03d}-small.jpg", small_copy)
                near += 1
            if n % 20 == 7:
                write_atomic(folder / label / f"{label}-{n:03d}-copy.jpg", synthetic.encode(img, "JPEG"))
                exact += 1
    write_atomic(folder / "alopecia" / "not-really-a-photo.jpg", b"<html><body>404 Not Found</body></html>")
    tiny = synthetic.photo(7, "alopecia", (40, 30))
    write_atomic(folder / "alopecia" / "thumbnail.png", synthetic.encode(tiny, "PNG"))
    total = per_class * len(CLASSES)
    return f"{total} photos, {near} near copies, {exact} exact copies, 2 junk files in {folder}"


def _ingest(ws: Workspace, incoming: Path) -> str:
    summary = ingest_run(ws, [str(incoming)], IngestOptions(settings=ws.config.ingest, hint_from_folder=True))
    rejected = ", ".join(f"{n} {reason}" for reason, n in sorted(summary.rejected.items())) or "none"
    return (
        f"{summary.total} files: {summary.stored} stored, {summary.exact_duplicates} exact and "
        f"{summary.near_duplicates} near duplicates, rejected: {rejected}"
    )


def _release(ws: Workspace) -> str:
    built = release.build(ws)
    splits = ", ".join(f"{name} {info['rows']}" for name, info in built.splits.items())
    return f"v{built.version} ({built.bump.reason}): {splits} rows"


def _baseline(ws: Workspace, epochs: int | None, on_epoch: Callable[[object], None] | None) -> str:
    from baseline.run import score_release

    # one repeat of 3 folds, in this process, keeps the demo quick; `curator baseline` runs 5x5
    overrides = {"epochs": epochs, "cv_folds": 3, "cv_repeats": 1, "cv_workers": 1}
    scored = score_release(ws, "1.0.0", overrides=overrides, on_epoch=on_epoch)
    return scored.summary_line()


def _publish(ws: Workspace, target: Path) -> str:
    published = publish(ws, "1.0.0", to=target, verify=True)
    rows = sum((published.verified or {}).values())
    return f"v{published.version} copied to {published.location}; load_dataset read back {rows} rows"
