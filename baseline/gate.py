"""The regression gate: ``--fail-under METRIC=VALUE`` and ``--max-drop METRIC=DELTA``.

A metric is named ``accuracy``, ``balanced_accuracy`` or ``macro_f1`` (the test
split), optionally prefixed with its split (``validation.macro_f1``) or with ``cv.``
for the repeated cross-validation estimate (``cv.accuracy``), or ``train_accuracy``.
``--fail-under`` fails when the score is below VALUE;
``--max-drop`` fails when the score fell by more than DELTA since the previous
release's baseline with the same config hash (with no such baseline there is
nothing to compare, which passes and says so). Each comparison also says whether the
change is inside the noise: the two 95% intervals overlap. The CLI turns failures into
``curator.errors.EXIT_GATE``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from curator.errors import InputError

SCORES = ("accuracy", "balanced_accuracy", "macro_f1")
SPLITS = ("test", "validation", "cv")
COMPARED = ("test.accuracy", "test.balanced_accuracy", "test.macro_f1", "cv.accuracy", "cv.balanced_accuracy",
            "cv.macro_f1", "train_accuracy")


@dataclass(frozen=True)
class Threshold:
    metric: str  # canonical: "test.accuracy", "validation.macro_f1", "train_accuracy"
    value: float
    flag: str  # "--fail-under" or "--max-drop"

    def label(self) -> str:
        return f"{self.flag} {self.metric}={self.value:g}"


@dataclass(frozen=True)
class GateResult:
    failures: list[str] = field(default_factory=list)
    deltas: dict[str, float] = field(default_factory=dict)  # metric -> current - previous
    previous_version: str | None = None
    notes: list[str] = field(default_factory=list)
    noise: dict[str, str] = field(default_factory=dict)  # metric -> "inside the noise" / "outside the noise"

    @property
    def passed(self) -> bool:
        return not self.failures


def display(version: str | None) -> str:
    """'1.2.0' -> 'v1.2.0'; a Hub 'repo@revision' stays as it is."""
    if version is None:
        return "none"
    return version if "@" in version else f"v{version}"


def canonical(name: str) -> str | None:
    name = name.strip()
    if name == "train_accuracy":
        return name
    split, _, score = name.rpartition(".")
    if score in SCORES and split in ("", *SPLITS):
        return f"{split or 'test'}.{score}"
    return None


def parse(values: tuple[str, ...] | list[str], flag: str) -> list[Threshold]:
    """``("accuracy=0.8", ...)`` -> thresholds; one InputError line for a malformed one."""
    out = []
    known = ", ".join([*SCORES, "validation.<score>", "cv.<score>", "train_accuracy"])
    for raw in values:
        metric, sep, number = raw.partition("=")
        if not sep or not metric.strip() or not number.strip():
            raise InputError(f"{flag} {raw!r}: expected METRIC=VALUE, e.g. {flag} accuracy=0.8")
        name = canonical(metric)
        if name is None:
            raise InputError(f"{flag} {raw!r}: unknown metric {metric.strip()!r} (use {known})")
        try:
            value = float(number)
        except ValueError:
            raise InputError(f"{flag} {raw!r}: {number.strip()!r} is not a number") from None
        if not math.isfinite(value) or (flag == "--fail-under" and not 0.0 <= value <= 1.0) or value < 0:
            raise InputError(f"{flag} {raw!r}: the value must be between 0 and 1")
        out.append(Threshold(name, value, flag))
    return out


def entry_of(metrics: dict[str, Any], name: str) -> dict[str, Any]:
    """A canonical metric's entry (value, ci95, n) from a baseline.json ``metrics`` section."""
    if name == "train_accuracy":
        return dict(metrics["train_accuracy"])
    split, score = name.split(".")
    return dict(metrics[split][score])


def value_of(metrics: dict[str, Any], name: str) -> float:
    return float(entry_of(metrics, name)["value"])


def noise(current: dict[str, Any], before: dict[str, Any]) -> str:
    """Whether a change is inside the noise: the two 95% intervals overlap."""
    a, b = current.get("ci95"), before.get("ci95")
    if not a or not b:
        return "noise unknown (no interval)"
    return "inside the noise" if a[0] <= b[1] and b[0] <= a[1] else "outside the noise"


def check(metrics: dict[str, Any], previous: dict[str, Any] | None, previous_version: str | None,
          thresholds: list[Threshold]) -> GateResult:
    """Deltas against ``previous`` (a metrics section) and the failures of ``thresholds``."""
    deltas, noises = {}, {}
    if previous is not None:
        for name in COMPARED:
            try:
                mine, theirs = entry_of(metrics, name), entry_of(previous, name)
                deltas[name] = float(mine["value"]) - float(theirs["value"])
            except (KeyError, TypeError, ValueError):
                continue
            noises[name] = noise(mine, theirs)
    failures, notes = [], []
    for t in thresholds:
        if t.metric.split(".")[0] == "cv" and "cv" not in metrics:
            failures.append(f"{t.metric} was not measured (cross-validation did not run), so {t.label()} "
                            "cannot pass")
            continue
        current = value_of(metrics, t.metric)
        if t.flag == "--fail-under" and current < t.value:
            failures.append(f"{t.metric} is {current:.4f}, below {t.label()}")
        elif t.flag == "--max-drop":
            if previous is None:
                notes.append(f"{t.label()} not checked: no previous baseline with the same config")
                continue
            if t.metric not in deltas:
                notes.append(f"{t.label()} not checked: {display(previous_version)} did not measure it")
                continue
            before = value_of(previous, t.metric)
            if before - current > t.value + 1e-12:
                failures.append(
                    f"{t.metric} dropped by {before - current:.4f} "
                    f"({display(previous_version)}: {before:.4f} -> {current:.4f}, {noises[t.metric]}), "
                    f"more than {t.label()}"
                )
    return GateResult(failures=failures, deltas=deltas, previous_version=previous_version, notes=notes,
                      noise=noises)
