"""``curator baseline`` as one call: :func:`score_release`.

    resolve   a local release (release.resolve_version) or a Hub repo@revision
    load      baseline.data: every split as arrays (datasets.load_dataset)
    train     baseline.train: seeded, early stopping on validation
    score     baseline.metrics: test and validation with bootstrap intervals, train accuracy
    cv        optional: K folds over train+validation originals, grouped by cluster
    compare   the previous release's baseline with the same config hash; the gate
    write     only after all of the above succeeded: PNGs, baseline.json, the card's baseline
              section (local releases only), then a catalog row; a failure while writing puts
              the old files back and rolls the row back

Training failures, bad input and an unreachable Hub all raise before anything is written.
A failed gate does not undo the (valid) result: it is recorded, then reported.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from baseline import data as data_mod
from baseline import gate as gate_mod
from baseline import metrics, report, train
from baseline import model as cnn
from curator import catalog, config
from curator.config import BaselineConfig
from curator.errors import BaselineError, InputError, ReleaseError
from curator.fsutil import write_atomic
from curator.versions import semver_key
from curator.workspace import Workspace

FORMAT = 1
OVERRIDABLE = ("image_size", "epochs", "batch_size", "learning_rate", "patience", "augment", "seed",
               "bootstrap")


@dataclass(frozen=True)
class Source:
    kind: str  # "local" or "hub"
    version: str  # the catalog key: "1.2.0", or "ns/name@v1.2.0"
    folder: Path | None = None
    repo: str | None = None
    revision: str | None = None

    @property
    def label(self) -> str:
        return gate_mod.display(self.version)


@dataclass
class BaselineResult:
    """What a run produced: the baseline.json content, the gate's verdict and the files written."""

    result: dict[str, Any]
    gate: gate_mod.GateResult
    files: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.gate.passed

    def summary_line(self) -> str:
        """One line for a summary (the demo): the test scores with intervals, the run, the verdict."""
        r = self.result
        test = r["metrics"]["test"]
        parts = []
        for k in ("accuracy", "macro_f1"):
            low, high = test[k]["ci95"]
            parts.append(f"{report.SCORE_NAMES[k]} {test[k]['value']:.3f} [{low:.2f}-{high:.2f}]")
        line = (f"baseline {r['version_label']}: test {', '.join(parts)} on {test['rows']} images; "
                f"train accuracy {r['metrics']['train_accuracy']['value']:.3f}; "
                f"{r['training']['epochs_run']} epochs in {r['timings']['train_seconds']:.1f} s "
                f"({r['hardware']['backend']}, {r['hardware']['device']})")
        if self.gate.failures:
            line += f"; gate FAILED: {self.gate.failures[0]}"
        return line

    def as_json(self) -> dict[str, Any]:
        return {**self.result, "files": self.files,
                "gate": {"passed": self.gate.passed, "failures": self.gate.failures,
                         "notes": self.gate.notes}}


def effective_config(base: BaselineConfig, overrides: dict[str, Any] | None) -> BaselineConfig:
    """``base`` with command-line overrides (``None`` values ignored); InputError naming the flag."""
    values = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key, value in values.items():
        flag = "--" + key.replace("_", "-")
        if key not in OVERRIDABLE:
            raise InputError(f"{flag}: not a baseline setting")
        if key == "learning_rate" and not value > 0:
            raise InputError(f"{flag} {value}: must be positive")
        if key not in ("learning_rate", "augment", "seed") and value < 1:
            raise InputError(f"{flag} {value}: must be at least 1")
        if key == "seed" and value < 0:
            raise InputError(f"{flag} {value}: must be 0 or more")
    if values.get("image_size") is not None and values["image_size"] < 16:
        raise InputError(f"--image-size {values['image_size']}: must be at least 16 (four 2x poolings)")
    return dataclasses.replace(base, **values)


def config_hash(cfg: BaselineConfig) -> str:
    """What makes two baselines comparable: the architecture and every training setting
    (not the bootstrap resample count, which only changes the intervals)."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k != "bootstrap"}
    return config.config_hash({"architecture": cnn.ARCHITECTURE, **settings})


def score_release(
    ws: Workspace,
    version: str | None = None,
    *,
    repo: str | None = None,
    revision: str | None = None,
    overrides: dict[str, Any] | None = None,
    cv: int = 0,
    thresholds: list[gate_mod.Threshold] | None = None,
    on_epoch: train.EpochCallback | None = None,
    on_progress: Callable[[int], None] | None = None,
    cache_dir: Path | None = None,
) -> BaselineResult:
    """Train and score the baseline CNN on a local release (``version``, default the newest) or
    on ``repo`` at ``revision`` from the Hub; write the result; return it.

    ``on_epoch`` gets an :class:`~baseline.train.EpochLog` after every epoch (phase "train", then
    "fold i/K"); ``on_progress(1)`` is called once per epoch too. Nothing is printed.
    """
    cfg = effective_config(ws.config.baseline, overrides)
    if cv and cv < 2:
        raise InputError(f"--cv {cv}: needs at least 2 folds")
    started = time.perf_counter()
    cnn.keras_module()  # an unusable KERAS_BACKEND fails here, before any loading
    source = _resolve(ws, version, repo, revision)
    loaded = time.perf_counter()
    release = _load(source, ws, cfg, cache_dir)
    load_seconds = time.perf_counter() - loaded

    def epoch_done(entry: train.EpochLog) -> None:
        if on_epoch is not None:
            on_epoch(entry)
        if on_progress is not None:
            on_progress(1)

    outcome = _train_and_score(release, cfg, cv, epoch_done)
    digest = config_hash(cfg)
    previous_version, previous = _previous(ws.conn, source, digest)
    result = _assemble(source, release, cfg, digest, outcome, previous_version)
    gate = gate_mod.check(result["metrics"], previous, previous_version, thresholds or [])
    result["comparison"] = {"previous": gate_mod.display(previous_version) if previous_version else None,
                            "deltas": gate.deltas}
    result["timings"].update(load_seconds=round(load_seconds, 3),
                             total_seconds=round(time.perf_counter() - started, 3))
    files = _write(ws, source, result)
    return BaselineResult(result=result, gate=gate, files=files)


def _resolve(ws: Workspace, version: str | None, repo: str | None, revision: str | None) -> Source:
    if repo is not None:
        if version is not None:
            raise InputError(f"give either VERSION ({version}) or --repo, not both")
        if not revision:
            raise InputError(f"--repo {repo}: needs --revision (a tag such as v1.0.0, or a commit)")
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise InputError(f"--repo {repo!r}: expected namespace/name")
        return Source(kind="hub", version=f"{repo}@{revision}", repo=repo, revision=revision)
    if revision is not None:
        raise InputError("--revision needs --repo ns/name")
    from curator import release

    resolved = release.resolve_version(ws, version)
    return Source(kind="local", version=resolved, folder=release.release_path(ws, resolved))


def _load(source: Source, ws: Workspace, cfg: BaselineConfig, cache_dir: Path | None) -> data_mod.ReleaseData:
    from curator import release

    with release.quiet_datasets():
        if source.kind == "hub":
            assert source.repo is not None and source.revision is not None
            return data_mod.load_hub(source.repo, source.revision, cfg.image_size, cache_dir)
        manifest = release.load_manifest(ws, source.version)
        assert source.folder is not None
        _check_card(source.folder, source.label)
        return data_mod.load_folder(source.folder, cfg.image_size, source.label, manifest, cache_dir)


def _check_card(folder: Path, label: str) -> None:
    """Fail before training, not after, when the card has no baseline section to fill."""
    from dataset_card import replace_baseline_section

    card = folder / "README.md"
    try:
        replace_baseline_section(card.read_text(encoding="utf-8"), "")
    except OSError as err:
        raise BaselineError(f"release {label}: cannot read README.md ({err.strerror})",
                            path=str(card)) from err
    except ReleaseError as err:
        raise BaselineError(f"release {label}: {err.message}", path=str(card)) from err


@dataclass
class _Outcome:
    fitted: train.TrainResult
    scores: dict[str, Any]
    cv: dict[str, Any] | None
    eval_seconds: float
    cv_seconds: float


def _train_and_score(release: data_mod.ReleaseData, cfg: BaselineConfig, cv: int,
                     on_epoch: train.EpochCallback) -> _Outcome:
    k = len(release.classes)
    tr, va, te = (release.splits[s] for s in data_mod.SPLITS)
    pool = _cv_pool(release, cfg, cv) if cv else None  # refuses impossible folds before training
    weights = None
    if release.class_weights:
        weights = {i: float(release.class_weights.get(name, 1.0)) for i, name in enumerate(release.classes)}
    try:
        fitted = train.fit(tr.images, tr.labels, (va.images, va.labels), k, cfg, class_weight=weights,
                           on_epoch=on_epoch)
    except (ValueError, RuntimeError, MemoryError) as err:
        raise BaselineError(f"release {release.source}: training failed ({err})") from err
    diverged = [e.epoch for e in fitted.history if not np.isfinite(e.loss)]
    if diverged:
        raise BaselineError(f"release {release.source}: training diverged (loss is not finite in epoch "
                            f"{diverged[0]})", hint=f"lower --learning-rate (was {cfg.learning_rate:g})")
    evaluated = time.perf_counter()
    originals = tr.originals()
    scores = {
        "test": metrics.evaluate(te.labels, train.predict(fitted.model, te.images),
                                 release.classes, cfg.bootstrap, cfg.seed),
        "validation": metrics.evaluate(va.labels, train.predict(fitted.model, va.images),
                                       release.classes, cfg.bootstrap, cfg.seed),
        "train_accuracy": metrics.accuracy_with_interval(
            originals.labels, train.predict(fitted.model, originals.images),
            cfg.bootstrap, cfg.seed),
    }
    scores["overfit_gap"] = scores["train_accuracy"]["value"] - scores["test"]["accuracy"]["value"]
    eval_seconds = time.perf_counter() - evaluated
    cv_started = time.perf_counter()
    cv_result = None
    if pool is not None:
        cv_result = _cross_validate(pool, len(release.classes), cfg, fitted.best_epoch, on_epoch)
    return _Outcome(fitted, scores, cv_result, eval_seconds, time.perf_counter() - cv_started)


@dataclass(frozen=True)
class CvPool:
    """The original rows of train+validation and the fold of each (no cluster in two folds)."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    folds: np.ndarray
    k: int


def _cv_pool(release: data_mod.ReleaseData, cfg: BaselineConfig, k: int) -> CvPool:
    tr = release.splits["train"].originals()
    va = release.splits["validation"].originals()
    y = np.concatenate([tr.labels, va.labels])
    groups = np.concatenate([tr.cluster_ids, va.cluster_ids])
    folds = metrics.grouped_stratified_folds(y, groups, k, cfg.seed, release.classes)
    return CvPool(np.concatenate([tr.images, va.images]), y, groups, folds, k)


def _cross_validate(pool: CvPool, n_classes: int, cfg: BaselineConfig, epochs: int,
                    on_epoch: train.EpochCallback) -> dict[str, Any]:
    """K folds over ``pool``. Each fold trains for the main run's best epoch count (the held-out
    fold never steers training), with balanced class weights instead of the release's
    oversampled copies, and is scored on its held-out clusters."""
    x, y, groups, folds, k = pool.x, pool.y, pool.groups, pool.folds, pool.k
    results = []
    for f in range(k):
        held = folds == f
        counts = np.bincount(y[~held], minlength=n_classes)
        weights = {c: float(len(y[~held]) / (n_classes * counts[c])) for c in range(n_classes) if counts[c]}
        fitted = train.fit(x[~held], y[~held], None, n_classes, cfg, class_weight=weights, epochs=epochs,
                           phase=f"fold {f + 1}/{k}", on_epoch=on_epoch)
        predicted = train.predict(fitted.model, x[held])
        point = metrics.scores(metrics.confusion_matrix(y[held], predicted, n_classes))
        results.append({"fold": f + 1, "rows": int(held.sum()), "clusters": int(len(np.unique(groups[held]))),
                        **{name: float(point[name]) for name in gate_mod.SCORES}})
    return {
        "k": k, "epochs": epochs, "grouped_by": "cluster_id", "folds": results,
        "mean": {n: float(np.mean([r[n] for r in results])) for n in gate_mod.SCORES},
        "std": {n: float(np.std([r[n] for r in results], ddof=1)) for n in gate_mod.SCORES},
    }


def _previous(conn: sqlite3.Connection, source: Source,
              digest: str) -> tuple[str | None, dict[str, Any] | None]:
    """The newest baseline of the previous release with the same config hash: the parent chain of a
    local release, or the highest lower vX.Y.Z revision of the same Hub repo."""
    def row(version: str) -> dict[str, Any] | None:
        found = conn.execute("SELECT metrics FROM baselines WHERE version = ? AND config_hash = ? "
                             "ORDER BY id DESC LIMIT 1", (version, digest)).fetchone()
        return json.loads(found[0]) if found else None

    if source.kind == "local":
        parents = {r["version"]: r["parent"] for r in conn.execute("SELECT version, parent FROM releases")}
        parent = parents.get(source.version)
        seen = set()
        while parent and parent not in seen:
            seen.add(parent)
            found = row(parent)
            if found is not None:
                return parent, found
            parent = parents.get(parent)
        return None, None
    prefix = f"{source.repo}@"
    mine = semver_key(source.revision or "")
    if mine is None:
        return None, None
    candidates = []
    for (version,) in conn.execute("SELECT DISTINCT version FROM baselines WHERE config_hash = ?", (digest,)):
        if version.startswith(prefix):
            theirs = semver_key(version[len(prefix):])
            if theirs is not None and theirs < mine:
                candidates.append((theirs, version))
    for _, version in sorted(candidates, reverse=True):
        return version, row(version)
    return None, None


def _assemble(source: Source, release: data_mod.ReleaseData, cfg: BaselineConfig, digest: str,
              outcome: _Outcome, previous_version: str | None) -> dict[str, Any]:
    fitted = outcome.fitted
    keras = cnn.keras_module()
    splits = release.splits
    steady = fitted.epoch_seconds[1:] or fitted.epoch_seconds
    return {
        "format": FORMAT,
        "version": source.version,
        "version_label": source.label,
        "source": {"kind": source.kind, "repo": source.repo, "revision": source.revision,
                   "commit": release.commit},
        "created_at": catalog.utcnow(),
        "config": dataclasses.asdict(cfg),
        "config_hash": digest,
        "seed": cfg.seed,
        "model": {"architecture": cnn.ARCHITECTURE, "params": int(fitted.model.count_params()),
                  "layers": cnn.describe(fitted.model), "optimizer": "adam",
                  "loss": "sparse_categorical_crossentropy"},
        "data": {
            "classes": list(release.classes),
            "rows": {s: len(splits[s]) for s in data_mod.SPLITS},
            "train_originals": int((~splits["train"].augmented).sum()),
            "train_augmented": int(splits["train"].augmented.sum()),
            "class_weights": release.class_weights,
        },
        "training": {
            "epochs_run": len(fitted.history), "best_epoch": fitted.best_epoch,
            "stopped_early": fitted.stopped_early, "monitor": "val_loss", "patience": cfg.patience,
            "history": [dataclasses.asdict(e) for e in fitted.history],
        },
        "metrics": outcome.scores,
        "cv": outcome.cv,
        "comparison": {"previous": previous_version, "deltas": {}},
        "hardware": hardware(keras),
        "versions": library_versions(keras),
        "timings": {
            "setup_seconds": round(fitted.setup_seconds, 3),
            "train_seconds": round(fitted.seconds, 3),
            "first_epoch_seconds": round(fitted.epoch_seconds[0], 3) if fitted.epoch_seconds else 0.0,
            "seconds_per_epoch": round(float(np.median(steady)), 4) if steady else 0.0,
            "images_per_second": round(fitted.images_per_second(), 2),
            "eval_seconds": round(outcome.eval_seconds, 3),
            "cv_seconds": round(outcome.cv_seconds, 3),
        },
    }


def hardware(keras: Any) -> dict[str, Any]:
    """What the backend computes on: 'cpu' or 'gpu' and the device's name, plus the host CPU."""
    backend = keras.backend.backend()
    info: dict[str, Any] = {"backend": backend, "device": "cpu", "device_kind": "cpu", "device_count": 1,
                            "cpu": _cpu_name(), "cpu_count": os.cpu_count(), "platform": platform.platform()}
    if backend == "jax":
        import jax

        devices = jax.devices()
        info.update(device=devices[0].platform, device_kind=devices[0].device_kind, device_count=len(devices))
    elif backend == "torch":
        import torch

        if torch.cuda.is_available():
            info.update(device="gpu", device_kind=torch.cuda.get_device_name(0),
                        device_count=torch.cuda.device_count())
    elif backend == "tensorflow":
        import tensorflow as tf

        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            info.update(device="gpu", device_kind=gpus[0].name, device_count=len(gpus))
    return info


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def library_versions(keras: Any) -> dict[str, str]:
    import importlib.metadata

    found = {"python": platform.python_version(), "keras": keras.__version__}
    for dist in ("curator", "jax", "jaxlib", "torch", "tensorflow", "numpy", "datasets", "pillow",
                 "matplotlib"):
        try:
            found[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            continue
    return found


def _write(ws: Workspace, source: Source, result: dict[str, Any]) -> list[str]:
    """Render everything in memory, then write it all or nothing, with the catalog row."""
    outputs: dict[Path, bytes] = {}
    if source.kind == "local":
        from dataset_card import replace_baseline_section

        assert source.folder is not None
        card_path = source.folder / "README.md"
        card = replace_baseline_section(card_path.read_text(encoding="utf-8"), report.card_markdown(result))
        outputs[source.folder / report.CONFUSION_PNG] = report.confusion_png(result)
        outputs[source.folder / report.CURVES_PNG] = report.curves_png(result)
        outputs[source.folder / "baseline.json"] = report.json_bytes(result)
        outputs[card_path] = card.encode("utf-8")
    summary = json.dumps(result["metrics"], sort_keys=True, allow_nan=False)
    with catalog.atomic(ws.conn):
        ws.conn.execute("INSERT INTO baselines (version, config_hash, metrics, at) VALUES (?, ?, ?, ?)",
                        (source.version, result["config_hash"], summary, result["created_at"]))
        _write_all(outputs)
    return [str(path.relative_to(ws.root)) for path in outputs]


def _write_all(outputs: dict[Path, bytes]) -> None:
    """Write each file atomically; if one fails, put back what the others replaced."""
    old = {path: (path.read_bytes() if path.exists() else None) for path in outputs}
    created_dirs = [p.parent for p in outputs if not p.parent.exists()]
    try:
        for path, payload in outputs.items():
            write_atomic(path, payload)
    except BaseException:
        for path, before in old.items():
            if before is None:
                path.unlink(missing_ok=True)
            else:
                write_atomic(path, before)
        for folder in created_dirs:
            if folder.exists() and not any(folder.iterdir()):
                folder.rmdir()
        raise
