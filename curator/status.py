"""What the catalog holds, in numbers: ``curator status``.

:func:`collect` returns one plain dict, built from independent parts so that
other stages can add theirs: ``labels`` is filled by :func:`curator.labeling.summary`
when that module is present (None until then).
"""

from __future__ import annotations

import itertools
import sqlite3
from collections import Counter
from typing import Any

from curator import groups
from curator.workspace import Workspace


def collect(ws: Workspace) -> dict[str, Any]:
    conn = ws.conn
    return {
        "workspace": str(ws.root),
        "dataset": ws.config.dataset.name,
        "classes": list(ws.config.dataset.classes),
        "images": _scalar(conn, "SELECT COUNT(*) FROM images"),
        "bytes": _scalar(conn, "SELECT COALESCE(SUM(bytes), 0) FROM images"),
        "clusters": _clusters(conn),
        "sources": _sources(conn),
        "rejected_by_reason": _rejections(conn),
        "hints": _hints(conn, ws.config.dataset.classes),
        "groups": groups.counts(conn, ws.config.groups),
        "labels": _labels(ws),
        "open_findings": _open_findings(conn),
        "collections": _collections(conn),
    }


LISTS = "(lists and folders)"  # sources not from a table or Hub dataset


def _collections(conn: sqlite3.Connection) -> dict[str, Any]:
    """Images per collection (table file or Hub repo), and per pair of collections the
    near-duplicate clusters (the same photo, or a copy of it) that both reached."""
    found: dict[int, set[str]] = {}
    for cluster_id, collection in conn.execute(
        "SELECT DISTINCT i.cluster_id, COALESCE(s.collection, ?) FROM sources s "
        "JOIN images i ON i.sha256 = s.sha256", (LISTS,)
    ):
        found.setdefault(cluster_id, set()).add(collection)
    images = Counter(c for c, in conn.execute(
        "SELECT COALESCE(s.collection, ?) FROM sources s WHERE s.sha256 IS NOT NULL "
        "GROUP BY COALESCE(s.collection, ?), s.sha256", (LISTS, LISTS)))
    pairs = Counter(pair for names in found.values() for pair in itertools.combinations(sorted(names), 2))
    return {
        "images": dict(sorted(images.items())),
        "shared_clusters": [{"collections": list(pair), "clusters": n} for pair, n in sorted(pairs.items())],
    }


def _open_findings(conn: sqlite3.Connection) -> dict[str, int]:
    """Undecided review findings per kind (curator review)."""
    from curator.review import findings

    return findings.open_counts(conn)


def _scalar(conn: sqlite3.Connection, sql: str) -> int:
    return int(conn.execute(sql).fetchone()[0])


def _clusters(conn: sqlite3.Connection) -> dict[str, int]:
    """Clusters with at least one image; 'with_near_duplicates' have two images or more."""
    sizes = [row[0] for row in conn.execute("SELECT COUNT(*) FROM images GROUP BY cluster_id")]
    return {
        "total": len(sizes),
        "with_near_duplicates": sum(1 for n in sizes if n > 1),
        "images_in_shared_clusters": sum(n for n in sizes if n > 1),
    }


def _sources(conn: sqlite3.Connection) -> dict[str, int]:
    row = conn.execute(
        """
        SELECT COUNT(*) AS total,
               COALESCE(SUM(outcome = 'stored'), 0) AS stored,
               COALESCE(SUM(outcome = 'duplicate' AND reason = 'exact'), 0) AS exact_duplicates,
               COALESCE(SUM(outcome = 'duplicate' AND reason = 'near'), 0) AS near_duplicates,
               COALESCE(SUM(outcome = 'rejected'), 0) AS rejected,
               COALESCE(SUM(outcome = 'rejected' AND transient = 1), 0) AS retryable,
               COALESCE(SUM(outcome IS NULL), 0) AS pending
        FROM sources
        """
    ).fetchone()
    return {key: int(row[key]) for key in row.keys()}


def _rejections(conn: sqlite3.Connection) -> dict[str, int]:
    rows = conn.execute(
        "SELECT reason, COUNT(*) FROM sources WHERE outcome = 'rejected' GROUP BY reason ORDER BY 2 DESC, 1"
    )
    return {str(reason): int(n) for reason, n in rows}


def _hints(conn: sqlite3.Connection, classes: tuple[str, ...]) -> dict[str, Any]:
    """Images per label hint (an image counts once per distinct hint among its sources)."""
    rows = conn.execute(
        """
        SELECT hint, COUNT(DISTINCT sha256) FROM sources
        WHERE sha256 IS NOT NULL AND hint IS NOT NULL GROUP BY hint ORDER BY hint
        """
    ).fetchall()
    per_class = {name: 0 for name in classes}
    other: dict[str, int] = {}
    for hint, n in rows:
        if hint in per_class:
            per_class[hint] = int(n)
        else:
            other[str(hint)] = int(n)
    without = _scalar(
        conn,
        "SELECT COUNT(*) FROM images i WHERE NOT EXISTS "
        "(SELECT 1 FROM sources s WHERE s.sha256 = i.sha256 AND s.hint IS NOT NULL)",
    )
    return {"per_class": per_class, "not_a_class": other, "images_without_hint": without}


def _labels(ws: Workspace) -> dict[str, Any] | None:
    """The labels part (helper 'labels' owns it): labeling.summary, when that module exists."""
    try:
        from curator import labeling
    except ImportError:
        return None
    summary: dict[str, Any] = labeling.summary(ws.conn, ws.config)
    return summary
