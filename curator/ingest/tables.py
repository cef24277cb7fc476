"""Tables as sources: one row per image, with a column mapping saying which column is what.

A mapping is ``field=COLUMN`` pairs (``--columns`` or ``[ingest.columns]``), fields from
:data:`curator.provenance.FIELDS`. ``locator`` (a URL or a path, resolved like a list line: relative to the
table's folder, inside the root) is required for a table; a Hub dataset's locator is its
image column (curator.ingest.hub). Columns the mapping does not name are kept per source
as a JSON object. A mapping that names an unknown field or a missing column is an
:class:`~curator.errors.InputError` before anything is written; a row with an empty
locator becomes a source rejected as ``empty-locator``, like a bad URL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from curator.errors import InputError
from curator.ingest.sources import Provenance, Source, parse_line
from curator.provenance import FIELDS

TABLE_SUFFIXES = (".csv", ".tsv", ".jsonl", ".parquet")
_JSON = json.JSONEncoder(default=str, ensure_ascii=False)


def is_table(arg: str) -> bool:
    return arg.lower().endswith(TABLE_SUFFIXES)


def parse_columns(text: str, where: str = "--columns") -> dict[str, str]:
    """``locator=url,hint=label`` -> {"locator": "url", "hint": "label"}, every field checked."""
    mapping: dict[str, str] = {}
    for pair in (p.strip() for p in text.split(",")):
        name, eq, column = (part.strip() for part in pair.partition("="))
        if not eq or not name or not column:
            raise InputError(f"{where}: {pair!r} is not a field=COLUMN pair")
        mapping[name] = column
    check_fields(mapping, where)
    return mapping


def check_fields(mapping: Mapping[str, str], where: str) -> None:
    for name in mapping:
        if name not in FIELDS:
            raise InputError(f"{where}: unknown field {name!r} (fields: {', '.join(FIELDS)})")


def read_table(path: Path, mapping: Mapping[str, str], *, root: Path | None = None) -> list[Source]:
    """The sources of a .csv, .tsv, .jsonl or .parquet table, in row order."""
    name = str(path)
    if "locator" not in mapping:
        raise InputError(f"{name}: the column mapping needs locator=COLUMN (the URL or path column)")
    table = _read(path, set(mapping.values()))
    check_columns(mapping, table.column_names, name)
    base = path.resolve().parent
    return list(table_sources(table.to_pylist(), mapping, name=name, collection=path.name, base=base,
                              root=(root or base).resolve()))


def check_columns(mapping: Mapping[str, str], columns: list[str], name: str) -> None:
    for field_name, column in mapping.items():
        if column not in columns:
            raise InputError(f"{name}: no column {column!r} (mapped to {field_name}); "
                             f"columns: {', '.join(columns)}", path=name)


def table_sources(rows: list[dict[str, Any]], mapping: Mapping[str, str], *, name: str, collection: str,
                  base: Path, root: Path) -> Iterator[Source]:
    """One source per row (more for a row naming a folder); row numbers count from 1, header aside."""
    kept = set(mapping.values())
    groups: dict[str, tuple[str, int]] = {}
    for number, row in enumerate(rows, start=1):
        values = {f: cell_text(row.get(column)) for f, column in mapping.items()}
        extra = {k: v for k, v in row.items() if k not in kept}
        provenance = provenance_of(values, collection, extra)
        hint, group, locator = values.get("hint"), values.get("group"), values.get("locator")
        if locator is None:
            yield Source(f"{name} row {number}", "url", hint, "empty-locator", group, provenance)
            continue
        for src in parse_line(locator.replace("\t", " "), base=base, root=root):
            if group is not None:
                earlier = groups.setdefault(src.locator, (group, number))
                if earlier[0] != group:
                    raise InputError(f"{name} row {number}: {src.locator} is in group {group!r} here but in "
                                     f"group {earlier[0]!r} on row {earlier[1]}", path=name)
            yield Source(src.locator, src.kind, hint or src.hint, src.problem, group, provenance)


def provenance_of(values: Mapping[str, str | None], collection: str, extra: dict[str, Any]) -> Provenance:
    """A row's provenance from its mapped ``values`` and its other columns (``extra``)."""
    return Provenance(
        collection=collection,
        licence=values.get("licence"),
        attribution=values.get("attribution"),
        diagnosis=values.get("diagnosis"),
        body_site=values.get("body_site"),
        fitzpatrick=values.get("fitzpatrick"),
        monk=values.get("monk"),
        metadata=_JSON.encode(extra) if extra else None,
    )


def cell_text(value: Any) -> str | None:
    """A cell as text; empty and null cells are None."""
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _read(path: Path, as_text: set[str]) -> Any:
    """The table; in a CSV the mapped columns stay text (a case id '007' is not the number 7),
    the others get inferred types, which their JSON keeps."""
    import pyarrow as pa
    from pyarrow import csv, parquet
    from pyarrow import json as pa_json

    name = str(path)
    suffix = path.suffix.lower()
    if not path.is_file():
        raise InputError(f"{name}: no such file", path=name)
    try:
        if suffix == ".parquet":
            return parquet.read_table(path)
        if suffix == ".jsonl":
            return pa_json.read_json(path)
        delimiter = "\t" if suffix == ".tsv" else ","
        convert = csv.ConvertOptions(column_types={column: pa.string() for column in as_text})
        parse = csv.ParseOptions(delimiter=delimiter)
        return csv.read_csv(path, parse_options=parse, convert_options=convert)
    except (pa.ArrowException, OSError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise InputError(f"{name}: not a readable {suffix[1:]} table ({reason})", path=name) from err
