"""Findings and reviewers' decisions in the catalog (tables of migration 6).

A finding is one (image, kind, verdict): ``verdict`` is what was found beyond the kind
(a label issue's suggested label; empty for the other kinds; the check's name for an
``error``). When a check runs again (:func:`save`), a finding it still makes keeps its row,
and so its decisions, with the new score, version and parameters; one it no longer makes
is set inactive; a new one (or one whose verdict changed) is a new, open row. So a new
check version re-opens only what it changes.

Decisions are events (:func:`decide`, :func:`undo`) like label events: reviewer, time,
decision, previous decision; never updated or deleted. A finding's status is the
decision of its latest event, or ``open``. A ``relabel`` decision also records the new
label as a label event by the reviewer (action ``review``), and its undo restores the
reviewer's label before it; those events record a suggestion as shown (``suggested``)
for label issues, whose finding is the model's suggestion, and as not shown otherwise.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from curator import catalog, labeling
from curator.config import config_hash
from curator.errors import InputError
from curator.review.quality import Result

DECISIONS = ("keep", "relabel", "exclude", "not-a-problem")
OPEN = "open"
ERROR = "error"


@dataclass(frozen=True)
class Check:
    """What ran: a check's name, the kinds it can find, its version and parameters."""

    name: str
    kinds: tuple[str, ...]
    version: str
    params: Mapping[str, Any]

    @property
    def params_hash(self) -> str:
        return config_hash({"version": self.version, "params": dict(self.params)})


Outcome = Sequence[Result] | str
"""A check's outcome on one image: its results (flagged or not), or why it failed."""


def stale(conn: sqlite3.Connection, check: Check, images: Iterable[str]) -> list[str]:
    """The images that ``check`` at this version and these parameters has not looked at."""
    done = {
        row[0] for row in conn.execute(
            "SELECT sha256 FROM review_checks WHERE check_name = ? AND version = ? AND params_hash = ?",
            (check.name, check.version, check.params_hash),
        )
    }
    return [sha for sha in images if sha not in done]


def save(conn: sqlite3.Connection, check: Check, outcomes: Mapping[str, Outcome]) -> None:
    """Store one check's outcomes for some images, in one transaction."""
    now = catalog.utcnow()
    params = json.dumps(dict(check.params), sort_keys=True)
    with catalog.atomic(conn):
        for sha, outcome in outcomes.items():
            if isinstance(outcome, str):  # the image's other findings stay as they were
                found = [Result(ERROR, 1.0, {"check": check.name, "reason": outcome})]
                verdicts = {ERROR: check.name}
            else:
                found = [r for r in outcome if r.flagged]
                verdicts = {r.kind: str(r.detail.get("suggested_label", "")) for r in found}
                _deactivate(conn, sha, ERROR, keep=None, verdict=check.name, now=now)
                for kind in check.kinds:
                    if kind not in verdicts:
                        _deactivate(conn, sha, kind, keep=None, now=now)
            for result in found:
                _upsert(conn, sha, result, verdicts[result.kind], check, params, now)
            conn.execute(
                "INSERT OR REPLACE INTO review_checks (sha256, check_name, version, params_hash, at)"
                " VALUES (?, ?, ?, ?, ?)",
                (sha, check.name, check.version, check.params_hash, now),
            )


def _deactivate(conn: sqlite3.Connection, sha: str, kind: str, *, keep: int | None, now: str,
                verdict: str | None = None) -> None:
    sql = "UPDATE review_findings SET active = 0, updated_at = ? WHERE sha256 = ? AND kind = ? AND active = 1"
    args: list[Any] = [now, sha, kind]
    if verdict is not None:
        sql += " AND verdict = ?"
        args.append(verdict)
    if keep is not None:
        sql += " AND id != ?"
        args.append(keep)
    conn.execute(sql, args)


def _upsert(conn: sqlite3.Connection, sha: str, result: Result, verdict: str, check: Check, params: str,
            now: str) -> None:
    """Keep (and refresh) the row of a finding made before, or start an open one."""
    row = conn.execute(
        "SELECT id FROM review_findings WHERE sha256 = ? AND kind = ? AND verdict = ?"
        " ORDER BY active DESC, id DESC LIMIT 1",
        (sha, result.kind, verdict),
    ).fetchone()
    if result.kind != ERROR:  # one active finding per kind: a changed verdict replaces the old
        _deactivate(conn, sha, result.kind, keep=None if row is None else row[0], now=now)
    detail = json.dumps(result.detail, sort_keys=True)
    if row is None:
        conn.execute(
            "INSERT INTO review_findings (sha256, kind, verdict, score, detail, check_version, params,"
            " active, found_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, 1, ?, ?)",
            (sha, result.kind, verdict, result.score, detail, check.version, params, now, now),
        )
    else:
        conn.execute(
            "UPDATE review_findings SET score = ?, detail = ?, check_version = ?, params = ?, active = 1,"
            " updated_at = ? WHERE id = ?",
            (result.score, detail, check.version, params, now, row[0]),
        )


# ---------------------------------------------------------------------------------------------
# Decisions


def status_of(conn: sqlite3.Connection, finding_id: int) -> str:
    row = conn.execute(
        "SELECT decision FROM review_events WHERE finding_id = ? ORDER BY id DESC LIMIT 1", (finding_id,)
    ).fetchone()
    return OPEN if row is None or row[0] is None else str(row[0])


def _finding(conn: sqlite3.Connection, finding_id: int) -> sqlite3.Row:
    row = conn.execute("SELECT * FROM review_findings WHERE id = ?", (finding_id,)).fetchone()
    if row is None:
        raise InputError(f"no finding with id {finding_id}")
    return row


def decide(conn: sqlite3.Connection, finding_id: int, reviewer: str, decision: str,
           label: str | None = None, classes: Sequence[str] = ()) -> str:
    """Record a decision on a finding in one committed transaction; return the previous status."""
    if decision not in DECISIONS:
        raise InputError(f"decision {decision!r} is not one of {', '.join(DECISIONS)}")
    if (decision == "relabel") != (label is not None):
        raise InputError("a 'relabel' decision needs a class, and only it takes one")
    if label is not None and label not in classes:
        raise InputError(f"class {label!r} is not one of {', '.join(classes)}")
    with catalog.atomic(conn):
        row = _finding(conn, finding_id)
        previous = status_of(conn, finding_id)
        conn.execute(
            "INSERT INTO review_events (finding_id, reviewer, decision, label, previous, action, at)"
            " VALUES (?, ?, ?, ?, ?, 'decide', ?)",
            (finding_id, reviewer, decision, label, None if previous == OPEN else previous, catalog.utcnow()),
        )
        if label is not None:
            labeling.record(conn, row["sha256"], reviewer, label, "review", row["kind"] == "label-issue")
    return previous


def undo(conn: sqlite3.Connection, finding_id: int, reviewer: str) -> str:
    """Undo the latest decision not yet undone (its previous status comes back, and a relabel's
    label event is undone too); return the status now. Undos go back one decision at a time."""
    with catalog.atomic(conn):
        row = _finding(conn, finding_id)
        stack: list[sqlite3.Row] = []
        events = conn.execute("SELECT * FROM review_events WHERE finding_id = ? ORDER BY id", (finding_id,))
        for event in events:
            if event["action"] == "undo":
                stack.pop()
            else:
                stack.append(event)
        if not stack:
            raise InputError(f"finding {finding_id} has no decision to undo")
        last = stack[-1]
        restored = last["previous"]
        conn.execute(
            "INSERT INTO review_events (finding_id, reviewer, decision, label, previous, action, at)"
            " VALUES (?, ?, ?, NULL, ?, 'undo', ?)",
            (finding_id, reviewer, restored, status_of(conn, finding_id), catalog.utcnow()),
        )
        if last["decision"] == "relabel":
            before = conn.execute(
                "SELECT previous FROM label_events WHERE sha256 = ? AND annotator = ? AND action = 'review'"
                " AND at <= ? ORDER BY id DESC LIMIT 1",
                (row["sha256"], last["reviewer"], last["at"]),
            ).fetchone()
            restored_label = None if before is None else before[0]
            labeling.record(conn, row["sha256"], last["reviewer"], restored_label, "undo",
                            row["kind"] == "label-issue")
    return OPEN if restored is None else str(restored)


# ---------------------------------------------------------------------------------------------
# Reading


def listing(conn: sqlite3.Connection, *, kind: str | None = None,
            open_only: bool = False) -> list[dict[str, Any]]:
    """The active findings, worst first: the items of ``curator review --list --json``."""
    sql = (
        "SELECT f.*, (SELECT e.decision FROM review_events e WHERE e.finding_id = f.id"
        " ORDER BY e.id DESC LIMIT 1) AS decision FROM review_findings f WHERE f.active = 1"
    )
    args: list[Any] = []
    if kind is not None:
        sql += " AND f.kind = ?"
        args.append(kind)
    items = []
    for row in conn.execute(sql + " ORDER BY f.score DESC, f.sha256, f.kind", args):
        status = row["decision"] or OPEN
        if open_only and status != OPEN:
            continue
        item: dict[str, Any] = {
            "id": row["id"], "sha256": row["sha256"], "kind": row["kind"], "score": round(row["score"], 4),
            "status": status, "detail": json.loads(row["detail"]), "check_version": row["check_version"],
            "params": json.loads(row["params"]),
        }
        if row["kind"] == "label-issue":
            item["given_label"] = item["detail"].get("given_label")
            item["suggested_label"] = item["detail"].get("suggested_label")
        items.append(item)
    return items


def open_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Open (undecided) active findings per kind."""
    counts: dict[str, int] = {}
    for item in listing(conn, open_only=True):
        counts[item["kind"]] = counts.get(item["kind"], 0) + 1
    return dict(sorted(counts.items()))


PRIVACY_KINDS = ("face", "eye")


def excluded(conn: sqlite3.Connection) -> set[str]:
    """Images whose latest decision on some finding is ``exclude``: they leave releases."""
    rows = conn.execute(
        "SELECT f.sha256 FROM review_findings f WHERE (SELECT e.decision FROM review_events e"
        " WHERE e.finding_id = f.id ORDER BY e.id DESC LIMIT 1) = 'exclude'"
    )
    return {row[0] for row in rows}


def open_privacy(conn: sqlite3.Connection, images: Iterable[str]) -> list[dict[str, Any]]:
    """The undecided face and eye findings among ``images``."""
    wanted = set(images)
    return [item for item in listing(conn, open_only=True)
            if item["kind"] in PRIVACY_KINDS and item["sha256"] in wanted]


def card_facts(conn: sqlite3.Connection, checks: Sequence[Check], released: Iterable[str]) -> dict[str, Any]:
    """What the card's "Data review" section says: the checks that ran, per kind found / decided /
    excluded / open among the released images, privacy decisions, label issues confirmed."""
    ran = {row[0]: int(row[1]) for row in conn.execute(
        "SELECT check_name || ' ' || version || ' ' || params_hash, COUNT(*) FROM review_checks GROUP BY 1")}
    runs = [{"name": c.name, "version": c.version, "params": dict(c.params),
             "images": ran.get(f"{c.name} {c.version} {c.params_hash}", 0)} for c in checks]
    wanted = set(released)
    kinds: dict[str, dict[str, int]] = {}
    privacy: dict[str, int] = {}
    known: list[dict[str, Any]] = []
    for item in listing(conn):
        counts = kinds.setdefault(item["kind"], {"found": 0, "decided": 0, "excluded": 0, "open_released": 0})
        counts["found"] += 1
        counts["decided"] += item["status"] != OPEN
        counts["excluded"] += item["status"] == "exclude"
        if item["kind"] in PRIVACY_KINDS and item["status"] != OPEN:
            privacy[item["status"]] = privacy.get(item["status"], 0) + 1
        if item["status"] == OPEN and item["sha256"] in wanted:
            counts["open_released"] += 1
            known.append({"sha256": item["sha256"], "kind": item["kind"], "score": item["score"]})
    labels = kinds.get("label-issue", {})
    confirmed = sum(item["status"] in ("relabel", "exclude") for item in listing(conn, kind="label-issue"))
    return {"checks": runs, "kinds": dict(sorted(kinds.items())), "privacy": dict(sorted(privacy.items())),
            "label_issues": {"found": labels.get("found", 0), "confirmed": confirmed},
            "known_issues": known}
