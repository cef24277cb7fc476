"""The read side of releases: list, resolve, read and verify what ``curator.release`` built.

Every reader of a built release (publish, baseline, diff, the next build's bump, status)
goes through :func:`read_release`, which checks before anything is used:

    manifest   manifest.json's SHA-256 is the one the catalog recorded at build time, and it
               parses into a :class:`Manifest` of a format this curator knows
    files      every file the manifest lists (the parquet shards) is present, with its size
               and SHA-256

:func:`read_manifest` makes the first check alone, for a reader that needs only the manifest
and leaves the files to a later :func:`read_release` of the same release.

The card (README.md), its plot and baseline.json are not listed: ``curator baseline``
rewrites them after the build. A mismatch is a ReleaseError naming the file that changed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any

from curator.errors import InputError, ReleaseError
from curator.versions import format_version, parse_version
from curator.workspace import Workspace

SPLITS = ("train", "validation", "test")
_ROW_KEYS = ("sha256", "label", "split")  # what every reader of a row relies on
MANIFEST = "manifest.json"
_IMMUTABLE = "a built release never changes: build a new version instead"
FORMAT_VERSION = 1  # manifest.json's "format_version"; a manifest without one is format 1


@dataclass(frozen=True)
class ReleaseInfo:
    version: str
    parent: str | None
    created_at: str
    path: str
    rows: int
    summary: dict[str, Any]
    manifest_sha256: str


def list_releases(ws: Workspace) -> list[ReleaseInfo]:
    """Every built release, oldest version first."""
    found = [
        ReleaseInfo(
            version=r["version"],
            parent=r["parent"],
            created_at=r["created_at"],
            path=r["path"],
            rows=r["rows"],
            summary=json.loads(r["summary"]),
            manifest_sha256=r["manifest_sha256"],
        )
        for r in ws.conn.execute("SELECT * FROM releases")
    ]
    return sorted(found, key=lambda info: parse_version(info.version))


def newest(ws: Workspace) -> str | None:
    releases = list_releases(ws)
    return releases[-1].version if releases else None


def resolve_version(ws: Workspace, version: str | None) -> str:
    """'v1.2.0' | '1.2.0' -> '1.2.0' if built; None -> the newest. InputError if unknown."""
    known = [info.version for info in list_releases(ws)]
    if version is None:
        if not known:
            raise ReleaseError("no release has been built yet", hint="run `curator release` first")
        return known[-1]
    wanted = format_version(parse_version(version))
    if wanted not in known:
        listed = ", ".join(f"v{v}" for v in known) or "none"
        raise InputError(f"no release v{wanted} in this workspace (built: {listed})", key="version",
                         value=version, reason="unknown-version")
    return wanted


def release_path(ws: Workspace, version: str) -> Path:
    return ws.releases / f"v{version}"


# ---------------------------------------------------------------- the manifest


@dataclass(frozen=True)
class Manifest:
    """manifest.json: every row of the release, the config, tool versions and the bump.

    ``rows`` are dicts (sha256, label, split, source_url, cluster_id, group_id,
    augmented_from, preprocess_hash and the provenance columns), as stored.
    """

    version: str
    name: str
    parent: str | None
    created_at: str
    classes: list[str]
    splits: dict[str, dict[str, Any]]  # split -> rows, originals, augmented, per_class, ...
    files: dict[str, dict[str, Any]]  # data/<shard>.parquet -> {sha256, bytes}
    rows: list[dict[str, Any]]
    cluster_members: list[dict[str, Any]]
    balance: dict[str, Any]  # {method, class_weights}
    config: dict[str, Any]
    versions: dict[str, str]
    bump: dict[str, str]  # {kind, reason}
    include_restricted: bool
    format_version: int = FORMAT_VERSION

    def as_dict(self) -> dict[str, Any]:
        """The JSON object, format_version first."""
        plain = asdict(self)
        return {"format_version": plain.pop("format_version"), **plain}

    def to_json(self) -> bytes:
        return (json.dumps(self.as_dict(), indent=2, ensure_ascii=False) + "\n").encode("utf-8")

    @property
    def class_weights(self) -> dict[str, float] | None:
        return self.balance.get("class_weights") or None

    def originals(self) -> dict[str, dict[str, Any]]:
        """sha256 -> row, for the rows that are not balancing copies."""
        return {r["sha256"]: r for r in self.rows if r.get("augmented_from") is None}

    @classmethod
    def parse(cls, data: bytes, where: str) -> Manifest:
        """Check the JSON's shape; a ReleaseError names ``where`` and the first field that is wrong."""
        try:
            raw = json.loads(data)
        except ValueError as err:
            raise ReleaseError(f"{where}: not valid JSON ({err})", path=where, reason="invalid-json") from err
        if not isinstance(raw, dict):
            raise ReleaseError(f"{where}: not a JSON object", path=where, reason="invalid-manifest")
        fmt = raw.get("format_version", 1)
        if not isinstance(fmt, int) or fmt > FORMAT_VERSION:
            raise ReleaseError(f"{where}: format_version {fmt!r} is newer than this curator reads "
                               f"({FORMAT_VERSION})", hint="upgrade curator", path=where,
                               key="format_version", value=str(fmt), reason="unknown-format")
        values: dict[str, Any] = {"format_version": fmt}
        for f in fields(cls):
            if f.name == "format_version":
                continue
            if f.name not in raw:
                raise ReleaseError(f"{where}: no '{f.name}'", path=where, key=f.name, reason="missing-field")
            value = raw[f.name]
            if not isinstance(value, _SHAPES[f.name][0]):
                raise ReleaseError(f"{where}: '{f.name}' is not {_SHAPES[f.name][1]}", path=where, key=f.name,
                                   reason="invalid-field")
            values[f.name] = value
        for i, row in enumerate(values["rows"]):
            if not isinstance(row, dict) or not all(isinstance(row.get(k), str) for k in _ROW_KEYS):
                raise ReleaseError(f"{where}: rows[{i}] lacks sha256, label or split", path=where,
                                   key=f"rows[{i}]", reason="invalid-field")
        return cls(**values)


_SHAPES: dict[str, tuple[tuple[type, ...], str]] = {
    "version": ((str,), "a string"),
    "name": ((str,), "a string"),
    "parent": ((str, type(None)), "a string or null"),
    "created_at": ((str,), "a string"),
    "classes": ((list,), "a list"),
    "splits": ((dict,), "an object"),
    "files": ((dict,), "an object"),
    "rows": ((list,), "a list"),
    "cluster_members": ((list,), "a list"),
    "balance": ((dict,), "an object"),
    "config": ((dict,), "an object"),
    "versions": ((dict,), "an object"),
    "bump": ((dict,), "an object"),
    "include_restricted": ((bool,), "true or false"),
}


# ---------------------------------------------------------------- reading one release


@dataclass(frozen=True)
class Release:
    version: str
    folder: Path
    manifest: Manifest


def read_release(ws: Workspace, version: str | None) -> Release:
    """The built release ``version`` (None: the newest), verified (see the module docstring)."""
    release = read_manifest(ws, version)
    verify_files(release.folder, release.manifest)
    return release


def read_manifest(ws: Workspace, version: str | None) -> Release:
    """The built release ``version`` (None: the newest) with its manifest checked against the
    catalog; its data files are not read."""
    resolved = resolve_version(ws, version)
    recorded = next(info.manifest_sha256 for info in list_releases(ws) if info.version == resolved)
    folder = release_path(ws, resolved)
    path = folder / MANIFEST
    try:
        data = path.read_bytes()
    except OSError as err:
        raise ReleaseError(f"{path}: cannot read the manifest ({err.strerror})", path=str(path),
                           reason="unreadable") from err
    if hashlib.sha256(data).hexdigest() != recorded:
        raise ReleaseError(f"{path}: changed since v{resolved} was built (its SHA-256 is not the one the "
                           "catalog recorded)", hint=_IMMUTABLE, path=str(path), reason="changed")
    manifest = Manifest.parse(data, str(path))
    if manifest.version != resolved:
        raise ReleaseError(f"{path}: says version {manifest.version}, the catalog v{resolved}",
                           path=str(path), key="version", reason="changed")
    return Release(resolved, folder, manifest)


def verify_files(folder: Path, manifest: Manifest) -> None:
    """Every file the manifest lists is in ``folder`` with its size and SHA-256."""
    for rel, expected in sorted(manifest.files.items()):
        path = folder / rel
        try:
            size = path.stat().st_size
            digest = _sha256_file(path) if size == expected.get("bytes") else None
        except OSError as err:
            raise ReleaseError(f"{path}: missing or unreadable ({err.strerror})", path=str(path),
                               reason="missing") from err
        if digest != expected.get("sha256"):
            raise ReleaseError(f"{path}: changed since v{manifest.version} was built (its size or SHA-256 is "
                               "not the one manifest.json lists)",
                               hint=_IMMUTABLE, path=str(path), reason="changed")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


# ---------------------------------------------------------------- loading the data


def load(ws: Workspace, version: str | None, cache_dir: Path) -> Any:
    """The verified release as a ``datasets.DatasetDict`` (arrow cache under ``cache_dir``)."""
    return load_folder(read_release(ws, version).folder, cache_dir)


def load_folder(folder: Path, cache_dir: Path) -> Any:
    """``datasets.load_dataset`` on a local folder, quietly; errors become ReleaseError."""
    import datasets

    try:
        with quiet_datasets():
            return datasets.load_dataset(str(folder), cache_dir=str(cache_dir))
    except Exception as err:  # datasets raises many unrelated types for an unreadable folder
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ReleaseError(f"{folder}: datasets cannot load it ({first})", path=str(folder)) from err


@contextlib.contextmanager
def quiet_datasets() -> Iterator[None]:
    """Hide datasets' own progress bars (ours go through Output); restore them afterwards."""
    import datasets

    was_disabled = datasets.are_progress_bars_disabled()
    datasets.disable_progress_bars()
    try:
        yield
    finally:
        if not was_disabled:
            datasets.enable_progress_bars()


def manifest_mismatch(loaded: Any, manifest: Manifest, *, ordered: bool = True) -> str | None:
    """The first way a loaded DatasetDict differs from its manifest, or None if it matches.

    Checked: the non-empty splits, each split's class names and row count, and its
    (sha256, label) rows, in the manifest's order unless ``ordered`` is false (a copy
    whose shards may be read in another order). Used on a fresh build and on what was published.
    """
    expected = {s: info["rows"] for s, info in manifest.splits.items() if info["rows"]}
    if set(loaded) != set(expected):
        return f"has splits {sorted(loaded)}, the manifest {sorted(expected)}"
    classes = list(manifest.classes)
    for split, rows in expected.items():
        ds = loaded[split]
        names = getattr(ds.features.get("label"), "names", None)
        if names != classes:
            return f"split {split} has classes {names}, the manifest {classes}"
        if ds.num_rows != rows:
            return f"split {split} has {ds.num_rows} rows, the manifest {rows}"
        got = list(zip(ds["sha256"], (names[i] for i in ds["label"]), strict=True))
        want = [(r["sha256"], r["label"]) for r in manifest.rows if r["split"] == split]
        if not ordered:
            got, want = sorted(got), sorted(want)
        if got != want:
            differ = [w for g, w in zip(got, want, strict=False) if g != w] or want[len(got):] or got
            return f"split {split} differs from the manifest (e.g. {differ[0][0]})"
    return None
