"""Per-image provenance words shared by config, ingest and release.

:data:`FIELDS` are what a table's column mapping may name (curator.ingest.tables).
:data:`DIAGNOSIS_PROVENANCE` is how a diagnosis was confirmed, as a release states it; a
source's own words (HAM10000's ``histo``, ``follow_up``, ``consensus``, ``confocal``)
map to it through ``[ingest.diagnosis_map]`` (:func:`diagnosis_provenance`).
:data:`SKIN_SCALES` are the skin-type scales a source may supply per image (Fitzpatrick I-VI,
Monk 1-10), released as integers (:func:`skin_type`) and reported on the card in place of the
image-based ITA estimate (curator.skintone).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from curator.licences import Source

FIELDS = ("locator", "hint", "group", "licence", "attribution", "diagnosis", "body_site", "fitzpatrick",
          "monk")
DIAGNOSIS_PROVENANCE = ("histopathology", "clinical", "consensus", "atlas-caption", "unknown")
SKIN_SCALES = {"fitzpatrick": 6, "monk": 10}  # scale -> its highest type; types count from 1
_ROMAN = {"i": 1, "ii": 2, "iii": 3, "iv": 4, "v": 5, "vi": 6, "vii": 7, "viii": 8, "ix": 9, "x": 10}


@dataclass(frozen=True)
class Released:
    """The provenance columns of a release row (parquet and manifest); None: not known."""

    licence: str | None = None
    attribution: str | None = None
    diagnosis_provenance: str | None = None
    body_site: str | None = None
    fitzpatrick: int | None = None  # skin type 1-6 as the source supplied it
    monk: int | None = None  # Monk skin tone 1-10 as the source supplied it
    collection: str | None = None  # the table file or Hub repo the image came from
    source_metadata: str | None = None  # JSON object: the source row's other columns


COLUMNS = tuple(f.name for f in fields(Released))


def feature_type(column: str) -> str:
    """The parquet type of a provenance column (a ``datasets.Value`` dtype)."""
    return "int8" if column in SKIN_SCALES else "string"


def skin_type(value: str | None, scale: str) -> int | None:
    """A supplied skin type as an integer on ``scale`` (:data:`SKIN_SCALES`): ``3``, ``3.0``,
    ``III`` and ``type III`` all read 3; None for no value or one off the scale (Fitzpatrick17k
    writes -1 for "not known")."""
    if value is None:
        return None
    word = value.strip().lower().removeprefix("type").strip()
    number = _ROMAN.get(word)
    if number is None:
        try:
            as_float = float(word)
        except ValueError:
            return None
        number = int(as_float) if as_float.is_integer() else None
    return number if number is not None and 1 <= number <= SKIN_SCALES[scale] else None


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
        fitzpatrick=skin_type(source.fitzpatrick, "fitzpatrick"),
        monk=skin_type(source.monk, "monk"),
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


def unread_skin_types_warning(sources: Iterable[Source]) -> list[str]:
    """One warning per scale naming supplied values that are not a type on it (released as null)."""
    warnings = []
    for scale, top in SKIN_SCALES.items():
        unread = Counter(value for src in sources
                         if (value := getattr(src, scale)) is not None and skin_type(value, scale) is None)
        if unread:
            listed = ", ".join(f"{value!r} ({n})" for value, n in sorted(unread.items()))
            warnings.append(f"{scale} values that are not a type 1-{top}, released as null: {listed}")
    return warnings


def counts(rows: Iterable[Released]) -> dict[str, dict[str, int]]:
    """For the card: images per licence, diagnosis provenance and body site ('' counts those whose
    source did not say); collections have a table of their own (:func:`per_collection`)."""
    rows = list(rows)
    columns = ("licence", "diagnosis_provenance", "body_site")
    return {c: dict(Counter(getattr(r, c) or "" for r in rows)) for c in columns}


def per_collection(rows: Iterable[tuple[Released, str]], classes: Sequence[str]) -> dict[str, dict[str, int]]:
    """For the card: (provenance, label) of each original -> collection -> class -> images, most
    images first; '' for originals from lists and folders ingested without ``--collection``."""
    found: dict[str, Counter[str]] = {}
    for prov, label in rows:
        found.setdefault(prov.collection or "", Counter())[label] += 1
    ordered = sorted(found.items(), key=lambda item: (-item[1].total(), item[0]))
    return {name: {c: counts[c] for c in classes} for name, counts in ordered}
