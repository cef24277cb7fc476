"""``curator demo``."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import TYPE_CHECKING

import click
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from curator.cli import App


@click.command()
@click.argument("folder", default="curator-demo", type=click.Path(file_okay=False, path_type=Path))
@click.option("--per-class", default=50, show_default=True, metavar="N", help="Generated photos per class.")
@click.option("--epochs", type=int, metavar="N", help="Most baseline epochs (default: [baseline] epochs).")
@click.pass_obj
def demo(app: App, folder: Path, per_class: int, epochs: int | None) -> None:
    """Run the whole path offline on generated example images, in FOLDER (new or empty).

    Generates scalp-like photos for three classes (with near and exact copies and two junk
    files), then: init a workspace, ingest the folder with folder names as hints, accept the
    hints as labels, build release v1.0.0, train and score the baseline CNN, and publish the
    release to FOLDER/published/v1.0.0. Ends with one summary line per stage.

    Example: curator demo ./curator-demo
    """
    from curator.cli.baseline_cmds import epoch_bars
    from curator.demo import run_demo

    if per_class < 10:
        raise click.BadParameter("needs at least 10 photos per class", param_hint="--per-class")
    with contextlib.ExitStack() as bars:
        result = run_demo(
            folder,
            per_class=per_class,
            epochs=epochs,
            on_stage=lambda name: app.out.info(f"[{name}]"),
            on_epoch=epoch_bars(app, bars),
        )
    value = result.as_dict()

    def render(console: Console) -> None:
        table = Table(title=f"curator demo in {result.root}", show_lines=False)
        table.add_column("stage")
        table.add_column("seconds", justify="right")
        table.add_column("result")
        for stage in result.stages:
            table.add_row(stage.name, f"{stage.seconds:.1f}", stage.summary)
        console.print(table)
        workspace = result.root / "workspace"
        console.print(f"Workspace: {workspace}  (try: curator -w {workspace} status)")

    app.out.result(value, render)


COMMANDS = [demo]
