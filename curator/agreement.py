"""Inter-annotator agreement on nominal labels.

    cohen_kappa(pairs)                 two annotators, every item rated by both
    fleiss_kappa(items)                k >= 2 annotators, every item rated by the same number
    krippendorff_alpha(units)          any number of annotators, partial overlap allowed
    landis_koch(value)                 the usual reading of a kappa-like value
    measure(ratings)                   picks one of the three for a set of ratings

Each function returns ``None`` where the statistic is undefined (no items, or
chance agreement is already perfect, e.g. every rating is the same class).

Formulas (p_o observed, p_e expected agreement):

* Cohen: kappa = (p_o - p_e) / (1 - p_e), p_e = sum_c p_A(c) * p_B(c).
* Fleiss: P_i = (sum_c n_ic^2 - n) / (n (n - 1)) per item with n ratings,
  p_o = mean P_i, p_c = (sum_i n_ic) / (N n), p_e = sum_c p_c^2.
* Krippendorff (nominal): coincidences o_ck = sum over units with m_u >= 2
  ratings of (ordered c,k pairs in the unit) / (m_u - 1); n_c = sum_k o_ck,
  n = sum_c n_c; alpha = 1 - (n - 1) * sum_{c != k} o_ck / sum_{c != k} n_c n_k.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Cohen's kappa for two annotators; ``pairs`` is (label by A, label by B) per item."""
    n = len(pairs)
    if n == 0:
        return None
    observed = sum(1 for a, b in pairs if a == b) / n
    count_a = Counter(a for a, _ in pairs)
    count_b = Counter(b for _, b in pairs)
    expected = sum(count_a[c] * count_b[c] for c in count_a) / (n * n)
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def fleiss_kappa(items: Sequence[Sequence[str]]) -> float | None:
    """Fleiss' kappa; every item carries the same number (>= 2) of ratings."""
    if not items:
        return None
    n = len(items[0])
    if n < 2 or any(len(item) != n for item in items):
        raise ValueError("fleiss_kappa needs the same number (>= 2) of ratings per item")
    totals: Counter[str] = Counter()
    p_items = []
    for item in items:
        counts = Counter(item)
        totals.update(counts)
        p_items.append((sum(v * v for v in counts.values()) - n) / (n * (n - 1)))
    observed = sum(p_items) / len(items)
    expected = sum((v / (len(items) * n)) ** 2 for v in totals.values())
    if expected >= 1.0:
        return None
    return (observed - expected) / (1.0 - expected)


def krippendorff_alpha(units: Sequence[Sequence[str]]) -> float | None:
    """Krippendorff's alpha for nominal data; units with fewer than two ratings are ignored."""
    coincidence: defaultdict[tuple[str, str], float] = defaultdict(float)
    for unit in units:
        m = len(unit)
        if m < 2:
            continue
        counts = Counter(unit)
        for c, n_c in counts.items():
            for k, n_k in counts.items():
                pairs = n_c * (n_c - 1) if c == k else n_c * n_k
                if pairs:
                    coincidence[(c, k)] += pairs / (m - 1)
    marginals: defaultdict[str, float] = defaultdict(float)
    for (c, _), value in coincidence.items():
        marginals[c] += value
    n = sum(marginals.values())
    if n <= 1:
        return None
    disagree = sum(v for (c, k), v in coincidence.items() if c != k)
    expected = sum(marginals[c] * marginals[k] for c in marginals for k in marginals if c != k)
    if expected == 0:
        return None
    return 1.0 - (n - 1) * disagree / expected


READINGS = (
    (0.20, "slight"),
    (0.40, "fair"),
    (0.60, "moderate"),
    (0.80, "substantial"),
    (1.00, "almost perfect"),
)


def landis_koch(value: float | None) -> str:
    """Landis & Koch (1977): poor < 0 <= slight <= .20 < fair <= .40 < moderate <= .60
    < substantial <= .80 < almost perfect."""
    if value is None:
        return "undefined"
    if value < 0:
        return "poor"
    for upper, reading in READINGS:
        if value <= upper + 1e-12:
            return reading
    return "almost perfect"


@dataclass(frozen=True)
class Agreement:
    method: str  # 'cohen', 'fleiss' or 'krippendorff'
    value: float | None
    items: int  # items rated by two or more annotators
    annotators: tuple[str, ...]
    reading: str

    def as_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "value": None if self.value is None else round(self.value, 4),
            "items": self.items,
            "annotators": list(self.annotators),
            "reading": self.reading,
        }


def measure(ratings: Mapping[str, Mapping[str, str]]) -> Agreement | None:
    """Agreement over ``item -> {annotator: label}``, or None when no item has two annotators.

    Only items rated by two or more annotators count. Two annotators in all: Cohen's
    kappa. More, each overlapping item rated by all of them: Fleiss' kappa. Otherwise
    (partial overlap): Krippendorff's alpha.
    """
    overlap = {item: dict(r) for item, r in ratings.items() if len(r) >= 2}
    if not overlap:
        return None
    names = tuple(sorted({a for r in overlap.values() for a in r}))
    if len(names) == 2:
        first, second = names
        value = cohen_kappa([(r[first], r[second]) for r in overlap.values()])
        method = "cohen"
    elif all(len(r) == len(names) for r in overlap.values()):
        value = fleiss_kappa([list(r.values()) for r in overlap.values()])
        method = "fleiss"
    else:
        value = krippendorff_alpha([list(r.values()) for r in overlap.values()])
        method = "krippendorff"
    return Agreement(method, value, len(overlap), names, landis_koch(value))
