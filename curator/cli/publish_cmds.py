"""``curator publish`` and ``curator releases``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from rich.console import Console

from curator.errors import InputError


@click.command()
@click.argument("version", required=False)
@click.option("--repo", metavar="NS/NAME",
              help="Hub dataset repo (default: dataset.hub_repo in curator.toml).")
@click.option("--to", "to", metavar="DIR", type=click.Path(path_type=Path),
              help="Publish to a local folder instead of the Hub (a loadable copy of the release).")
@click.option("--private", is_flag=True, help="Create the Hub repo as private (when it does not exist yet).")
@click.option("--verify/--no-verify", default=True, show_default=True,
              help="Load the published revision back with datasets.load_dataset and check it.")
@click.option("--release", "build", is_flag=True, help="Build the next release first, then publish it.")
@click.pass_obj
def publish(app, version: str | None, repo: str | None, to: Path | None, private: bool,
            verify: bool, build: bool) -> None:
    """Push a release to the Hugging Face Hub as one commit plus a tag vX.Y.Z, or copy it to --to DIR.

    VERSION defaults to the newest release. The token comes from HF_TOKEN or the saved
    login (`hf auth login`); the Hub endpoint from HF_ENDPOINT. The commit makes the repo's
    files exactly the release's, against the current head; the tag is created only after
    the commit succeeded, so a failed publish can simply be rerun. Publishing a version
    that is already on the Hub with the same files does nothing; a tag with other data is
    refused.

    After `curator baseline` adds baseline.json and a scored card to a published release,
    publishing that version again pushes them as a follow-up commit and MOVES the tag to it,
    after checking that its data files are identical to the tagged ones (both commits are
    kept in releases/vX.Y.Z/publish-log.jsonl).

    Example: curator publish v1.0.0 --repo lab/scalp-diseases
    """
    from curator import publish as stage

    if repo and to:
        raise InputError("give either --repo or --to, not both")
    if build and version:
        raise InputError("--release builds the next version; do not also name a VERSION")
    ws = app.workspace()
    result = stage.publish(ws, version, repo=repo, to=to, private=private, verify=verify, build=build)
    app.out.result(result.as_dict(), lambda console: _render_publish(console, result))


def _render_publish(console: Console, result: Any) -> None:
    where = result.location if result.target == "folder" else f"{result.location} ({result.endpoint})"
    if result.status == "already-published":
        console.print(f"v{result.version} is already published to {where}; nothing to do.", markup=False)
        return
    verb = "Published" if result.status == "published" else "Published the baseline follow-up of"
    console.print(f"{verb} v{result.version} to {where}", markup=False)
    if result.commit_oid:
        console.print(f"  commit {result.commit_oid}, tag {result.tag}", markup=False)
    if result.data_commit:
        console.print(f"  tag {result.tag} moved from data commit {result.data_commit}", markup=False)
    if result.branch:
        console.print(f"  on branch {result.branch} (main carries a newer version)", markup=False)
    console.print(f"  {len(result.uploaded)} files written, {len(result.deleted)} deleted", markup=False)
    if result.verified is not None:
        rows = ", ".join(f"{split} {n}" for split, n in result.verified.items())
        console.print(f"  verified with load_dataset: {rows}", markup=False)


@click.command()
@click.pass_obj
def releases(app) -> None:
    """List local releases and where each one is published (folder, or Hub repo, commit and tag).

    Example: curator releases --json
    """
    from curator import publish as stage

    rows = stage.releases_overview(app.workspace())
    app.out.result(rows, lambda console: _render_releases(console, rows))


def _render_releases(console: Console, rows: list[dict[str, Any]]) -> None:
    if not rows:
        console.print("No releases yet. Next: curator release", markup=False)
        return
    for row in rows:
        parent = f", parent v{row['parent']}" if row["parent"] else ""
        line = f"v{row['version']}  {row['created_at'][:19]}  {row['rows']} rows{parent}"
        console.print(line, markup=False)
        if not row["published"]:
            console.print("    not published", markup=False)
        for pub in row["published"]:
            if pub["target"] == "hub":
                line = f"    hub {pub['location']}  tag {pub['tag']}  commit {pub['commit']}"
                console.print(line, markup=False)
            else:
                console.print(f"    folder {pub['location']}", markup=False)


COMMANDS = [publish, releases]
