"""Near-duplicate clusters: place each new image, list clusters, re-cluster.

    NearIndex.load(conn, objects, cfg)   the stored hashes, in memory, once per run
    NearIndex.add_image(conn, ...)       place a new image inside the caller's transaction
    clusters(conn)                       clusters with members, distances and source URLs
    recluster(conn, objects, cfg, t)     rebuild every cluster from stored hashes

How two images are judged near duplicates. Each image stores 22 64-bit pHashes
(curator.hashing): its own ``phash``, and the hashes of views of it (mirror, +-4
degree rotations, 18 crop windows). A pair is a *candidate* when one image's
``phash`` is within ``dedup.candidate_threshold`` bits of any view of the other.
It is a near duplicate when the match is whole-image (``phash`` or
``phash_mirror``) within ``dedup.threshold`` bits, or else when keypoints confirm
it (:class:`Confirmer`: ORB + RANSAC similarity, inliers spread over the image,
aligned images correlate cell by cell), which is what keeps two different photos
with the same logo apart. Near duplicates link transitively into clusters; the
representative is the member with the largest pixel area, then the earliest.

Defaults, chosen by measuring (2 shared cores; times move with load):

    python benchmarks/dedup_quality.py       # 771 images: 57 photos x 13 copies + 30 logo photos
      threshold=8, candidate=12 (default): pairs P 1.000, R 0.992 overall; recall per
        transform 1.000 for exact, png, resize, jpeg q20-45, blur, gray, watermark bar,
        crop 3-8%, mirror, rotate 3-6 deg; brightness+contrast 0.982; crop 15-22% 0.965;
        no false pair among the 30 photos sharing a logo; 175 keypoint checks;
        decode + all 22 hashes 1.0 ms per image (ingest's validate.check; JPEGs hashed from
        their luma plane, hashing.luma_grey; the pixel hash is lazy)
      peer, one 64-bit pHash at <= 10 (imagededup's default): P 1.000, R 0.570
        (mirror 0.000, rotate 0.404, crop 15-22% 0.018 at P 0.5)
      (measured with the earlier Pillow-resized hashes, not rerun:)
      --candidate 14: the same recall for 387 checks instead of 172. On 600 distinct
        generated photos: 0 pairs within 8, 28 candidate pairs within 12, 227 within 14
      crop windows at 80% and 90% of a side (the first choice): R 0.987, crop 15-22% 0.930
    python benchmarks/dedup_quality.py --photos 80 --logo 60 --seed 3   # 1,321 images
      default: P 1.000, R 0.998 (crop 15-22% 0.990); 398 keypoint checks;
      peer: P 0.993, R 0.548, and it put logo photos together
    python benchmarks/cluster_scale.py       # uniform random hashes, radius 8, 1,000 planted pairs
      100,000: multi-index 0.9-2.3 s, numpy brute force 27-30 s; 1,000,000: multi-index 14-15 s;
      every planted pair found, the same pairs as brute force
    python benchmarks/cluster_scale.py --views --sizes 20000,100000   # recluster's view search
      20,000 images (440,000 hashes) at radius 12: 5.5 s; 100,000 images (2.2M hashes): 92 s

The threshold is 8 rather than 10 because pHash distances are almost always even
(a median split sets 32 of 64 bits), so 9 is 8, and 10 would make the multi-index
search probe ~7x more (radius 10 needs 3 bits per 21-bit chunk instead of 2);
copies between 9 and 12 bits are still found, through the keypoint check.
"""

from __future__ import annotations

import io
import sqlite3
import threading
from collections import OrderedDict, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from curator import catalog, hashing, store
from curator.config import DedupConfig
from curator.errors import InputError
from curator.hashing import HashIndex


@dataclass(frozen=True)
class NewImage:
    """The catalog facts of an image about to be inserted (the caller has stored its bytes)."""

    sha256: str
    fingerprint: str  # hashing.fingerprint
    pixel_sha256: str | None  # hashing.pixel_sha256, if it was needed (see catalog migration 2)
    width: int
    height: int
    format: str
    bytes: int
    hashed_from: str = hashing.RGB  # hashing.LUMA when its hashes came from a JPEG's luma plane


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


@dataclass(frozen=True)
class Candidate:
    """A stored image near a new one: by how many bits, and through which view."""

    sha256: str
    distance: int
    view: str  # the hash name whose value was close (of either image), e.g. 'phash_rot+4'

    @property
    def direct(self) -> bool:
        return self.view in DIRECT_VIEWS


# Views close enough to trust on the hash alone (at dedup.threshold); every other
# view (rotations, crop windows) and every looser match needs the keypoint check.
DIRECT_VIEWS = (hashing.PHASH, hashing.PHASH_MIRROR)
MAX_THRESHOLD = 32  # beyond half the bits, "near" means nothing and every pair would match
_KIND = {name: i for i, name in enumerate(hashing.NAMES)}


@dataclass
class NearIndex:
    """The stored hashes of a catalog, for placing new images (load once per run).

    Every view hash of every image is in one HashIndex. A new image's ``phash`` is
    looked up among all views (it may be a transformed copy of a stored image), and
    its other views among stored ``phash`` entries only (a stored image may be a
    transformed copy of it).
    """

    objects: Path
    cfg: DedupConfig
    threshold: int
    shas: list[str] = field(default_factory=list)
    index: HashIndex = field(default_factory=HashIndex)  # every view hash of every image
    own: HashIndex = field(default_factory=HashIndex)  # each image's phash only
    confirmer: Confirmer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if self.confirmer is None and self.cfg.confirm:
            self.confirmer = Confirmer(self.objects)

    @classmethod
    def load(cls, conn: sqlite3.Connection, objects: Path, cfg: DedupConfig) -> NearIndex:
        index = cls(objects=Path(objects), cfg=cfg, threshold=cfg.threshold)
        index.extend(stored_hashes(conn))
        return index

    def __len__(self) -> int:
        return len(self.shas)

    def extend(self, hashes_by_sha: dict[str, dict[str, int]]) -> None:
        values, owners, kinds = [], [], []
        for sha, hashes in hashes_by_sha.items():
            slot = len(self.shas)
            self.shas.append(sha)
            for name, value in hashes.items():
                if name in _KIND:
                    values.append(value)
                    owners.append(slot)
                    kinds.append(_KIND[name])
        if values:
            arrays = np.array(values, dtype=np.uint64), np.array(owners), np.array(kinds)
            self.index.extend(*arrays)
            own = arrays[2] == _KIND[hashing.PHASH]
            self.own.extend(arrays[0][own], arrays[1][own], arrays[2][own])

    @property
    def radius(self) -> int:
        """How far candidates are searched: ``threshold`` plus the configured margin for
        keypoint-confirmed matches (so re-clustering at another threshold moves both)."""
        if self.confirmer is None:
            return self.threshold
        margin = max(0, self.cfg.candidate_threshold - self.cfg.threshold)
        return min(MAX_THRESHOLD, self.threshold + margin)

    def candidates(self, hashes: dict[str, int]) -> list[Candidate]:
        """Stored images near ``hashes``, nearest first (may include rolled-back rows)."""
        names = [n for n in hashing.NAMES if n in hashes and n != hashing.PHASH]
        views = np.array([hashes[n] for n in names], dtype=np.uint64)
        # Its phash against every view of every stored image, and its views against their phash
        # only (view against view is not a relation we model).
        _, ei, dist = self.index.search(np.array([hashes[hashing.PHASH]], dtype=np.uint64), self.radius)
        owners, kinds = self.index.entry(ei)
        vq, vei, vdist = self.own.search(views, self.radius)
        vowners, _ = self.own.entry(vei)
        hits = [
            *zip(owners.tolist(), [hashing.NAMES[k] for k in kinds.tolist()], dist.tolist(), strict=True),
            *zip(vowners.tolist(), [names[q] for q in vq.tolist()], vdist.tolist(), strict=True),
        ]
        best: dict[str, Candidate] = {}
        for owner, view, d in hits:
            found = Candidate(self.shas[owner], d, view)
            if not found.direct or d > self.threshold:
                if self.confirmer is None:
                    continue
            old = best.get(found.sha256)
            if old is None or _rank(found, self.threshold) < _rank(old, self.threshold):
                best[found.sha256] = found
        return sorted(best.values(), key=lambda c: _rank(c, self.threshold))

    def same_phash(self, phash: int, radius: int) -> list[str]:
        """Stored images whose own ``phash`` is within ``radius`` bits of ``phash``."""
        _, found, _ = self.own.search(np.array([phash], dtype=np.uint64), radius)
        owners, _ = self.own.entry(found)
        return [self.shas[owner] for owner in owners.tolist()]

    def matches(
        self,
        hashes: dict[str, int],
        grey: np.ndarray,
        clusters_of: Callable[[list[str]], dict[str, int]],
    ) -> dict[int, Candidate]:
        """The nearest near duplicate in each cluster that ``hashes`` belongs with.

        ``clusters_of`` maps stored sha256s to their cluster ids (and drops images that
        are not in the catalog). Direct matches need no check; other candidates are
        confirmed by keypoints, and only while their cluster has not been joined yet,
        so a copy of a big cluster costs one check, not one per member.
        """
        found = self.candidates(hashes)
        live = clusters_of([c.sha256 for c in found])
        joined: dict[int, Candidate] = {}
        for cand in sorted(found, key=lambda c: _rank(c, self.threshold)):
            cluster = live.get(cand.sha256)
            if cluster is None or cluster in joined:
                continue
            if self.trusted(cand) or (
                self.confirmer is not None
                and self.confirmer.same_photo(grey, cand.sha256, mirrored=cand.view == hashing.PHASH_MIRROR)
            ):
                joined[cluster] = cand
        return joined

    def trusted(self, cand: Candidate) -> bool:
        """A match on the hash alone: a whole-image view within ``threshold``."""
        return cand.direct and cand.distance <= self.threshold

    def add_image(
        self, conn: sqlite3.Connection, new: NewImage, grey: np.ndarray, hashes: dict[str, int]
    ) -> Placement:
        """Insert ``new`` with its hashes into the right cluster, inside the caller's transaction.

        ``grey`` is the image's :func:`hashing.grey_copy`, for keypoint checks. The clusters
        of every stored near duplicate are merged into one (the oldest id).
        Matches are re-read from the catalog, so an index entry whose insert was rolled
        back by its caller is ignored rather than referenced.
        """
        if not conn.in_transaction:  # no savepoint of its own: ingest places thousands per transaction
            raise RuntimeError("NearIndex.add_image runs inside the caller's transaction (catalog.atomic)")
        with self._lock:
            joined = self.matches(hashes, grey, lambda shas: _live_clusters(conn, shas))
            if joined:
                cluster_id = _merge_clusters(conn, sorted(joined))
                best = min(joined.values(), key=lambda c: _rank(c, self.threshold))
                near_of: str | None = best.sha256
                distance: int | None = best.distance
            else:
                cursor = conn.execute("INSERT INTO clusters (representative) VALUES (NULL)")
                cluster_id, near_of, distance = int(cursor.lastrowid or 0), None, None
            _insert_image(conn, new, hashes, cluster_id)
            update_representative(conn, cluster_id)
            self.extend({new.sha256: hashes})
            if self.confirmer is not None:  # a copy arriving soon is checked without reading it back
                self.confirmer.remember(new.sha256, grey)
            return Placement(cluster_id=cluster_id, near_of=near_of, distance=distance)


def _rank(c: Candidate, threshold: int) -> tuple[int, int, str]:
    return (0 if c.direct and c.distance <= threshold else 1, c.distance, c.sha256)


class Confirmer:
    """Decides whether two candidate images show the same photo, by keypoints.

    ORB keypoints of both grey copies are matched (ratio test) and a similarity
    transform (rotation, scale, shift) is fitted with RANSAC. The pair is the same
    photo when enough matches agree, they spread over a fair part of the image
    (matches on a shared logo or watermark cover a few percent), and the two
    images, aligned by that transform, correlate over their overlap. Runs only on
    candidate pairs; keypoints are cached per image for the run.

    300 keypoints per image rather than 400: the same verdicts on both
    dedup_quality sets (P 1.000, R 0.992 and 0.998) and on the 463 checks of
    ingest_speed's URLs, in four fifths of the time (1.08 -> 0.87 s for those 463);
    at 250 one of those 463 copies was missed.
    """

    MIN_INLIERS = 12
    MIN_SPREAD = 0.06  # convex hull of the inliers, as a fraction of the image area
    MIN_CORRELATION = 0.5

    def __init__(self, objects: Path, cache_size: int = 512) -> None:
        import cv2  # heavy; only when confirmation is on

        self.cv2: Any = cv2
        self.objects = Path(objects)
        self.orb = self.cv2.ORB_create(nfeatures=300, fastThreshold=10, edgeThreshold=15, patchSize=15)
        self._greys: OrderedDict[str, np.ndarray] = OrderedDict()
        self._features: OrderedDict[tuple[int, bool], tuple[np.ndarray, np.ndarray, Any]] = OrderedDict()
        self.cache_size = cache_size
        self.checked = 0

    def stored_grey(self, sha: str) -> np.ndarray | None:
        if sha in self._greys:
            self._greys.move_to_end(sha)
            return self._greys[sha]
        try:
            data = store.read(self.objects, sha)
            with Image.open(io.BytesIO(data)) as img:
                grey = hashing.grey_of(img).pixels
        except (OSError, ValueError, SyntaxError):
            return None
        self.remember(sha, grey)
        return grey

    def remember(self, sha: str, grey: np.ndarray) -> None:
        """Keep ``grey`` as the grey copy of stored image ``sha`` (the least recently used goes)."""
        self._greys[sha] = grey
        self._greys.move_to_end(sha)
        if len(self._greys) > self.cache_size:
            self._greys.popitem(last=False)

    def _keypoints(self, grey: np.ndarray, mirrored: bool) -> tuple[np.ndarray, np.ndarray | None]:
        key = (id(grey), mirrored)
        cached = self._features.get(key)
        if cached is not None and cached[0] is grey:  # the array is held, so its id is not reused
            return cached[1], cached[2]
        image = grey[:, ::-1].copy() if mirrored else grey
        kps, descriptors = self.orb.detectAndCompute(image, None)
        # KeyPoint_convert, not a loop over KeyPoint objects; it gives () for no keypoints.
        points = np.asarray(self.cv2.KeyPoint_convert(kps), dtype=np.float32).reshape(-1, 2)
        self._features[key] = (grey, points, descriptors)
        if len(self._features) > self.cache_size:
            self._features.popitem(last=False)
        return points, descriptors

    def same_photo(self, grey: np.ndarray, sha: str, mirrored: bool = False) -> bool:
        """Is stored image ``sha`` a copy of the image whose grey copy is ``grey``?"""
        other = self.stored_grey(sha)
        if other is None:
            return False
        self.checked += 1
        return self.same(grey, other, mirrored)

    def same(self, a: np.ndarray, b: np.ndarray, mirrored: bool = False) -> bool:
        """Is ``b`` (mirrored first if asked) a transformed copy of ``a``?"""
        cv2 = self.cv2
        pa, da = self._keypoints(a, False)
        pb, db = self._keypoints(b, mirrored)
        if da is None or db is None or len(da) < self.MIN_INLIERS or len(db) < self.MIN_INLIERS:
            return False
        # Each keypoint of a with its two nearest in b, as arrays (knnMatch gives the same as
        # DMatch objects, read back one by one while holding the GIL); then the ratio test.
        distance, nearest = cv2.batchDistance(da, db, cv2.CV_32S, normType=cv2.NORM_HAMMING, K=2)
        good = np.flatnonzero(distance[:, 0] < 0.8 * distance[:, 1])
        if len(good) < self.MIN_INLIERS:
            return False
        src = pa[good]
        dst = pb[nearest[good, 0]]
        transform, inliers = cv2.estimateAffinePartial2D(
            src, dst, method=cv2.RANSAC, ransacReprojThreshold=4.0, maxIters=500
        )
        if transform is None:
            return False
        keep = inliers.ravel().astype(bool)
        (t00, t01), (t10, t11) = transform[:, :2].tolist()
        scale = abs(t00 * t11 - t01 * t10) ** 0.5  # not np.linalg.det: ~10 us of GIL per check
        if keep.sum() < self.MIN_INLIERS or not 0.25 <= scale <= 4.0:
            return False
        spread = cv2.contourArea(cv2.convexHull(src[keep])) / (a.shape[0] * a.shape[1])
        if spread < self.MIN_SPREAD:
            return False
        b_view = b[:, ::-1] if mirrored else b
        return _aligned_correlation(cv2, a, b_view, transform) >= self.MIN_CORRELATION


def _aligned_correlation(cv2: Any, a: np.ndarray, b: np.ndarray, transform: np.ndarray) -> float:
    """How well ``b``, warped onto ``a``, matches it: the median correlation over a 4x4 grid of cells.

    Per cell and then the median, so that a watermark or caption covering part of one
    image costs a few cells, while two different photos that share only a logo agree
    in a few cells at most.
    """
    inverse = cv2.invertAffineTransform(transform)
    size = (a.shape[1], a.shape[0])
    warped = cv2.warpAffine(np.ascontiguousarray(b, dtype=np.float32), inverse, size, flags=cv2.INTER_LINEAR)
    ones = np.ones(b.shape, dtype=np.float32)
    mask = cv2.warpAffine(ones, inverse, size, flags=cv2.INTER_NEAREST) > 0.5
    x_all = cv2.GaussianBlur(a.astype(np.float32), (0, 0), 2)
    y_all = cv2.GaussianBlur(warped, (0, 0), 2)
    scores = []
    rows, cols = a.shape
    for i in range(4):
        for j in range(4):
            cell = (slice(i * rows // 4, (i + 1) * rows // 4), slice(j * cols // 4, (j + 1) * cols // 4))
            inside = mask[cell]
            if inside.mean() < 0.5:
                continue
            x, y = x_all[cell][inside], y_all[cell][inside]
            x, y = x - x.mean(), y - y.mean()
            denom = float(np.sqrt((x * x).sum() * (y * y).sum()))
            # A flat cell (sky, skin) says nothing either way: count it as agreeing only if both are flat.
            scores.append(float((x * y).sum() / denom) if denom > 1e-3 * x.size else 0.0)
    return float(np.median(scores)) if len(scores) >= 4 else 0.0


def _live_clusters(conn: sqlite3.Connection, shas: list[str]) -> dict[str, int]:
    """sha256 -> cluster id for those of ``shas`` that exist in the catalog."""
    rows = catalog.select_in(conn, "SELECT sha256, cluster_id FROM images WHERE sha256 IN ({marks})", shas)
    return {row[0]: int(row[1]) for row in rows}


def _merge_clusters(conn: sqlite3.Connection, ids: list[int]) -> int:
    keep, rest = ids[0], ids[1:]
    for other in rest:
        conn.execute("UPDATE images SET cluster_id = ? WHERE cluster_id = ?", (keep, other))
        conn.execute("DELETE FROM clusters WHERE id = ?", (other,))
    return keep


def _insert_image(conn: sqlite3.Connection, new: NewImage, hashes: dict[str, int], cluster_id: int) -> None:
    conn.execute(
        "INSERT INTO images (sha256, fingerprint, hashes, pixel_sha256, width, height, format, bytes,"
        " cluster_id, created_at, hashed_from) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            new.sha256,
            new.fingerprint,
            hashing.pack_hashes(hashes),
            new.pixel_sha256,
            new.width,
            new.height,
            new.format,
            new.bytes,
            cluster_id,
            catalog.utcnow(),
            new.hashed_from,
        ),
    )


def update_representative(conn: sqlite3.Connection, cluster_id: int) -> None:
    """Largest pixel area first, then the earliest created_at (then sha256, for a total order)."""
    conn.execute(
        "UPDATE clusters SET representative = (SELECT sha256 FROM images WHERE cluster_id = ?"
        " ORDER BY width * height DESC, created_at ASC, sha256 ASC LIMIT 1) WHERE id = ?",
        (cluster_id, cluster_id),
    )


def split_off(conn: sqlite3.Connection, sha256: str) -> int:
    """Move one image out of its near-duplicate cluster into a cluster of its own (a person
    saw it is another photo); both representatives are recomputed. Return the new cluster's
    id. ``curator dups --threshold N`` rebuilds clusters from the hashes and may join them again."""
    with catalog.atomic(conn):
        row = conn.execute("SELECT cluster_id FROM images WHERE sha256 = ?", (sha256,)).fetchone()
        if row is None:
            raise InputError(f"no image with sha256 {sha256!r}")
        old = int(row[0])
        if conn.execute("SELECT COUNT(*) FROM images WHERE cluster_id = ?", (old,)).fetchone()[0] < 2:
            raise InputError(f"image {sha256[:12]} is alone in its cluster; there is nothing to split")
        new = int(conn.execute("INSERT INTO clusters (representative) VALUES (?)", (sha256,)).lastrowid or 0)
        conn.execute("UPDATE images SET cluster_id = ? WHERE sha256 = ?", (new, sha256))
        update_representative(conn, old)
    return new


def stored_hashes(conn: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """sha256 -> {name: unsigned hash} for every image, in insertion order."""
    result: dict[str, dict[str, int]] = {}
    for sha, packed in conn.execute("SELECT sha256, hashes FROM images ORDER BY created_at, sha256"):
        result[sha] = hashing.unpack_hashes(packed) if packed is not None else {}
    # Images hashed with other views than today's (see catalog migration 2) keep rows by name.
    for sha, name, value in conn.execute("SELECT sha256, name, value FROM image_hashes"):
        if sha in result:
            result[sha][name] = hashing.to_unsigned(int(value))
    return {sha: hashes for sha, hashes in result.items() if hashes}


def pair_distance(a: dict[str, int], b: dict[str, int]) -> int | None:
    """The smallest Hamming distance between one image's ``phash`` and any view hash of the
    other (so a mirrored, rotated or cropped copy reports how close its best view is);
    None when either image has no ``phash``."""
    if hashing.PHASH not in a or hashing.PHASH not in b:
        return None
    ab = min(hashing.hamming(a[hashing.PHASH], v) for n, v in b.items() if n in _KIND)
    ba = min(hashing.hamming(b[hashing.PHASH], v) for n, v in a.items() if n in _KIND)
    return min(ab, ba)


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


def recluster(
    conn: sqlite3.Connection,
    objects: Path,
    cfg: DedupConfig,
    threshold: int,
    on_progress: Callable[[int], None] | None = None,
) -> ReclusterResult:
    """Rebuild every cluster from the stored hashes at ``threshold``, in one transaction.

    ``threshold`` replaces ``dedup.threshold`` for this run (whole-image matches
    within it count on the hash alone); keypoint-confirmed candidates are searched
    up to the same margin above it as in the config (12 - 8 = 4 by default). Raises
    InputError for a threshold outside 0..32.

    Pairs come from one self-join of the HashIndex (each image's ``phash`` against
    every view of every image); pairs that are not direct matches are confirmed
    by keypoints, reading the images from ``objects``. Each new cluster keeps the
    smallest old id among its members when that id is still free, so clusters
    that do not change keep their ids.
    """
    if not 0 <= threshold <= MAX_THRESHOLD:
        raise InputError(f"threshold {threshold} is out of range: use 0 to {MAX_THRESHOLD} bits (of 64)")
    all_hashes = stored_hashes(conn)
    index = NearIndex(objects=Path(objects), cfg=cfg, threshold=threshold)
    index.extend(all_hashes)
    shas = index.shas
    sets = DisjointSets(len(shas))
    direct, loose = _pairs(index, all_hashes)
    for a, b in direct:
        sets.union(a, b)
    if index.confirmer is not None:
        for a, b, mirrored in loose:
            if sets.find(a) == sets.find(b):
                continue  # already linked: a keypoint check would add nothing
            grey = index.confirmer.stored_grey(shas[a])
            if grey is not None and index.confirmer.same_photo(grey, shas[b], mirrored):
                sets.union(a, b)
            if on_progress is not None:
                on_progress(1)
    groups: dict[int, list[str]] = defaultdict(list)
    for slot, sha in enumerate(shas):
        groups[sets.find(slot)].append(sha)
    return _rewrite_clusters(conn, list(groups.values()), threshold)


class DisjointSets:
    """Union-find over 0..n-1 (path halving); each set's root is its smallest member."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[max(ra, rb)] = min(ra, rb)


def _pairs(
    index: NearIndex, all_hashes: dict[str, dict[str, int]]
) -> tuple[list[tuple[int, int]], list[tuple[int, int, bool]]]:
    """Slot pairs from one self-join: (direct pairs, loose pairs with a 'mirrored' flag).

    Each image's ``phash`` is searched among every view of every image, which covers
    both directions of every relation (a is a view of b, or b of a).
    """
    queries = np.array([all_hashes[sha].get(hashing.PHASH, 0) for sha in index.shas], dtype=np.uint64)
    qi, ei, dist = index.index.search(queries, index.radius)
    owners, kinds = index.index.entry(ei)
    other = qi != owners
    qi, owners, kinds, dist = qi[other], owners[other], kinds[other], dist[other]
    direct = (dist <= index.threshold) & np.isin(kinds, [_KIND[v] for v in DIRECT_VIEWS])
    direct_pairs = list(zip(qi[direct].tolist(), owners[direct].tolist(), strict=True))
    order = np.argsort(dist[~direct], kind="stable")  # nearest first: most likely to link
    mirror = kinds[~direct][order] == _KIND[hashing.PHASH_MIRROR]
    loose = list(
        zip(qi[~direct][order].tolist(), owners[~direct][order].tolist(), mirror.tolist(), strict=True)
    )
    return direct_pairs, loose


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
