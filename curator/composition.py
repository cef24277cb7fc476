"""Composition facts of a release for its card: the originals' sizes, aspects and formats (a
table and one plot), and their skin tone per class and split: the type a source supplied
(Fitzpatrick, Monk) where it did, else the ITA estimate (curator.skintone), and the two compared.

The plot is a PNG written with fixed metadata (no software tag, no timestamp), so the same
facts give the same bytes and a rebuilt release stays byte-identical.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from curator import provenance, skintone

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


@dataclass(frozen=True)
class Tone:
    """One released original for the skin-tone facts: its ITA estimate and any supplied types."""

    label: str
    split: str
    ita: float | None
    fitzpatrick: int | None = None
    monk: int | None = None

    def supplied(self) -> bool:
        return self.fitzpatrick is not None or self.monk is not None


def skin_tone_facts(tones: Sequence[Tone], classes: Sequence[str], splits: Sequence[str]) -> dict[str, Any]:
    """Per class and split: the skin types the sources supplied (``supplied``, per scale, only
    for scales some source used), the ITA bands of the originals with no supplied type
    (``per_class``, ``per_split``), and per scale the supplied type against the ITA band of the
    same originals (``comparison``)."""
    estimated = [t for t in tones if not t.supplied()]
    facts: dict[str, Any] = {
        "per_class": {c: skintone.distribution([t.ita for t in estimated if t.label == c]) for c in classes},
        "per_split": {s: skintone.distribution(v) for s in splits
                      if (v := [t.ita for t in estimated if t.split == s])},
        "supplied": {}, "comparison": {},
    }
    for scale, top in provenance.SKIN_SCALES.items():
        pairs = [(t, value) for t in tones if (value := getattr(t, scale)) is not None]
        if not pairs:
            continue
        types = range(1, top + 1)
        facts["supplied"][scale] = {
            "per_class": {c: _per_type([v for t, v in pairs if t.label == c], types) for c in classes},
            "per_split": {s: _per_type(found, types) for s in splits
                          if (found := [v for t, v in pairs if t.split == s])},
        }
        facts["comparison"][scale] = compare(scale, [(v, t.ita) for t, v in pairs])
    return facts


def _per_type(values: Sequence[int], types: Iterable[int]) -> dict[str, int]:
    counts = Counter(values)
    return {str(k): counts[k] for k in types}


def compare(scale: str, pairs: Sequence[tuple[int, float | None]]) -> dict[str, Any]:
    """A supplied type against the ITA estimate of the same images: a cross-table (type ->
    band -> images), and over those with an estimate the rank correlation between the type and
    -ITA (darker both ways: 1 is the same order); for Fitzpatrick also how many fall in the band
    of the usual correspondence (I very light ... VI dark) or one band off it."""
    table = {str(k): dict.fromkeys((*skintone.BAND_NAMES, skintone.UNKNOWN), 0)
             for k in range(1, provenance.SKIN_SCALES[scale] + 1)}
    for value, ita in pairs:
        table[str(value)][skintone.band(ita)] += 1
    known = [(value, ita) for value, ita in pairs if ita is not None]
    rho = rank_correlation([value for value, _ in known], [-ita for _, ita in known])
    result: dict[str, Any] = {"table": table, "images": len(pairs), "estimated": len(known),
                              "rank_correlation": rho}
    if scale == "fitzpatrick":
        steps = [abs(skintone.BAND_NAMES.index(skintone.band(ita)) - (value - 1)) for value, ita in known]
        result.update(same_band=sum(1 for d in steps if d == 0), within_one=sum(1 for d in steps if d <= 1))
    return result


def rank_correlation(xs: Sequence[float], ys: Sequence[float]) -> float | None:
    """Spearman's rho (ties get their mean rank), rounded; None under 3 pairs or without spread."""
    if len(xs) < 3:
        return None
    try:
        return round(statistics.correlation(_ranks(xs), _ranks(ys)), 2)
    except statistics.StatisticsError:  # a constant input
        return None


def _ranks(values: Sequence[float]) -> list[float]:
    order = sorted(range(len(values)), key=values.__getitem__)
    ranks = [0.0] * len(values)
    start = 0
    while start < len(order):
        end = start
        while end + 1 < len(order) and values[order[end + 1]] == values[order[start]]:
            end += 1
        for position in order[start:end + 1]:
            ranks[position] = (start + end) / 2 + 1
        start = end + 1
    return ranks


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
