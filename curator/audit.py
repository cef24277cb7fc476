"""Cross-split leak check for any image-classification dataset ``datasets`` can load.

Every image of every split is decoded and hashed with curator.hashing (the
same pixel hash and perceptual hashes as ingest). A *leak* is a pair of rows in
two different splits that are

    exact     the same decoded pixels (hashing.pixel_sha256)
    near      pHashes within the dedup threshold, mirror included, measured the
              way curator.dedup measures it (dedup.HashTable / pair_distance)
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
        leaks = scan(loaded, threshold, on_progress=on_progress)
        splits = {name: loaded[name].num_rows for name in loaded}
    return AuditResult(str(path), threshold, splits, leaks)


def image_column(dataset: Any) -> str:
    from datasets import Image

    for name, feature in dataset.features.items():
        if isinstance(feature, Image):
            return str(name)
    raise InputError(f"no image column among {', '.join(dataset.features)}")


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
                out.append(RowHash(hashing.pixel_sha256(rgb), hashing.perceptual_hashes(rgb), clusters[index]))
        except OSError as err:
            raise InputError(f"row {index}: the image does not decode ({err})") from err
        if on_progress:
            on_progress(1)
    return out


def find_leaks(hashed: dict[str, list[RowHash]], threshold: int) -> list[Leak]:
    from curator import dedup, hashing

    names = list(hashed)
    leaks: dict[tuple[str, int, str, int], Leak] = {}
    for i, a_name in enumerate(names):
        for b_name in names[i + 1:]:
            a_rows, b_rows = hashed[a_name], hashed[b_name]
            pixels: dict[str, list[int]] = defaultdict(list)
            clusters: dict[int, list[int]] = defaultdict(list)
            table = dedup.HashTable()
            for j, row in enumerate(b_rows):
                pixels[row.pixel].append(j)
                if row.cluster is not None:
                    clusters[row.cluster].append(j)
                for hname in (hashing.PHASH, hashing.PHASH_MIRROR):
                    if hname in row.hashes:
                        table.add(row.hashes[hname], j)
            for a_index, row in enumerate(a_rows):
                found: dict[int, Leak] = {}
                for j in clusters.get(row.cluster, []) if row.cluster is not None else []:
                    found[j] = Leak(a_name, a_index, b_name, j, "cluster", None)
                if hashing.PHASH in row.hashes:
                    owners, dists = table.within(row.hashes[hashing.PHASH], threshold)
                    for j, dist in zip(owners.tolist(), dists.tolist(), strict=True):
                        if j not in found or (found[j].distance or 64) > dist:
                            found[j] = Leak(a_name, a_index, b_name, j, "near", int(dist))
                for j in pixels.get(row.pixel, []):
                    found[j] = Leak(a_name, a_index, b_name, j, "exact", 0)
                for j, leak in found.items():
                    leaks[(a_name, a_index, b_name, j)] = leak
    return [leaks[key] for key in sorted(leaks, key=lambda k: (names.index(k[0]), k[1], names.index(k[2]), k[3]))]
