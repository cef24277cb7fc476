"""``curator init``."""

from __future__ import annotations

from pathlib import Path

import click
from rich.console import Console

from curator.cli import App
from curator.cli_support import split_csv
from curator.config import CLASS_NAME
from curator.errors import InputError
from curator.workspace import init_workspace, locate


@click.command()
@click.argument("name")
@click.option(
    "--classes",
    required=True,
    metavar="A,B,C",
    help="Comma-separated class names (a-z, 0-9, '-', '_'), in key order.",
)
@click.pass_obj
def init(app: App, name: str, classes: str) -> None:
    """Create a workspace: curator.toml, catalog.sqlite and objects/.

    The workspace is the current folder, or --workspace DIR (created if missing).

    Example: curator init scalp-diseases --classes alopecia,psoriasis,folliculitis
    """
    class_list = split_csv(classes)
    if not class_list:
        raise InputError("--classes: give at least two class names, e.g. --classes a,b")
    for name in class_list:
        if not CLASS_NAME.match(name):
            raise InputError(f"--classes: invalid class name {name!r} (use a-z, 0-9, '-', '_')")
    ws = init_workspace(Path(locate(app.workspace_arg)), name, class_list)
    value = {"workspace": str(ws.root), "name": name, "classes": list(ws.config.dataset.classes)}

    def render(console: Console) -> None:
        console.print(f"Created workspace {name!r} in {ws.root}", markup=False)
        console.print(f"Classes: {', '.join(ws.config.dataset.classes)}", markup=False)

    app.out.result(value, render)
    app.out.info("Next: curator ingest urls.txt")


COMMANDS = [init]
