"""Annotators of ``curator serve``: a name and a secret token each.

The token is shown once (in the annotator's link) and stored only as its sha256: it is
32 random bytes, so a plain hash cannot be guessed back. Since it cannot be shown again,
``curator serve`` gives each annotator a new token (:func:`renew`) when it starts. :func:`lookup` reads the
catalog on every call, so a revoked token stops working at the next request.
A revoked name can be added again; it gets a new token.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
from dataclasses import dataclass

from curator import catalog, labeling
from curator.errors import InputError


@dataclass(frozen=True)
class Annotator:
    name: str
    created_at: str
    revoked_at: str | None

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "created_at": self.created_at, "revoked_at": self.revoked_at}


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add(conn: sqlite3.Connection, name: str) -> str:
    """Add an annotator (or re-admit a revoked one with a new token); return the token."""
    name = labeling.check_annotator(name)
    token = secrets.token_urlsafe(32)
    with catalog.atomic(conn):
        row = conn.execute("SELECT revoked_at FROM annotators WHERE name = ?", (name,)).fetchone()
        if row is not None and row[0] is None:
            raise InputError(f"annotator {name!r} already exists; `curator annotators revoke {name}` first "
                             "to give them a new link")
        conn.execute(
            "INSERT OR REPLACE INTO annotators (name, token_hash, created_at, revoked_at)"
            " VALUES (?, ?, ?, NULL)",
            (name, token_hash(token), catalog.utcnow()),
        )
    return token


def renew(conn: sqlite3.Connection, name: str) -> str:
    """A new token for an active annotator (their old link stops working); return it."""
    token = secrets.token_urlsafe(32)
    with catalog.atomic(conn):
        changed = conn.execute(
            "UPDATE annotators SET token_hash = ? WHERE name = ? AND revoked_at IS NULL",
            (token_hash(token), name),
        ).rowcount
    if not changed:
        raise InputError(f"no active annotator named {name!r}")
    return token


def revoke(conn: sqlite3.Connection, name: str) -> None:
    with catalog.atomic(conn):
        changed = conn.execute(
            "UPDATE annotators SET revoked_at = ? WHERE name = ? AND revoked_at IS NULL",
            (catalog.utcnow(), name),
        ).rowcount
    if not changed:
        raise InputError(f"no active annotator named {name!r}")


def listing(conn: sqlite3.Connection) -> list[Annotator]:
    rows = conn.execute("SELECT name, created_at, revoked_at FROM annotators ORDER BY name")
    return [Annotator(*row) for row in rows]


def active(conn: sqlite3.Connection, name: str) -> bool:
    row = conn.execute("SELECT 1 FROM annotators WHERE name = ? AND revoked_at IS NULL", (name,)).fetchone()
    return row is not None


def lookup(conn: sqlite3.Connection, token: str) -> str | None:
    """The active annotator whose token this is, else None."""
    row = conn.execute(
        "SELECT name FROM annotators WHERE token_hash = ? AND revoked_at IS NULL", (token_hash(token),)
    ).fetchone()
    return None if row is None else str(row[0])
