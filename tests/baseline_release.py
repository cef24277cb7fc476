"""A small release folder built directly with ``datasets``, for the baseline tests.

It has the shape ``curator release`` writes (``data/<split>-00000-of-00001.parquet`` with
Image + ClassLabel features, ``manifest.json``, a README.md card with the baseline markers)
and can be registered in a workspace's catalog, so ``curator baseline`` can score it
without running ingest/label/release. Images come from ``curator.synthetic.photo``, whose
classes are visually distinct, so a small CNN learns them in a few epochs.
"""

from __future__ import annotations

import hashlib
import json
import random
from pathlib import Path
from typing import Any

from curator import catalog, release, synthetic

CLASSES = ("alopecia", "psoriasis", "folliculitis")
CARD = """---
license: other
---
# test release

## Baseline

<!-- baseline:start -->
No baseline has been scored on this release yet.
<!-- baseline:end -->

## Citation

Roy & Protity (2023).
"""


def _png(seed: int, label: str, size: int) -> bytes:
    return synthetic.encode(synthetic.photo(seed, label, size=(size, size)), "PNG")


def write_release(
    folder: Path,
    version: str = "1.0.0",
    per_class: dict[str, int] | None = None,
    classes: tuple[str, ...] = CLASSES,
    size: int = 64,
    seed: int = 0,
    missing: tuple[str, str] | None = None,
    class_weights: dict[str, float] | None = None,
    pair_clusters: bool = True,
    parent: str | None = None,
    flip_labels: int = 0,
    corrupt: tuple[str, int] | None = None,
    card: str = CARD,
    augmented: int = 0,
    shuffle_labels: bool = False,
    group_ids: bool = False,
) -> dict[str, Any]:
    """Write a release into ``folder``; return its manifest.

    ``per_class`` gives rows per class for each split (default 10/8/8); ``missing`` =
    (split, class) leaves that class out of that split; with ``pair_clusters`` every two
    consecutive train images of a class share a cluster id (as near duplicates would);
    ``flip_labels`` relabels the first N images of each split per class as the next class
    (a planted, worse release); ``corrupt`` = (split, i) stores bytes that are no image as the
    i-th image of that split's first class; ``augmented`` adds that many oversampled copies
    (``augmented_from`` set, same cluster) of the first train image of each class;
    ``shuffle_labels`` permutes the labels within each split (seeded), so the images say nothing
    about their label; ``group_ids`` gives every three consecutive originals of a split the same
    manifest ``group_id`` (one patient), across clusters.
    """
    import datasets

    per_class = per_class or {"train": 10, "validation": 8, "test": 8}
    features = release.features_of(list(classes))
    (folder / "data").mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    files = {}
    next_cluster = 1
    rng = random.Random(seed)
    for s, split in enumerate(("train", "validation", "test")):
        columns: dict[str, list[Any]] = {name: [] for name in features}
        labels = [(c + 1) % len(classes) if i < flip_labels else c for c, name in enumerate(classes)
                  if missing != (split, name) for i in range(per_class[split])]
        if shuffle_labels:
            rng.shuffle(labels)
        position = 0
        for c, name in enumerate(classes):
            if missing == (split, name):
                continue
            for i in range(per_class[split]):
                data = _png(seed + 100_000 * s + 1000 * c + i, name, size)
                if corrupt == (split, i) and c == 0:
                    data = b"this is not an image"
                sha = hashlib.sha256(data).hexdigest()
                if not (pair_clusters and split == "train" and i % 2 == 1):
                    next_cluster += 1
                label = labels[position]
                for key, value in (("image", {"bytes": data, "path": None}), ("label", label),
                                   ("sha256", sha), ("source_url", f"file:///{name}/{s}-{i}.png"),
                                   ("cluster_id", next_cluster), ("group_id", None), ("augmented_from", None),
                                   ("width", size), ("height", size)):
                    columns[key].append(value)
                rows.append({"sha256": sha, "label": classes[label], "split": split,
                             "source_url": columns["source_url"][-1], "cluster_id": next_cluster,
                             "augmented_from": None, "preprocess_hash": "none"})
                if group_ids:
                    rows[-1]["group_id"] = f"{split}-patient-{position // 3}"
                position += 1
                if split == "train" and i == 0:
                    _add_copies(columns, rows, augmented, sha, data, label, classes, next_cluster, size)
        relative = f"data/{split}-00000-of-00001.parquet"
        rows_here = len(columns["sha256"])
        for name in columns:  # the provenance columns and any other optional one: null
            columns[name] += [None] * (rows_here - len(columns[name]))
        datasets.Dataset.from_dict(columns, features=features).to_parquet(str(folder / relative))
        payload = (folder / relative).read_bytes()
        files[relative] = {"sha256": hashlib.sha256(payload).hexdigest(), "bytes": len(payload)}
    manifest = {
        "version": version, "name": "scalp-test", "parent": parent, "created_at": catalog.utcnow(),
        "classes": list(classes), "splits": {}, "files": files, "rows": rows, "cluster_members": [],
        "balance": {"method": "class-weights" if class_weights else "oversample" if augmented else "none",
                    "class_weights": class_weights},
        "config": {}, "versions": {}, "bump": {"kind": "initial", "reason": "test"},
        "include_restricted": False,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    (folder / "README.md").write_text(card, encoding="utf-8")
    return manifest


def _add_copies(columns: dict[str, list[Any]], rows: list[dict[str, Any]], count: int, source: str,
                data: bytes, label: int, classes: tuple[str, ...], cluster: int, size: int) -> None:
    import io

    from PIL import Image, ImageOps

    for k in range(count):
        with Image.open(io.BytesIO(data)) as img:
            copy = ImageOps.mirror(img) if k % 2 == 0 else ImageOps.flip(img)
            copy = copy.rotate(90 * k)
        payload = synthetic.encode(copy, "PNG")
        sha = hashlib.sha256(payload).hexdigest()
        for key, value in (("image", {"bytes": payload, "path": None}), ("label", label), ("sha256", sha),
                           ("source_url", ""), ("cluster_id", cluster), ("group_id", None),
                           ("augmented_from", source),
                           ("width", size), ("height", size)):
            columns[key].append(value)
        rows.append({"sha256": sha, "label": classes[label], "split": "train", "source_url": "",
                     "cluster_id": cluster, "augmented_from": source, "preprocess_hash": "none"})


def register(conn: Any, root: Path, manifest: dict[str, Any]) -> None:
    """Record a written release in the workspace catalog, as ``curator release`` would."""
    version = manifest["version"]
    digest = hashlib.sha256((root / "releases" / f"v{version}" / "manifest.json").read_bytes()).hexdigest()
    with catalog.atomic(conn):
        conn.execute(
            "INSERT INTO releases (version, parent, created_at, path, manifest_sha256, rows, summary) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (version, manifest["parent"], manifest["created_at"], f"releases/v{version}", digest,
             len(manifest["rows"]), "{}"),
        )


def add_release(ws: Any, version: str = "1.0.0", **kwargs: Any) -> Path:
    """Write ``releases/v<version>`` into the workspace ``ws`` and register it; return the folder."""
    folder = ws.root / "releases" / f"v{version}"
    manifest = write_release(folder, version=version, **kwargs)
    register(ws.conn, ws.root, manifest)
    return folder
