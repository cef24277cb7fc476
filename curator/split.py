"""Assign every release image to train, validation or test: by cluster and group, stratified, sticky.

:func:`assign` is a pure function of its arguments (no catalog, no clock, no
global random state), so a release built twice gets the same splits.

Rules, in order:

1. **Sticky.** Every sha256 in ``existing`` (the splits recorded by earlier
   releases) keeps its split, whatever happened since (relabelled, its cluster
   grew). A built release never changes an image's split.
2. **By cluster and group.** All items of one near-duplicate cluster get one
   split, and so do all items of one patient/lesion group (curator.groups): a
   *unit* is a set of clusters linked by shared groups, and everything below is
   per unit (a unit without groups is one cluster). If a sticky assignment covers
   some member of a unit, the whole unit follows it. If sticky members of one
   unit disagree (clusters merged, or a group given, after they were released
   apart), each keeps its sticky split, new members follow the majority, and a
   warning names the cluster or group: merged clusters fail the release's
   cross-split duplicate check until the conflict is resolved.
3. **Stratified.** New clusters are taken in a seeded pseudo-random order (a
   hash of the seed and the cluster's smallest sha256, so adding a cluster does
   not reshuffle the others) and each goes to the split where its class has the
   largest deficit, ``ratio * images of the class (existing + new) - images of
   the class already there`` (sticky images included), except that a split
   still without any image of the class comes first: a class with three
   clusters gets one in each split rather than two in train and one in
   validation. Ties go to the split with the largest deficit over all classes
   (so rounding does not always favour one split), then to split order.
4. A class with fewer clusters than there are splits gets a warning naming the
   class and its counts; a class that ends up missing from a split for another
   reason (sticky history) gets one too.

Removed images simply disappear: ``existing`` entries not among ``items`` are
ignored. A cluster's class for stratification is its members' most common label
(ties: the alphabetically first); in a release it is usually one representative.
"""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from curator.config import SplitConfig
from curator.errors import ReleaseError

SPLITS: tuple[str, ...] = ("train", "validation", "test")


@dataclass(frozen=True)
class Item:
    sha256: str
    cluster_id: int
    label: str
    groups: tuple[str, ...] = ()  # patient/lesion group ids of the item's cluster


@dataclass(frozen=True)
class Result:
    assignment: dict[str, str]  # sha256 -> split, for every item
    warnings: list[str] = field(default_factory=list)


def assign(items: list[Item], existing: dict[str, str], cfg: SplitConfig) -> Result:
    """Split ``items`` (see the module docstring for the rules)."""
    ratios = {"train": cfg.train, "validation": cfg.validation, "test": cfg.test}
    units = _units(items)
    _check_existing(items, existing)
    assignment: dict[str, str] = {}
    warnings: list[str] = []
    counts: dict[str, Counter[str]] = defaultdict(Counter)  # class -> split -> images
    overall: Counter[str] = Counter()  # split -> images, all classes
    new: list[tuple[str, int, list[Item]]] = []  # (order key, unit, members)
    for unit, members in units.items():
        sticky = Counter(existing[m.sha256] for m in members if m.sha256 in existing)
        if not sticky:
            new.append((_order_key(cfg.seed, members), unit, members))
            continue
        follow = min(sticky, key=lambda s: (-sticky[s], SPLITS.index(s)))
        if len(sticky) > 1:
            warnings.append(_conflict_warning(unit, members, sticky))
        for m in members:
            split = existing.get(m.sha256, follow)
            assignment[m.sha256] = split
            counts[m.label][split] += 1
            overall[split] += 1
    totals = Counter(m.label for m in items)
    for _key, _unit, members in sorted(new, key=lambda n: (n[0], n[1])):
        label = _cluster_label(members)
        split = _most_needed(counts[label], totals[label], overall, len(items), ratios)
        for m in members:
            assignment[m.sha256] = split
            counts[m.label][split] += 1
            overall[split] += 1
    warnings.extend(_coverage_warnings(units, assignment))
    return Result(assignment=assignment, warnings=warnings)


def per_class(items: Iterable[Item], assignment: dict[str, str]) -> dict[str, dict[str, int]]:
    """Images per class per split (every split present, zeros included), classes sorted."""
    table: dict[str, dict[str, int]] = {}
    for item in sorted(items, key=lambda i: i.label):
        row = table.setdefault(item.label, dict.fromkeys(SPLITS, 0))
        row[assignment[item.sha256]] += 1
    return table


def _units(items: list[Item]) -> dict[int, list[Item]]:
    """Items by unit: clusters joined when they share a group, keyed by their smallest cluster id."""
    parent: dict[int, int] = {}

    def root(cid: int) -> int:
        while parent.setdefault(cid, cid) != cid:
            parent[cid] = parent[parent[cid]]
            cid = parent[cid]
        return cid

    first_cluster: dict[str, int] = {}  # group -> a cluster holding it
    seen: set[str] = set()
    for item in items:
        if item.sha256 in seen:
            raise ReleaseError(f"split: image {item.sha256} is listed twice", sha256=item.sha256)
        seen.add(item.sha256)
        for group in item.groups:
            a, b = root(item.cluster_id), root(first_cluster.setdefault(group, item.cluster_id))
            parent[max(a, b)] = min(a, b)
    units: dict[int, list[Item]] = defaultdict(list)
    for item in items:
        units[root(item.cluster_id)].append(item)
    return dict(units)


def _check_existing(items: list[Item], existing: dict[str, str]) -> None:
    for item in items:
        split = existing.get(item.sha256)
        if split is not None and split not in SPLITS:
            raise ReleaseError(
                f"split: image {item.sha256} has an unknown recorded split {split!r}", sha256=item.sha256
            )


def _order_key(seed: int, members: list[Item]) -> str:
    # A per-cluster hash instead of a shuffle: the relative order of two clusters
    # never depends on which other clusters exist, so adding images moves little.
    anchor = min(m.sha256 for m in members)
    return hashlib.sha256(f"{seed}:{anchor}".encode()).hexdigest()


def _cluster_label(members: list[Item]) -> str:
    votes = Counter(m.label for m in members)
    return min(votes, key=lambda label: (-votes[label], label))


def _most_needed(
    counts: Counter[str], total: int, overall: Counter[str], overall_total: int, ratios: dict[str, float]
) -> str:
    def need(split: str) -> tuple[bool, float, float, int]:
        deficit = round(ratios[split] * total - counts[split], 9)
        overall_deficit = round(ratios[split] * overall_total - overall[split], 9)
        return (counts[split] > 0, -deficit, -overall_deficit, SPLITS.index(split))

    return min(SPLITS, key=need)


def _conflict_warning(cluster_id: int, members: list[Item], sticky: Counter[str]) -> str:
    where = ", ".join(f"{sticky[s]} in {s}" for s in SPLITS if sticky[s])
    if len({m.cluster_id for m in members}) > 1:
        groups = sorted({g for m in members for g in m.groups})
        return (
            f"patient group {', '.join(groups)} has images already released in different splits ({where}): "
            "each keeps its split, so photos of one patient or lesion sit in two splits; "
            "exclude the group's images from all but one split (curator label) to reunite it"
        )
    return (
        f"cluster {cluster_id} has images already released in different splits ({where}): "
        "each keeps its split, so this release would leak near duplicates across splits and the "
        "release check will refuse it; exclude or relabel members, or undo the merge"
    )


def _coverage_warnings(clusters: dict[int, list[Item]], assignment: dict[str, str]) -> list[str]:
    by_class: dict[str, list[int]] = defaultdict(list)
    for cluster_id, members in clusters.items():
        by_class[_cluster_label(members)].append(cluster_id)
    names = "/".join(SPLITS)
    warnings = []
    for label in sorted(by_class):
        ids = by_class[label]
        if len(ids) < len(SPLITS):
            noun = "cluster" if len(ids) == 1 else "clusters"
            warnings.append(
                f"class '{label}' has {len(ids)} {noun}: too few for {names} (needs at least {len(SPLITS)})"
            )
            continue
        present = {assignment[m.sha256] for i in ids for m in clusters[i] if m.label == label}
        missing = [s for s in SPLITS if s not in present]
        if missing:
            warnings.append(
                f"class '{label}' has {len(ids)} clusters but none in {', '.join(missing)} "
                "(earlier releases fixed their splits)"
            )
    return warnings
