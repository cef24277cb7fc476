"""Load a release's splits as numpy arrays, from a local release folder or a Hub revision.

Both paths go through :func:`datasets.load_dataset`, so the baseline reads the
release the way its users will: a local folder through the ``parquet`` builder
(explicit ``data/<split>-*.parquet`` files, so the card's YAML cannot redirect
it), a Hub revision by repo id and revision. The ``datasets`` cache goes to a
caller-given folder (a temp dir by default), never into the workspace.

Images are decoded with Pillow, converted to RGB and resized to a square
``image_size`` (a plain stretch, like ``keras.utils.image_dataset_from_directory``;
release images are already preprocessed and close to square). Pixels stay 0..255
as uint8 (a quarter of float32's memory); batches become float32 as they are fed, and the
model rescales them itself.
"""

from __future__ import annotations

import dataclasses
import io
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from curator.errors import BaselineError
from curator.released import Manifest

SPLITS = ("train", "validation", "test")


@dataclass(frozen=True)
class SplitArrays:
    """One split as arrays, row order as stored in the release."""

    images: np.ndarray  # (n, size, size, 3) uint8
    labels: np.ndarray  # (n,) int64 class indices
    sha256: tuple[str, ...]
    cluster_ids: np.ndarray  # (n,) int64
    augmented: np.ndarray  # (n,) bool: a balancing copy (augmented_from is set)
    group_ids: tuple[str | None, ...] = ()  # patient/lesion group where known (else None per row)

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def select(self, mask: np.ndarray) -> SplitArrays:
        index = np.flatnonzero(mask)
        return SplitArrays(
            images=self.images[index],
            labels=self.labels[index],
            sha256=tuple(self.sha256[i] for i in index),
            cluster_ids=self.cluster_ids[index],
            augmented=self.augmented[index],
            group_ids=tuple(self.groups()[i] for i in index),
        )

    def groups(self) -> tuple[str | None, ...]:
        return self.group_ids or (None,) * len(self)

    def originals(self) -> SplitArrays:
        """Without the balancing copies (used for train accuracy and cross-validation)."""
        return self.select(~self.augmented)


@dataclass(frozen=True)
class ReleaseData:
    source: str  # "1.2.0" for a local release, "ns/name@v1.2.0" for a Hub revision
    classes: tuple[str, ...]
    splits: dict[str, SplitArrays]
    class_weights: dict[str, float] | None = None  # from manifest balance.class_weights
    manifest: Manifest | None = field(default=None, repr=False)
    commit: str | None = None  # the Hub commit a revision resolved to

    @property
    def balance_method(self) -> str:
        """How the release balanced its train split (cross-validation repeats it per fold)."""
        recorded = self.manifest.balance.get("method") if self.manifest else None
        if recorded:
            return str(recorded)
        if self.splits["train"].augmented.any():
            return "oversample"
        return "class-weights" if self.class_weights else "none"


def load_folder(folder: Path, image_size: int, source: str, manifest: Manifest | None = None,
                cache_dir: Path | None = None) -> ReleaseData:
    """Load the release folder ``folder`` (``data/<split>-*.parquet``)."""
    import datasets

    data_files = {}
    for split in SPLITS:
        files = sorted((Path(folder) / "data").glob(f"{split}-*.parquet"))
        if not files:
            raise BaselineError(f"release {source}: no {split} split in {folder}/data", path=str(folder))
        data_files[split] = [str(f) for f in files]
    with _cache(cache_dir) as cache:
        try:
            dd = datasets.load_dataset("parquet", data_files=data_files, cache_dir=cache)
        except (OSError, ValueError) as err:
            raise BaselineError(f"release {source}: cannot read its parquet files ({err})") from err
        return _to_arrays(dd, image_size, source, manifest)


def load_hub(repo: str, revision: str, image_size: int, cache_dir: Path | None = None) -> ReleaseData:
    """Load ``repo`` at ``revision`` from the Hub (``HF_ENDPOINT``), plus its manifest.json if present.

    One metadata request first resolves the revision to a commit: a missing repo or revision
    or an unreachable Hub is then one precise line, without the client's download retries, and
    the data and the manifest both come from that one commit even if the tag moves meanwhile.
    """
    import datasets

    source = f"{repo}@{revision}"
    commit = resolve_hub_revision(repo, revision)
    with _cache(cache_dir) as cache:
        try:
            dd = datasets.load_dataset(repo, revision=commit, cache_dir=cache)
        except Exception as err:  # noqa: BLE001 - the Hub client raises many kinds; all mean "can't load"
            first = str(err).strip().splitlines()[0][:160] if str(err).strip() else type(err).__name__
            raise BaselineError(f"{source}: datasets cannot load it ({first})") from err
        manifest = _hub_manifest(repo, commit, cache)
        loaded = _to_arrays(dd, image_size, source, manifest)
    return dataclasses.replace(loaded, commit=commit)


def resolve_hub_revision(repo: str, revision: str) -> str:
    """The commit that ``revision`` names in the dataset repo ``repo``; a BaselineError if the repo
    or the revision does not exist or the Hub cannot be reached."""
    from huggingface_hub import HfApi, constants
    from huggingface_hub import errors as hub_errors

    source = f"{repo}@{revision}"
    try:
        info = HfApi().dataset_info(repo, revision=revision)
    except hub_errors.RevisionNotFoundError as err:
        raise BaselineError(f"{source}: no revision {revision!r} in {repo} on {constants.ENDPOINT}") from err
    except hub_errors.RepositoryNotFoundError as err:
        raise BaselineError(f"{source}: no dataset repo {repo!r} on {constants.ENDPOINT}",
                            key="repo", value=repo, reason="no-such-repo") from err
    except hub_errors.HfHubHTTPError as err:
        status = err.response.status_code if err.response is not None else "?"
        raise BaselineError(f"{source}: the Hub at {constants.ENDPOINT} answered HTTP {status}") from err
    except _transport_errors() as err:
        raise BaselineError(f"{source}: cannot reach the Hub at {constants.ENDPOINT} ({type(err).__name__})",
                            url=constants.ENDPOINT) from err
    if not info.sha:
        raise BaselineError(f"{source}: the Hub did not say which commit {revision!r} is")
    return str(info.sha)


def _transport_errors() -> tuple[type[Exception], ...]:
    """Connection-level errors of the HTTP clients huggingface_hub may use (httpx2 in 2.x, httpx in 1.x)."""
    import importlib

    found: list[type[Exception]] = [OSError]
    for name in ("httpx2", "httpx"):
        try:
            found.append(importlib.import_module(name).TransportError)
        except (ImportError, AttributeError):
            continue
    return tuple(found)


def _hub_manifest(repo: str, revision: str, cache: str) -> Manifest | None:
    from huggingface_hub import errors as hub_errors
    from huggingface_hub import hf_hub_download

    try:
        path = hf_hub_download(repo, "manifest.json", revision=revision, repo_type="dataset", cache_dir=cache)
    except hub_errors.EntryNotFoundError:
        return None
    return Manifest.parse(Path(path).read_bytes(), f"{repo}@{revision}/manifest.json")


class _cache:
    """The caller's cache folder, or a temp folder removed afterwards."""

    def __init__(self, cache_dir: Path | None) -> None:
        self._given = cache_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None

    def __enter__(self) -> str:
        if self._given is not None:
            return str(self._given)
        self._tmp = tempfile.TemporaryDirectory(prefix="curator-baseline-")
        return self._tmp.name

    def __exit__(self, *exc: object) -> None:
        if self._tmp is not None:
            self._tmp.cleanup()


def _to_arrays(dd: Any, image_size: int, source: str, manifest: Manifest | None) -> ReleaseData:
    import datasets

    for split in SPLITS:
        if split not in dd:
            raise BaselineError(f"release {source}: no {split} split")
    features = dd["train"].features
    if not isinstance(features.get("label"), datasets.ClassLabel) or "image" not in features:
        raise BaselineError(f"release {source}: expected an 'image' column and a ClassLabel 'label' column")
    classes = tuple(features["label"].names)
    groups = {row["sha256"]: row.get("group_id") for row in (manifest.rows if manifest else [])}
    splits = {split: _split_arrays(dd[split], image_size, f"release {source}: {split} split", groups)
              for split in SPLITS}
    _check_classes(source, classes, splits)
    weights = manifest.class_weights if manifest else None
    return ReleaseData(source=source, classes=classes, splits=splits, class_weights=weights,
                       manifest=manifest)


def _split_arrays(ds: Any, image_size: int, where: str, groups: dict[str, str | None]) -> SplitArrays:
    """One split as arrays; a row's group_id comes from its column where set, else from the
    manifest row of the same sha256."""
    import datasets
    from PIL import UnidentifiedImageError

    ds = ds.cast_column("image", datasets.Image(decode=False))
    columns = set(ds.column_names)
    n = ds.num_rows
    sha256 = tuple(ds["sha256"]) if "sha256" in columns else tuple(str(i) for i in range(n))
    images = np.empty((n, image_size, image_size, 3), dtype=np.uint8)
    for i, item in enumerate(ds["image"]):
        try:
            images[i] = decode(item, image_size)
        except (UnidentifiedImageError, OSError, ValueError) as err:
            raise BaselineError(f"{where}: row {i} (sha256 {sha256[i][:12]}) is not a readable image",
                                sha256=sha256[i]) from err
    augmented_from = ds["augmented_from"] if "augmented_from" in columns else [None] * n
    column = ds["group_id"] if "group_id" in columns else [None] * n
    return SplitArrays(
        images=images,
        labels=np.asarray(ds["label"], dtype=np.int64),
        sha256=sha256,
        cluster_ids=np.asarray(ds["cluster_id"] if "cluster_id" in columns else range(n), dtype=np.int64),
        augmented=np.asarray([a is not None for a in augmented_from], dtype=bool),
        group_ids=tuple(g or groups.get(h) for g, h in zip(column, sha256, strict=True)),
    )


def decode(item: dict[str, Any], image_size: int) -> np.ndarray:
    """``{"bytes", "path"}`` from an undecoded Image column -> (size, size, 3) uint8."""
    from PIL import Image

    source = io.BytesIO(item["bytes"]) if item.get("bytes") else item["path"]
    with Image.open(source) as img:
        rgb = img.convert("RGB").resize((image_size, image_size), Image.Resampling.BILINEAR)
        return np.asarray(rgb, dtype=np.uint8)


def _check_classes(source: str, classes: tuple[str, ...], splits: dict[str, SplitArrays]) -> None:
    """Every class needs rows in every split: a test split without a class cannot score it."""
    for split in ("test", "validation", "train"):
        present = set(splits[split].labels.tolist())
        missing = [name for i, name in enumerate(classes) if i not in present]
        if missing:
            raise BaselineError(
                f"release {source}: class '{missing[0]}' has no rows in the {split} split",
                hint="a baseline scores every class; label more images of it and build a new release",
            )


def class_counts(labels: Iterable[int], n_classes: int) -> np.ndarray:
    return np.bincount(np.asarray(list(labels), dtype=np.int64), minlength=n_classes)
