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


# What to do about an error, by its ``reason``: hints name commands and flags, which are the CLI's
# words, so the library leaves them to this table (an error's own ``hint`` names neither).
HINTS: dict[str, str] = {
    "not-a-workspace": "run `curator init NAME --classes a,b,c` to create one, or pass --workspace DIR",
    "no-labels": "label images first: `curator label` or `curator label --accept-hints`",
    "restricted-sources": "exclude them (curator label), or pass --include-restricted to release them anyway",
    "undecided-privacy": "decide them with `curator review --kind face` (and eye), "
                         "or release anyway with --allow-unreviewed",
    "unreleased-changes": "run `curator release` first, pass --release to build and publish, "
                          "or name a VERSION",
    "no-hub-repo": "set dataset.hub_repo in curator.toml, or pass --repo ns/name",
    "newer-on-hub": "publish the newest release, or publish this one to a folder with --to DIR",
    "no-such-repo": "check --repo, and HF_TOKEN for a private repo",
    "diverged": "lower --learning-rate (was {value})",
    "no-annotators": "add one with `curator annotators add NAME` or `curator serve --annotator NAME`",
    "ray-not-installed": "install it with `pip install 'curator[ray]'`, or use --engine local",
    "engine-unreachable": "start a cluster with `ray start --head` and give its address in [engine] address "
                          "(or `auto` on a cluster node), or use --engine local",
}


def hint_for(err: CuratorError) -> str | None:
    """The error's own hint, else the CLI's for its reason."""
    if err.hint:
        return err.hint
    hint = HINTS.get(err.reason or "")
    return hint.format(value=err.value) if hint else None


def worded(err: CuratorError, command: click.Command | None) -> str:
    """``err.message`` with its leading parameter name (``err.key``) spelled as ``command``'s flag."""
    key = err.key
    if command is None or not key or not err.message.startswith((f"{key} ", f"{key}:")):
        return err.message
    for param in command.params:
        if isinstance(param, click.Option) and param.name == key:
            return max(param.opts, key=len) + err.message[len(key):]
    return err.message
