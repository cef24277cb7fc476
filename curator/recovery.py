"""Start-up repair of what a killed command can leave in ``releases/``.

A release build renames its folder into place and then commits its catalog row
(curator.release), holding a lock on ``releases/`` (flock) throughout. So when no build
holds the lock, anything that does not match the catalog is left over from a kill:

    .vX.Y.Z.*.tmp            a temp folder (build, removal) or file    -> removed
    vX.Y.Z/ without a row    killed between rename and commit         -> removed (a rerun rebuilds it)
    a row without vX.Y.Z/    (older builds committed before renaming) -> rolled back, unless a
                                                                         publish or later release needs it
"""

from __future__ import annotations

import re
import shutil
import sqlite3
from pathlib import Path

from curator import catalog
from curator.fsutil import remove_tree, try_lock

_RELEASE_DIR = re.compile(r"v(\d+\.\d+\.\d+)")


def reconcile(root: Path, conn: sqlite3.Connection) -> list[str]:
    """Repair ``root/releases`` and the catalog after a kill; what was repaired, one line each."""
    releases = root / "releases"
    if not releases.is_dir():
        return []
    with try_lock(releases) as held:
        if not held:
            return []  # a build is running: what is there is its own
        repaired = _remove_leftovers(releases, conn)
        repaired += _roll_back_missing(releases, conn)
    return repaired


def _remove_leftovers(releases: Path, conn: sqlite3.Connection) -> list[str]:
    recorded = {row[0] for row in conn.execute("SELECT version FROM releases")}
    repaired = []
    for entry in sorted(releases.iterdir()):
        match = _RELEASE_DIR.fullmatch(entry.name)
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            if entry.is_dir():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            repaired.append(f"removed the temp folder {entry.name} left by an interrupted command")
        elif match and entry.is_dir() and match.group(1) not in recorded:
            remove_tree(entry)
            repaired.append(f"removed {entry.name}, a release folder whose build was interrupted")
    return repaired


def _roll_back_missing(releases: Path, conn: sqlite3.Connection) -> list[str]:
    rows = conn.execute(
        "SELECT version FROM releases r"
        " WHERE NOT EXISTS (SELECT 1 FROM publishes p WHERE p.version = r.version)"
        " AND NOT EXISTS (SELECT 1 FROM releases c WHERE c.parent = r.version)"
    ).fetchall()
    missing = [row[0] for row in rows if not (releases / f"v{row[0]}").is_dir()]
    if not missing:
        return []
    with catalog.atomic(conn):
        for version in missing:
            conn.execute("DELETE FROM image_splits WHERE first_version = ?", (version,))
            conn.execute("DELETE FROM releases WHERE version = ?", (version,))
    return [f"rolled back release v{v}: its folder is missing" for v in missing]
