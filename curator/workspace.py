"""A workspace: the folder that holds one dataset's settings, catalog, objects and releases.

    <workspace>/
    ├── curator.toml       settings (curator.config)
    ├── catalog.sqlite     the catalog (curator.catalog)
    ├── objects/           original bytes (curator.store)
    └── releases/vX.Y.Z/   built releases (curator.release)
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from curator import catalog, config, recovery
from curator.errors import InputError, WorkspaceError
from curator.fsutil import write_atomic

ENV_VAR = "CURATOR_WORKSPACE"


@dataclass
class Workspace:
    root: Path
    config: config.Config
    repairs: list[str] = field(default_factory=list)  # what recovery.reconcile fixed on opening

    @property
    def objects(self) -> Path:
        return self.root / "objects"

    @property
    def releases(self) -> Path:
        return self.root / "releases"

    @property
    def catalog_path(self) -> Path:
        return self.root / "catalog.sqlite"

    @cached_property
    def conn(self) -> sqlite3.Connection:
        return catalog.connect(self.catalog_path)

    def close(self) -> None:
        if "conn" in self.__dict__:
            self.conn.close()
            del self.__dict__["conn"]


def locate(explicit: str | Path | None = None) -> Path:
    """The workspace folder: ``--workspace``, else ``$CURATOR_WORKSPACE``, else the current folder."""
    chosen = explicit or os.environ.get(ENV_VAR) or os.getcwd()
    return Path(chosen).expanduser().resolve()


def open_workspace(explicit: str | Path | None = None) -> Workspace:
    root = locate(explicit)
    toml = root / config.CONFIG_FILE
    if not toml.is_file():
        raise WorkspaceError(
            f"{root} is not a curator workspace (no {config.CONFIG_FILE})",
            reason="not-a-workspace",
            path=str(root),
        )
    if not (root / "catalog.sqlite").is_file():
        raise WorkspaceError(
            f"{root}: catalog.sqlite is missing; the workspace is incomplete", path=str(root)
        )
    ws = Workspace(root=root, config=config.load(toml))
    ws.repairs = recovery.reconcile(root, ws.conn)
    return ws


def init_workspace(root: Path, name: str, classes: list[str]) -> Workspace:
    """Create a workspace in ``root`` (made if missing). Refuses to touch an existing one."""
    root = Path(root).expanduser().resolve()
    toml_path = root / config.CONFIG_FILE
    if toml_path.exists() or (root / "catalog.sqlite").exists():
        raise WorkspaceError(f"{root} already holds a curator workspace", path=str(root))
    if not config.CLASS_NAME.match(name):
        raise InputError(f"dataset name {name!r} is invalid (use a-z, 0-9, '-', '_')")
    text = config.default_toml(name, classes)
    cfg = config.from_dict(tomllib.loads(text))  # validates the classes
    created_root = not root.exists()
    try:
        root.mkdir(parents=True, exist_ok=True)
        (root / "objects").mkdir(exist_ok=True)
        conn = catalog.connect(root / "catalog.sqlite")
        conn.close()
        # The settings file goes last: a folder without it is not a workspace yet.
        write_atomic(toml_path, text)
    except BaseException:
        for leftover in ("catalog.sqlite", "catalog.sqlite-wal", "catalog.sqlite-shm"):
            (root / leftover).unlink(missing_ok=True)
        if created_root:
            shutil.rmtree(root, ignore_errors=True)
        raise
    return Workspace(root=root, config=cfg)
