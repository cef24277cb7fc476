"""Every command has help text ending in an example, and the README mentions it."""

from __future__ import annotations

from pathlib import Path

import click
import pytest

from curator.cli import cli

README = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
COMMANDS = sorted(cli.commands)


def test_there_are_commands() -> None:
    assert {"init", "ingest", "status", "label", "release", "publish", "baseline"} <= set(COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_command_has_help_with_example(name: str) -> None:
    command = cli.commands[name]
    with click.Context(command, info_name=name) as ctx:
        help_text = command.get_help(ctx)
    assert command.help, f"`curator {name}` has no help text"
    example = [line for line in help_text.splitlines() if line.strip().startswith("Example:")]
    assert example and f"curator {name}" in example[-1], f"`curator {name}` --help lacks an example line"


@pytest.mark.parametrize("name", COMMANDS)
def test_command_is_in_readme(name: str) -> None:
    assert f"curator {name}" in README, f"README.md does not mention `curator {name}`"


@pytest.mark.parametrize("name", COMMANDS)
def test_command_options_have_help(name: str) -> None:
    command = cli.commands[name]
    for param in command.params:
        if isinstance(param, click.Option) and not param.hidden:
            assert param.help, f"`curator {name} {param.opts[0]}` has no help text"
