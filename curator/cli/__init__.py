"""The ``curator`` command line: parse flags, call one stage, print through one Output.

Each group of commands lives in its own module here and is registered below.
No SQL, HTTP or image code belongs in this package; heavy libraries (datasets,
keras, cv2) are imported by the stages, lazily, so ``curator --help`` stays fast.
"""

from __future__ import annotations

import os
import traceback
from dataclasses import dataclass, field
from typing import Any

import click

from curator.errors import EXIT_INTERRUPTED, CuratorError, exit_code_for
from curator.output import Output
from curator.workspace import Workspace, open_workspace


@dataclass
class App:
    """What every command gets through ``click.pass_obj``."""

    workspace_arg: str | None
    out: Output
    _workspace: Workspace | None = field(default=None, repr=False)

    def workspace(self) -> Workspace:
        if self._workspace is None:
            self._workspace = open_workspace(self.workspace_arg)
        return self._workspace


class CuratorGroup(click.Group):
    """Turns CuratorError into one ``Error:`` line (+ hint) and a named exit code."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CuratorError as err:
            if os.environ.get("CURATOR_DEBUG") == "1":
                traceback.print_exc()
            out = ctx.obj.out if isinstance(ctx.obj, App) else Output()
            out.error(err.message, err.hint)
            ctx.exit(exit_code_for(err))
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            ctx.exit(EXIT_INTERRUPTED)
        finally:
            if isinstance(ctx.obj, App) and ctx.obj._workspace is not None:
                ctx.obj._workspace.close()


@click.group(cls=CuratorGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--workspace",
    "-w",
    envvar="CURATOR_WORKSPACE",
    metavar="DIR",
    help="Workspace folder (default: $CURATOR_WORKSPACE, then the current folder).",
)
@click.option("--json", "json_mode", is_flag=True, help="Print results as JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="Print only results, warnings and errors.")
@click.version_option(package_name="curator")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None, json_mode: bool, quiet: bool) -> None:
    """Turn scraped scalp-disease photos into a clean, versioned Hugging Face dataset.

    \b
    curator init scalp-diseases --classes alopecia,psoriasis,folliculitis
    curator ingest urls.txt     download, validate, strip metadata, dedup
    curator label               label one image per keypress
    curator release             split, preprocess, balance, write the card
    curator publish             push the release to the Hub, tagged
    curator baseline v1.0.0     train and score the baseline CNN
    """
    ctx.obj = App(workspace_arg=workspace, out=Output(json_mode=json_mode, quiet=quiet))


def _register() -> None:
    from curator.cli import (
        baseline_cmds,
        demo_cmds,
        ingest_cmds,
        label_cmds,
        publish_cmds,
        release_cmds,
        review_cmds,
        serve_cmds,
        workspace_cmds,
    )

    modules = (workspace_cmds, ingest_cmds, label_cmds, review_cmds, serve_cmds, release_cmds,
               publish_cmds, baseline_cmds, demo_cmds)
    for module in modules:
        for command in module.COMMANDS:
            cli.add_command(command)


_register()


def main() -> None:
    cli(prog_name="curator")


if __name__ == "__main__":
    main()
