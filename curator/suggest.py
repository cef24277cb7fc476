"""Model suggestions while labeling, and the blind subset that never sees them.

Probabilities
    ``curator review --run`` stores the class probabilities it was given (``--with-cv``: the
    out-of-fold models of curator.review.oof; ``--probabilities FILE``: the file's) in the
    ``label_suggestions`` table (migration 8), replacing the previous model's: the table
    always holds the latest model. ``curator label --suggest`` shows an image's top two
    classes from it, and ``--order uncertain`` puts the smallest margins (top1 - top2) first.

Blind subset (``[labels] blind_fraction``)
    An image is blind when a hash of its sha256 falls in the first ``blind_fraction`` of
    the hash range: the same images for every run and every annotator, and a larger
    fraction only adds images. A blind image never shows a suggestion, a hint or another
    annotator's label, so the agreement measured on it is free of anchoring. A cluster is
    blind when its representative is.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from collections.abc import Mapping, Sequence

from curator import catalog
from curator.errors import InputError

NO_PROBABILITIES = ("no model probabilities are stored in this workspace; "
                    "run `curator review --run --with-cv` first")

Top = tuple[tuple[str, float], tuple[str, float]]
"""An image's two likeliest classes with their probabilities, likeliest first."""


def save(conn: sqlite3.Connection, classes: Sequence[str], probabilities: Mapping[str, Sequence[float]],
         source: str) -> int:
    """Replace the stored probabilities with these (sha256 -> per class, in ``classes`` order),
    in one transaction; images not in the catalog are left out. Returns the rows stored."""
    known = {row[0] for row in conn.execute("SELECT sha256 FROM images")}
    now = catalog.utcnow()
    rows = [
        (sha, json.dumps(dict(zip(classes, map(float, probs), strict=True)), sort_keys=True), source, now)
        for sha, probs in sorted(probabilities.items()) if sha in known
    ]
    with catalog.atomic(conn):
        conn.execute("DELETE FROM label_suggestions")
        conn.executemany(
            "INSERT INTO label_suggestions (sha256, probabilities, source, at) VALUES (?, ?, ?, ?)", rows)
    return len(rows)


def top_two(conn: sqlite3.Connection, classes: Sequence[str]) -> dict[str, Top]:
    """sha256 -> its two likeliest classes, for every image with stored probabilities for
    exactly these classes (a model trained before the class list changed is ignored)."""
    result: dict[str, Top] = {}
    for sha, text in conn.execute("SELECT sha256, probabilities FROM label_suggestions"):
        probs: dict[str, float] = json.loads(text)
        if set(probs) != set(classes):
            continue
        first, second = sorted(probs.items(), key=lambda kv: (-kv[1], classes.index(kv[0])))[:2]
        result[sha] = (first, second)
    return result


def required(conn: sqlite3.Connection, classes: Sequence[str], flag: str) -> dict[str, Top]:
    """:func:`top_two`, or the InputError telling the user how to compute them."""
    found = top_two(conn, classes)
    if not found:
        raise InputError(f"{flag}: {NO_PROBABILITIES}")
    return found


def margin(top: Top) -> float:
    return top[0][1] - top[1][1]


def is_blind(sha256: str, fraction: float) -> bool:
    """Whether the image is in the blind subset (salted, so it is independent of other uses
    of the sha256 such as object paths)."""
    if fraction <= 0.0:
        return False
    digest = hashlib.sha256(b"curator-blind:" + sha256.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < fraction


def describe(top: Top) -> str:
    """``model: psoriasis 0.71, alopecia 0.20`` as the prompt shows it."""
    return "model: " + ", ".join(f"{name} {p:.2f}" for name, p in top)
