"""``curator ingest``, ``curator status`` and ``curator dups``."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import click
from rich.console import Console

from curator.cli_support import counted
from curator.config import has_control_characters
from curator.errors import InputError
from curator.match import MAX_THRESHOLD


@click.command()
@click.argument("source", metavar="FILE|-|FOLDER|IMAGE|TABLE|hf://datasets/NS/NAME[@REV]")
@click.option("--columns", metavar="FIELD=COLUMN,...",
              help="Column mapping of a table (.csv, .tsv, .jsonl, .parquet) or Hub dataset: fields locator, "
                   "hint, group, licence, attribution, diagnosis, body_site, fitzpatrick, monk (default: "
                   "[ingest.columns]).")
@click.option("--split", "hub_split", metavar="NAME", help="The split of a Hub dataset to read.")
@click.option("--config", "hub_config", metavar="NAME", help="The config (subset) of a Hub dataset to read.")
@click.option("--collection", metavar="NAME",
              help="The collection these sources belong to, counted per collection by the card and status "
                   "(default: a table's file name, a Hub dataset's repo; none for lists and folders).")
@click.option("--hint-from-folder", is_flag=True, help="Use each file's parent folder name as its hint.")
@click.option("--root", type=click.Path(file_okay=False, exists=True, path_type=Path), metavar="DIR",
              help="Local paths in the list may lie anywhere under DIR (default: the list's folder; "
                   "the current folder for stdin); others are rejected as outside-root.")
@click.option("--retry-failed", is_flag=True, help="Fetch again sources rejected for a transient reason.")
@click.option("--report", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE.jsonl",
              help="Write one JSON object per source: url, status, reason, sha256.")
@click.option("--concurrency", type=click.IntRange(min=1), help="Requests in flight, all hosts together.")
@click.option("--per-host", type=click.IntRange(min=1), help="Requests in flight per host.")
@click.option("--connect-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Seconds to wait for a connection.")
@click.option("--read-timeout", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Seconds to wait for each piece of a reply.")
@click.option("--retries", type=click.IntRange(min=0), help="Extra tries on 429, 5xx and timeouts.")
@click.option("--backoff", type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="First retry wait, doubled each time (Retry-After wins, capped).")
@click.option("--max-redirects", type=click.IntRange(min=0), help="Redirects followed per URL.")
@click.option("--max-bytes", type=click.IntRange(min=1), help="Size cap per image, enforced while streaming.")
@click.option("--user-agent", metavar="TEXT", help="User-Agent header (also the robots.txt agent).")
@click.option("--ignore-robots", is_flag=True, help="Do not fetch or obey robots.txt (recorded per source).")
@click.option("--ignore-noai", is_flag=True, help="Do not obey X-Robots-Tag: noai / noimageai (recorded).")
@click.option("--workers", type=click.IntRange(min=1), help="Threads that decode and hash (default: CPUs).")
@click.pass_obj
def ingest(app, source: str, columns: str | None, hub_split: str | None, hub_config: str | None,
           collection: str | None, hint_from_folder: bool, root: Path | None, retry_failed: bool,
           report: Path | None, ignore_robots: bool, ignore_noai: bool, **settings: Any) -> None:
    """Download, validate, store and deduplicate images.

    FILE holds one source per line: a URL (optionally a TAB and a label hint),
    a local image or a folder inside the list's folder (see --root); '#' starts
    a comment. '-' reads the lines from stdin; a FOLDER or an IMAGE can be given
    directly. A TABLE (.csv, .tsv, .jsonl, .parquet) or a Hub dataset has one image
    per row; --columns says which column is what, other columns are kept as metadata.
    Rerunning the same list fetches only what is missing.

    Example: curator ingest urls.txt --report report.jsonl
    """
    from curator import ingest as stage

    ws = app.workspace()
    if settings.get("user_agent") is not None and has_control_characters(settings["user_agent"]):
        raise InputError("--user-agent: must not contain control characters (CR, LF, ...)")
    if collection is not None and (not collection.strip() or has_control_characters(collection)):
        raise InputError("--collection: must be a name, without control characters")
    sources = _read_sources(source, columns, ws.config.ingest.columns, hub_split, hub_config,
                            hint_from_folder=hint_from_folder, root=root)
    if collection is not None:
        sources = stage.in_collection(sources, collection.strip())
    for line in _row_problems(sources):
        app.out.warn(line)
    if ignore_robots:
        settings["respect_robots"] = False
    if ignore_noai:
        settings["respect_noai"] = False
    options = stage.IngestOptions.from_config(
        ws.config.ingest,
        retry_failed=retry_failed,
        hint_from_folder=hint_from_folder,
        report=report,
        **settings,
    )
    with app.out.progress("Ingesting", total=len(sources)) as advance:
        summary = stage.run(ws, sources, options, on_progress=advance)
    value = summary.as_dict()
    app.out.result(value, _summary_renderer(value))


def _read_sources(source: str, columns: str | None, configured: dict[str, str], hub_split: str | None,
                  hub_config: str | None, *, hint_from_folder: bool, root: Path | None) -> list[Any]:
    """The sources the argument names: a Hub dataset, a table, or a list / folder / image."""
    from curator.ingest import hub, sources, tables

    is_hub, is_table = hub.is_hub(source), tables.is_table(source)
    if columns is not None and not (is_hub or is_table):
        raise InputError(f"{source}: --columns applies to tables and hf:// datasets only")
    if (hub_split or hub_config) and not is_hub:
        raise InputError(f"{source}: --split and --config apply to hf:// datasets only")
    mapping = tables.parse_columns(columns) if columns is not None else dict(configured)
    if is_hub and columns is None:
        mapping.pop("locator", None)  # [ingest.columns] serves tables too; a Hub row's locator is its image
    if is_hub:
        return hub.read_hub(source, mapping, split=hub_split, config=hub_config)
    if is_table:
        return tables.read_table(Path(source).expanduser(), mapping, root=root)
    return sources.read_argument(source, hint_from_folder=hint_from_folder, root=root)


def _row_problems(sources: list[Any], shown: int = 5) -> list[str]:
    """One line per table row without a locator (the first few): each still gets its outcome."""
    empty = [src.locator for src in sources if src.problem == "empty-locator"]
    lines = [f"{locator}: empty locator; rejected as empty-locator" for locator in empty[:shown]]
    if len(empty) > shown:
        lines.append(f"... and {len(empty) - shown} more rows with an empty locator")
    return lines


def _summary_renderer(value: dict[str, Any]) -> Callable[[Console], None]:
    def render(console: Console) -> None:
        console.print(
            f"{counted(value['total'], 'source')} in {value['seconds']:.1f} s: {value['stored']} stored, "
            f"{value['exact_duplicates']} exact duplicates, {value['near_duplicates']} near duplicates, "
            f"{value['rejected']} rejected, {value['skipped']} skipped (already done)",
            markup=False,
        )
        for reason, n in value["rejected_by_reason"].items():
            console.print(f"  rejected {reason}: {n}", markup=False)

    return render


@click.command()
@click.pass_obj
def status(app) -> None:
    """Counts: images, clusters, duplicates, rejections by reason, label hints.

    Example: curator status --json
    """
    from curator import status as stage

    value = stage.collect(app.workspace())

    def render(console: Console) -> None:
        src, clusters = value["sources"], value["clusters"]
        console.print(f"Dataset {value['dataset']} in {value['workspace']}", markup=False)
        console.print(
            f"Images: {value['images']} ({value['bytes'] / 1e6:.1f} MB) "
            f"in {counted(clusters['total'], 'cluster')}; "
            f"{counted(clusters['with_near_duplicates'], 'cluster')} with near duplicates",
            markup=False,
        )
        console.print(
            f"Sources: {src['total']}: {src['stored']} stored, {src['exact_duplicates']} exact duplicates, "
            f"{src['near_duplicates']} near duplicates, {src['rejected']} rejected "
            f"({src['retryable']} retryable with --retry-failed)",
            markup=False,
        )
        for reason, n in value["rejected_by_reason"].items():
            console.print(f"  rejected {reason}: {n}", markup=False)
        hints = value["hints"]
        per_class = ", ".join(f"{name} {n}" for name, n in hints["per_class"].items())
        console.print(
            f"Label hints (images): {per_class}; no hint {hints['images_without_hint']}", markup=False
        )
        for hint, n in hints["not_a_class"].items():
            console.print(f"  hint {hint!r} is not a class: {n}", markup=False)
        grouped = value["groups"]
        if grouped["images_with_group"]:
            console.print(
                f"Patient/lesion groups: {grouped['images_with_group']} of {value['images']} images "
                f"had a group id, in {grouped['groups']} groups",
                markup=False,
            )
        else:
            console.print(
                "Patient/lesion groups: no image had a group id (photos of the same patient may sit in "
                "different splits)",
                markup=False,
            )
        if value["labels"] is not None:
            from curator.cli.label_cmds import render_summary

            render_summary(console, value["labels"])
        _render_collections(console, value["collections"])
        opened = ", ".join(f"{kind} {n}" for kind, n in value["open_findings"].items()) or "none"
        console.print(f"Open review findings: {opened}", markup=False)

    app.out.result(value, render)


def _render_collections(console: Console, collections: dict[str, Any]) -> None:
    """Only when a table or Hub dataset was ingested: images per collection, shared photos per pair."""
    from curator.status import LISTS

    if set(collections["images"]) <= {LISTS}:
        return
    listed = ", ".join(f"{name} {n}" for name, n in collections["images"].items())
    console.print(f"Collections (images): {listed}", markup=False)
    for shared in collections["shared_clusters"]:
        first, second = shared["collections"]
        console.print(f"  the same photo in {first} and {second}: {counted(shared['clusters'], 'cluster')}",
                      markup=False)


@click.command()
@click.option("--threshold", type=click.IntRange(0, MAX_THRESHOLD), metavar="N",
              help="Re-cluster from the stored hashes at this Hamming distance (nothing is fetched).")
@click.pass_obj
def dups(app, threshold: int | None) -> None:
    """List duplicate clusters: representative, members, distances, sources.

    Example: curator dups --threshold 8
    """
    from curator import dedup

    ws = app.workspace()
    if threshold is not None:
        result = dedup.recluster(ws.conn, ws.objects, ws.config.dedup, threshold)
        app.out.info(
            f"Re-clustered {counted(result.images, 'image')} at threshold {threshold}: "
            f"{counted(result.clusters, 'cluster')}, {result.multi} with near duplicates, "
            f"{counted(result.moved, 'image')} moved"
        )
    value = [_plain(info) for info in dedup.clusters(ws.conn, objects=ws.objects)]

    def render(console: Console) -> None:
        if not value:
            console.print("No duplicate clusters.", markup=False)
        for info in value:
            members = info["members"]
            sources = sum(len(m["urls"]) for m in members)
            console.print(
                f"Cluster {info['id']}: {counted(len(members), 'image')}, {counted(sources, 'source')}; "
                f"representative {info['representative'][:12]} ({info['why']})",
                markup=False,
            )
            for m in members:
                distance = "-" if m["distance"] is None else m["distance"]
                console.print(
                    f"  {m['sha256'][:12]}  {m['width']}x{m['height']}  distance {distance}  "
                    + ", ".join(m["urls"]),
                    markup=False,
                )

    app.out.result(value, render)


def _plain(value: Any) -> Any:
    import dataclasses

    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


COMMANDS = [ingest, status, dups]
