"""Composition facts of a release for its card: the originals' sizes, aspects and formats (a
table and one plot), and their estimated skin tone per class and split (curator.skintone).

The plot is a PNG written with fixed metadata (no software tag, no timestamp), so the same
facts give the same bytes and a rebuilt release stays byte-identical.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from curator import skintone

PLOT_PATH = "card/composition.png"  # inside the release folder, linked from the card
# (upper bound exclusive, label) on the shorter side in pixels
SIZE_BUCKETS: tuple[tuple[float, str], ...] = (
    (256, "< 256"), (512, "256-511"), (1024, "512-1023"), (2048, "1024-2047"), (float("inf"), ">= 2048"),
)
# (upper bound exclusive, label) on width / height
ASPECT_BUCKETS: tuple[tuple[float, str], ...] = (
    (0.75, "portrait, < 0.75"), (0.95, "portrait, 0.75-0.95"), (1.05, "square, 0.95-1.05"),
    (1.4, "landscape, 1.05-1.4"), (1.8, "landscape, 1.4-1.8"), (float("inf"), "wide, >= 1.8"),
)


def _bucket(value: float, buckets: Sequence[tuple[float, str]]) -> str:
    return next(label for upper, label in buckets if value < upper)


def image_facts(images: Sequence[tuple[int, int, str]]) -> dict[str, Any]:
    """(width, height, format) of each original -> counts per size, aspect and format bucket."""
    sizes = Counter(_bucket(min(w, h), SIZE_BUCKETS) for w, h, _ in images)
    aspects = Counter(_bucket(w / h, ASPECT_BUCKETS) for w, h, _ in images)
    formats = Counter(f for _, _, f in images)
    return {
        "images": len(images),
        "sizes": {label: sizes[label] for _, label in SIZE_BUCKETS if sizes[label]},
        "aspects": {label: aspects[label] for _, label in ASPECT_BUCKETS if aspects[label]},
        "formats": dict(sorted(formats.items(), key=lambda kv: (-kv[1], kv[0]))),
        "median_width": int(statistics.median(w for w, _, _ in images)) if images else 0,
        "median_height": int(statistics.median(h for _, h, _ in images)) if images else 0,
    }


def skin_tone_facts(rows: Iterable[tuple[str, str, float | None]], classes: Sequence[str],
                    splits: Sequence[str]) -> dict[str, Any]:
    """(label, split, ITA or None) of each original -> band counts per class and per split."""
    by_class: dict[str, list[float | None]] = {c: [] for c in classes}
    by_split: dict[str, list[float | None]] = {s: [] for s in splits}
    for label, split, ita in rows:
        by_class[label].append(ita)
        by_split[split].append(ita)
    return {
        "per_class": {c: skintone.distribution(v) for c, v in by_class.items()},
        "per_split": {s: skintone.distribution(v) for s, v in by_split.items() if v},
    }


def plot_png(facts: dict[str, Any]) -> bytes:
    """One figure, three bar charts (shorter side, aspect, format), as PNG bytes with no metadata."""
    from matplotlib.ticker import MaxNLocator

    from baseline.report import figure_of, png_of

    figure = figure_of(10, 3.2)
    panels = (("shorter side (px)", facts["sizes"]), ("aspect (width / height)", facts["aspects"]),
              ("format", facts["formats"]))
    for index, (title, counts) in enumerate(panels):
        axes = figure.add_subplot(1, 3, index + 1)
        labels = list(counts)
        axes.bar(range(len(labels)), [counts[k] for k in labels], color="#4a7ab5")
        axes.set_xticks(range(len(labels)), labels, rotation=30, ha="right", fontsize=7)
        axes.set_title(title, fontsize=9)
        axes.set_ylabel("originals", fontsize=8)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # counts of images
    figure.tight_layout()
    return png_of(figure)
