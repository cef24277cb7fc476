"""Every error curator raises on purpose.

    CuratorError                 one line for the user: what went wrong with which input
    ├── WorkspaceError           no workspace here, or one that is broken
    ├── ConfigError              curator.toml: unknown key, bad value (names the key)
    ├── InputError               a file or argument given on the command line is unusable
    ├── CatalogError             the catalog refused a change (schema too new, constraint)
    │   └── BusyError            another curator command holds the write lock too long
    ├── EngineError              --engine ray: Ray missing, or its cluster unreachable
    ├── ReleaseError             a release cannot be built, found or read
    ├── PublishError             the Hub or target folder refused a publish
    │   └── AuthError            missing or rejected token
    └── BaselineError            a baseline cannot be trained or scored

Per-item problems inside a batch (a dead URL, a non-image) are *not* exceptions:
they become outcomes stored with the source (see ingest). Stages translate
third-party errors with ``raise CuratorError(...) from err``; the CLI turns any
CuratorError into ``Error: <message>`` plus an optional hint, and an exit code
from its one table (``curator.cli.errors.EXIT_CODES``).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class CuratorError(Exception):
    """Base class. ``message`` is one line; the optional fields name the culprit: which input
    (``path``, ``url``, ``sha256``, a setting or field ``key`` and its ``value``) and a short
    machine-readable ``reason`` (e.g. 'changed', 'unknown-version')."""

    message: str
    hint: str | None = None
    path: str | None = None
    url: str | None = None
    sha256: str | None = None
    key: str | None = None
    value: str | None = None
    reason: str | None = None

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        return self.message


class WorkspaceError(CuratorError):
    pass


class ConfigError(CuratorError):
    pass


class InputError(CuratorError):
    pass


class CatalogError(CuratorError):
    pass


class BusyError(CatalogError):
    pass


class EngineError(CuratorError):
    pass


class ReleaseError(CuratorError):
    pass


class PublishError(CuratorError):
    pass


class AuthError(PublishError):
    pass


class BaselineError(CuratorError):
    pass


# Exit codes by name; curator.cli.errors maps the error classes to them.
EXIT_OK = 0
EXIT_ERROR = 1
EXIT_USAGE = 2  # click's own code for bad flags
EXIT_WORKSPACE = 3
EXIT_CONFIG = 4
EXIT_INPUT = 5
EXIT_AUTH = 6
EXIT_GATE = 7  # a regression gate (baseline --fail-under / --max-drop) failed
EXIT_BUSY = 8  # another curator command is writing the workspace
EXIT_INTERRUPTED = 130
