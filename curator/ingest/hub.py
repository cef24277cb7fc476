"""Hub datasets as sources: ``hf://datasets/NS/NAME[@REVISION]``.

The revision (default ``main``) is resolved to its commit sha first, and the rows are read
at that sha through ``datasets`` (which honours ``HF_ENDPOINT`` and the token), so a
source's locator, ``hf://datasets/NS/NAME@SHA/CONFIG/SPLIT/ROW``, names bytes that never
change. The image column is the locator; the column mapping (curator.ingest.tables) names
the label hint, group and provenance columns, and the other columns are kept as JSON.
Each source reads its image bytes from the loaded split when a worker takes it
(curator.ingest.run); nothing is fetched again.
"""

from __future__ import annotations

import contextlib
import functools
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from curator.errors import InputError
from curator.ingest.sources import Source
from curator.ingest.tables import cell_text, check_columns, provenance_of

PREFIX = "hf://datasets/"
_SPEC = re.compile(r"^hf://datasets/([A-Za-z0-9][\w.-]*/[A-Za-z0-9][\w.-]*)(?:@([^/\s]+))?/?$")


@dataclass(frozen=True)
class HubSpec:
    repo: str
    revision: str  # as asked: a branch, tag or sha


def is_hub(arg: str) -> bool:
    return arg.startswith("hf://")


def parse_spec(arg: str) -> HubSpec:
    match = _SPEC.match(arg)
    if match is None:
        raise InputError(f"{arg}: not a Hub dataset (hf://datasets/NAMESPACE/NAME[@REVISION])", path=arg)
    return HubSpec(match.group(1), match.group(2) or "main")


def read_hub(arg: str, mapping: Mapping[str, str], *, split: str | None = None,
             config: str | None = None) -> list[Source]:
    """The sources of one split of a Hub image dataset, in row order."""
    spec = parse_spec(arg)
    if "locator" in mapping:
        raise InputError(f"{arg}: a Hub dataset's locator is its image column; drop locator=", path=arg)
    sha = _resolve(spec, arg)
    dataset, chosen = _load(spec.repo, sha, split, config, arg)
    image_column = _image_column(dataset.features, arg)
    check_columns(mapping, list(dataset.column_names), arg)
    from datasets import Image

    images = dataset.select_columns([image_column]).cast_column(image_column, Image(decode=False))
    names = _class_names(dataset.features, mapping.get("hint"))
    where = f"hf://datasets/{spec.repo}@{sha}/{config or 'default'}/{chosen}"
    kept = {image_column, *mapping.values()}
    sources = []
    for number, row in enumerate(dataset.remove_columns(image_column)):  # no image bytes read here
        values = {f: cell_text(row[column]) for f, column in mapping.items()}
        if names is not None and isinstance(row[mapping["hint"]], int):  # a ClassLabel: its name
            values["hint"] = names[row[mapping["hint"]]]
        extra = {k: v for k, v in row.items() if k not in kept}
        extra["hub"] = {"repo": spec.repo, "revision": sha, "split": chosen, "row": number}
        provenance = provenance_of(values, spec.repo, extra)
        sources.append(Source(f"{where}/{number}", "url", values.get("hint"), None, values.get("group"),
                              provenance, read=functools.partial(_image_bytes, images, image_column, number)))
    return sources


def _image_bytes(images: Any, column: str, number: int) -> bytes | None:
    """One row's image bytes, read on a worker when the source's turn comes (datasets keeps the
    split memory-mapped, so a big split is never all in memory)."""
    image = images[number][column] or {}
    data = image.get("bytes")
    return bytes(data) if data else None


def _resolve(spec: HubSpec, arg: str) -> str:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        info = HfApi().dataset_info(spec.repo, revision=spec.revision)
    except RevisionNotFoundError as err:
        raise InputError(f"{arg}: the Hub dataset has no revision {spec.revision!r}", path=arg) from err
    except RepositoryNotFoundError as err:
        raise InputError(f"{arg}: no such Hub dataset (or the token may not read it)", path=arg) from err
    except Exception as err:  # noqa: BLE001 - transport and HTTP errors, translated
        raise InputError(f"{arg}: cannot read the Hub dataset ({_first_line(err)})", path=arg) from err
    if not info.sha:
        raise InputError(f"{arg}: the Hub gave no commit for revision {spec.revision!r}", path=arg)
    return str(info.sha)


def _load(repo: str, sha: str, split: str | None, config: str | None, arg: str) -> tuple[Any, str]:
    """The chosen split (the only one when there is one), downloading that split's files only."""
    import datasets

    from curator.released import quiet_datasets

    try:
        with quiet_datasets(), _quiet_hub_logger():
            splits = sorted(datasets.get_dataset_split_names(repo, config, revision=sha))
            if split is None and len(splits) == 1:
                split = splits[0]
            if split is None or split not in splits:
                asked = "choose one with --split" if split is None else f"no split {split!r}"
                raise InputError(f"{arg}: {asked} (splits: {', '.join(splits)})", path=arg)
            return datasets.load_dataset(repo, name=config, revision=sha, split=split), split
    except InputError:
        raise
    except Exception as err:  # noqa: BLE001 - datasets raises many kinds; each becomes one line
        raise InputError(f"{arg}: cannot load the dataset ({_first_line(err)})", path=arg) from err


@contextlib.contextmanager
def _quiet_hub_logger() -> Iterator[None]:
    """huggingface_hub logs card notes ("Repo card metadata block was not found") to stderr:
    errors only, while the dataset loads."""
    import logging

    logger = logging.getLogger("huggingface_hub")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        logger.setLevel(level)


def _image_column(features: Any, arg: str) -> str:
    from datasets import Image

    found = [name for name, feature in features.items() if isinstance(feature, Image)]
    if not found:
        raise InputError(f"{arg}: no image column (columns: {', '.join(features)})", path=arg)
    return str(found[0])


def _class_names(features: Any, column: str | None) -> list[str] | None:
    from datasets import ClassLabel

    feature = features.get(column) if column else None
    return list(feature.names) if isinstance(feature, ClassLabel) else None


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__

