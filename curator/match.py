"""The one match policy: when two images are near duplicates.

Every caller decides through this module: ingest (dedup.NearIndex), re-clustering
(dedup.recluster, ``curator dups --threshold``), the release's cross-split check and
``curator audit`` (curator.audit), config validation of ``[dedup]`` and the CLI's
``--threshold`` ranges.

Each image has the views of curator.hashing.NAMES: its ``phash`` under the 8 flips and
quarter turns (hashing.DIHEDRAL), rotated by the TURNS with each fill, and crop windows.
Two images a and b are compared both ways: each one's dihedral hashes against every view
of the other, so either may be the transformed copy. A match is

    direct   two dihedral hashes within ``threshold`` bits, and the same two of their
             centre windows (hashing.CENTRES) too: a near duplicate on the hash alone
    loose    any other view (a turn, a crop window), a dihedral match up to
             ``candidate_threshold`` or one whose centres differ: a near duplicate only when
             keypoints confirm it (dedup.Confirmer); with ``confirm`` off, these are dropped

A loose match is *composite* when neither side is the plain ``phash`` and one side is a
turn or crop view: a flip or quarter turn and a turn or crop at once. There are 7 times
as many such pairs of views as single ones, so at the same radius they would bring 7
times the chance candidates; they are counted only within ``threshold``
(``composite_threshold``, :meth:`Policy.radius_for`). What that costs and saves is measured
by benchmarks/dedup_quality.py and benchmarks/ingest_scale.py (figures in the README).

Thresholds run from 0 to :data:`MAX_THRESHOLD`. Callers find pairs with
dedup.NearIndex (one new image) or dedup.near_pairs (all pairs) and ask :meth:`Policy.match`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from curator.config import DedupConfig

MAX_THRESHOLD = 32  # beyond half the bits, "near" means nothing and every pair would match
# What this policy is measured to catch, as (copies made by, recall): benchmarks/dedup_quality.py
# at its defaults (42 photos, 25 generated and 17 of scikit-image's, one JPEG copy per transform;
# 60 distinct photos sharing a logo or a date stamp, none merged). The card quotes these, so
# rerun the benchmark and update them whenever the policy or the views change.
MEASURED_RECALL = (
    ("any flip or quarter turn", 1.0),
    ("a rotation of up to 15 degrees, its corners black, mirrored, cropped off or on a grown canvas", 0.996),
    ("a rotation of 25 degrees, filled any of those ways", 0.976),
    ("a flip or quarter turn plus a 5-15 degree rotation and a brightness change", 0.994),
    ("a brightness change of up to 30%", 1.0),
    ("a contrast or hue change", 0.988),
    ("a crop of 5-20% of each side", 0.976),
    ("re-encoding, resizing, blurring, greyscale or a caption bar", 1.0),
)
# The views whose match is a mirror image of the other (a flip, a transpose), not a rotation:
# keypoints are matched against the mirrored image (rotations need nothing: ORB is invariant).
REFLECTIONS = ("phash_mirror", "phash_flip", "phash_transpose", "phash_transverse")


def threshold_problem(threshold: int, candidate_threshold: int) -> tuple[str, str] | None:
    """(key, why) when the thresholds break the policy's limits; None when they are fine."""
    if not 0 <= threshold <= MAX_THRESHOLD:
        return "dedup.threshold", f"must be between 0 and {MAX_THRESHOLD}"
    if not threshold <= candidate_threshold <= MAX_THRESHOLD:
        return "dedup.candidate_threshold", f"must be between dedup.threshold and {MAX_THRESHOLD}"
    return None


@dataclass(frozen=True)
class Match:
    """How one image matched another: through which views, by how many bits."""

    view: str  # 'phash' (as is), a dihedral name ('phash_rot90'), or 'A+B' when both sides were views
    distance: int
    direct: bool  # trusted on the hash alone
    reflected: bool  # one image is a mirror image of the other (for the keypoint check)


@dataclass(frozen=True)
class Policy:
    threshold: int = 8  # direct matches
    candidate_threshold: int = 10  # loose single matches
    composite_threshold: int = 8  # loose composite matches
    confirm: bool = True

    @classmethod
    def of(cls, cfg: DedupConfig, threshold: int | None = None) -> Policy:
        """The workspace's policy, or re-clustering's at another direct ``threshold``.

        A lower threshold lowers the loose radii with it (by the config's margin); a higher
        one does not raise them: how far loose candidates are searched is what the keypoint
        check was measured at, and a wider radius sends many times more pairs of distinct
        photos to it (benchmarks/ingest_scale.py runs ``curator dups --threshold 10``).
        """
        if threshold is None:
            return cls(cfg.threshold, cfg.candidate_threshold, cfg.threshold, cfg.confirm)
        margin = max(0, cfg.candidate_threshold - cfg.threshold)
        candidate = max(threshold, min(cfg.candidate_threshold, threshold + margin))
        return cls(threshold, candidate, min(threshold, cfg.threshold), cfg.confirm)

    @property
    def radius(self) -> int:
        """How far single candidates are searched."""
        return self.candidate_threshold if self.confirm else self.threshold

    @property
    def composite_radius(self) -> int:
        """How far composite candidates are searched (-1: not at all; they are never direct)."""
        return self.composite_threshold if self.confirm else -1

    def radius_for(self, query_view: str, stored_view: str) -> int:
        """How far apart the hashes of these two views may be for a loose match:
        ``composite_threshold`` for a composite one (see the module's docstring), else
        ``candidate_threshold``."""
        from curator.hashing import DIHEDRAL, PHASH

        single = PHASH in (query_view, stored_view) or (query_view in DIHEDRAL and stored_view in DIHEDRAL)
        return self.candidate_threshold if single else self.composite_threshold

    # Cached: ingest asks once per search hit (~40 per photo), mostly the same few questions.
    @functools.lru_cache(maxsize=1 << 16)  # noqa: B019 (policies are few, small and immutable)
    def match(
        self, query_view: str, stored_view: str, distance: int, centres: int | None = None
    ) -> Match | None:
        """The match of one image's ``query_view`` hash with another's ``stored_view`` hash,
        ``distance`` bits apart (``centres``: the distance of the matching centre hashes, None
        when an image has none, as those hashed before catalog migration 4); None when the
        policy does not count it."""
        from curator.hashing import DIHEDRAL, PHASH

        dihedral = query_view in DIHEDRAL and stored_view in DIHEDRAL
        direct = dihedral and distance <= self.threshold and (centres is None or centres <= self.threshold)
        if not direct and (not self.confirm or distance > self.radius_for(query_view, stored_view)):
            return None
        if dihedral:  # one flip or quarter turn relates the two
            view = DIHEDRAL[_relative(DIHEDRAL.index(query_view), DIHEDRAL.index(stored_view))]
        else:
            view = "+".join(v for v in (query_view, stored_view) if v != PHASH)
        reflected = (query_view in REFLECTIONS) != (stored_view in REFLECTIONS)
        return Match(view, distance, direct, reflected)


@functools.cache
def _relative(q: int, s: int) -> int:
    """The flip or quarter turn (an index of hashing.DIHEDRAL) between two images when one
    under ``q`` looks like the other under ``s``: ``s`` after the inverse of ``q``."""
    composed = _matrix(q).T @ _matrix(s)  # signed permutations: the inverse is the transpose
    return next(g for g in range(8) if _matrix(g) == composed)


def _matrix(g: int) -> Matrix:
    """Index g of hashing.DIHEDRAL as a 2x2 map of (x, y): bit 1 mirror, 2 flip, then 4 transpose."""
    m = Matrix(((-1 if g & 1 else 1, 0), (0, -1 if g & 2 else 1)))
    return Matrix(((0, 1), (1, 0))) @ m if g & 4 else m


class Matrix(tuple[tuple[int, int], tuple[int, int]]):
    """A 2x2 integer matrix (numpy would be this module's only heavy import)."""

    def __matmul__(self, other: Matrix) -> Matrix:
        (a, b), (c, d) = self
        (e, f), (g, h) = other
        return Matrix(((a * e + b * g, a * f + b * h), (c * e + d * g, c * f + d * h)))

    @property
    def T(self) -> Matrix:  # noqa: N802
        (a, b), (c, d) = self
        return Matrix(((a, c), (b, d)))
