"""The ``curator`` command line: parse flags, call one stage, print through one Output.

Each group of commands lives in its own module here and is registered below.
No SQL, HTTP or image code belongs in this package; heavy libraries (datasets,
keras, cv2) are imported by the stages, lazily, so ``curator --help`` stays fast.
"""

from __future__ import annotations

import errno
import functools
import os
import sqlite3
from dataclasses import dataclass, field
from typing import Any

import click

from curator.cli.errors import exit_code_for, hint_for, worded
from curator.errors import EXIT_ERROR, EXIT_INTERRUPTED, BusyError, CuratorError
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
            for repair in self._workspace.repairs:
                self.out.warn(repair)
        return self._workspace


class CuratorGroup(click.Group):
    """Turns every error into one ``Error:`` line (+ hint) and a named exit code; a traceback
    (scrubbed of secrets) only with ``CURATOR_DEBUG=1``."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except (click.exceptions.Exit, click.ClickException, click.Abort):
            raise
        except BaseException as raised:  # noqa: BLE001 - the one place that words every error
            err = _leaf(raised)
            if isinstance(err, KeyboardInterrupt):
                click.echo("Interrupted.", err=True)
                ctx.exit(EXIT_INTERRUPTED)
            if not isinstance(err, Exception):
                raise
            app = ctx.obj if isinstance(ctx.obj, App) else App(None, Output())
            if os.environ.get("CURATOR_DEBUG") == "1":
                app.out.traceback(raised)
            known = err if isinstance(err, CuratorError) else _known(err, app)
            if known is None:
                app.out.error(f"internal error ({type(err).__name__}: {_first_line(err)}); "
                              "rerun with CURATOR_DEBUG=1 for details", code=EXIT_ERROR)
                ctx.exit(EXIT_ERROR)
            command = self.get_command(ctx, ctx.invoked_subcommand) if ctx.invoked_subcommand else None
            app.out.error(worded(known, command), hint_for(known), code=exit_code_for(known))
            ctx.exit(exit_code_for(known))
        finally:
            if isinstance(ctx.obj, App) and ctx.obj._workspace is not None:
                ctx.obj._workspace.close()


def _leaf(err: BaseException) -> BaseException:
    """The first real error inside (nested) exception groups: the one to word."""
    while isinstance(err, BaseExceptionGroup) and err.exceptions:
        err = err.exceptions[0]
    return err


def _known(err: BaseException, app: App) -> CuratorError | None:
    """Words for the environment's failures that any command can meet."""
    where = app._workspace.root if app._workspace is not None else app.workspace_arg or os.getcwd()
    if isinstance(err, sqlite3.OperationalError) and "locked" in str(err):
        return BusyError("workspace is busy: another curator command is writing",
                         hint=f"wait for it to finish, then rerun (workspace {where})", path=str(where))
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return CuratorError(f"{where}: the disk is full ({err.strerror})",
                            hint="free some space, then rerun the same command", path=str(where))
    return None


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    return lines[0][:200] if lines else "no message"


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
            _accept_output_flags(command)
            cli.add_command(command)


def _accept_output_flags(command: click.Command) -> None:
    """``--json`` and ``--quiet`` after the command too (``curator status --json``)."""
    command.params += [
        click.Option(["--json", "json_mode"], is_flag=True, help="Print results as JSON on stdout."),
        click.Option(["--quiet", "-q"], is_flag=True, help="Print only results, warnings and errors."),
    ]
    callback = command.callback
    assert callback is not None

    @functools.wraps(callback)
    def run(*args: Any, json_mode: bool, quiet: bool, **kwargs: Any) -> Any:
        app = click.get_current_context().find_object(App)
        if app is not None:
            app.out.json_mode = app.out.json_mode or json_mode
            app.out.quiet = app.out.quiet or quiet
        return callback(*args, **kwargs)

    command.callback = run


_register()


def main() -> None:
    cli(prog_name="curator")


if __name__ == "__main__":
    main()
