"""Per-image provenance words shared by config, ingest and release.

:data:`FIELDS` are what a table's column mapping may name (curator.ingest.tables).
:data:`DIAGNOSIS_PROVENANCE` is how a diagnosis was confirmed, as a release states it; a
source's own words (HAM10000's ``histo``, ``follow_up``, ``consensus``, ``confocal``)
map to it through ``[ingest.diagnosis_map]`` (:func:`diagnosis_provenance`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

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
