"""Cross-split leak check for any image-classification dataset ``datasets`` can load.

Every image of every split is decoded and hashed with curator.hashing (the
same pixel hash and perceptual hashes as ingest). A *leak* is a pair of rows in
two different splits that are

    exact     the same decoded pixels (hashing.pixel_sha256)
    near      pHashes within the dedup threshold, mirror included: the direct
              views curator.dedup clusters on without pixel confirmation
              (dedup.DIRECT_VIEWS); its crop and rotation views are not used here
    cluster   (curator releases only) the same ``cluster_id``

``curator release`` runs :func:`scan` on every folder it writes; ``curator
audit PATH`` runs :func:`audit_folder` on any folder, e.g. someone else's download.
"""

from __future__ import annotations

import io
import tempfile
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curator.errors import InputError, ReleaseError

Progress = Callable[[int], None]


@dataclass(frozen=True)
class RowHash:
    pixel: str
    hashes: dict[str, int]
    cluster: int | None


@dataclass(frozen=True)
class Leak:
    a_split: str
    a_index: int
    b_split: str
    b_index: int
    kind: str  # 'exact', 'near' or 'cluster'
    distance: int | None  # Hamming distance of the pHashes (0 for exact)

    def describe(self) -> str:
        where = f"{self.a_split}[{self.a_index}] ~ {self.b_split}[{self.b_index}]"
        return f"{where} ({self.kind}, distance {self.distance})" if self.distance is not None else \
            f"{where} ({self.kind})"

    def as_dict(self) -> dict[str, Any]:
        return {
            "a": {"split": self.a_split, "row": self.a_index},
            "b": {"split": self.b_split, "row": self.b_index},
            "kind": self.kind,
            "distance": self.distance,
        }


@dataclass
class AuditResult:
    path: str
    threshold: int
    splits: dict[str, int]  # split -> rows
    leaks: list[Leak]

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": self.path,
            "threshold": self.threshold,
            "splits": self.splits,
            "leaks": [leak.as_dict() for leak in self.leaks],
        }


def audit_folder(path: Path, threshold: int, on_progress: Progress | None = None) -> AuditResult:
    """Load ``path`` with ``datasets.load_dataset`` and report every cross-split leak."""
    from curator.release import load_folder

    path = Path(path)
    if not path.is_dir():
        raise InputError(f"{path}: not a folder", path=str(path))
    with tempfile.TemporaryDirectory(prefix="curator-audit-") as cache:
        try:
            loaded = load_folder(path, Path(cache))
        except ReleaseError as err:
            raise InputError(err.message, path=str(path)) from err
        for name in loaded:
            image_column(loaded[name], f"{path} (split {name})")
        leaks = scan(loaded, threshold, on_progress=on_progress)
        splits = {name: loaded[name].num_rows for name in loaded}
    return AuditResult(str(path), threshold, splits, leaks)


def image_column(dataset: Any, where: str = "dataset") -> str:
    from datasets import Image

    for name, feature in dataset.features.items():
        if isinstance(feature, Image):
            return str(name)
    raise InputError(f"{where}: no image column (columns: {', '.join(dataset.features)})")


def scan(
    loaded: Any,
    threshold: int,
    cluster_column: str | None = None,
    on_progress: Progress | None = None,
) -> list[Leak]:
    """Every leaked pair between the splits of a ``DatasetDict`` (each pair once, split order kept)."""
    hashed = {name: hash_split(loaded[name], cluster_column, on_progress) for name in loaded}
    return find_leaks(hashed, threshold)


def hash_split(dataset: Any, cluster_column: str | None, on_progress: Progress | None) -> list[RowHash]:
    from datasets import Image as ImageFeature
    from PIL import Image

    from curator import hashing

    column = image_column(dataset)
    raw = dataset.cast_column(column, ImageFeature(decode=False))
    clusters = raw[cluster_column] if cluster_column else [None] * raw.num_rows
    out: list[RowHash] = []
    for index, cell in enumerate(raw[column]):
        data = cell.get("bytes") or Path(cell["path"]).read_bytes()
        try:
            with Image.open(io.BytesIO(data)) as img:
                rgb = hashing.normalize(img)
                hashes = hashing.perceptual_hashes(rgb)
                out.append(RowHash(hashing.pixel_sha256(rgb), hashes, clusters[index]))
        except OSError as err:
            raise InputError(f"row {index}: the image does not decode ({err})") from err
        if on_progress:
            on_progress(1)
    return out


def find_leaks(hashed: dict[str, list[RowHash]], threshold: int) -> list[Leak]:
    """Pairs of rows in different splits that are exact, near or same-cluster duplicates."""
    names = list(hashed)
    leaks: list[Leak] = []
    for i, a_name in enumerate(names):
        for b_name in names[i + 1:]:
            leaks.extend(_pair_leaks(a_name, hashed[a_name], b_name, hashed[b_name], threshold))
    return leaks


def _direct_views(rows: list[RowHash]) -> np.ndarray:
    """rows x views matrix of the direct views (pHash, mirrored pHash); a missing view is never near."""
    from curator import dedup

    out = np.zeros((len(rows), len(dedup.DIRECT_VIEWS)), dtype=np.uint64)
    for r, row in enumerate(rows):
        for v, name in enumerate(dedup.DIRECT_VIEWS):
            out[r, v] = row.hashes.get(name, row.hashes.get(dedup.DIRECT_VIEWS[0], 0))
    return out


def near_distances(a_rows: list[RowHash], b_rows: list[RowHash]) -> np.ndarray:
    """len(a) x len(b) Hamming distances, the way dedup places an image without confirmation:
    the smaller of (a's pHash vs b's direct views) and (b's pHash vs a's direct views)."""
    a, b = _direct_views(a_rows), _direct_views(b_rows)
    best = np.full((len(a_rows), len(b_rows)), 64, dtype=np.int64)
    for v in range(a.shape[1]):
        best = np.minimum(best, np.bitwise_count(a[:, :1] ^ b[:, v][None, :]).astype(np.int64))
        best = np.minimum(best, np.bitwise_count(a[:, v][:, None] ^ b[:, :1].T).astype(np.int64))
    return best


def _pair_leaks(
    a_name: str, a_rows: list[RowHash], b_name: str, b_rows: list[RowHash], threshold: int
) -> list[Leak]:
    if not a_rows or not b_rows:
        return []
    distances = near_distances(a_rows, b_rows)
    b_pixels: dict[str, list[int]] = defaultdict(list)
    b_clusters: dict[int, list[int]] = defaultdict(list)
    for j, row in enumerate(b_rows):
        b_pixels[row.pixel].append(j)
        if row.cluster is not None:
            b_clusters[row.cluster].append(j)
    leaks = []
    for i, row in enumerate(a_rows):
        exact = set(b_pixels.get(row.pixel, []))
        near = set(np.flatnonzero(distances[i] <= threshold).tolist())
        same = set(b_clusters.get(row.cluster, [])) if row.cluster is not None else set()
        for j in sorted(exact | near | same):
            kind = "exact" if j in exact else "near" if j in near else "cluster"
            distance = 0 if kind == "exact" else int(distances[i, j])
            leaks.append(Leak(a_name, i, b_name, j, kind, distance))
    return leaks
