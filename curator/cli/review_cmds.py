"""``curator review``: compute findings (--run), list them (--list), decide on them."""

from __future__ import annotations

import sys
from typing import Any

import click
from rich.console import Console
from rich.table import Table

from curator.cli.engine_option import engine_for, engine_option
from curator.errors import InputError

HELP = """Find unusable, identifying, off-topic and mislabelled images, and decide on them.

Without flags: the interactive prompt, one open finding at a time, worst
first; keys k keep, x exclude, n not a problem, r relabel (then a class key),
a accept the suggested label, s skip, u undo, o open, ? help, q quit. Each
decision is committed before the next finding appears.

\b
--run computes what is missing: quality (blur, dark, bright, low-information,
low-resolution, odd-aspect, greyscale), privacy (face, eye), off-topic, and
label issues from out-of-fold probabilities (--probabilities FILE: CSV with
sha256 and one column per class; or --with-cv: the baseline CNN trained per
fold, folds grouped by near-duplicate cluster and patient group). The
probabilities are kept as the latest model's, for `curator label --suggest`.
Only new images are checked, or all of them
when a check's version or a [review] threshold changed.
--list prints the findings, worst first (--kind K, --open for undecided ones).
--decide ID=DECISION records a decision (keep, exclude, not-a-problem, or
relabel:CLASS); --undo ID takes back the latest one. Every decision is an event
(who, when, what, previous), never lost.

Example: curator review --run
"""


@click.command(help=HELP)
@click.option("--run", "run_checks", is_flag=True, help="Compute the findings that are missing.")
@click.option("--probabilities", metavar="FILE",
              help="With --run: out-of-fold class probabilities (CSV: sha256, one column per class).")
@click.option("--with-cv", is_flag=True,
              help="With --run: train the baseline CNN per fold (grouped by cluster and patient) for "
              "out-of-fold probabilities, then find label issues.")
@click.option("--list", "list_findings", is_flag=True, help="Print the findings as a table (or JSON).")
@click.option("--kind", metavar="K", help="Only findings of kind K (blur, face, ...), listed or reviewed.")
@click.option("--open", "open_only", is_flag=True, help="With --list: only findings without a decision.")
@click.option("--decide", metavar="ID=DECISION",
              help="Decide on finding ID: keep, exclude, not-a-problem or relabel:CLASS.")
@click.option("--undo", "undo_id", type=int, metavar="ID", help="Undo the latest decision on finding ID.")
@click.option("--graphics", type=click.Choice(("auto", "kitty", "iterm", "sixel", "blocks")), default="auto",
              show_default=True, help="How the prompt draws images; auto detects kitty, iTerm2 and sixel.")
@click.option("--reviewer", metavar="NAME", help="Who decides (default: [labels] annotator, or the OS user).")
@engine_option
@click.pass_obj
def review(app: Any, run_checks: bool, probabilities: str | None, with_cv: bool, list_findings: bool,
           kind: str | None,
           open_only: bool, decide: str | None, undo_id: int | None, graphics: str,
           reviewer: str | None, engine: str | None) -> None:
    from curator import labeling
    from curator.review import findings, run

    chosen = [flag for flag, on in (("--run", run_checks), ("--list", list_findings), ("--decide", decide),
                                    ("--undo", undo_id is not None)) if on]
    if len(chosen) > 1:
        raise InputError(f"{' and '.join(chosen)} cannot be combined; give one at a time")
    if open_only and not list_findings:
        raise InputError("--open goes with --list")
    if (probabilities or with_cv) and not run_checks:
        raise InputError("--probabilities and --with-cv go with --run")
    if engine is not None and not run_checks:
        raise InputError("--engine goes with --run")
    if probabilities and with_cv:
        raise InputError("--probabilities and --with-cv cannot be combined; give one")
    if kind is not None and kind not in run.KINDS:
        raise InputError(f"--kind {kind!r} is not one of {', '.join(run.KINDS)}")
    if not chosen and not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise InputError("curator review needs a terminal; without one use --list, --decide and --undo")
    ws = app.workspace()
    who = labeling.check_annotator(reviewer) if reviewer else labeling.default_annotator(ws.config)
    if not chosen:
        from curator.review import prompt

        result = prompt.run(ws, who, graphics, kind)
        app.out.result(result.as_dict(), result.render)
    elif run_checks:
        probs = run.read_probabilities(probabilities, ws.config.dataset.classes) if probabilities else None
        if with_cv:
            from curator.review import oof

            with app.out.progress("Training out-of-fold models", oof.FOLDS) as advance:
                probs = oof.probabilities(ws, on_fold=advance)
        with engine_for(ws, engine):
            _run(app, ws, probs, probabilities or "cv")
    elif list_findings:
        items = findings.listing(ws.conn, kind=kind, open_only=open_only)
        app.out.result({"findings": items}, lambda console: _table(console, items))
    elif decide is not None:
        finding_id, decision, label = _parse_decision(decide)
        previous = findings.decide(ws.conn, finding_id, who, decision, label, ws.config.dataset.classes)
        status = decision if label is None else f"{decision} to {label}"
        app.out.result({"id": finding_id, "status": decision, "label": label, "previous": previous},
                       lambda console: console.print(f"Finding {finding_id}: {status} (was {previous})",
                                                     markup=False))
    else:
        assert undo_id is not None
        status = findings.undo(ws.conn, undo_id, who)
        app.out.result({"id": undo_id, "status": status},
                       lambda console: console.print(f"Finding {undo_id}: back to {status}", markup=False))


def _run(app: Any, ws: Any, probs: dict[str, list[float]] | None, source: str) -> None:
    from curator.review import run

    with app.out.progress("Checking images", run.pending(ws)) as advance:
        summary = run.run(ws, probabilities=probs, probabilities_source=source, on_progress=advance)
    if summary.label_issues:
        app.out.info(f"Note: {summary.label_issues}")

    def render(console: Console) -> None:
        computed = ", ".join(f"{name} {n}" for name, n in summary.computed.items())
        opened = ", ".join(f"{kind} {n}" for kind, n in summary.open.items()) or "none"
        console.print(f"Reviewed {summary.images} images (checked now: {computed}; errors {summary.errors})",
                      markup=False)
        console.print(f"Open findings: {opened}", markup=False)

    app.out.result(summary.as_dict(), render)


def _parse_decision(text: str) -> tuple[int, str, str | None]:
    number, _, decision = text.partition("=")
    if not number.strip().isdigit() or not decision:
        raise InputError(f"--decide {text!r}: expected ID=DECISION, e.g. 12=exclude or 12=relabel:psoriasis")
    decision, _, label = decision.partition(":")
    return int(number), decision, label or None


def _table(console: Console, items: list[dict[str, Any]]) -> None:
    if not items:
        console.print("No findings.", markup=False)
        return
    table = Table("id", "sha256", "kind", "score", "status", "detail")
    for item in items:
        detail = ", ".join(f"{k}={v}" for k, v in item["detail"].items() if k != "top")
        table.add_row(str(item["id"]), item["sha256"][:12], item["kind"], f"{item['score']:.2f}",
                      item["status"], detail)
    console.print(table)


COMMANDS = [review]
