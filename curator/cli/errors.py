"""How the command line words errors: one table of exit codes, the error classes each one
covers, and the meaning README's "Exit codes" table gives it (tests/test_cli_errors.py checks
that README and this table agree).

An error is one line, ``Error: <what, naming the input>``, optionally followed by one
``Hint: <what to do>`` line; with ``--json`` both go into one JSON object on stderr.

Library errors name a command-line value by its parameter (``key``), never by a flag: a message
``"repo 'x': not a Hub repo id"`` with ``key="repo"`` is worded ``--repo 'x': ...`` here
(:func:`worded`), from the running command's own option, so flags are spelled in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

import click

from curator.errors import (
    EXIT_AUTH,
    EXIT_BUSY,
    EXIT_CONFIG,
    EXIT_ERROR,
    EXIT_GATE,
    EXIT_INPUT,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    EXIT_WORKSPACE,
    AuthError,
    BusyError,
    ConfigError,
    CuratorError,
    InputError,
    WorkspaceError,
)


@dataclass(frozen=True)
class ExitCode:
    code: int
    meaning: str  # as README's table words it
    errors: tuple[type[CuratorError], ...] = ()


EXIT_CODES: tuple[ExitCode, ...] = (
    ExitCode(EXIT_OK, "success"),
    ExitCode(EXIT_ERROR, "any other error (a refused release, a failed publish, leaks found by `audit`, "
                         "an internal error)", (CuratorError,)),
    ExitCode(EXIT_USAGE, "bad flags (click's usage error)"),
    ExitCode(EXIT_WORKSPACE, "no workspace here, or an existing one where `init` would create one",
             (WorkspaceError,)),
    ExitCode(EXIT_CONFIG, "a bad `curator.toml` (the message names the key)", (ConfigError,)),
    ExitCode(EXIT_INPUT, "a bad input file or argument (an unknown release version included)", (InputError,)),
    ExitCode(EXIT_AUTH, "a missing or rejected Hub token", (AuthError,)),
    ExitCode(EXIT_GATE, "a baseline gate (`--fail-under`, `--max-drop`, on test, validation or `cv.*` "
                        "scores) failed"),
    ExitCode(EXIT_BUSY, "the workspace is busy: another curator command is writing", (BusyError,)),
    ExitCode(EXIT_INTERRUPTED, "interrupted (Ctrl-C, in `curator label` too)"),
)


def exit_code_for(err: CuratorError) -> int:
    """The code of the most specific error class in the table that ``err`` is."""
    by_class = {cls: entry.code for entry in EXIT_CODES for cls in entry.errors}
    for cls in type(err).__mro__:
        if cls in by_class:
            return by_class[cls]
    return EXIT_ERROR


def worded(err: CuratorError, command: click.Command | None) -> str:
    """``err.message`` with its leading parameter name (``err.key``) spelled as ``command``'s flag."""
    key = err.key
    if command is None or not key or not err.message.startswith((f"{key} ", f"{key}:")):
        return err.message
    for param in command.params:
        if isinstance(param, click.Option) and param.name == key:
            return max(param.opts, key=len) + err.message[len(key):]
    return err.message
