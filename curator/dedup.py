"""Near-duplicate clusters: place each new image, list clusters, re-cluster.

An image is a near duplicate of a stored one when their pHashes (or one's pHash
and the other's mirrored pHash) differ in at most ``dedup.threshold`` bits.
Near duplicates are linked transitively into clusters; each cluster's
representative is the member with the largest pixel area, then the earliest.

    NearIndex.load(conn, objects, cfg)   the stored hashes, in memory, once per run
    NearIndex.add_image(conn, ...)       place a new image inside the caller's transaction
    clusters(conn)                       clusters with members, distances and source URLs
    recluster(conn, objects, cfg, t)     rebuild every cluster from stored hashes
"""

from __future__ import annotations

import sqlite3
import threading
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from curator import catalog, hashing
from curator.config import DedupConfig


@dataclass(frozen=True)
class NewImage:
    """The catalog facts of an image about to be inserted (the caller has stored its bytes)."""

    sha256: str
    pixel_sha256: str
    width: int
    height: int
    format: str
    bytes: int


@dataclass(frozen=True)
class Placement:
    """Where add_image put an image: ``near_of`` is None when it started a new cluster."""

    cluster_id: int
    near_of: str | None
    distance: int | None


@dataclass(frozen=True)
class Member:
    sha256: str
    width: int
    height: int
    distance: int | None  # Hamming distance to the representative (0 for itself)
    urls: tuple[str, ...]  # every source that resolved to this image (stored + exact duplicates)


@dataclass(frozen=True)
class ClusterInfo:
    id: int
    representative: str
    members: tuple[Member, ...]

    @property
    def sources(self) -> int:
        return sum(len(m.urls) for m in self.members)


@dataclass(frozen=True)
class ReclusterResult:
    threshold: int
    images: int
    clusters: int  # clusters after re-clustering
    multi: int  # of which have two or more members
    moved: int  # images whose cluster changed


class HashTable:
    """Growable arrays of 64-bit hashes, each tagged with its owner (an image slot)."""

    def __init__(self) -> None:
        self._values = np.zeros(1024, dtype=np.uint64)
        self._owners = np.zeros(1024, dtype=np.int64)
        self._size = 0

    def __len__(self) -> int:
        return self._size

    def add(self, value: int, owner: int) -> None:
        if self._size == len(self._values):
            self._values = np.concatenate([self._values, np.zeros_like(self._values)])
            self._owners = np.concatenate([self._owners, np.zeros_like(self._owners)])
        self._values[self._size] = value
        self._owners[self._size] = owner
        self._size += 1

    def within(self, query: int, radius: int) -> tuple[np.ndarray, np.ndarray]:
        """(owners, distances) of every stored hash within ``radius`` bits of ``query``."""
        values = self._values[: self._size]
        dist = np.bitwise_count(values ^ np.uint64(query))
        hit = dist <= radius
        return self._owners[: self._size][hit], dist[hit].astype(np.int64)


@dataclass
class NearIndex:
    """The stored hashes of a catalog, for placing new images (load once per run)."""

    objects: Path
    cfg: DedupConfig
    threshold: int
    shas: list[str] = field(default_factory=list)
    hashes: list[dict[str, int]] = field(default_factory=list)
    table: HashTable = field(default_factory=HashTable)  # phash and phash_mirror of every slot
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @classmethod
    def load(cls, conn: sqlite3.Connection, objects: Path, cfg: DedupConfig) -> NearIndex:
        index = cls(objects=Path(objects), cfg=cfg, threshold=cfg.threshold)
        for sha, hashes in stored_hashes(conn).items():
            index._append(sha, hashes)
        return index

    def __len__(self) -> int:
        return len(self.shas)

    def _append(self, sha: str, hashes: dict[str, int]) -> None:
        slot = len(self.shas)
        self.shas.append(sha)
        self.hashes.append(hashes)
        for name in (hashing.PHASH, hashing.PHASH_MIRROR):
            if name in hashes:
                self.table.add(hashes[name], slot)

    def matches(self, hashes: dict[str, int]) -> dict[str, int]:
        """Stored images near ``hashes``: sha256 -> distance (may include rolled-back rows)."""
        found: dict[str, int] = {}
        query = hashes[hashing.PHASH]
        owners, dists = self.table.within(query, self.threshold)
        for owner, dist in zip(owners.tolist(), dists.tolist(), strict=True):
            sha = self.shas[owner]
            found[sha] = min(dist, found.get(sha, 64))
        return found

    def add_image(
        self, conn: sqlite3.Connection, new: NewImage, rgb: Image.Image, hashes: dict[str, int]
    ) -> Placement:
        """Insert ``new`` with its hashes into the right cluster, inside the caller's transaction.

        The clusters of every stored near duplicate are merged into one (the oldest id).
        Matches are re-read from the catalog, so an index entry whose insert was rolled
        back by its caller is ignored rather than referenced.
        """
        with self._lock:
            found = self.matches(hashes)
            live = _live_clusters(conn, list(found))
            with catalog.atomic(conn):
                if live:
                    cluster_id = _merge_clusters(conn, sorted(set(live.values())))
                    near_of = min(live, key=lambda s: (found[s], s))
                    distance: int | None = found[near_of]
                else:
                    cluster_id = int(
                        conn.execute("INSERT INTO clusters (representative) VALUES (NULL)").lastrowid or 0
                    )
                    near_of, distance = None, None
                _insert_image(conn, new, hashes, cluster_id)
                update_representative(conn, cluster_id)
            self._append(new.sha256, hashes)
            return Placement(cluster_id=cluster_id, near_of=near_of, distance=distance)


def _live_clusters(conn: sqlite3.Connection, shas: list[str]) -> dict[str, int]:
    """sha256 -> cluster id for those of ``shas`` that exist in the catalog."""
    live: dict[str, int] = {}
    for start in range(0, len(shas), 500):
        chunk = shas[start : start + 500]
        marks = ",".join("?" * len(chunk))
        for row in conn.execute(f"SELECT sha256, cluster_id FROM images WHERE sha256 IN ({marks})", chunk):
            live[row[0]] = int(row[1])
    return live


def _merge_clusters(conn: sqlite3.Connection, ids: list[int]) -> int:
    keep, rest = ids[0], ids[1:]
    for other in rest:
        conn.execute("UPDATE images SET cluster_id = ? WHERE cluster_id = ?", (keep, other))
        conn.execute("DELETE FROM clusters WHERE id = ?", (other,))
    return keep


def _insert_image(conn: sqlite3.Connection, new: NewImage, hashes: dict[str, int], cluster_id: int) -> None:
    conn.execute(
        "INSERT INTO images (sha256, pixel_sha256, width, height, format, bytes, cluster_id, created_at)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (
            new.sha256,
            new.pixel_sha256,
            new.width,
            new.height,
            new.format,
            new.bytes,
            cluster_id,
            catalog.utcnow(),
        ),
    )
    conn.executemany(
        "INSERT INTO image_hashes (sha256, name, value) VALUES (?, ?, ?)",
        [(new.sha256, name, hashing.to_signed(value)) for name, value in sorted(hashes.items())],
    )


def update_representative(conn: sqlite3.Connection, cluster_id: int) -> None:
    """Largest pixel area first, then the earliest created_at (then sha256, for a total order)."""
    conn.execute(
        "UPDATE clusters SET representative = (SELECT sha256 FROM images WHERE cluster_id = ?"
        " ORDER BY width * height DESC, created_at ASC, sha256 ASC LIMIT 1) WHERE id = ?",
        (cluster_id, cluster_id),
    )


def stored_hashes(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """sha256 -> {name: unsigned hash} for every image, in insertion order."""
    result: dict[str, dict[str, int]] = defaultdict(dict)
    rows = conn.execute(
        "SELECT h.sha256, h.name, h.value FROM image_hashes h JOIN images i ON i.sha256 = h.sha256"
        " ORDER BY i.created_at, i.sha256"
    )
    for sha, name, value in rows:
        result[sha][name] = hashing.to_unsigned(int(value))
    return dict(result)


def pair_distance(a: dict[str, int], b: dict[str, int]) -> int | None:
    """Hamming distance of two images' pHashes, allowing for a mirror; None if either lacks one."""
    if hashing.PHASH not in a or hashing.PHASH not in b:
        return None
    best = hashing.hamming(a[hashing.PHASH], b[hashing.PHASH])
    if hashing.PHASH_MIRROR in b:
        best = min(best, hashing.hamming(a[hashing.PHASH], b[hashing.PHASH_MIRROR]))
    return best


def clusters(conn: sqlite3.Connection, min_size: int = 2) -> list[ClusterInfo]:
    """Clusters with at least ``min_size`` members or sources, largest first.

    Each member carries its distance to the representative and every source URL
    (or path) that resolved to it, exact duplicates included.
    """
    urls: dict[str, list[str]] = defaultdict(list)
    for sha, locator in conn.execute(
        "SELECT sha256, locator FROM sources WHERE sha256 IS NOT NULL ORDER BY id"
    ):
        urls[sha].append(locator)
    members: dict[int, list[sqlite3.Row]] = defaultdict(list)
    for row in conn.execute(
        "SELECT sha256, width, height, cluster_id FROM images ORDER BY created_at, sha256"
    ):
        members[int(row["cluster_id"])].append(row)
    hashes = stored_hashes(conn)
    result = []
    for cid, rep in conn.execute("SELECT id, representative FROM clusters ORDER BY id"):
        rows = members.get(int(cid), [])
        if not rows or rep is None:
            continue
        sources = sum(len(urls.get(r["sha256"], [])) for r in rows)
        if max(len(rows), sources) < min_size:
            continue
        items = tuple(
            Member(
                sha256=r["sha256"],
                width=int(r["width"]),
                height=int(r["height"]),
                distance=0
                if r["sha256"] == rep
                else pair_distance(hashes.get(r["sha256"], {}), hashes.get(rep, {})),
                urls=tuple(urls.get(r["sha256"], [])),
            )
            for r in sorted(rows, key=lambda r: (r["sha256"] != rep,))
        )
        result.append(ClusterInfo(id=int(cid), representative=rep, members=items))
    result.sort(key=lambda c: (-len(c.members), -c.sources, c.id))
    return result


def recluster(conn: sqlite3.Connection, objects: Path, cfg: DedupConfig, threshold: int) -> ReclusterResult:
    """Rebuild every cluster from the stored hashes at ``threshold``, in one transaction.

    Each new cluster keeps the smallest old id among its members when that id is
    still free, so clusters that do not change keep their ids.
    """
    index = NearIndex(objects=Path(objects), cfg=cfg, threshold=threshold)
    all_hashes = stored_hashes(conn)
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        while parent.setdefault(x, x) != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for sha, hashes in all_hashes.items():
        for other in index.matches(hashes):
            ra, rb = find(sha), find(other)
            if ra != rb:
                parent[max(ra, rb)] = min(ra, rb)
        index._append(sha, hashes)
    groups: dict[str, list[str]] = defaultdict(list)
    for sha in all_hashes:
        groups[find(sha)].append(sha)
    return _rewrite_clusters(conn, list(groups.values()), threshold)


def _rewrite_clusters(conn: sqlite3.Connection, groups: list[list[str]], threshold: int) -> ReclusterResult:
    old = {row[0]: int(row[1]) for row in conn.execute("SELECT sha256, cluster_id FROM images")}
    moved = 0
    with catalog.atomic(conn):
        taken: set[int] = set()
        assignment: dict[str, int] = {}
        pending: list[list[str]] = []
        for group in sorted(groups, key=lambda g: (-len(g), min(old.get(s, 0) for s in g))):
            candidates = sorted({old[s] for s in group if s in old} - taken)
            if candidates:
                taken.add(candidates[0])
                assignment.update(dict.fromkeys(group, candidates[0]))
            else:
                pending.append(group)
        for group in pending:
            cid = int(conn.execute("INSERT INTO clusters (representative) VALUES (NULL)").lastrowid or 0)
            taken.add(cid)
            assignment.update(dict.fromkeys(group, cid))
        for sha, cid in assignment.items():
            if old.get(sha) != cid:
                moved += 1
                conn.execute("UPDATE images SET cluster_id = ? WHERE sha256 = ?", (cid, sha))
        conn.execute("DELETE FROM clusters WHERE id NOT IN (SELECT DISTINCT cluster_id FROM images)")
        for cid in taken:
            update_representative(conn, cid)
    return ReclusterResult(
        threshold=threshold,
        images=len(assignment),
        clusters=len(groups),
        multi=sum(1 for g in groups if len(g) > 1),
        moved=moved,
    )
