"""``curator baseline`` as one call: :func:`score_release`.

    resolve   a local release (released.resolve_version) or a Hub repo@revision
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

from baseline import cv as cv_mod
from baseline import data as data_mod
from baseline import gate as gate_mod
from baseline import metrics, references, report, train
from baseline import model as cnn
from curator import catalog, config
from curator.config import BaselineConfig
from curator.errors import BaselineError, InputError, ReleaseError
from curator.fsutil import write_atomic
from curator.versions import semver_key
from curator.workspace import Workspace

FORMAT = 2  # 2: references beside every score, Wilson/BCa intervals with n, repeated CV, headline
OVERRIDABLE = ("image_size", "epochs", "batch_size", "learning_rate", "patience", "augment", "seed",
               "bootstrap", "cv_folds", "cv_repeats", "small_test", "cv_workers")
# settings that change the intervals or the cross-validation, not the model: left out of the config hash
UNHASHED = ("bootstrap", "cv_folds", "cv_repeats", "small_test", "cv_workers")
ZERO_OK = ("seed", "cv_folds", "small_test", "cv_workers")  # may be 0; every other count must be >= 1


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
        """One line for a summary (the demo): the headline with intervals and verdict, the run, the gate."""
        r = self.result
        h = r["headline"]
        basis = "repeated CV" if h["basis"] == "cv" else "test"
        parts = [f"{report.SCORE_NAMES[k]} {h['model'][k]['value']:.3f} ({report.ci_text(h['model'][k])})"
                 for k in ("accuracy", "macro_f1")]
        line = (f"baseline {r['version_label']}: {basis} {', '.join(parts)} on {h['model']['accuracy']['n']} "
                f"images, majority guess {report.with_ci(h['majority']['accuracy'])}: "
                f"{h['verdict']['outcome']}; "
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
    """``base`` with overrides (``None`` values ignored); an InputError's key names the override
    (``cv`` for ``cv_folds``, as the command line calls it)."""
    values = {k: v for k, v in (overrides or {}).items() if v is not None}
    for key, value in values.items():
        name = "cv" if key == "cv_folds" else key
        if key not in OVERRIDABLE:
            raise InputError(f"{name}: not a baseline setting", key=name, reason="unknown-setting")
        problem = _override_problem(key, value)
        if problem:
            raise InputError(f"{name} {value}: {problem}", key=name, value=str(value), reason="out-of-range")
    return dataclasses.replace(base, **values)


def _override_problem(key: str, value: Any) -> str | None:
    if key == "learning_rate" and not value > 0:
        return "must be positive"
    if key == "cv_folds" and value == 1:
        return "needs at least 2 folds"
    if key not in ("learning_rate", "augment", *ZERO_OK) and value < 1:
        return "must be at least 1"
    if key in ZERO_OK and value < 0:
        return "must be 0 or more"
    if key == "image_size" and value < 16:
        return "must be at least 16 (four 2x poolings)"
    return None


def config_hash(cfg: BaselineConfig) -> str:
    """What makes two baselines comparable: the architecture and every training setting
    (not the bootstrap or cross-validation settings, which change only the intervals and CV)."""
    settings = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in UNHASHED}
    return config.config_hash({"architecture": cnn.ARCHITECTURE, **settings})


def score_release(
    ws: Workspace,
    version: str | None = None,
    *,
    repo: str | None = None,
    revision: str | None = None,
    overrides: dict[str, Any] | None = None,
    cv: int | None = None,
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
    given = {**(overrides or {}), **({"cv_folds": cv} if cv is not None else {})}
    cfg = effective_config(ws.config.baseline, given)
    wants_cv = bool(cv) or any(t.metric.startswith("cv.") for t in thresholds or [])
    if wants_cv and cfg.cv_folds == 0:
        raise InputError("cv 0 (or baseline.cv_folds = 0) turns off cross-validation, which a cv.* threshold "
                         "needs", key="cv", value="0", reason="cv-off")
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

    outcome = _train_and_score(release, cfg, wants_cv, epoch_done)
    digest = config_hash(cfg)
    previous_version, previous = _previous(ws.conn, source, digest)
    result = _assemble(source, release, cfg, digest, outcome, previous_version)
    gate = gate_mod.check(result["metrics"], previous, previous_version, thresholds or [])
    result["comparison"] = {"previous": gate_mod.display(previous_version) if previous_version else None,
                            "deltas": gate.deltas, "noise": gate.noise}
    result["timings"].update(load_seconds=round(load_seconds, 3),
                             total_seconds=round(time.perf_counter() - started, 3))
    files = _write(ws, source, result)
    return BaselineResult(result=result, gate=gate, files=files)


def _resolve(ws: Workspace, version: str | None, repo: str | None, revision: str | None) -> Source:
    if repo is not None:
        if version is not None:
            raise InputError(f"repo {repo}: give either it or a VERSION ({version}), not both", key="repo",
                             value=repo, reason="conflict")
        if not revision:
            raise InputError(f"repo {repo}: needs a revision (a tag such as v1.0.0, or a commit)", key="repo",
                             value=repo, reason="no-revision")
        if repo.count("/") != 1 or not all(repo.split("/")):
            raise InputError(f"repo {repo!r}: expected namespace/name", key="repo", value=repo,
                             reason="not-a-repo-id")
        return Source(kind="hub", version=f"{repo}@{revision}", repo=repo, revision=revision)
    if revision is not None:
        raise InputError(f"revision {revision}: needs a Hub repo (ns/name)", key="revision", value=revision,
                         reason="no-repo")
    from curator.released import release_path, resolve_version

    resolved = resolve_version(ws, version)
    return Source(kind="local", version=resolved, folder=release_path(ws, resolved))


def _load(source: Source, ws: Workspace, cfg: BaselineConfig, cache_dir: Path | None) -> data_mod.ReleaseData:
    from curator.released import quiet_datasets, read_release

    with quiet_datasets():
        if source.kind == "hub":
            assert source.repo is not None and source.revision is not None
            return data_mod.load_hub(source.repo, source.revision, cfg.image_size, cache_dir)
        verified = read_release(ws, source.version)  # manifest and data files as built
        _check_card(verified.folder, source.label)
        return data_mod.load_folder(verified.folder, cfg.image_size, source.label, verified.manifest,
                                    cache_dir)


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
    headline: dict[str, Any]
    eval_seconds: float
    cv_seconds: float


def _train_and_score(release: data_mod.ReleaseData, cfg: BaselineConfig, want_cv: bool,
                     on_epoch: train.EpochCallback) -> _Outcome:
    k = len(release.classes)
    tr, va, te = (release.splits[s] for s in data_mod.SPLITS)
    run_cv = cfg.cv_folds >= 2 and (want_cv or len(te) < cfg.small_test)
    pool, folds = _cv_plan(release, cfg) if run_cv else (None, [])  # impossible folds fail before training
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
                            f"{diverged[0]})", key="learning_rate", value=f"{cfg.learning_rate:g}",
                            reason="diverged")
    evaluated = time.perf_counter()
    scores = _score_splits(release, cfg, fitted)
    eval_seconds = time.perf_counter() - evaluated
    cv_started = time.perf_counter()
    cv_result = None
    if pool is not None:
        done = cv_mod.run_all(pool, folds, release.classes, cfg, release.balance_method, on_epoch,
                              cv_workers(cfg))
        cv_result = cv_mod.summarise(done, len(pool.labels), cfg.cv_folds, cfg.cv_repeats,
                                     release.balance_method)
        scores["cv"] = cv_result["model"]
    headline = _headline(scores, cv_result, cfg)
    return _Outcome(fitted, scores, cv_result, headline, eval_seconds, time.perf_counter() - cv_started)


def cv_workers(cfg: BaselineConfig) -> int:
    """Processes for the cross-validation folds: the setting, or by default one per CPU core (at most
    4) on a CPU and one on a GPU (parallel processes would contend for its memory)."""
    if cfg.cv_workers:
        return cfg.cv_workers
    if hardware(cnn.keras_module())["device"] != "cpu":
        return 1
    return max(1, min(4, os.cpu_count() or 1))


def _score_splits(release: data_mod.ReleaseData, cfg: BaselineConfig,
                  fitted: train.TrainResult) -> dict[str, Any]:
    """Test (beside the majority and chance guesses), validation and train-originals scores."""
    k = len(release.classes)
    tr, va, te = (release.splits[s] for s in data_mod.SPLITS)
    originals = tr.originals()
    predicted = train.predict(fitted.model, te.images)
    guess = references.majority_class(originals.labels, k)
    paired = (predicted == te.labels).astype(np.float64) - (te.labels == guess).astype(np.float64)
    test = metrics.evaluate(te.labels, predicted, release.classes, cfg.bootstrap, cfg.seed)
    test.update(
        majority=references.majority(originals.labels, te.labels, release.classes, cfg.bootstrap, cfg.seed),
        chance=references.chance(originals.labels, te.labels, k, cfg.seed),
        difference=metrics.mean_bca(paired, cfg.bootstrap, cfg.seed),
    )
    scores: dict[str, Any] = {
        "test": test,
        "validation": {**metrics.evaluate(va.labels, train.predict(fitted.model, va.images), release.classes,
                                          cfg.bootstrap, cfg.seed), "chose_epoch": True},
        "train_accuracy": metrics.accuracy_with_interval(originals.labels,
                                                         train.predict(fitted.model, originals.images)),
    }
    scores["overfit_gap"] = scores["train_accuracy"]["value"] - test["accuracy"]["value"]
    return scores


def _headline(scores: dict[str, Any], cv_result: dict[str, Any] | None,
              cfg: BaselineConfig) -> dict[str, Any]:
    """The estimate the card leads with: repeated CV when the test split is small and CV ran,
    else the test split; with its references and the verdict."""
    test = scores["test"]
    if cv_result is not None and test["rows"] < cfg.small_test:
        return {
            "basis": "cv",
            "why": f"the test split holds {test['rows']} images, fewer than {cfg.small_test}",
            **{who: cv_result[who] for who in ("model", "majority", "chance")},
            "verdict": references.verdict(cv_result["difference"], "in repeated cross-validation"),
        }
    return {
        "basis": "test",
        "why": (f"the test split holds {test['rows']} images, at least {cfg.small_test}"
                if test["rows"] >= cfg.small_test else "cross-validation is off (--cv 0)"),
        "model": {name: test[name] for name in references.SCORES},
        "majority": {name: test["majority"][name] for name in references.SCORES},
        "chance": test["chance"],
        "verdict": references.verdict(test["difference"], "on the test split"),
    }


def _cv_plan(release: data_mod.ReleaseData, cfg: BaselineConfig) -> tuple[cv_mod.Pool, list[cv_mod.Fold]]:
    """Train+validation originals, grouped by cluster and group_id, and their R x K folds."""
    tr = release.splits["train"].originals()
    va = release.splits["validation"].originals()
    labels = np.concatenate([tr.labels, va.labels])
    groups = cv_mod.group_keys(np.concatenate([tr.cluster_ids, va.cluster_ids]), tr.groups() + va.groups())
    pool = cv_mod.Pool(np.concatenate([tr.images, va.images]), labels, tr.sha256 + va.sha256, groups)
    share = len(va) / (len(tr) + len(va))
    return pool, cv_mod.plan(labels, groups, cfg.cv_folds, cfg.cv_repeats, cfg.seed, share, release.classes)


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
        "headline": outcome.headline,
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
