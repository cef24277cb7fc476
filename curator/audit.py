"""Cross-split leak check for any image-classification dataset ``datasets`` can load.

Every image of every split is decoded and hashed with curator.hashing (the same pixel
hash and perceptual views as ingest). A *leak* is a pair of rows in two different
splits that are

    exact     the same decoded pixels (hashing.pixel_sha256)
    near      near duplicates under the one match policy of ingest (curator.match): any
              flip or quarter turn, a turn, a crop; a direct match on the hash, any other
              confirmed by keypoints (dedup.Confirmer), re-decoding only those rows
    cluster   (curator releases only) the same ``cluster_id``

Each row is named so that a person can find it: its file path (an image folder, or the
path a parquet file recorded), its ``source_url`` column where there is one (a curator
release), and the SHA-256 of its image bytes. ``curator release`` runs :func:`scan` on
every folder it writes; ``curator audit PATH`` runs :func:`audit_folder` on any folder.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import tempfile
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from curator.errors import InputError, ReleaseError
from curator.match import Match, Policy

Progress = Callable[[int], None]


@dataclass(frozen=True)
class Item:
    """One row of one split, as a person finds it."""

    split: str
    row: int
    path: str | None  # the image file, or the path its parquet cell recorded
    source_url: str | None  # a ``source_url`` column (curator releases, Hub datasets that keep one)
    sha256: str  # of the image bytes as stored in the dataset

    @property
    def label(self) -> str:
        """``split[row] name``: the path, else the source URL, else the sha256."""
        return f"{self.split}[{self.row}] {self.path or self.source_url or 'sha256:' + self.sha256}"

    def as_dict(self) -> dict[str, Any]:
        return {"split": self.split, "row": self.row, "path": self.path, "source_url": self.source_url,
                "sha256": self.sha256}  # fmt: skip


@dataclass(frozen=True)
class RowHash:
    item: Item
    pixel: str | None  # SHA-256 of the decoded pixels; only where another row may share them (scan)
    hashes: dict[str, int]
    cluster: int | None
    fingerprint: str = ""  # hashing.fingerprint: equal pixels hashed the same way share it
    hashed_from: str = ""  # hashing.LUMA or hashing.RGB
    size: tuple[int, int] = (0, 0)


@dataclass(frozen=True)
class Leak:
    a: Item
    b: Item
    kind: str  # 'exact', 'near' or 'cluster'
    distance: int | None  # bits between the matched views (0 for exact; None for cluster only)
    view: str | None = None  # for 'near': the views that matched (curator.match.Match.view), or 'linked'
    confirmed_by: str | None = None  # for 'near': 'hash' (direct), 'keypoints', or 'group' (linked)

    @property
    def a_split(self) -> str:
        return self.a.split

    @property
    def b_split(self) -> str:
        return self.b.split

    def describe(self) -> str:
        how = self.kind
        if self.view == "linked":
            how += ", linked through other copies in the dataset"
        elif self.kind == "near":
            how += f" via {self.view}, {self.confirmed_by}"
        if self.distance is not None:
            how += f", distance {self.distance}"
        return f"{self.a.label} ~ {self.b.label} ({how})"

    def as_dict(self) -> dict[str, Any]:
        return {"a": self.a.as_dict(), "b": self.b.as_dict(), "kind": self.kind, "view": self.view,
                "confirmed_by": self.confirmed_by, "distance": self.distance}  # fmt: skip


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


def audit_folder(path: Path, policy: Policy, on_progress: Progress | None = None) -> AuditResult:
    """Load ``path`` with ``datasets.load_dataset`` and report every cross-split leak."""
    from curator.released import load_folder

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
        cluster = "cluster_id" if all("cluster_id" in loaded[n].features for n in loaded) else None
        leaks = scan(loaded, policy, cluster_column=cluster, on_progress=on_progress)
        splits = {name: loaded[name].num_rows for name in loaded}
    return AuditResult(str(path), policy.threshold, splits, leaks)


def image_column(dataset: Any, where: str = "dataset") -> str:
    from datasets import Image

    for name, feature in dataset.features.items():
        if isinstance(feature, Image):
            return str(name)
    raise InputError(f"{where}: no image column (columns: {', '.join(dataset.features)})")


def scan(
    loaded: Any,
    policy: Policy,
    cluster_column: str | None = None,
    on_progress: Progress | None = None,
) -> list[Leak]:
    """Every leaked pair between the splits of a ``DatasetDict`` (each pair once, split order kept)."""
    from curator.engine import single_threaded_opencv

    cells: dict[str, list[dict[str, Any]]] = {}
    rows: list[RowHash] = []
    # One OpenCV call per image on each thread: OpenCV's own pool on top would only contend.
    with single_threaded_opencv():
        for name in loaded:
            split_cells, split_rows = hash_split(loaded[name], name, cluster_column, on_progress)
            cells[name] = split_cells
            rows.extend(split_rows)
        rows = with_pixel_keys(rows, lambda item: _bytes(cells[item.split][item.row]))
        return find_leaks(rows, policy, lambda item: _grey(cells[item.split][item.row]))


def hash_split(
    dataset: Any, split: str, cluster_column: str | None, on_progress: Progress | None
) -> tuple[list[dict[str, Any]], list[RowHash]]:
    """The raw image cells of one split and each row's hashes (decoded on every core)."""
    from datasets import Image as ImageFeature

    column = image_column(dataset)
    raw = dataset.cast_column(column, ImageFeature(decode=False))
    cells = raw[column]  # read one by one later (keypoint checks, pixel keys): a few rows
    clusters = raw[cluster_column] if cluster_column else [None] * raw.num_rows
    urls = raw["source_url"] if "source_url" in raw.features else [None] * raw.num_rows

    def one(index: int, cell: dict[str, Any]) -> RowHash:
        from PIL import Image

        from curator import hashing

        data = _bytes(cell)
        try:
            with Image.open(io.BytesIO(data)) as img:
                grey = hashing.grey_of(img)  # a JPEG's luma at a reduced scale, as ingest hashes it
        except (OSError, ValueError, SyntaxError) as err:
            raise InputError(f"split {split} row {index}: the image does not decode ({err})") from err
        hashes = hashing.hashes_of_grey(grey.pixels)
        item = Item(split, index, cell.get("path"), urls[index], hashlib.sha256(data).hexdigest())
        return RowHash(item, None, hashes, clusters[index], hashing.fingerprint(*grey.size, hashes),
                       grey.hashed_from, grey.size)

    out: list[RowHash] = []
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:  # decoding releases the GIL
        # A batch of cells at a time: one cell read from the Arrow table cost ~1.4 ms, a fifth of
        # hashing a photo, and held the GIL (benchmarks/audit_leaks.py).
        for batch in raw.select_columns([column]).iter(batch_size=256):
            for row in pool.map(one, range(len(out), len(out) + len(batch[column])), batch[column]):
                out.append(row)
                if on_progress:
                    on_progress(1)
    return cells, out


def _bytes(cell: dict[str, Any]) -> bytes:
    return cell.get("bytes") or Path(cell["path"]).read_bytes()


def with_pixel_keys(rows: list[RowHash], data_of: Callable[[Item], bytes]) -> list[RowHash]:
    """``rows`` with the pixel key of each row that may share its pixels with another, decided
    as ingest decides (curator.ingest.run): the same fingerprint, or the same size, hashed the
    other way (luma, RGB) and a ``phash`` within hashing.ACROSS_HASHINGS bits. Decoding every
    row in full for its pixel key took half the hashing time of a folder of distinct photos."""
    from curator import hashing
    from curator.ingest import validate

    by_print: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        by_print[row.fingerprint].append(i)
    needed = {i for group in by_print.values() if len(group) > 1 for i in group}
    luma = [i for i, row in enumerate(rows) if row.hashed_from == hashing.LUMA]
    other = [i for i, row in enumerate(rows) if row.hashed_from != hashing.LUMA]
    if luma and other:
        index = hashing.HashIndex()
        phash = np.array([row.hashes[hashing.PHASH] for row in rows], dtype=np.uint64)
        index.extend(phash[luma], np.array(luma), np.zeros(len(luma)))
        qi, ei, _ = index.search(phash[other], hashing.ACROSS_HASHINGS)
        owners, _ = index.entry(ei)
        for i, j in zip(np.array(other)[qi].tolist(), owners.tolist(), strict=True):
            if rows[i].size == rows[j].size:
                needed |= {i, j}

    def keyed(i: int) -> RowHash:
        return dataclasses.replace(rows[i], pixel=validate.pixel_sha256(data_of(rows[i].item)))

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 2) as pool:
        done = dict(zip(sorted(needed), pool.map(keyed, sorted(needed)), strict=True))
    return [done.get(i, row) for i, row in enumerate(rows)]


def _grey(cell: dict[str, Any]) -> np.ndarray:
    from PIL import Image

    from curator import hashing

    with Image.open(io.BytesIO(_bytes(cell))) as img:
        return hashing.grey_of(img).pixels


def find_leaks(rows: list[RowHash], policy: Policy, grey_of: Callable[[Item], np.ndarray]) -> list[Leak]:
    """Pairs of rows in different splits that are exact, near or same-cluster duplicates.

    Near duplicates group transitively, as ingest clusters them: two copies of one photo
    (one flipped, one turned) leak even when only the original matches each of them, and
    such a pair is reported with view ``linked`` (through the rows of its group).
    ``grey_of`` gives a row's grey copy for the keypoint check of loose matches.
    """
    from curator import dedup

    order = {split: i for i, split in enumerate(dict.fromkeys(r.item.split for r in rows))}
    groups = dedup.DisjointSets(len(rows))
    for same in (*_same(rows, lambda r: r.pixel), *_same(rows, lambda r: r.cluster)):
        for j in same[1:]:
            groups.union(same[0], j)
    matched: dict[tuple[int, int], tuple[Match, str]] = {}
    confirmer = dedup.Confirmer() if policy.confirm else None
    greys = _GreyCache(lambda i: grey_of(rows[i].item))
    # Direct matches first, then loose ones nearest first: the likeliest to link.
    pairs = dedup.near_pairs(policy, [r.hashes for r in rows])
    for (i, j), match in sorted(pairs.items(), key=lambda kv: (not kv[1].direct, kv[1].distance, kv[0])):
        if match.direct:
            matched[(i, j)] = match, "hash"
        elif groups.find(i) != groups.find(j) and confirmer is not None:
            if not confirmer.same(greys[i], greys[j], match.reflected):
                continue
            matched[(i, j)] = match, "keypoints"
        else:
            continue
        groups.union(i, j)
    members: dict[int, list[int]] = defaultdict(list)
    for i in range(len(rows)):
        members[groups.find(i)].append(i)
    leaks = [_leak(rows, i, j, matched) for group in members.values() for i, j in _cross(rows, group)]
    # Rows come split by split, so in each pair (i < j) the earlier split is first.
    return sorted(leaks, key=lambda x: (order[x.a.split], order[x.b.split], x.a.row, x.b.row))


def _leak(rows: list[RowHash], i: int, j: int, matched: dict[tuple[int, int], tuple[Match, str]]) -> Leak:
    """How rows i and j (of one group, in two splits) are the same photo."""
    a, b = rows[i], rows[j]
    if a.pixel is not None and a.pixel == b.pixel:
        return Leak(a.item, b.item, "exact", 0)
    if (i, j) in matched:
        match, by = matched[(i, j)]
        return Leak(a.item, b.item, "near", match.distance, match.view, by)
    if a.cluster is not None and a.cluster == b.cluster:
        return Leak(a.item, b.item, "cluster", None)
    return Leak(a.item, b.item, "near", None, "linked", "group")


def _same(rows: list[RowHash], key: Callable[[RowHash], Any]) -> Iterator[list[int]]:
    """Groups (of two or more rows) that share a non-None ``key``."""
    groups: dict[Any, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        value = key(row)
        if value is not None:
            groups[value].append(i)
    return (g for g in groups.values() if len(g) > 1)


def _cross(rows: list[RowHash], group: list[int]) -> Iterator[tuple[int, int]]:
    pairs = ((i, j) for n, i in enumerate(group) for j in group[n + 1 :])
    return ((i, j) for i, j in pairs if rows[i].item.split != rows[j].item.split)


class _GreyCache:
    """Grey copies of rows, decoded on first use; the most recent 256 kept."""

    def __init__(self, load: Callable[[int], np.ndarray]) -> None:
        self.load = load
        self.kept: OrderedDict[int, np.ndarray] = OrderedDict()

    def __getitem__(self, i: int) -> np.ndarray:
        if i not in self.kept:
            self.kept[i] = self.load(i)
            if len(self.kept) > 256:
                self.kept.popitem(last=False)
        self.kept.move_to_end(i)
        return self.kept[i]
