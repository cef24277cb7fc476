"""``curator label``: the interactive prompt, or --import / --export / --accept-hints."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console

from curator import labeling
from curator.errors import EXIT_INTERRUPTED, InputError

NEEDS_TERMINAL = "curator label needs a terminal; without one use `curator label --import labels.csv`"

HELP = """Label images: one keypress per image, one image per near-duplicate cluster.

\b
Keys: the class keys shown on screen (1..N in class order, or [labels] keys),
s skip, u undo (back one image, previous value restored), x exclude from
releases, o open in the system viewer, ? help, q or Ctrl-C quit.
Every answer is committed before the next image; a new run resumes.

\b
--suggest shows the latest model's top two classes with probabilities (stored
by `curator review --run --with-cv`); --order uncertain puts the images the
model is least sure of (smallest margin top1 - top2) first. Each label event
records whether a suggestion was shown. Images of the blind subset ([labels]
blind_fraction) never show a suggestion, hint or source.

\b
Without a terminal use --import (CSV with a header: sha256 or url, label
and/or group_id (patient or lesion), optional annotator; one transaction,
the whole file or nothing), --export
(sha256, source_url, label, annotator) or --accept-hints (ingest hints become
labels by annotator 'hint').

\b
Conflicts ([labels] policy): 'majority' - most annotators win; a tie leaves
the image unresolved (no label, out of releases) until reviewed with
--conflicts. 'adjudicator' - [labels] adjudicator wins where they labeled.
Labels by 'hint' count only where no person has labeled the image.

Example: curator label --annotator alice --order random
"""


@click.command(help=HELP)
@click.option("--annotator", metavar="NAME",
              help="Who is labeling (default: [labels] annotator, then the OS user).")
@click.option("--class", "review_class", metavar="C", help="Review the images currently labelled C.")
@click.option("--conflicts", is_flag=True,
              help="Review images whose annotators disagree, or whose label disagrees with a hint "
              "or its cluster.")
@click.option("--order", type=click.Choice(labeling.ORDERS), default="ingest", show_default=True,
              help="Order of the images: ingest (oldest first), random (fixed per annotator), hint, "
              "uncertain (smallest model margin first).")
@click.option("--suggest", is_flag=True,
              help="Show the latest model's top two classes (run `curator review --run --with-cv` first).")
@click.option("--graphics", type=click.Choice(("auto", "kitty", "iterm", "sixel", "blocks")), default="auto",
              show_default=True, help="How to draw images; auto detects kitty, iTerm2 and sixel terminals.")
@click.option("--import", "import_path", metavar="FILE", help="Import labels from a CSV file.")
@click.option("--export", "export_path", metavar="FILE",
              help="Export every annotator's labels to a CSV file.")
@click.option("--accept-hints", is_flag=True, help="Turn ingest label hints into labels by annotator 'hint'.")
@click.pass_obj
def label(app, annotator: str | None, review_class: str | None, conflicts: bool, order: str, suggest: bool,
          graphics: str, import_path: str | None, export_path: str | None, accept_hints: bool) -> None:
    chosen = [flag for flag, on in (("--import", import_path), ("--export", export_path),
                                    ("--accept-hints", accept_hints)) if on]
    if len(chosen) > 1:
        raise InputError(f"{' and '.join(chosen)} cannot be combined; give one at a time")
    who = labeling.check_annotator(annotator) if annotator is not None else None
    if chosen:
        _batch(app, who, import_path, export_path)
        return
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InputError(NEEDS_TERMINAL)
    from curator import prompt

    ws = app.workspace()
    options = prompt.Options(
        annotator=who or labeling.default_annotator(ws.config),
        review_class=review_class,
        conflicts=conflicts,
        order=order,
        graphics=graphics,
        suggest=suggest,
    )
    result = prompt.run(ws, options)
    app.out.result(result.as_dict(), result.render)
    if result.interrupted:  # every answer is saved; the exit code still says "interrupted"
        raise click.exceptions.Exit(EXIT_INTERRUPTED)


def _batch(app, who: str | None, import_path: str | None, export_path: str | None) -> None:
    ws = app.workspace()
    if import_path is not None:
        imported = labeling.import_csv(ws.conn, ws.config, import_path, annotator=who)
        value = {"imported": imported.path, "rows": imported.rows, "events": imported.events,
                 "groups": imported.groups}

        def render(console: Console) -> None:
            grouped = f", {imported.groups} images given a group id" if imported.groups else ""
            console.print(f"Imported {imported.rows} rows from {imported.path} "
                          f"({imported.events} changed a label{grouped})", markup=False)

        app.out.result(value, render)
    elif export_path is not None:
        rows = labeling.export_csv(ws.conn, ws.config, export_path)
        message = f"Exported {rows} labels to {export_path}"
        app.out.result({"exported": export_path, "rows": rows},
                       lambda console: console.print(message, markup=False))
    else:
        added = labeling.accept_hints(ws.conn, ws.config)
        app.out.result({"hint_labels": added},
                       lambda console: console.print(f"Accepted {added} hints as labels", markup=False))


COMMANDS = [label]


METHOD_NAMES = {"cohen": "Cohen's kappa", "fleiss": "Fleiss' kappa", "krippendorff": "Krippendorff's alpha"}


def render_summary(console: Console, labels: dict[str, Any]) -> None:
    """The labels part of ``curator status`` (labeling.summary's dict)."""
    per_class = ", ".join(f"{name} {n}" for name, n in labels["per_class"].items())
    console.print(
        f"Labels (per cluster): {per_class}; excluded {labels['excluded']}; "
        f"unlabeled {labels['unlabeled']}; unresolved ties {labels['unresolved']}",
        markup=False,
    )
    if labels["annotators"]:
        who = ", ".join(f"{name} {n}" for name, n in labels["annotators"].items())
        console.print(f"Annotators (images labeled): {who}", markup=False)
    found = labels["agreement"]
    if found is not None:
        console.print(f"Agreement: {_agreement(found)}", markup=False)
    blind = labels.get("blind") or {}
    if blind.get("fraction"):
        there = f"; agreement there: {_agreement(blind['agreement'])}" if blind["agreement"] else ""
        reviewed = (f" ({blind['with_suggestion']} more given in review with a suggestion, left out)"
                    if blind.get("with_suggestion") else "")
        console.print(
            f"Blind subset (no suggestions or hints, [labels] blind_fraction {blind['fraction']}): "
            f"{blind['clusters']} clusters, {blind['labels']} labels given{reviewed}{there}",
            markup=False,
        )


def _agreement(found: dict[str, Any]) -> str:
    value = "undefined" if found["value"] is None else f"{found['value']:.3f}"
    return (f"{METHOD_NAMES[found['method']]} {value} over {found['items']} overlapping clusters "
            f"({', '.join(found['annotators'])}): {found['reading']}")
