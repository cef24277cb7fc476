"""Build releases: ``releases/vX.Y.Z/``, immutable once built (curator.released reads them).

    releases/v1.2.0/
    ├── README.md                                the card (dataset_card)
    ├── manifest.json                            every row, the config, versions, bump
    ├── card/composition.png                     the card's plot of image sizes, aspects, formats
    └── data/<split>-NNNNN-of-NNNNN.parquet      written with `datasets`

A build runs in this order, and only the last step touches the catalog:

1. plan      labelled, non-excluded cluster representatives; sticky split
             (curator.split); licences per source; the version bump
2. images    originals from objects/ -> curator.preprocess (parallel); balance
             rows for the TRAIN split only (curator.balance)
3. write     parquet shards, manifest.json, README.md into a temp folder
4. verify    ``datasets.load_dataset`` on the folder matches the manifest, and
             no exact/near duplicate or cluster crosses splits (curator.audit)
5. record    the temp folder is renamed into place (fsutil.atomic_directory), then
             one transaction: the ``releases`` row + the new ``image_splits``

Any failure leaves neither a folder nor a catalog change; a kill between the rename
and the commit leaves an orphan folder that curator.recovery removes at the next start.
Builds hold a lock (flock) on ``releases/`` throughout, so recovery never touches a live build.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import io
import json
import platform
import sqlite3
import tempfile
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from curator import catalog, faultpoint, licences, provenance, released, store
from curator import config as config_mod
from curator.config import Config
from curator.errors import BusyError, ReleaseError
from curator.fsutil import atomic_directory, remove_tree, try_lock, write_atomic
from curator.match import Policy
from curator.released import (
    SPLITS,
    Manifest,
    load_folder,
    manifest_mismatch,
    newest,
    quiet_datasets,
    read_release,
    release_path,
)
from curator.versions import bumped, format_version, parse_version
from curator.workspace import Workspace

MAX_SHARD_BYTES = 500_000_000  # encoded image bytes per parquet shard
_CONFIG_SECTIONS_FOR_PATCH = (
    "dataset", "preprocess", "balance", "split", "groups", "dedup", "sources", "card",
)

Progress = Callable[[int], None]


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class Original:
    sha256: str
    label: str
    cluster_id: int
    source: licences.Source
    groups: tuple[str, ...] = ()  # patient/lesion groups of the cluster, the representative's first
    prov: provenance.Released = provenance.Released()

    @property
    def group_id(self) -> str | None:
        return self.groups[0] if self.groups else None


@dataclass(frozen=True)
class Bump:
    kind: str  # 'initial', 'major', 'minor', 'patch'
    reason: str


@dataclass
class Plan:
    version: str
    parent: str | None
    bump: Bump
    classes: list[str]
    originals: list[Original]  # sorted by sha256
    assignment: dict[str, str]  # sha256 -> split, for every original
    new_splits: dict[str, str]  # the part of assignment not yet in image_splits
    members: list[dict[str, Any]]  # cluster members left out
    previous: Manifest | None  # the parent's manifest
    warnings: list[str] = field(default_factory=list)


def plan_release(ws: Workspace, version: str | None, include_restricted: bool,
                 allow_unreviewed: bool = False) -> Plan:
    """Everything about the next release that needs only the catalog (no image work)."""
    from curator import split as split_mod

    cfg = ws.config
    conn = ws.conn
    classes = list(cfg.dataset.classes)
    warnings: list[str] = []
    originals, members = _select(conn, cfg, warnings)
    warnings.extend(_review_gate(conn, originals, allow_unreviewed))
    if not originals:
        raise ReleaseError(
            "no labelled images to release",
            reason="no-labels",
        )
    warnings.extend(licences.check([o.source for o in originals], include_restricted))
    warnings.extend(provenance.unmapped_warning([(o.source.diagnosis, o.prov) for o in originals]))
    warnings.extend(provenance.unread_skin_types_warning([o.source for o in originals]))
    warnings.extend(_card_warnings(cfg))
    recorded = {r["sha256"]: r["split"] for r in conn.execute("SELECT sha256, split FROM image_splits")}
    existing = _sticky(conn, originals, recorded)
    items = [split_mod.Item(o.sha256, o.cluster_id, o.label, o.groups) for o in originals]
    result = split_mod.assign(items, existing, cfg.split)
    warnings.extend(result.warnings)
    assignment = {o.sha256: result.assignment[o.sha256] for o in originals}
    moved = [sha for sha, s in assignment.items() if recorded.get(sha, s) != s]
    if moved:  # split.assign keeps recorded splits; this guards the promise, it should never fire
        raise ReleaseError(f"image {moved[0]} would move out of its recorded split; release not built")
    new_splits = {sha: s for sha, s in assignment.items() if sha not in recorded}
    parent = newest(ws)
    previous = read_release(ws, parent).manifest if parent else None
    bump = decide_bump(previous, classes, originals, members, assignment, config_mod.as_dict(cfg))
    chosen = _choose_version(ws, version, parent, bump)
    return Plan(chosen, parent, bump, classes, originals, assignment, new_splits, members, previous, warnings)


def _choose_version(ws: Workspace, version: str | None, parent: str | None, bump: Bump) -> str:
    if version is None:
        return bumped(parent, bump.kind)
    chosen = format_version(parse_version(version))
    if release_path(ws, chosen).exists() or any(r.version == chosen for r in released.list_releases(ws)):
        raise ReleaseError(f"release v{chosen} already exists; built releases never change")
    if parent is not None and parse_version(chosen) <= parse_version(parent):
        raise ReleaseError(f"version {chosen} is not newer than the last release v{parent}")
    return chosen


def _review_gate(conn: sqlite3.Connection, originals: list[Original], allow_unreviewed: bool) -> list[str]:
    """Privacy by default: undecided face/eye findings on released images stop the build."""
    from curator.review import findings

    found = findings.open_privacy(conn, [o.sha256 for o in originals])
    if not found:
        return []
    names = ", ".join(f"{item['sha256'][:12]} ({item['kind']})" for item in found[:5])
    more = f" and {len(found) - 5} more" if len(found) > 5 else ""
    if not allow_unreviewed:
        raise ReleaseError(f"{len(found)} undecided privacy finding(s) on images to release: {names}{more}",
                           reason="undecided-privacy")
    return [f"released with {len(found)} undecided privacy finding(s) (--allow-unreviewed): {names}{more}"]


def _select(conn: sqlite3.Connection, cfg: Config, warnings: list[str]) -> tuple[list[Original], list[dict]]:
    """Labelled cluster representatives not excluded (by a label or a review decision); the
    other members of their clusters."""
    from curator import groups, labeling
    from curator.review import findings

    labels = labeling.current_labels(conn, cfg)
    group_ids = groups.of_images(conn, cfg.groups)
    excluded = findings.excluded(conn)
    classes = set(cfg.dataset.classes)
    sources = licences.by_image(conn, cfg.sources)
    by_cluster: dict[int, list[str]] = defaultdict(list)
    reps: dict[int, str] = {}
    for row in conn.execute(
        "SELECT i.sha256, i.cluster_id, c.representative FROM images i "
        "JOIN clusters c ON c.id = i.cluster_id ORDER BY i.sha256"
    ):
        by_cluster[row["cluster_id"]].append(row["sha256"])
        reps[row["cluster_id"]] = row["representative"] or row["sha256"]
    originals: list[Original] = []
    members: list[dict[str, Any]] = []
    unlabeled_reps = unknown_class = 0
    for cluster_id in sorted(by_cluster):
        rep = reps[cluster_id]
        label = labels.get(rep)
        if label is None:
            # The representative's (inherited) label decides; members that disagree leave it unlabeled.
            unlabeled_reps += any(labels.get(m) is not None for m in by_cluster[cluster_id])
            continue
        if label == labeling.EXCLUDED or rep in excluded:
            continue
        if label not in classes:
            unknown_class += 1
            continue
        members_first = sorted(by_cluster[cluster_id], key=lambda m: m != rep)  # the representative first
        cluster_groups = tuple(dict.fromkeys(g for m in members_first for g in group_ids.get(m, ())))
        source = sources.get(rep) or licences.unknown_source()
        originals.append(Original(rep, label, cluster_id, source, cluster_groups,
                                  provenance.released(source, cfg.ingest.diagnosis_map)))
        members.extend(
            {"sha256": m, "cluster_id": cluster_id, "representative": rep}
            for m in by_cluster[cluster_id]
            if m != rep
        )
    if unlabeled_reps:
        warnings.append(
            f"{unlabeled_reps} cluster(s) have labelled members but no label for the representative "
            "(members disagree): left out; label the representative to include the cluster"
        )
    if unknown_class:
        warnings.append(f"{unknown_class} image(s) carry a label that is not in dataset.classes: left out")
    originals.sort(key=lambda o: o.sha256)
    members.sort(key=lambda m: m["sha256"])
    return originals, members


def _sticky(conn: sqlite3.Connection, originals: list[Original], recorded: dict[str, str]) -> dict[str, str]:
    """Recorded splits for this release's images; a new representative inherits its cluster's split."""
    existing: dict[str, str] = {}
    cluster_split: dict[int, str] = {}
    for row in conn.execute(
        "SELECT i.cluster_id, s.split FROM image_splits s "
        "JOIN images i ON i.sha256 = s.sha256 ORDER BY s.sha256"
    ):
        cluster_split.setdefault(row["cluster_id"], row["split"])
    for o in originals:
        split = recorded.get(o.sha256) or cluster_split.get(o.cluster_id)
        if split is not None:
            existing[o.sha256] = split
    return existing


def decide_bump(
    previous: Manifest | None,
    classes: list[str],
    originals: list[Original],
    members: list[dict[str, Any]],
    assignment: dict[str, str],
    effective_config: dict[str, Any],
) -> Bump:
    """major: the class list changed; minor: images added/removed; patch: labels, groups, config,
    card inputs.

    Nothing changed is a ReleaseError naming the previous version.
    """
    if previous is None:
        return Bump("initial", "first release")
    if list(previous.classes) != classes:
        return Bump("major", _class_change(list(previous.classes), classes))
    rows = previous.originals()
    before = {sha: r["label"] for sha, r in rows.items()}
    now = {o.sha256: o.label for o in originals}
    added, removed = len(now.keys() - before.keys()), len(before.keys() - now.keys())
    if added or removed:
        return Bump("minor", f"{added} image(s) added, {removed} removed")
    relabelled = sum(1 for sha, label in now.items() if before[sha] != label)
    if relabelled:
        return Bump("patch", f"{relabelled} image(s) relabelled")
    regrouped = sum(1 for o in originals if rows[o.sha256].get("group_id") != o.group_id)
    if regrouped:
        return Bump("patch", f"{regrouped} image(s) changed patient/lesion group")
    changed = [k for k in _CONFIG_SECTIONS_FOR_PATCH if previous.config.get(k) != effective_config.get(k)]
    if changed:
        return Bump("patch", "settings changed: " + ", ".join(changed))
    described = sum(1 for o in originals
                    if any(rows[o.sha256].get(c) != getattr(o.prov, c) for c in provenance.COLUMNS))
    if described:  # re-ingested with a mapping, or [ingest.diagnosis_map] changed
        return Bump("patch", f"{described} image(s) changed provenance (licence, diagnosis, ...)")
    if previous.cluster_members != members:
        return Bump("patch", "near-duplicate cluster members changed")
    raise ReleaseError(f"nothing changed since v{previous.version}; no release built")


def _class_change(old: list[str], new: list[str]) -> str:
    added = [c for c in new if c not in old]
    removed = [c for c in old if c not in new]
    parts = []
    if added:
        parts.append("added " + ", ".join(added))
    if removed:
        parts.append("removed " + ", ".join(removed))
    return "class set changed: " + ("; ".join(parts) if parts else "order changed")


# ---------------------------------------------------------------- building


@dataclass(frozen=True)
class Row:
    """One row of the release, in parquet order."""

    sha256: str
    label: str
    split: str
    source_url: str
    cluster_id: int
    group_id: str | None
    augmented_from: str | None
    preprocess_hash: str
    width: int
    height: int
    prov: provenance.Released = provenance.Released()


@dataclass
class BuildResult:
    version: str
    parent: str | None
    bump: Bump
    dry_run: bool
    path: Path | None
    splits: dict[str, dict[str, Any]]
    warnings: list[str]
    manifest_sha256: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "parent": self.parent,
            "bump": {"kind": self.bump.kind, "reason": self.bump.reason},
            "dry_run": self.dry_run,
            "path": str(self.path) if self.path else None,
            "splits": self.splits,
            "warnings": self.warnings,
            "manifest_sha256": self.manifest_sha256,
        }


def build(
    ws: Workspace,
    version: str | None = None,
    dry_run: bool = False,
    include_restricted: bool = False,
    on_progress: Progress | None = None,
    *,
    allow_unreviewed: bool = False,
    created_at: str | None = None,
    max_shard_bytes: int = MAX_SHARD_BYTES,
    on_stage: Callable[[str], None] | None = None,
) -> BuildResult:
    """Build the next release (or ``version``) into ``releases/vX.Y.Z/``; see the module docstring.

    ``created_at`` (ISO 8601) pins the manifest's timestamp, for byte-identical rebuilds.
    ``on_progress(1)`` is called per preprocessed image; ``on_stage(name)`` as each stage
    starts ('plan', 'images', 'write', 'verify', 'rename', 'record', 'recorded'); each is also a
    kill point ``release:<name>`` (curator.faultpoint).
    """
    def stage(name: str) -> None:
        faultpoint.reached(f"release:{name}")
        if on_stage:
            on_stage(name)

    stage("plan")
    if version is not None:
        parse_version(version)  # a bad version string fails before any work
    plan = plan_release(ws, version, include_restricted, allow_unreviewed)
    if dry_run:
        counts = _split_counts(_planned_rows(plan), plan.classes)
        return BuildResult(plan.version, plan.parent, plan.bump, True, None, counts, plan.warnings)
    final = release_path(ws, plan.version)
    stamp = created_at or catalog.utcnow()
    ws.releases.mkdir(parents=True, exist_ok=True)
    with try_lock(ws.releases) as held:
        if not held:
            raise BusyError(f"{ws.releases}: another release is being built", path=str(ws.releases))
        if final.exists():
            raise ReleaseError(f"release v{plan.version} already exists; built releases never change")
        manifest, manifest_sha = _build_folder(ws, plan, final, stamp, include_restricted, max_shard_bytes,
                                               on_progress, stage)
        # The folder is in place before the row commits: a kill in between leaves an orphan
        # folder, which recovery.reconcile removes at the next start, never a row without a folder.
        stage("record")
        try:
            _record(ws.conn, plan, manifest, manifest_sha, stamp)
        except BaseException:
            remove_tree(final)
            raise
        stage("recorded")
    return BuildResult(
        plan.version, plan.parent, plan.bump, False, final, manifest.splits, plan.warnings, manifest_sha
    )


def _build_folder(
    ws: Workspace, plan: Plan, final: Path, stamp: str, include_restricted: bool, max_shard_bytes: int,
    on_progress: Progress | None, stage: Callable[[str], None],
) -> tuple[Manifest, str]:
    """Steps 2-4 into a temp folder renamed to ``final``; the manifest and its SHA-256."""
    try:
        with atomic_directory(final) as tmp:
            stage("images")
            rows, images, class_weights, itas = _make_images(ws, plan, on_progress)
            stage("write")
            files, info = _write_parquet(tmp, rows, images, plan.classes, max_shard_bytes)
            manifest = _manifest(ws, plan, rows, files, class_weights, include_restricted, stamp)
            manifest_bytes = manifest.to_json()
            write_atomic(tmp / "manifest.json", manifest_bytes)
            write_atomic(tmp / "README.md", _card(ws, plan, manifest, info, tmp, itas))
            stage("verify")
            verify_folder(tmp, manifest, Policy.of(ws.config.dedup))
            stage("rename")
    except FileExistsError as err:
        raise ReleaseError(f"release v{plan.version} already exists; built releases never change") from err
    except OSError as err:
        raise ReleaseError(f"{final}: cannot write the release ({err})", path=str(final)) from err
    return manifest, store.sha256_bytes(manifest_bytes)


def _planned_rows(plan: Plan) -> list[tuple[str, str, bool]]:
    """(split, label, augmented) for a dry run: originals only (balancing needs the images)."""
    return [(plan.assignment[o.sha256], o.label, False) for o in plan.originals]


def _split_counts(rows: list[tuple[str, str, bool]], classes: list[str]) -> dict[str, dict[str, Any]]:
    counts: dict[str, dict[str, Any]] = {}
    for split in SPLITS:
        mine = [r for r in rows if r[0] == split]
        per_class = Counter(r[1] for r in mine)
        originals = Counter(r[1] for r in mine if not r[2])
        counts[split] = {
            "rows": len(mine),
            "originals": sum(1 for r in mine if not r[2]),
            "augmented": sum(1 for r in mine if r[2]),
            "per_class": {c: per_class.get(c, 0) for c in classes},
            "originals_per_class": {c: originals.get(c, 0) for c in classes},
        }
    return counts


def _make_images(
    ws: Workspace, plan: Plan, on_progress: Progress | None
) -> tuple[list[Row], dict[str, bytes], dict[str, float] | None, dict[str, float | None]]:
    """Preprocess every original; add balancing rows to train. Rows come back in parquet order,
    with the class weights and each original's skin-tone estimate (ITA), taken as it is decoded."""
    from curator import balance, preprocess

    cfg = ws.config
    originals = []
    for o in plan.originals:
        try:
            originals.append((o.sha256, store.read(ws.objects, o.sha256)))
        except OSError as err:
            path = store.object_path(ws.objects, o.sha256)
            raise ReleaseError(f"{path}: original bytes are missing or unreadable ({err.strerror})",
                               path=str(path), sha256=o.sha256) from err
    outputs = preprocess.run_with_tone(originals, cfg.preprocess, on_progress=on_progress,
                                       engine=cfg.engine)
    images = {sha: out.image for sha, out in outputs.items()}
    step_hash = preprocess_hash(cfg)
    by_split: dict[str, list[Row]] = {s: [] for s in SPLITS}
    for o in plan.originals:
        width, height = _size(images[o.sha256], o.sha256)
        split = plan.assignment[o.sha256]
        by_split[split].append(
            Row(o.sha256, o.label, split, o.source.url, o.cluster_id, o.group_id, None, step_hash, width,
                height, o.prov)
        )
    train = [(r.sha256, r.label) for r in by_split["train"]]
    balance_plan = balance.plan(train, cfg.balance.method)
    train_rows = {r.sha256: r for r in by_split["train"]}
    # Augmented copies are made from the preprocessed images, across cores, in plan order.
    copies = balance.augment_many(
        [(images[source_sha], index) for source_sha, index in balance_plan.synthetic],
        cfg.split.seed,
        cfg.preprocess.format,
        cfg.preprocess.jpeg_quality,
    )
    for (source_sha, _index), data in zip(balance_plan.synthetic, copies, strict=True):
        sha = store.sha256_bytes(data)
        images[sha] = data
        src = train_rows[source_sha]
        width, height = _size(data, sha)
        by_split["train"].append(
            Row(sha, src.label, "train", src.source_url, src.cluster_id, src.group_id, source_sha, step_hash,
                width, height, src.prov)
        )
    rows = [row for split in SPLITS for row in by_split[split]]
    return rows, images, balance_plan.class_weights, {sha: out.ita for sha, out in outputs.items()}


def preprocess_hash(cfg: Config) -> str:
    """The manifest's per-row ``preprocess_hash``: preprocess.steps_hash (steps with defaults and
    the algorithm version) plus the output encoding, which also changes the bytes."""
    from curator import preprocess

    p = cfg.preprocess
    quality = p.jpeg_quality if p.format == "jpeg" else None
    encoding = {"format": p.format, "quality": quality}
    return config_mod.config_hash({"steps": preprocess.steps_hash(p.steps), **encoding})


def _size(data: bytes, sha256: str) -> tuple[int, int]:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            return img.size
    except (UnidentifiedImageError, OSError) as err:
        raise ReleaseError(f"image {sha256[:12]}: the processed bytes do not decode ({err})",
                           sha256=sha256) from err


def features_of(classes: list[str]) -> Any:
    """The columns of every release's parquet files (the contract publish and baseline read)."""
    from datasets import ClassLabel, Features, Image, Value

    return Features(
        {
            "image": Image(),
            "label": ClassLabel(names=classes),
            "sha256": Value("string"),
            "source_url": Value("string"),
            "cluster_id": Value("int64"),
            "group_id": Value("string"),
            "augmented_from": Value("string"),
            "width": Value("int32"),
            "height": Value("int32"),
            **{column: Value(provenance.feature_type(column)) for column in provenance.COLUMNS},
        }
    )


@dataclass
class SplitInfo:
    num_examples: int
    num_bytes: int


def shard_plan(sizes: list[int], max_bytes: int) -> list[tuple[int, int]]:
    """Contiguous [start, end) ranges whose summed ``sizes`` stay under ``max_bytes``
    (a single item larger than the bound gets a shard of its own)."""
    ranges: list[tuple[int, int]] = []
    start, total = 0, 0
    for i, size in enumerate(sizes):
        if i > start and total + size > max_bytes:
            ranges.append((start, i))
            start, total = i, 0
        total += size
    if start < len(sizes):
        ranges.append((start, len(sizes)))
    return ranges


def _write_parquet(
    folder: Path, rows: list[Row], images: dict[str, bytes], classes: list[str], max_bytes: int
) -> tuple[dict[str, dict[str, Any]], dict[str, SplitInfo]]:
    """Write ``data/<split>-NNNNN-of-NNNNN.parquet`` for each non-empty split."""
    from datasets import Dataset

    features = features_of(classes)
    files: dict[str, dict[str, Any]] = {}
    info: dict[str, SplitInfo] = {}
    (folder / "data").mkdir()
    for split in SPLITS:
        mine = [r for r in rows if r.split == split]
        if not mine:  # load_dataset refuses an empty split; the manifest still lists it with 0 rows
            continue
        ranges = shard_plan([len(images[r.sha256]) for r in mine], max_bytes)
        num_bytes = 0
        for index, (start, end) in enumerate(ranges):
            part = mine[start:end]
            dataset = Dataset.from_dict(_columns(part, images, classes), features=features)
            rel = f"data/{split}-{index:05d}-of-{len(ranges):05d}.parquet"
            with quiet_datasets():
                dataset.to_parquet(str(folder / rel))
            num_bytes += dataset.data.nbytes
            data = (folder / rel).read_bytes()
            files[rel] = {"sha256": store.sha256_bytes(data), "bytes": len(data)}
        info[split] = SplitInfo(num_examples=len(mine), num_bytes=num_bytes)
    return files, info


def _columns(rows: list[Row], images: dict[str, bytes], classes: list[str]) -> dict[str, list[Any]]:
    return {
        "image": [{"bytes": images[r.sha256], "path": None} for r in rows],
        "label": [classes.index(r.label) for r in rows],
        "sha256": [r.sha256 for r in rows],
        "source_url": [r.source_url for r in rows],
        "cluster_id": [r.cluster_id for r in rows],
        "group_id": [r.group_id for r in rows],
        "augmented_from": [r.augmented_from for r in rows],
        "width": [r.width for r in rows],
        "height": [r.height for r in rows],
        **{column: [getattr(r.prov, column) for r in rows] for column in provenance.COLUMNS},
    }


def _manifest(
    ws: Workspace,
    plan: Plan,
    rows: list[Row],
    files: dict[str, dict[str, Any]],
    class_weights: dict[str, float] | None,
    include_restricted: bool,
    created_at: str,
) -> Manifest:
    cfg = ws.config
    counts = _split_counts([(r.split, r.label, r.augmented_from is not None) for r in rows], plan.classes)
    return Manifest(
        version=plan.version,
        name=cfg.dataset.name,
        parent=plan.parent,
        created_at=created_at,
        classes=plan.classes,
        splits=counts,
        files=dict(sorted(files.items())),
        rows=[
            {
                "sha256": r.sha256,
                "label": r.label,
                "split": r.split,
                "source_url": r.source_url,
                "cluster_id": r.cluster_id,
                "group_id": r.group_id,
                "augmented_from": r.augmented_from,
                "preprocess_hash": r.preprocess_hash,
                **dataclasses.asdict(r.prov),
            }
            for r in rows
        ],
        cluster_members=plan.members,
        balance={"method": cfg.balance.method, "class_weights": class_weights},
        config=config_mod.as_dict(cfg),
        versions=tool_versions(),
        bump={"kind": plan.bump.kind, "reason": plan.bump.reason},
        include_restricted=include_restricted,
    )


def tool_versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for dist in ("curator", "datasets", "huggingface-hub", "pyarrow", "pillow", "numpy",
                 "opencv-python-headless", "imagehash"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            found[dist] = "not installed"
    return found


def _card(
    ws: Workspace, plan: Plan, manifest: Manifest, info: dict[str, SplitInfo], folder: Path,
    itas: dict[str, float | None],
) -> str:
    """The card's text; its composition plot is written into ``folder`` as it goes."""
    from curator import composition, diff, labeling, preprocess
    from dataset_card import card

    cfg = ws.config
    images = _composition_facts(ws.conn, plan)
    if images["images"]:
        (folder / composition.PLOT_PATH).parent.mkdir(exist_ok=True)
        write_atomic(folder / composition.PLOT_PATH, composition.plot_png(images))
        images["plot"] = composition.PLOT_PATH
    return card.render(card.CardFacts(
        name=cfg.dataset.name,
        pretty_name=cfg.dataset.pretty_name,
        version=plan.version,
        parent=plan.parent,
        bump_kind=plan.bump.kind,
        bump_reason=plan.bump.reason,
        description=cfg.dataset.description,
        license=cfg.dataset.license,
        license_name=cfg.dataset.license_name,
        license_link=cfg.dataset.license_link,
        hub_repo=cfg.dataset.hub_repo,
        tags=list(cfg.dataset.tags),
        classes=plan.classes,
        class_descriptions=_class_descriptions(cfg),
        splits=manifest.splits,
        split_bytes={s: (i.num_examples, i.num_bytes) for s, i in info.items()},
        download_size=sum(f["bytes"] for f in manifest.files.values()),
        sources=_source_facts(plan.originals),
        collection=_collection_facts(ws.conn, len(plan.members)),
        labeling=dict(labeling.summary(ws.conn, cfg)),
        split_config=dataclasses.asdict(cfg.split),
        dedup_threshold=cfg.dedup.threshold,
        preprocess_steps=preprocess.normalize_steps(cfg.preprocess.steps),  # defaults filled in
        preprocess_format=cfg.preprocess.format,
        balance_method=cfg.balance.method,
        class_weights=manifest.balance["class_weights"],
        changes=diff.compare(plan.previous, manifest) if plan.previous else None,
        include_restricted=manifest.include_restricted,
        grouped_images=sum(1 for o in plan.originals if o.groups),
        groups=len(_splits_per_group(plan)),
        straddling_groups=sum(1 for splits in _splits_per_group(plan).values() if len(splits) > 1),
        review=_review_facts(ws, plan),
        provenance=provenance.counts([o.prov for o in plan.originals]),
        collections=provenance.per_collection([(o.prov, o.label) for o in plan.originals], plan.classes),
        answers=_card_answers(cfg),
        composition=images,
        skin_tone=_skin_tone_facts(plan, itas),
    ))


def _card_answers(cfg: Config) -> dict[str, str]:
    """[card] key -> a person's answer (empty when not given)."""
    return {k: v for k, v in config_mod.as_dict(cfg)["card"].items() if k != "classes"}


def _class_descriptions(cfg: Config) -> dict[str, str]:
    """[card.classes], over the older dataset.class_descriptions."""
    return {**cfg.dataset.class_descriptions, **cfg.card.classes}


def _card_warnings(cfg: Config) -> list[str]:
    """One warning per datasheet question curator.toml leaves unanswered."""
    from dataset_card import datasheet

    return datasheet.missing_answers(_card_answers(cfg), list(cfg.dataset.classes), _class_descriptions(cfg))


def _composition_facts(conn: sqlite3.Connection, plan: Plan) -> dict[str, Any]:
    """Sizes, aspects and formats of the released originals, from the catalog."""
    from curator import composition

    shas = {o.sha256 for o in plan.originals}
    found = [(r["width"], r["height"], r["format"])
             for r in conn.execute("SELECT sha256, width, height, format FROM images ORDER BY sha256")
             if r["sha256"] in shas]
    return composition.image_facts(found)


def _skin_tone_facts(plan: Plan, itas: dict[str, float | None]) -> dict[str, Any]:
    """Per class and split: the skin types sources supplied, else the ITA estimate, and the two compared."""
    from curator import composition

    tones = [composition.Tone(o.label, plan.assignment[o.sha256], itas[o.sha256], o.prov.fitzpatrick,
                              o.prov.monk) for o in plan.originals]
    return composition.skin_tone_facts(tones, plan.classes, SPLITS)


def _splits_per_group(plan: Plan) -> dict[str, set[str]]:
    """Patient/lesion group -> the splits its images are in (one, unless earlier releases fixed them)."""
    found: dict[str, set[str]] = defaultdict(set)
    for o in plan.originals:
        for group in o.groups:
            found[group].add(plan.assignment[o.sha256])
    return found


def _review_facts(ws: Workspace, plan: Plan) -> dict[str, Any]:
    from curator.review import findings, run

    checks = list(run.default_checks(ws.config.review).values())
    return findings.card_facts(ws.conn, checks, [o.sha256 for o in plan.originals])


def _source_facts(originals: list[Original]) -> list[Any]:
    from dataset_card.card import SourceFacts

    groups = Counter(
        (o.source.domain, o.source.license, o.source.attribution, o.source.redistributable, o.source.kind)
        for o in originals
    )
    return [SourceFacts(key[0], n, *key[1:]) for key, n in sorted(groups.items())]


def _collection_facts(conn: sqlite3.Connection, members: int) -> dict[str, Any]:
    facts: dict[str, Any] = {"sources": 0, "pending": 0, "stored": 0, "exact": 0, "near": 0, "rejected": {}}
    for row in conn.execute("SELECT outcome, reason, COUNT(*) AS n FROM sources GROUP BY outcome, reason"):
        facts["sources"] += row["n"]
        if row["outcome"] is None:
            facts["pending"] += row["n"]
        elif row["outcome"] == "stored":
            facts["stored"] += row["n"]
        elif row["outcome"] == "duplicate":
            key = "near" if row["reason"] == "near" else "exact"
            facts[key] += row["n"]
        else:
            facts["rejected"][row["reason"] or "unknown"] = row["n"]
    sizes = [r[0] for r in conn.execute("SELECT COUNT(*) FROM images GROUP BY cluster_id")]
    multi = sum(1 for n in sizes if n > 1)
    facts.update(images=sum(sizes), clusters=len(sizes), multi=multi, members=members)
    facts["robots"] = {row["robots"] or "not recorded": row["n"] for row in conn.execute(
        "SELECT robots, COUNT(*) AS n FROM sources WHERE kind = 'url' AND outcome IS NOT NULL "
        "GROUP BY robots ORDER BY robots")}
    return facts


def verify_folder(folder: Path, manifest: Manifest, policy: Policy) -> None:
    """Load the written folder with ``datasets`` and check it against the manifest, then check leaks."""
    from curator import audit

    with tempfile.TemporaryDirectory(prefix="curator-verify-") as cache:
        loaded = load_folder(folder, Path(cache))
        problem = manifest_mismatch(loaded, manifest)
        if problem:
            raise ReleaseError(f"{folder}: load_dataset {problem}")
        leaks = audit.scan(loaded, policy, cluster_column="cluster_id")
        if leaks:
            raise ReleaseError(
                f"{len(leaks)} duplicate pair(s) cross splits, e.g. {leaks[0].describe()}; release not built",
                hint="exclude one image of each pair (curator label), or re-cluster with curator dups",
            )


def _record(
    conn: sqlite3.Connection, plan: Plan, manifest: Manifest, manifest_sha: str, stamp: str
) -> None:
    summary = {
        "splits": {
            s: {"rows": c["rows"], "per_class": c["per_class"]} for s, c in manifest.splits.items()
        },
        "bump": manifest.bump,
    }
    try:
        with catalog.atomic(conn):
            conn.execute(
                "INSERT INTO releases (version, parent, created_at, path, manifest_sha256, rows, summary) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (plan.version, plan.parent, stamp, f"releases/v{plan.version}", manifest_sha,
                 len(manifest.rows), json.dumps(summary, sort_keys=True)),
            )
            conn.executemany(
                "INSERT INTO image_splits (sha256, split, first_version) VALUES (?, ?, ?) "
                "ON CONFLICT(sha256) DO NOTHING",
                [(sha, split, plan.version) for sha, split in sorted(plan.new_splits.items())],
            )
    except sqlite3.IntegrityError as err:
        raise ReleaseError(f"release v{plan.version} was recorded by another build meanwhile") from err

