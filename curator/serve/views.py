"""What the read-only pages of ``curator serve`` show, as JSON-ready dicts."""

from __future__ import annotations

import sqlite3
from typing import Any

from curator import dedup, labeling
from curator.review import findings
from curator.workspace import Workspace

BROWSE_FILTERS = ("label", "split", "source", "finding")
BROWSE_LIMIT = 500  # images per page of the grid


def duplicate_clusters(conn: sqlite3.Connection) -> list[dict[str, Any]]:
    """Each near-duplicate cluster, representative first; each member's Hamming distance to
    it and why ingest put it there (its sources' duplicate reasons: exact or near)."""
    reasons: dict[str, set[str]] = {}
    for sha, reason in conn.execute(
        "SELECT sha256, reason FROM sources WHERE outcome = 'duplicate' AND sha256 IS NOT NULL"
    ):
        reasons.setdefault(sha, set()).add(reason or "near")
    result = []
    for cluster in dedup.clusters(conn):
        members = [
            {"sha256": m.sha256, "width": m.width, "height": m.height, "distance": m.distance,
             "representative": m.sha256 == cluster.representative,
             "reason": "representative" if m.sha256 == cluster.representative
             else ", ".join(sorted(reasons.get(m.sha256, {"near"}))),
             "sources": list(m.urls)}
            for m in cluster.members
        ]
        result.append({"id": cluster.id, "representative": cluster.representative, "members": members})
    return result


def browse(ws: Workspace, filters: dict[str, str]) -> dict[str, Any]:
    """The catalog as a grid grouped by label, with each image's split and open findings,
    filtered by label, split, source (a substring of any source) and finding kind."""
    conn = ws.conn
    labels = labeling.current_labels(conn, ws.config)
    splits = dict(conn.execute("SELECT sha256, split FROM image_splits").fetchall())
    sources: dict[str, list[str]] = {}
    for sha, locator in conn.execute("SELECT sha256, locator FROM sources WHERE sha256 IS NOT NULL"):
        sources.setdefault(sha, []).append(locator)
    found: dict[str, list[str]] = {}
    for item in findings.listing(conn):
        found.setdefault(item["sha256"], []).append(item["kind"])
    images = []
    for (sha,) in conn.execute("SELECT sha256 FROM images ORDER BY created_at, sha256"):
        label = labels.get(sha, "")
        row = {"sha256": sha, "label": "excluded" if label == labeling.EXCLUDED else label,
               "split": splits.get(sha, ""), "findings": found.get(sha, []),
               "source": (sources.get(sha) or [""])[0]}
        if _matches(row, sources.get(sha, []), filters):
            images.append(row)
    return {"total": len(images), "images": images[:BROWSE_LIMIT], "classes": list(ws.config.dataset.classes),
            "kinds": sorted({k for kinds in found.values() for k in kinds})}


def _matches(row: dict[str, Any], sources: list[str], filters: dict[str, str]) -> bool:
    if filters.get("label") and row["label"] != filters["label"]:
        return False
    if filters.get("split") and row["split"] != filters["split"]:
        return False
    if filters.get("source") and not any(filters["source"] in s for s in sources):
        return False
    return not (filters.get("finding") and filters["finding"] not in row["findings"])


def disagreements(ws: Workspace) -> dict[str, Any]:
    """Images whose annotators (people, not hints) gave different labels, each with every
    annotator's label and the label the conflict policy resolves to (None: a tie)."""
    state = labeling.load_state(ws.conn)
    items = []
    for sha, votes in state.votes.items():
        people = {a: v for a, v in votes.items() if a != labeling.HINT_ANNOTATOR}
        if len(set(people.values())) > 1:
            items.append({"sha256": sha, "votes": dict(sorted(people.items())),
                          "resolved": labeling.resolve(votes, ws.config)})
    return {"adjudicator": ws.config.labels.adjudicator, "policy": ws.config.labels.policy,
            "classes": list(ws.config.dataset.classes), "images": items}
