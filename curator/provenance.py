"""Per-image provenance words shared by config, ingest and release.

:data:`FIELDS` are what a table's column mapping may name (curator.ingest.tables).
:data:`DIAGNOSIS_PROVENANCE` is how a diagnosis was confirmed, as a release states it; a
source's own words (HAM10000's ``histo``, ``follow_up``, ``consensus``, ``confocal``)
map to it through ``[ingest.diagnosis_map]`` (:func:`diagnosis_provenance`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from curator.licences import Source

FIELDS = ("locator", "hint", "group", "licence", "attribution", "diagnosis", "body_site")
DIAGNOSIS_PROVENANCE = ("histopathology", "clinical", "consensus", "atlas-caption", "unknown")


@dataclass(frozen=True)
class Released:
    """The provenance columns of a release row (parquet and manifest); None: not known."""

    licence: str | None = None
    attribution: str | None = None
    diagnosis_provenance: str | None = None
    body_site: str | None = None
    collection: str | None = None  # the table file or Hub repo the image came from
    source_metadata: str | None = None  # JSON object: the source row's other columns


COLUMNS = tuple(f.name for f in fields(Released))


def diagnosis_provenance(value: str | None, mapping: Mapping[str, str]) -> str | None:
    """The vocabulary word for a source's diagnosis value: None when the source gave none, the
    value itself when it is a vocabulary word, its mapping (keys compared without case), else
    'unknown'."""
    if value is None:
        return None
    word = value.strip().lower()
    if word in DIAGNOSIS_PROVENANCE:
        return word
    lowered = {k.lower(): v for k, v in mapping.items()}
    return lowered.get(word, "unknown")


def released(source: Source, mapping: Mapping[str, str]) -> Released:
    """The release's provenance columns of an image whose best source is ``source``."""
    return Released(
        licence=source.license or None,
        attribution=source.attribution or None,
        diagnosis_provenance=diagnosis_provenance(source.diagnosis, mapping),
        body_site=source.body_site,
        collection=source.collection,
        source_metadata=source.metadata,
    )


def unmapped_warning(pairs: Iterable[tuple[str | None, Released]]) -> list[str]:
    """A warning naming the diagnosis values (with the released provenance of each image) that
    [ingest.diagnosis_map] does not map; none when all are mapped."""
    unmapped = Counter(
        value for value, prov in pairs
        if value and prov.diagnosis_provenance == "unknown" and value.strip().lower() != "unknown"
    )
    if not unmapped:
        return []
    listed = ", ".join(f"{value!r} ({n})" for value, n in sorted(unmapped.items()))
    return [f"diagnosis values not in [ingest.diagnosis_map], released as 'unknown': {listed}"]


def counts(rows: Iterable[Released]) -> dict[str, dict[str, int]]:
    """For the card: images per licence, diagnosis provenance, body site and collection ('' counts
    those whose source did not say)."""
    rows = list(rows)
    columns = ("licence", "diagnosis_provenance", "body_site", "collection")
    return {c: dict(Counter(getattr(r, c) or "" for r in rows)) for c in columns}
