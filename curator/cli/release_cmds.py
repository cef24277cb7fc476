"""``curator release``, ``curator diff`` and ``curator audit``."""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.console import Console

from curator.cli.engine_option import engine_for, engine_option
from curator.errors import EXIT_ERROR, InputError, WorkspaceError
from curator.match import MAX_THRESHOLD, Policy

if TYPE_CHECKING:
    from curator.cli import App

SPLITS = ("train", "validation", "test")


def _pinned_time() -> str | None:
    """SOURCE_DATE_EPOCH (the reproducible-builds convention) pins the manifest's created_at."""
    value = os.environ.get("SOURCE_DATE_EPOCH")
    if not value:
        return None
    try:
        return datetime.fromtimestamp(int(value), UTC).isoformat(timespec="microseconds")
    except (ValueError, OverflowError) as err:
        raise InputError(f"SOURCE_DATE_EPOCH={value!r} is not a Unix timestamp") from err


def _render_splits(console: Console, splits: dict[str, Any]) -> None:
    classes = list(next(iter(splits.values()))["per_class"]) if splits else []
    console.print(f"{'split':<12}{'rows':>6}{'orig':>6}{'aug':>6}  " + "  ".join(classes), markup=False)
    for name in SPLITS:
        s = splits.get(name)
        if s is None:
            continue
        per_class = "  ".join(f"{s['per_class'][c]:>{len(c)}}" for c in classes)
        line = f"{name:<12}{s['rows']:>6}{s['originals']:>6}{s['augmented']:>6}  {per_class}"
        console.print(line, markup=False)


@click.command()
@click.option(
    "--version", "version", metavar="X.Y.Z", help="Version to build (default: bumped from the changes)."
)
@click.option(
    "--dry-run", is_flag=True, help="Show what would be built (counts, version, bump); write nothing."
)
@click.option(
    "--include-restricted",
    is_flag=True,
    help="Also release images from sources marked redistributable = false (recorded in the manifest).",
)
@click.option(
    "--allow-unreviewed",
    is_flag=True,
    help="Release even with undecided face/eye findings (named in the warnings); refused by default.",
)
@engine_option
@click.pass_obj
def release(app: App, version: str | None, dry_run: bool, include_restricted: bool,
            allow_unreviewed: bool, engine: str | None) -> None:
    """Build the next release into releases/vX.Y.Z/: split, preprocess, balance, parquet, card.

    The version bump follows what changed since the last release: the class list
    (major), images added or removed (minor), labels, settings or card text (patch).
    A built release never changes. Set SOURCE_DATE_EPOCH to pin the manifest's timestamp.

    Example: curator release --dry-run
    """
    from curator import release as release_mod

    ws = app.workspace()
    with engine_for(ws, engine), app.out.progress("preprocessing", None) as advance:
        result = release_mod.build(
            ws,
            version=version,
            dry_run=dry_run,
            include_restricted=include_restricted,
            allow_unreviewed=allow_unreviewed,
            on_progress=advance,
            created_at=_pinned_time(),
        )
    for warning in result.warnings:
        app.out.warn(warning)

    def render(console: Console) -> None:
        verb = "Would build" if result.dry_run else "Built"
        where = f" in {result.path}" if result.path else ""
        console.print(f"{verb} v{result.version}{where}", markup=False)
        console.print(f"Bump: {result.bump.kind} ({result.bump.reason})", markup=False)
        _render_splits(console, result.splits)
        if result.dry_run:
            note = "(dry run: balancing rows are added at build time; nothing was written)"
            console.print(note, markup=False)

    app.out.result(result.as_dict(), render)


@click.command()
@click.argument("old")
@click.argument("new")
@click.pass_obj
def diff(app: App, old: str, new: str) -> None:
    """Show images added, removed, relabelled and moved between splits from release OLD to NEW.

    Moved images break the sticky-split promise: they are shown loudly and the
    command exits 1.

    Example: curator diff v1.0.0 v1.1.0
    """
    from curator import diff as diff_mod

    result = diff_mod.diff_versions(app.workspace(), old, new)

    def render(console: Console) -> None:
        c = result.counts()
        console.print(f"v{result.old} -> v{result.new}: {c['added']} added, {c['removed']} removed, "
                      f"{c['relabelled']} relabelled, {c['moved']} moved between splits", markup=False)
        if result.classes_added or result.classes_removed:
            console.print(f"classes added: {', '.join(result.classes_added) or '-'}; "
                          f"removed: {', '.join(result.classes_removed) or '-'}", markup=False)
        for r in result.added:
            console.print(f"+ {r['sha256']}  {r['label']}  {r['split']}", markup=False)
        for r in result.removed:
            console.print(f"- {r['sha256']}  {r['label']}  {r['split']}", markup=False)
        for r in result.relabelled:
            console.print(f"~ {r['sha256']}  {r['old']} -> {r['new']}", markup=False)
        for r in result.moved:
            console.print(f"! {r['sha256']}  MOVED {r['old']} -> {r['new']}", markup=False)

    app.out.result(result.as_dict(), render)
    if result.moved:
        app.out.warn(f"{len(result.moved)} image(s) MOVED between splits: the releases leak into each other")
        click.get_current_context().exit(EXIT_ERROR)


@click.command()
@click.argument("path", type=click.Path(path_type=Path))
@click.option(
    "--threshold",
    type=click.IntRange(0, MAX_THRESHOLD),
    default=None,
    help="Hamming distance for near duplicates on the hash alone (default: the workspace's dedup.threshold).",
)
@click.pass_obj
def audit(app: App, path: Path, threshold: int | None) -> None:
    """Report images that appear in two splits (exact or near duplicates) of any dataset folder.

    PATH is anything datasets.load_dataset can read from disk (a curator release,
    parquet files, an image folder). Each pair names both images (file path, or
    source_url and sha256), their splits, how they matched and the distance.
    Exits 1 when leaks are found.

    Example: curator audit releases/v1.0.0
    """
    from curator import audit as audit_mod
    from curator.config import DedupConfig

    try:
        cfg = app.workspace().config.dedup
    except WorkspaceError:
        cfg = DedupConfig()
    with app.out.progress("hashing", None) as advance:
        result = audit_mod.audit_folder(path, Policy.of(cfg, threshold), on_progress=advance)

    def render(console: Console) -> None:
        sizes = ", ".join(f"{k} {v}" for k, v in result.splits.items())
        console.print(f"{result.path}: {sizes}; threshold {result.threshold}", markup=False)
        for leak in result.leaks:
            console.print(f"LEAK {leak.describe()}", markup=False)
        console.print(f"{len(result.leaks)} leaked pair(s)", markup=False)

    app.out.result(result.as_dict(), render)
    if result.leaks:
        click.get_current_context().exit(EXIT_ERROR)


COMMANDS = [release, diff, audit]
