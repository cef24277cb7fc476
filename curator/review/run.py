"""``curator review --run``: compute whatever findings are missing.

Per-image checks (quality, privacy, and the off-topic check's features) run only on images
that the check has not seen at its current version and parameters; each image is decoded
once, at a reduced scale (JPEG draft mode), by a pool of threads (OpenCV and Pillow
release the GIL) or, with the Ray engine, by Ray tasks sent the objects' bytes
(curator.engine), a chunk of images at a time (:data:`CHUNK`), and the driver stores each
batch in one transaction while the pool works on the next. A failure on one
image (a corrupt object, a detector error) becomes an ``error`` finding for it and the
run goes on. The dataset-level checks (off-topic scores, label issues) are recomputed
from the stored features and the given probabilities each run; only their changes are
written (curator.review.findings.save).
"""

from __future__ import annotations

import contextlib
import csv
import functools
import io
import math
import os
import sqlite3
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
from PIL import Image

from curator import catalog, engine, hashing, labeling, store, suggest
from curator.config import Config, ReviewConfig
from curator.errors import InputError
from curator.output import ProgressCallback
from curator.review import labelissues, offtopic, privacy, quality
from curator.review.findings import Check, Outcome, open_counts, save, stale
from curator.review.quality import Result
from curator.workspace import Workspace

QUALITY_KINDS = ("blur", "dark", "bright", "low-information", "low-resolution", "odd-aspect", "greyscale")
PRIVACY_KINDS = ("face", "eye")
KINDS = (*QUALITY_KINDS, *PRIVACY_KINDS, "off-topic", "label-issue", "error")
DECODE_SIDE = 320  # the largest reduced copy any check needs (quality: 256 px)
BATCH = 64
# Images one task checks together, check by check: a check that runs on several images in a row
# finds its tables (the face cascades above all) still in the CPU cache; image by image, each
# check evicted the others' (benchmarks/review_quality.py prints both costs; 16 did better than 8,
# 32 no better than 16).
CHUNK = 16
FEATURES = "off-topic features"
NEEDS_LABELS = ("label issues need labelled images and their out-of-fold probabilities: "
                "label with `curator label`, then run `curator review --run --probabilities FILE`")

T = TypeVar("T")
R = TypeVar("R")
ImageCheck = Callable[[np.ndarray, int, int, ReviewConfig], list[Result]]


def default_checks(cfg: ReviewConfig) -> dict[str, Check]:
    return {
        "quality": Check("quality", QUALITY_KINDS, quality.VERSION, quality.params(cfg)),
        "privacy": Check("privacy", PRIVACY_KINDS, privacy.VERSION, privacy.params(cfg)),
        "off-topic": Check("off-topic", ("off-topic",), offtopic.VERSION, offtopic.params(cfg)),
        "label-issue": Check("label-issue", ("label-issue",), labelissues.VERSION,
                             {"ranking": cfg.label_ranking}),
    }


IMAGE_CHECKS: dict[str, ImageCheck] = {
    "quality": quality.check,
    "privacy": lambda rgb, width, height, cfg: privacy.check(rgb, cfg),
}


@dataclass
class RunSummary:
    images: int
    computed: dict[str, int] = field(default_factory=dict)  # images each check looked at in this run
    errors: int = 0  # images a check failed on in this run
    label_issues: str = ""  # what label issues still need; empty when they ran
    open: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"images": self.images, "computed": self.computed, "errors": self.errors,
                "label_issues": self.label_issues or "computed", "open": self.open}


def pending(ws: Workspace, checks: Mapping[str, Check] | None = None) -> int:
    """How many images a run would decode (for a progress bar)."""
    todo = _todo(ws.conn, dict(checks or default_checks(ws.config.review)), _sizes(ws))
    return len(set().union(*todo.values()))


def _sizes(ws: Workspace) -> dict[str, tuple[int, int]]:
    rows = ws.conn.execute("SELECT sha256, width, height FROM images")
    sizes = {row[0]: (int(row[1]), int(row[2])) for row in rows}
    if not sizes:
        raise InputError(f"{ws.root}: the workspace has no images to review; run `curator ingest` first")
    return sizes


def _todo(conn: sqlite3.Connection, chosen: Mapping[str, Check],
          sizes: Mapping[str, Any]) -> dict[str, set[str]]:
    todo = {name: set(stale(conn, chosen[name], sizes)) for name in IMAGE_CHECKS if name in chosen}
    if "off-topic" in chosen:
        todo[FEATURES] = set(_missing_features(conn, sizes))
    return todo


def run(ws: Workspace, *, probabilities: Mapping[str, Sequence[float]] | None = None,
        probabilities_source: str = "cv", on_progress: ProgressCallback | None = None,
        checks: Mapping[str, Check] | None = None) -> RunSummary:
    """Compute the missing findings of every check; ``probabilities``: sha256 -> per class, in
    ``[dataset] classes`` order, out of sample. They are also stored as the latest model's
    (curator.suggest), ``probabilities_source`` saying where they came from."""
    conn, cfg = ws.conn, ws.config
    chosen = dict(checks or default_checks(cfg.review))
    sizes = _sizes(ws)
    summary = RunSummary(images=len(sizes))
    todo = _todo(conn, chosen, sizes)
    pending = sorted(set().union(*todo.values()))
    for name, shas in todo.items():
        summary.computed[name] = len(shas)
    # One pool for the run: its threads keep their face cascades (privacy._cascades) across batches.
    threads = os.cpu_count() or 1
    with engine.single_threaded_opencv(), ThreadPoolExecutor(max_workers=threads) as pool:
        for batch, outcomes in _computed(pool, threads, ws, pending, sizes, todo):
            with_errors = set()
            for name, per_image in outcomes.items():
                with_errors |= {sha for sha, outcome in per_image.items() if isinstance(outcome, str)}
                if name == FEATURES:
                    _save_features(conn, per_image)
                else:
                    save(conn, chosen[name], cast(dict[str, Outcome], per_image))
            summary.errors += len(with_errors)
            if on_progress is not None:
                on_progress(len(batch))
    if "off-topic" in chosen:
        _offtopic(conn, chosen["off-topic"], cfg.review)
    if probabilities:
        suggest.save(conn, cfg.dataset.classes, probabilities, probabilities_source)
    if "label-issue" in chosen:
        summary.label_issues = _label_issues(conn, cfg, chosen["label-issue"], probabilities)
    summary.open = open_counts(conn)
    return summary


def _batches(items: list[T], size: int) -> Iterator[list[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def decode(source: Path | bytes) -> np.ndarray:
    """An image's pixels (a stored object's path, or its bytes), upright RGB, reduced (in the JPEG
    decoder where it can) to about DECODE_SIDE."""
    with Image.open(io.BytesIO(source) if isinstance(source, bytes) else source) as img:
        width, height = img.size
        scale = DECODE_SIDE / max(width, height)
        if scale < 1:
            img.draft("RGB", (math.ceil(width * scale), math.ceil(height * scale)))
        rgb = np.asarray(hashing.normalize(img))
    return quality.small_copy(rgb, DECODE_SIDE)


# What check_images is given per image: sha256, the checks it is due for, its size, its object's
# path or bytes.
Item = tuple[str, list[str], tuple[int, int], Path | bytes]
Outcomes = dict[str, Outcome | np.ndarray]  # check -> what check_images found for one image
PerImage = dict[str, Outcome | np.ndarray]  # sha256 -> one check's outcome


def _computed(
    pool: ThreadPoolExecutor, threads: int, ws: Workspace, pending: list[str],
    sizes: dict[str, tuple[int, int]], todo: dict[str, set[str]],
) -> Iterator[tuple[list[str], dict[str, PerImage]]]:
    """Each batch of ``pending`` with its outcomes (check -> sha256 -> outcome), in input order: on
    ``pool``'s ``threads``, or as Ray tasks (engine.map_batches) sent the objects' bytes; either
    way a batch goes out as chunks of at most CHUNK images (check_images)."""
    cfg = ws.config

    def chunks(batch: list[str], with_bytes: bool) -> list[list[Item]]:
        items: list[Item] = [(sha, [name for name, shas in todo.items() if sha in shas], sizes[sha],
                              _object(ws.objects, sha, with_bytes)) for sha in batch]
        return list(_batches(items, CHUNK)) if with_bytes else _even_chunks(items, threads)

    on_ray = engine.is_ray(cfg.engine)
    batches = list(_batches(pending, cfg.engine.batch_size if on_ray else BATCH))
    results: Iterable[list[list[Outcomes]]]
    if on_ray:
        results = engine.map_batches(check_images, cfg.review, (chunks(b, True) for b in batches))
    else:
        check = functools.partial(check_images, cfg.review)
        results = _ahead(pool, check, (chunks(b, False) for b in batches))
    for batch, per_chunk in zip(batches, results, strict=True):
        merged: dict[str, PerImage] = {name: {} for name in todo}
        per_sha = [outcomes for chunk in per_chunk for outcomes in chunk]
        for sha, result in zip(batch, per_sha, strict=True):
            for name, outcome in result.items():
                merged[name][sha] = outcome
        yield batch, merged


def _even_chunks(items: list[T], threads: int) -> list[list[T]]:
    """``items`` (a batch) cut for ``threads`` threads: chunks of at most CHUNK, as many as a
    multiple of ``threads`` (at most one per item), their sizes within one of each other, so
    that every thread gets work from every batch and none runs on alone through a short last
    batch (44 on 2 threads: 4 x 11, not 16 + 16 + 12)."""
    if not items:
        return []
    pieces = -(-len(items) // CHUNK)
    pieces = min(len(items), -(-pieces // threads) * threads)
    size, longer = divmod(len(items), pieces)
    chunks, start = [], 0
    for index in range(pieces):
        end = start + size + (index < longer)
        chunks.append(items[start:end])
        start = end
    return chunks


def _ahead(pool: ThreadPoolExecutor, check: Callable[[T], R],
           batches: Iterable[list[T]]) -> Iterator[list[R]]:
    """``[check(task) for task in batch]`` for each batch, in input order, the next batch already
    queued on ``pool``: its threads go on checking while the driver stores a batch, and no batch's
    last task leaves a thread idle. At most two batches are in flight; tasks not started are
    cancelled if the driver stops."""
    queued: deque[list[Future[R]]] = deque()
    try:
        for batch in batches:
            queued.append([pool.submit(check, item) for item in batch])
            if len(queued) > 1:
                yield [future.result() for future in queued.popleft()]
        while queued:
            yield [future.result() for future in queued.popleft()]
    finally:
        for futures in queued:
            for future in futures:
                future.cancel()


def _object(objects: Path, sha: str, with_bytes: bool) -> Path | bytes:
    path = store.object_path(objects, sha)
    if with_bytes:
        with contextlib.suppress(OSError):  # unreadable: the worker's decode names the failure
            return path.read_bytes()
    return path


def check_images(cfg: ReviewConfig, items: list[Item]) -> list[Outcomes]:
    """Each image's outcome for each check it is due for (a string where the check failed), one
    check at a time over all ``items`` (see CHUNK)."""
    decoded: list[np.ndarray | None] = []
    results: list[Outcomes] = []
    for _, names, _, source in items:
        try:
            decoded.append(decode(source))
            results.append({})
        except Exception as err:  # any decoder failure is this image's outcome, not the run's
            decoded.append(None)
            results.append({name: f"cannot decode the stored object: {err}" for name in names})
    for name in dict.fromkeys(name for _, names, _, _ in items for name in names):
        for (_, names, (width, height), _), rgb, result in zip(items, decoded, results, strict=True):
            if rgb is None or name not in names:
                continue
            try:
                if name == FEATURES:
                    result[name] = offtopic.features(rgb)
                else:
                    result[name] = IMAGE_CHECKS[name](rgb, width, height, cfg)
            except Exception as err:  # one check failing on one image must not stop the others
                result[name] = f"{name} check failed: {err}"
    return results


def _missing_features(conn: sqlite3.Connection, images: Mapping[str, Any]) -> list[str]:
    done = {row[0] for row in conn.execute("SELECT sha256 FROM review_features WHERE version = ?",
                                           (offtopic.VERSION,))}
    return [sha for sha in images if sha not in done]


def _save_features(conn: sqlite3.Connection, per_image: Mapping[str, Any]) -> None:
    with catalog.atomic(conn):
        for sha, vector in per_image.items():
            if isinstance(vector, np.ndarray):  # a failure shows as the off-topic check's error
                vector_bytes = vector.astype(np.float32).tobytes()
                conn.execute("INSERT OR REPLACE INTO review_features (sha256, version, vector)"
                             " VALUES (?, ?, ?)", (sha, offtopic.VERSION, vector_bytes))


def _offtopic(conn: sqlite3.Connection, check: Check, cfg: ReviewConfig) -> None:
    rows = conn.execute("SELECT sha256, vector FROM review_features WHERE version = ? ORDER BY sha256",
                        (offtopic.VERSION,)).fetchall()
    if not rows:
        return
    scores = offtopic.scores(np.stack([np.frombuffer(r[1], dtype=np.float32) for r in rows]))
    if scores is None:
        return
    save(conn, check, {
        row[0]: [Result("off-topic", float(score) / cfg.offtopic_min,
                        {"distance": round(float(score), 3), "threshold": cfg.offtopic_min})]
        for row, score in zip(rows, scores, strict=True)
    })


def _label_issues(conn: sqlite3.Connection, cfg: Config, check: Check,
                  probabilities: Mapping[str, Sequence[float]] | None) -> str:
    """Label-issue findings from ``probabilities``; returns what they still need ('' when done)."""
    classes = cfg.dataset.classes
    labels = {sha: label for sha, label in labeling.current_labels(conn, cfg).items() if label in classes}
    if not labels or not probabilities:
        return NEEDS_LABELS
    shas = sorted(sha for sha in labels if sha in probabilities)
    if len({labels[sha] for sha in shas}) < 2:
        return "label issues need out-of-fold probabilities for labelled images of at least two classes"
    probs = np.array([probabilities[sha] for sha in shas], dtype=np.float64)
    given = np.array([classes.index(labels[sha]) for sha in shas])
    issues = {issue.index: issue for issue in labelissues.find_issues(probs, given, cfg.review.label_ranking)}
    outcomes: dict[str, Outcome] = {}
    for index, sha in enumerate(shas):
        issue = issues.get(index)
        top = np.argsort(-probs[index])[:2]
        detail: dict[str, Any] = {
            "given_label": labels[sha], "ranking": cfg.review.label_ranking,
            "top": [[classes[j], round(float(probs[index, j]), 4)] for j in top],
        }
        if issue is not None:
            detail["suggested_label"] = classes[issue.suggested]
        quality_value = issue.quality if issue else 1.0
        score = round(1.0 - quality_value, 6)
        outcomes[sha] = [Result("label-issue", score, detail, issue=issue is not None)]
    save(conn, check, outcomes)
    return ""


def read_probabilities(path: str | Path, classes: Sequence[str]) -> dict[str, list[float]]:
    """A CSV with a header ``sha256,<class>,...`` (every class of the dataset, any order)."""
    name = str(path)
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            reader = csv.DictReader(handle)
            missing = [c for c in ("sha256", *classes) if c not in (reader.fieldnames or [])]
            if missing:
                raise InputError(f"{name}: missing column(s) {', '.join(missing)}")
            table = {}
            for line, row in enumerate(reader, start=2):
                try:
                    values = [float(row[c]) for c in classes]
                except (TypeError, ValueError) as err:
                    raise InputError(f"{name}: line {line}: probabilities must be numbers") from err
                if any(v < 0 for v in values) or abs(sum(values) - 1.0) > 1e-3:
                    raise InputError(f"{name}: line {line}: probabilities must be >= 0 and sum to 1")
                table[row["sha256"]] = values
    except OSError as err:
        raise InputError(f"{name}: cannot read ({err.strerror or err})", path=name) from err
    except UnicodeDecodeError as err:
        raise InputError(f"{name}: not UTF-8 text", path=name) from err
    return table
