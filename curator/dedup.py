"""Near-duplicate clusters: place each new image, list clusters, re-cluster.

    NearIndex.load(conn, objects, cfg)   the stored hashes, in memory, once per run
    NearIndex.add_image(conn, ...)       place a new image inside the caller's transaction
    clusters(conn)                       clusters with members, distances and source URLs
    recluster(conn, objects, cfg, t)     rebuild every cluster from stored hashes
    near_pairs(policy, hashes)           every pair the policy counts (recluster, audit)

How two images are judged near duplicates is curator.match's one policy: which views
of the stored hashes (curator.hashing.NAMES) are compared, how far, and which matches
keypoints must confirm (:class:`Confirmer`: ORB + RANSAC similarity, inliers spread
over the image, aligned images correlate cell by cell), which is what keeps two
different photos with the same logo apart. Near duplicates link transitively into
clusters. A cluster's id and representative depend on its members and the input order
only (:func:`settle_clusters`, :func:`choose_representative`), never on thread timing.
Quality and speed: benchmarks/dedup_quality.py and benchmarks/cluster_scale.py (figures
in the README).

The threshold is 8 rather than 10 because pHash distances are almost always even
(a median split sets 32 of 64 bits), so 9 is 8, and 10 would make the multi-index
search probe ~7x more (radius 10 needs 3 bits per 21-bit chunk instead of 2).
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import io
import os
import sqlite3
import threading
import zlib
from collections import OrderedDict, defaultdict
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
from PIL import Image

from curator import catalog, hashing, store
from curator.config import DedupConfig
from curator.errors import InputError
from curator.hashing import HashIndex
from curator.match import MAX_THRESHOLD, Match, Policy


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
    position: int | None = None  # its source's input position: a new cluster's id is 1 + it


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
    why: str = ""  # why the representative won (choose_representative)

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
    """A stored image near a new one: how it matched (curator.match)."""

    sha256: str
    match: Match

    @property
    def distance(self) -> int:
        return self.match.distance

    @property
    def view(self) -> str:
        return self.match.view


# Hash names the index knows, today's views and those stored before catalog migration 4.
# (Centre hashes are not searched: they only confirm a dihedral match, see curator.match.)
_SEARCHED = [n for n in dict.fromkeys(hashing.NAMES + hashing.LEGACY_NAMES) if n not in hashing.CENTRES]
_KIND = {name: i for i, name in enumerate(_SEARCHED)}
_NAME = list(_KIND)
_DIHEDRAL_KINDS = [_KIND[name] for name in hashing.DIHEDRAL]
_PHASH_KIND = _KIND[hashing.PHASH]
# Each kind's class in ViewIndex.search's plan: 0 the plain phash, 1 another dihedral hash, 2 a turn or crop.
_CLASS = np.array([0 if k == _PHASH_KIND else 1 if k in _DIHEDRAL_KINDS else 2 for k in range(len(_KIND))])
_FORM = _CLASS < 2  # by kind: a dihedral hash (np.isin took ~20 us a call)
# Below this many (query, view) pairs a ViewIndex compares them all (ViewIndex._scan): up to
# groups of ~60 photos matched among themselves, that beats five searches on fresh tables.
_SCAN_PAIRS = 1 << 21


_Found = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # query, owner, stored kind, distance


@dataclass
class ViewIndex:
    """Every searched view hash of a set of images, indexed for the match policy's radii.

    ``every`` holds every view of every image, ``forms`` each image's dihedral hashes
    (hashing.DIHEDRAL) and ``plain`` its ``phash``. A query hash of one image is looked up
    where the policy can count it (curator.match): a dihedral hash among every view (a stored
    image may be a transformed copy of it), another view among the dihedral hashes (it may be
    a transformed copy of a stored image), composite relations only as far as
    :meth:`Policy.radius_for` lets them count.
    """

    every: HashIndex = field(default_factory=HashIndex)
    forms: HashIndex = field(default_factory=HashIndex)
    plain: HashIndex = field(default_factory=HashIndex)

    def extend(self, values: np.ndarray, owners: np.ndarray, kinds: np.ndarray) -> None:
        self.every.extend(values, owners, kinds)
        form, plain = _FORM[kinds], kinds == _PHASH_KIND
        for index, keep in ((self.forms, form), (self.plain, plain)):
            index.extend(values[keep], owners[keep], kinds[keep])

    def search(self, policy: Policy, values: np.ndarray, kinds: np.ndarray) -> _Found:
        """(query position, owner, stored kind, distance) of every stored view within the
        radius the policy allows for its pair of views (a pair may come twice)."""
        full, composite = policy.radius, policy.composite_radius
        form = _FORM[kinds]
        forms = np.count_nonzero(form)
        if forms * len(self.every) + (len(kinds) - forms) * len(self.forms) <= _SCAN_PAIRS:
            return self._scan(values, kinds, form, full, composite)
        plain = kinds == _PHASH_KIND
        plan = [
            (plain, self.every, full),  # the image as it is against every view: single relations
            (form & ~plain, self.forms, full),  # a flip or quarter turn of it against one
            (form & ~plain, self.every, composite),  # ... and against the turns and crops
            (~form, self.plain, full),  # its turns and crops against each image as it is
            (~form, self.forms, composite),  # ... and against each one's flips and quarter turns
        ]
        found = []
        for mask, index, radius in plan:
            asked = np.flatnonzero(mask)
            if len(asked) and len(index) and radius >= 0:
                qi, ei, dist = index.search(values[asked], radius)
                found.append((asked[qi], *index.entry(ei), dist))
        if not found:
            empty = np.zeros(0, dtype=np.int64)
            return empty, empty, empty, empty
        return tuple(np.concatenate(col) for col in zip(*found, strict=True))  # type: ignore[return-value]

    def _scan(
        self, values: np.ndarray, kinds: np.ndarray, form: np.ndarray, full: int, composite: int
    ) -> _Found:
        """:meth:`search` of a small index by comparing each query with every stored hash it
        may match (``form``: the queries that are dihedral hashes), each pair once, at the
        radius ``search``'s plan gives its classes. Its five searches' fixed costs were most
        of the time ingest spent searching a group's own images."""
        radii = np.array([[full, full, full], [full, full, composite], [full, composite, -1]])
        found = []
        for asked, index in ((np.flatnonzero(form), self.every), (np.flatnonzero(~form), self.forms)):
            stored, owners, stored_kinds = index.entries()
            qi, ei, dist = hashing.scan(values[asked], stored, full)
            keep = dist <= radii[_CLASS[kinds[asked[qi]]], _CLASS[stored_kinds[ei]]]
            found.append((asked[qi[keep]], owners[ei[keep]], stored_kinds[ei[keep]], dist[keep]))
        return tuple(np.concatenate(col).astype(np.int64) for col in zip(*found, strict=True))  # type: ignore[return-value]


@dataclass
class NearIndex:
    """The stored hashes of a catalog, for placing new images (load once per run)."""

    objects: Path
    policy: Policy
    shas: list[str] = field(default_factory=list)
    views: ViewIndex = field(default_factory=ViewIndex)
    centres: list[dict[str, int]] = field(default_factory=list)  # each image's centre hashes
    confirmer: Confirmer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    # Inside :meth:`group`: the group's images placed so far (first slot, hashes), kept apart
    # from ``views``, which stays as the group found it; each group image's candidates in
    # ``views``, ranked; and its matches among the group's other images (counted once placed).
    _recent: tuple[int, list[dict[str, int]]] | None = field(default=None, repr=False)
    _found_before: dict[str, list[Candidate]] = field(default_factory=dict, repr=False)
    _among: dict[str, list[Candidate]] = field(default_factory=dict, repr=False)
    _placed: set[str] = field(default_factory=set, repr=False)

    def __post_init__(self) -> None:
        if self.confirmer is None and self.policy.confirm:
            self.confirmer = Confirmer(self.objects)

    @classmethod
    def load(cls, conn: sqlite3.Connection, objects: Path, cfg: DedupConfig) -> NearIndex:
        index = cls(objects=Path(objects), policy=Policy.of(cfg))
        index.extend(stored_hashes(conn))
        return index

    def __len__(self) -> int:
        return len(self.shas)

    def extend(self, hashes_by_sha: dict[str, dict[str, int]]) -> None:
        first = len(self.shas)
        self.shas.extend(hashes_by_sha)
        hashes = list(hashes_by_sha.values())
        self.centres.extend({n: v for n, v in h.items() if n in hashing.CENTRES} for h in hashes)
        if self._recent:  # into views when the group ends
            self._recent[1].extend(hashes)
            self._placed.update(hashes_by_sha)
            return
        values, owners, kinds = _entries(hashes)
        if len(values):
            self.views.extend(values, owners + first, kinds)

    def _recent_views(self) -> ViewIndex:
        """The group's images placed so far, indexed, for a query its own search did not cover."""
        assert self._recent is not None
        first, hashes = self._recent
        views = ViewIndex()
        values, owners, kinds = _entries(hashes)
        views.extend(values, owners + first, kinds)
        return views

    @contextlib.contextmanager
    def group(
        self, hashes_by_sha: dict[str, dict[str, int]], greys: dict[str, np.ndarray] | None = None
    ) -> Iterator[None]:
        """Place a group of new images (``add_image`` for some or all of ``hashes_by_sha``, with
        these hashes) with one search of the stored images for the whole group, and one of the
        group's images among themselves: each search has a fixed cost of some numpy calls per
        chunk table, which one image at a time paid per image. Inside, an image is matched only
        with the stored images and the group's images placed before it. With ``greys`` (the
        images' grey copies), the keypoint check each image will most likely need is prepared
        on other threads while the group is placed (_prepare_check)."""
        shas = list(hashes_by_sha)
        if shas:  # a group may have no new image (all refused or exact duplicates)
            hashes = list(hashes_by_sha.values())
            values, owners, kinds = _entries(hashes)
            stored = _by_image(len(shas), owners, self.views.search(self.policy, values, kinds))
            among = ViewIndex()
            among.extend(values, owners, kinds)
            others = _by_image(len(shas), owners, among.search(self.policy, values, kinds))
            position = {sha: i for i, sha in enumerate(shas)}
            for i, sha in enumerate(shas):
                self._found_before[sha] = self._ranked(hashes[i], stored[i])
                mates = self._ranked(hashes[i], others[i], shas, hashes)
                self._among[sha] = [c for c in mates if c.sha256 != sha]
                grey = greys.get(sha) if greys else None
                if grey is not None and self.confirmer is not None:  # (images are placed in order)
                    earlier = [c for c in mates if position[c.sha256] < i]
                    self._prepare_check(grey, self._found_before[sha], earlier, greys or {})
        self._recent = (len(self.shas), [])
        try:
            yield
        finally:
            first, hashes = self._recent
            self._recent, self._found_before, self._among, self._placed = None, {}, {}, set()
            if self.confirmer is not None:
                self.confirmer.forget_prepared()
            values, owners, kinds = _entries(hashes)
            if len(values):
                self.views.extend(values, owners + first, kinds)

    def _prepare_check(
        self, grey: np.ndarray, stored: list[Candidate], among: list[Candidate], greys: dict[str, np.ndarray]
    ) -> None:
        """Have the confirmer prepare the keypoint check an image will most likely need: with no
        direct match, its best loose one (usually a copy's only match; a check is done only
        until its cluster is joined, so the next ones would mostly be work thrown away, which
        on 2 cores the decoding threads pay for). Any other check is done in place."""
        assert self.confirmer is not None
        found = sorted(stored + among, key=_rank)
        if found and not any(c.match.direct for c in found):
            best = found[0]
            self.confirmer.prepare(grey, best.sha256, best.match.reflected, greys.get(best.sha256))

    def candidates(self, hashes: dict[str, int], sha256: str | None = None) -> list[Candidate]:
        """Stored images that match ``hashes`` under the policy, best first (may include
        rolled-back rows). ``sha256``: the new image's, whose group may have searched already."""
        found = self._found_before.pop(sha256, None) if sha256 else None
        if found is None:
            found = self._searched_in(self.views, hashes)
        if self._recent:  # the group's images, none of them among the stored ones
            among = self._among.pop(sha256, None) if sha256 else None
            if among is None:
                recent = self._searched_in(self._recent_views(), hashes)
            else:
                recent = [c for c in among if c.sha256 in self._placed]
            found = sorted(found + recent, key=_rank)
        return found

    def _searched_in(self, views: ViewIndex, hashes: dict[str, int]) -> list[Candidate]:
        """The images of ``views`` that match ``hashes``, best first: a search of its own, for an
        image its group's search did not cover (the group's images come searched)."""
        values, _, kinds = _entries([hashes])
        return self._ranked(hashes, views.search(self.policy, values, kinds))

    def _ranked(
        self, hashes: dict[str, int], found: _Found, shas: list[str] | None = None,
        centres: list[dict[str, int]] | None = None,
    ) -> list[Candidate]:
        """The images in ``found`` (search hits of ``hashes``; owners index ``shas`` and
        ``centres``, each owner's hashes, its centre ones at least; by default the stored
        images') that match under the policy, each by its best match, best first."""
        shas, centres = shas or self.shas, centres or self.centres
        names = [n for n in hashes if n in _KIND]
        best: dict[str, Candidate] = {}
        for q, owner, kind, d in zip(*(col.tolist() for col in found), strict=True):
            match = self.policy.match(names[q], _NAME[kind], d,
                                      centre_distance(hashes, centres[owner], names[q], _NAME[kind]))
            if match is None:
                continue
            cand = Candidate(shas[owner], match)
            old = best.get(cand.sha256)
            if old is None or _rank(cand) < _rank(old):
                best[cand.sha256] = cand
        return sorted(best.values(), key=_rank)

    def same_phash(self, phash: int, radius: int) -> list[str]:
        """Stored images whose own ``phash`` is within ``radius`` bits of ``phash``."""
        _, found, _ = self.views.plain.search(np.array([phash], dtype=np.uint64), radius)
        owners = self.views.plain.entry(found)[0].tolist()
        if self._recent:  # the group's images placed so far
            first, hashes = self._recent
            owners += [first + i for i, h in enumerate(hashes)
                       if hashing.PHASH in h and hashing.hamming(h[hashing.PHASH], phash) <= radius]
        return [self.shas[owner] for owner in owners]

    def matches(
        self,
        hashes: dict[str, int],
        grey: np.ndarray,
        clusters_of: Callable[[list[str]], dict[str, int]],
        sha256: str | None = None,
    ) -> dict[int, Candidate]:
        """The nearest near duplicate in each cluster that ``hashes`` belongs with.

        ``clusters_of`` maps stored sha256s to their cluster ids (and drops images that
        are not in the catalog). Direct matches need no check; other candidates are
        confirmed by keypoints, and only while their cluster has not been joined yet,
        so a copy of a big cluster costs one check, not one per member.
        """
        found = self.candidates(hashes, sha256)
        live = clusters_of([c.sha256 for c in found])
        joined: dict[int, Candidate] = {}
        for cand in found:
            cluster = live.get(cand.sha256)
            if cluster is None or cluster in joined:
                continue
            if cand.match.direct or (
                self.confirmer is not None
                and self.confirmer.same_photo(grey, cand.sha256, mirrored=cand.match.reflected)
            ):
                joined[cluster] = cand
        return joined

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
            joined = self.matches(hashes, grey, lambda shas: _live_clusters(conn, shas), new.sha256)
            if joined:
                cluster_id = _merge_clusters(conn, sorted(joined))
                best = min(joined.values(), key=_rank)
                near_of: str | None = best.sha256
                distance: int | None = best.distance
            else:
                cluster_id, near_of, distance = _new_cluster(conn, new), None, None
            _insert_image(conn, new, hashes, cluster_id)
            if joined:
                update_representative(conn, cluster_id)
            self.extend({new.sha256: hashes})
            if self.confirmer is not None:  # a copy arriving soon is checked without reading it back
                self.confirmer.remember(new.sha256, grey)
            return Placement(cluster_id=cluster_id, near_of=near_of, distance=distance)


def _by_image(images: int, owners: np.ndarray, found: _Found) -> list[_Found]:
    """Search hits of the hashes of several images (``owners``: whose each query hash is),
    split by image, each image's query positions counted from its first hash."""
    query, *hit = found
    starts = np.searchsorted(owners, np.arange(images))  # where each image's rows begin
    by_image = np.argsort(owners[query], kind="stable")
    cuts = np.searchsorted(owners[query][by_image], np.arange(1, images))
    return [
        (query[rows] - start, *(col[rows] for col in hit))
        for start, rows in zip(starts, np.split(by_image, cuts), strict=True)
    ]


def _rank(c: Candidate) -> tuple[int, int, str]:
    return (0 if c.match.direct else 1, c.distance, c.sha256)


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

    def __init__(self, objects: Path | None = None, cache_size: int = 512) -> None:
        import cv2  # heavy; only when confirmation is on

        self.cv2: Any = cv2
        self.objects = objects  # where stored_grey reads images; None: only remembered ones
        self._local = threading.local()  # an ORB detector per thread (one must not be shared)
        self._greys: OrderedDict[str, np.ndarray] = OrderedDict()
        self._features: OrderedDict[tuple[int, bool], tuple[np.ndarray, np.ndarray, Any]] = OrderedDict()
        self.cache_size = cache_size
        self.checked = 0
        # prepare's work: (id of the new grey, other sha256, mirrored) -> a check's other grey,
        # keypoints and verdict, computed on _pool's threads.
        self._prepared: dict[tuple[int, str, bool], Future[_Prepared]] = {}
        self._pool: ThreadPoolExecutor | None = None

    def _orb(self) -> Any:
        orb = getattr(self._local, "orb", None)
        if orb is None:
            orb = self._local.orb = self.cv2.ORB_create(nfeatures=300, fastThreshold=10, edgeThreshold=15,
                                                        patchSize=15)
        return orb

    def stored_grey(self, sha: str) -> np.ndarray | None:
        if sha in self._greys:
            self._greys.move_to_end(sha)
            return self._greys[sha]
        grey = self._read_grey(sha)
        if grey is not None:
            self.remember(sha, grey)
        return grey

    def _read_grey(self, sha: str) -> np.ndarray | None:
        if self.objects is None:
            return None
        try:
            data = store.read(self.objects, sha)
            with Image.open(io.BytesIO(data)) as img:
                return hashing.grey_of(img).pixels
        except (OSError, ValueError, SyntaxError):
            return None

    def prepare(self, grey: np.ndarray, sha: str, mirrored: bool, other: np.ndarray | None = None) -> None:
        """Start the check of the image ``grey`` against image ``sha`` (``mirrored`` or not) on
        another thread: its grey copy (``other``, or the stored one), both images' keypoints and
        the verdict, which :meth:`same_photo` then takes. On a catalog with many stored images,
        keypoints were a fifth of the catalog thread's time; this way the check is done (or
        nearly) when it comes, and one that never comes (its cluster joined already) costs
        only the other threads. Verdicts are the same: the same keypoints of the same arrays,
        by the same detector, decided by the same code."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(os.cpu_count() or 1, thread_name_prefix="curator-keypoints")
        self._prepared[(id(grey), sha, mirrored)] = self._pool.submit(
            self._prepare_one, grey, sha, mirrored, other if other is not None else self._greys.get(sha))

    def _prepare_one(self, grey: np.ndarray, sha: str, mirrored: bool, other: np.ndarray | None) -> _Prepared:
        """On a pool thread, no cache touched: the other grey copy, both sides' keypoints, and
        the verdict (the check's matching and alignment held the catalog thread ~2 ms each)."""
        if other is None:
            other = self._read_grey(sha)
        if other is None:
            return None
        a, b = _in_check_order(grey, other)
        a_features, b_features = self._detect(a, False), self._detect(b, mirrored)
        verdict = self._decide(a, b, mirrored, a_features, b_features)
        return other, [(a, False, *a_features), (b, mirrored, *b_features)], verdict

    def forget_prepared(self) -> None:
        """Drop prepared work that no check used (not started: cancelled)."""
        for future in self._prepared.values():
            future.cancel()
        self._prepared = {}

    def _take_prepared(self, grey: np.ndarray, sha: str, mirrored: bool) -> bool | None:
        """The verdict prepare reached for this check (its grey copy and keypoints now cached),
        or None when it prepared none."""
        future = self._prepared.pop((id(grey), sha, mirrored), None)
        if future is None:
            return None
        prepared = future.result()
        if prepared is None:
            return None
        other, features, verdict = prepared
        for image, flipped, points, descriptors in features:
            self._cache_features(image, flipped, points, descriptors)
        if sha not in self._greys:
            self.remember(sha, other)
        self.checked += 1
        return verdict

    def remember(self, sha: str, grey: np.ndarray) -> None:
        """Keep ``grey`` as the grey copy of stored image ``sha`` (the least recently used goes)."""
        self._greys[sha] = grey
        self._greys.move_to_end(sha)
        if len(self._greys) > self.cache_size:
            self._greys.popitem(last=False)

    def _keypoints(self, grey: np.ndarray, mirrored: bool) -> tuple[np.ndarray, np.ndarray | None]:
        cached = self._features.get((id(grey), mirrored))
        if cached is not None and cached[0] is grey:  # the array is held, so its id is not reused
            return cached[1], cached[2]
        points, descriptors = self._detect(grey, mirrored)
        self._cache_features(grey, mirrored, points, descriptors)
        return points, descriptors

    def _detect(self, grey: np.ndarray, mirrored: bool) -> tuple[np.ndarray, np.ndarray | None]:
        image = grey[:, ::-1].copy() if mirrored else grey
        kps, descriptors = self._orb().detectAndCompute(image, None)
        # KeyPoint_convert, not a loop over KeyPoint objects; it gives () for no keypoints.
        return np.asarray(self.cv2.KeyPoint_convert(kps), dtype=np.float32).reshape(-1, 2), descriptors

    def _cache_features(self, grey: np.ndarray, mirrored: bool, points: np.ndarray, descriptors: Any) -> None:
        self._features[(id(grey), mirrored)] = (grey, points, descriptors)
        if len(self._features) > self.cache_size:
            self._features.popitem(last=False)

    def same_photo(self, grey: np.ndarray, sha: str, mirrored: bool = False) -> bool:
        """Is stored image ``sha`` a copy of the image whose grey copy is ``grey``?"""
        verdict = self._take_prepared(grey, sha, mirrored)
        if verdict is not None:
            return verdict
        other = self.stored_grey(sha)
        if other is None:
            return False
        self.checked += 1
        return self.same(grey, other, mirrored)

    def same(self, a: np.ndarray, b: np.ndarray, mirrored: bool = False) -> bool:
        """Is ``b`` (mirrored first if asked) a transformed copy of ``a``?

        The same answer either way round: the check itself is not symmetric (a cropped,
        brightened copy can pass one way and fail the other; see tests/test_reproducible.py),
        so the pair is put in a fixed order by content first, and which image arrived
        first never changes a cluster.
        """
        a, b = _in_check_order(a, b)
        return self._decide(a, b, mirrored, self._keypoints(a, False), self._keypoints(b, mirrored))

    def _decide(
        self, a: np.ndarray, b: np.ndarray, mirrored: bool, a_features: tuple[np.ndarray, Any],
        b_features: tuple[np.ndarray, Any],
    ) -> bool:
        """:meth:`same` of a pair in check order, given both sides' keypoints (any thread)."""
        cv2 = self.cv2
        (pa, da), (pb, db) = a_features, b_features
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


# A prepared check: the other grey copy, (array, mirrored, points, descriptors) of both sides, the verdict.
_Prepared = tuple[np.ndarray, list[tuple[np.ndarray, bool, np.ndarray, Any]], bool] | None


def _in_check_order(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The pair in a fixed order by content (mirroring either one is the same relation)."""
    return (b, a) if _content_order(b) < _content_order(a) else (a, b)


def _content_order(grey: np.ndarray) -> tuple[tuple[int, ...], int]:
    return grey.shape, zlib.crc32(np.ascontiguousarray(grey).data)


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


def _new_cluster(conn: sqlite3.Connection, new: NewImage) -> int:
    """A cluster of ``new`` alone, already settled where it can be: id 1 + its input position
    (settle_clusters' rule) unless another cluster holds that id, representative itself."""
    if new.position is not None:
        sql = "INSERT OR IGNORE INTO clusters (id, representative) VALUES (?, ?)"
        cursor = conn.execute(sql, (new.position + 1, new.sha256))
        if cursor.rowcount:
            return new.position + 1
    return int(conn.execute("INSERT INTO clusters (representative) VALUES (?)", (new.sha256,)).lastrowid or 0)


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


# The luminance quantisation table of the JPEG standard (Annex K), in any order: only its sum is used.
_JPEG_LUMA_SUM = 3688
LOSSLESS_FORMATS = frozenset({"PNG", "BMP", "TIFF"})
LOSSLESS = 101  # ranks above any estimated JPEG quality (1-100)


@dataclass(frozen=True)
class Contender:
    """A cluster member as the representative rule sees it."""

    sha256: str
    width: int
    height: int
    format: str
    bytes: int
    position: int | None  # the earliest input position among its sources (catalog migration 5)
    quality: int = 0  # LOSSLESS, an estimated JPEG quality, or 0 when unknown

    @property
    def pixels(self) -> int:
        return self.width * self.height

    @property
    def bytes_per_pixel(self) -> float:
        return round(self.bytes / max(1, self.pixels), 4)

    def key(self) -> tuple[int, int, float, bool, int, str]:
        """Smallest wins: most pixels, least lossy, earliest input, smallest sha256. Bytes per
        pixel measure loss only where no quality is known: between two JPEGs of one estimated
        quality, or two lossless files, they say more about content and settings than loss."""
        unplaced = self.position is None
        density = 0.0 if self.quality else -self.bytes_per_pixel
        return (-self.pixels, -self.quality, density, unplaced, self.position or 0, self.sha256)


_qualities: dict[str, int] = {}  # sha256 -> jpeg_quality: objects never change, clusters ask again


def jpeg_quality(objects: Path, sha: str, data: bytes | None = None) -> int:
    """The quality a JPEG's encoder was asked for, as the IJG scaling of the standard
    luminance table would give its own (1-100); 0 when the image has no such table.

    From ``data`` when given (ingest's workers call it with the bytes they hold, so the
    catalog thread finds it remembered), else from the stored object. Only the markers
    before the image data are read, skipping the others' payloads (an EXIF block can be
    64 KB): a few small reads, not a decode.
    """
    if sha in _qualities:
        return _qualities[sha]
    try:
        with io.BytesIO(data) if data is not None else open(store.object_path(objects, sha), "rb") as fh:
            table = _luma_table(fh)
    except OSError:
        return 0
    if len(_qualities) > 200_000:
        _qualities.clear()
    _qualities[sha] = _quality_of(table)
    return _qualities[sha]


def _quality_of(table: list[int] | None) -> int:
    if not table:
        return 0
    scale = 100.0 * sum(table) / _JPEG_LUMA_SUM
    estimate = (200.0 - scale) / 2 if scale <= 100 else 5000.0 / scale
    return max(1, min(100, round(estimate)))


def _luma_table(fh: BinaryIO) -> list[int] | None:
    """Quantisation table 0 (luminance) from a JPEG's header, or None."""
    if fh.read(2) != b"\xff\xd8":
        return None
    while True:
        head = fh.read(4)
        if len(head) < 4 or head[0] != 0xFF or head[1] == 0xDA:  # not a marker, or the image data
            return None
        remaining = int.from_bytes(head[2:4], "big") - 2
        if head[1] != 0xDB:  # not a DQT segment: skip it
            fh.seek(remaining, 1)
            continue
        segment = fh.read(remaining)
        i = 0
        while i < len(segment):  # one segment may hold several tables
            wide, table_id = segment[i] >> 4, segment[i] & 15
            size = 128 if wide else 64
            values = segment[i + 1 : i + 1 + size]
            if table_id == 0 and len(values) == size:
                step = 2 if wide else 1
                return [int.from_bytes(values[k : k + step], "big") for k in range(0, size, step)]
            i += 1 + size


def choose_representative(members: list[Contender], objects: Path | None) -> tuple[Contender, str]:
    """The member that represents a cluster, and why it won (for ``curator dups``).

    The original is preferred over copies derived from it: the most pixels, then the
    least lossy encoding (lossless, else the higher estimated JPEG quality, else, for
    formats without either, more bytes per pixel), then the earliest input position,
    then the smallest sha256.
    Never the order in which threads finished. Encodings are read (headers only, from
    ``objects``) just for members tied on pixels.
    """
    most = max(m.pixels for m in members)
    tied = [m for m in members if m.pixels == most]
    if objects is not None and len(tied) > 1:
        tied = [dataclasses.replace(m, quality=_quality(m, objects)) for m in tied]
    ranked = sorted(tied, key=Contender.key)
    best = ranked[0]
    if len(members) == 1:
        return best, "the only member"
    if len(ranked) == 1:
        runner = max((m for m in members if m.pixels < most), key=lambda m: m.pixels)
        return best, f"most pixels: {best.width}x{best.height} vs {runner.width}x{runner.height}"
    runner = ranked[1]
    if best.quality != runner.quality:
        return best, f"least lossy: {_describe_quality(best)} vs {_describe_quality(runner)}"
    if not best.quality and best.bytes_per_pixel != runner.bytes_per_pixel:
        return best, f"least lossy: {best.bytes_per_pixel:g} vs {runner.bytes_per_pixel:g} bytes per pixel"
    if best.position != runner.position:
        return best, f"earliest in the input: position {best.position} vs {runner.position}"
    return best, "equal encodings and input: smallest sha256"


def _quality(m: Contender, objects: Path) -> int:
    if m.format in LOSSLESS_FORMATS:
        return LOSSLESS
    return jpeg_quality(objects, m.sha256) if m.format == "JPEG" else 0


def _describe_quality(m: Contender) -> str:
    if m.quality == LOSSLESS:
        return f"{m.format}, lossless"
    return f"JPEG quality ~{m.quality}" if m.quality else f"{m.format}, quality unknown"


def _contenders(conn: sqlite3.Connection, cluster_ids: list[int]) -> dict[int, list[Contender]]:
    rows = catalog.select_in(
        conn,
        "SELECT i.cluster_id, i.sha256, i.width, i.height, i.format, i.bytes, MIN(s.position) AS position"
        " FROM images i LEFT JOIN sources s ON s.sha256 = i.sha256"
        " WHERE i.cluster_id IN ({marks}) GROUP BY i.sha256",
        cluster_ids,
    )
    found: dict[int, list[Contender]] = defaultdict(list)
    for r in rows:
        found[int(r[0])].append(Contender(r[1], int(r[2]), int(r[3]), str(r[4]), int(r[5]), r[6]))
    return found


def update_representative(conn: sqlite3.Connection, cluster_id: int, objects: Path | None = None) -> None:
    """Set the cluster's representative by :func:`choose_representative` (encodings are compared
    only when ``objects`` is given; ingest and re-clustering settle every cluster with it)."""
    members = _contenders(conn, [cluster_id]).get(cluster_id)
    if members:
        best, _ = choose_representative(members, objects)
        conn.execute("UPDATE clusters SET representative = ? WHERE id = ?", (best.sha256, cluster_id))


def settle_clusters(conn: sqlite3.Connection, cluster_ids: Iterable[int], objects: Path) -> None:
    """Give each of these clusters its stable id and its representative, inside the caller's transaction.

    A cluster's id is 1 + the smallest input position among its members' sources, a
    function of what it holds and of the inputs alone, so the same inputs give the same
    ids however threads interleaved. A cluster keeps its id when it has no positioned
    source, or when that id is held by a cluster outside this call (a catalog clustered
    before positions were recorded).
    """
    wanted = sorted(set(cluster_ids))
    members = _contenders(conn, wanted)
    targets = {}
    for cid, found in members.items():
        positions = [m.position for m in found if m.position is not None]
        if positions and min(positions) + 1 != cid:
            targets[cid] = min(positions) + 1
    if targets:
        held = {int(r[0]) for r in catalog.select_in(conn, "SELECT id FROM clusters WHERE id IN ({marks})",
                                                    sorted(set(targets.values())))}
        while True:  # a cluster that cannot move holds its id against the others
            staying = held - targets.keys()
            movable = {cid: new for cid, new in targets.items() if new not in staying}
            if len(movable) == len(targets):
                break
            targets = movable
        # An id another moving cluster is leaving goes through a negative one first.
        direct = {cid: new for cid, new in targets.items() if new not in held}
        via = {cid: -new for cid, new in targets.items() if new in held}
        for step in (direct, via, {temp: -temp for temp in via.values()}):
            conn.executemany("INSERT INTO clusters (id, representative) VALUES (?, NULL)",
                             [(new,) for new in step.values()])
            conn.executemany("UPDATE images SET cluster_id = ? WHERE cluster_id = ?",
                             [(new, old) for old, new in step.items()])
            conn.executemany("DELETE FROM clusters WHERE id = ?", [(old,) for old in step])
    best = {targets.get(cid, cid): choose_representative(found, objects)[0] for cid, found in members.items()}
    conn.executemany("UPDATE clusters SET representative = ? WHERE id = ?",
                     [(rep.sha256, cid) for cid, rep in best.items()])


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
    """The smallest Hamming distance between one image's dihedral hashes and any view hash of
    the other, both ways (so a flipped, turned or cropped copy reports how close its best
    view is); None when either image has no ``phash``."""
    if hashing.PHASH not in a or hashing.PHASH not in b:
        return None
    best = 64
    for x, y in ((a, b), (b, a)):
        forms = np.array([v for n, v in x.items() if n in hashing.DIHEDRAL], dtype=np.uint64)
        views = np.array([v for n, v in y.items() if n in _KIND], dtype=np.uint64)
        best = min(best, int(np.bitwise_count(forms[:, None] ^ views[None, :]).min()))
    return best


def near_pairs(policy: Policy, hashes: list[dict[str, int]]) -> dict[tuple[int, int], Match]:
    """Every pair (i < j) of ``hashes`` that ``policy`` counts, with its best match.

    One self-join of a ViewIndex: each image's dihedral hashes against the views of every
    image, which covers both directions of every relation (a is a view of b, or b of a).
    Loose matches still need the keypoint check (Match.direct False).
    """
    index = ViewIndex()
    values, owners, kinds = _entries(hashes)
    index.extend(values, owners, kinds)
    form = np.flatnonzero(_FORM[kinds])
    qi, e_owner, e_kind, dist = index.search(policy, values[form], kinds[form])
    q_owner, q_kind = owners[form][qi], kinds[form][qi]
    other = q_owner != e_owner
    best: dict[tuple[int, int], Match] = {}
    for i, qk, j, ek, d in zip(
        *(col[other].tolist() for col in (q_owner, q_kind, e_owner, e_kind, dist)), strict=True
    ):
        centres = centre_distance(hashes[i], hashes[j], _NAME[qk], _NAME[ek])
        found = policy.match(_NAME[qk], _NAME[ek], d, centres)
        key = (min(i, j), max(i, j))
        if found is not None and (key not in best or _match_rank(found) < _match_rank(best[key])):
            best[key] = found
    return best


def centre_distance(a: dict[str, int], b: dict[str, int], a_view: str, b_view: str) -> int | None:
    """For a match of a's dihedral ``a_view`` with b's ``b_view``: the distance of the same two
    centre hashes (hashing.CENTRES); None for other views, or when either image has none."""
    if a_view not in hashing.DIHEDRAL or b_view not in hashing.DIHEDRAL:
        return None
    a_centre = a.get(hashing.CENTRES[hashing.DIHEDRAL.index(a_view)])
    b_centre = b.get(hashing.CENTRES[hashing.DIHEDRAL.index(b_view)])
    return None if a_centre is None or b_centre is None else hashing.hamming(a_centre, b_centre)


def _entries(hashes: list[dict[str, int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(value, owner, kind) of every searched hash of ``hashes`` (owner: the position in it)."""
    values, owners, kinds = [], [], []
    for owner, h in enumerate(hashes):
        where, kind = _searched(tuple(h))  # one tuple per image, not one per hash: ingest's catalog thread
        values.append(np.fromiter(h.values(), dtype=np.uint64, count=len(h))[where])
        owners.append(np.full(len(kind), owner, dtype=np.int64))
        kinds.append(kind)
    if not values:
        return np.zeros(0, dtype=np.uint64), np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    return np.concatenate(values), np.concatenate(owners), np.concatenate(kinds)


@functools.lru_cache(maxsize=64)
def _searched(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """For hashes with these names, in this order: where the searched ones are, and their kinds."""
    where = [i for i, name in enumerate(names) if name in _KIND]
    return np.array(where, dtype=np.int64), np.array([_KIND[names[i]] for i in where], dtype=np.int64)


def _match_rank(m: Match) -> tuple[int, int, str]:
    return (0 if m.direct else 1, m.distance, m.view)


def clusters(conn: sqlite3.Connection, min_size: int = 2, objects: Path | None = None) -> list[ClusterInfo]:
    """Clusters with at least ``min_size`` members or sources, largest first.

    Each member carries its distance to the representative and every source URL
    (or path) that resolved to it, exact duplicates included; each cluster says why
    its representative won (encodings compared only when ``objects`` is given).
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
        contenders = _contenders(conn, [int(cid)]).get(int(cid), [])
        _, why = choose_representative(contenders, objects) if contenders else (None, "")
        result.append(ClusterInfo(id=int(cid), representative=rep, members=items, why=why))
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
    as :meth:`Policy.of` says. Raises InputError for a threshold outside 0..32.

    Pairs come from one self-join (:func:`near_pairs`); pairs that are not direct matches are confirmed
    by keypoints, reading the images from ``objects``. Ids and representatives are
    then settled (:func:`settle_clusters`): the same members get the same id as ingest
    gives them, so clusters that do not change keep their ids.
    """
    if not 0 <= threshold <= MAX_THRESHOLD:
        raise InputError(f"threshold {threshold} is out of range: use 0 to {MAX_THRESHOLD} bits (of 64)")
    rehash_legacy(conn, Path(objects))
    all_hashes = stored_hashes(conn)
    shas = list(all_hashes)
    policy = Policy.of(cfg, threshold)
    pairs = near_pairs(policy, list(all_hashes.values()))
    sets = DisjointSets(len(shas))
    for (a, b), found in pairs.items():
        if found.direct:
            sets.union(a, b)
    # Loose pairs exist only when the policy confirms. Which pairs link does not depend on the
    # order they are checked in; by first image, so that its grey copy and keypoints are
    # decoded and computed once for all its pairs, not once per pair (the cache holds 512).
    loose = sorted((a, b, m.reflected) for (a, b), m in pairs.items() if not m.direct)
    confirmer = Confirmer(Path(objects))
    for a, b, reflected in loose:
        if sets.find(a) == sets.find(b):
            continue  # already linked: a keypoint check would add nothing
        grey = confirmer.stored_grey(shas[a])
        if grey is not None and confirmer.same_photo(grey, shas[b], reflected):
            sets.union(a, b)
        if on_progress is not None:
            on_progress(1)
    groups: dict[int, list[str]] = defaultdict(list)
    for slot, sha in enumerate(shas):
        groups[sets.find(slot)].append(sha)
    return _rewrite_clusters(conn, list(groups.values()), threshold, objects)


def rehash_legacy(conn: sqlite3.Connection, objects: Path) -> int:
    """Give every image hashed with the legacy views (catalog migration 4) today's, from its
    stored original; returns how many. An original that cannot be read keeps its hashes."""
    legacy = conn.execute(
        "SELECT sha256 FROM images WHERE hashed_from LIKE ?", ("%" + hashing.LEGACY_SUFFIX,)
    ).fetchall()
    done = 0
    with catalog.atomic(conn):
        for (sha,) in legacy:
            try:
                with Image.open(io.BytesIO(store.read(objects, sha))) as img:
                    grey = hashing.grey_of(img)
            except (OSError, ValueError, SyntaxError):
                continue
            hashes = hashing.hashes_of_grey(grey.pixels)
            conn.execute(
                "UPDATE images SET hashes = ?, fingerprint = ?, hashed_from = ? WHERE sha256 = ?",
                (hashing.pack_hashes(hashes), hashing.fingerprint(*grey.size, hashes), grey.hashed_from, sha),
            )
            conn.execute("DELETE FROM image_hashes WHERE sha256 = ?", (sha,))
            done += 1
    return done


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


def _rewrite_clusters(
    conn: sqlite3.Connection, groups: list[list[str]], threshold: int, objects: Path
) -> ReclusterResult:
    old = {row[0]: int(row[1]) for row in conn.execute("SELECT sha256, cluster_id FROM images")}
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
                conn.execute("UPDATE images SET cluster_id = ? WHERE sha256 = ?", (cid, sha))
        conn.execute("DELETE FROM clusters WHERE id NOT IN (SELECT DISTINCT cluster_id FROM images)")
        settle_clusters(conn, taken, objects)
    now = conn.execute("SELECT sha256, cluster_id FROM images").fetchall()
    moved = sum(1 for sha, cid in now if old.get(sha) != cid)
    return ReclusterResult(
        threshold=threshold,
        images=len(assignment),
        clusters=len(groups),
        multi=sum(1 for g in groups if len(g) > 1),
        moved=moved,
    )
