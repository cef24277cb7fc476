"""Turning input lines into sources: URLs, local files and folders.

An input line is ``LOCATOR``, ``LOCATOR<TAB>HINT`` or ``LOCATOR<TAB>HINT<TAB>GROUP``
(GROUP: the patient or lesion the photo belongs to; HINT may be empty); ``#``
comments and blank lines are ignored. A locator is an http(s) URL, a local image
file, or a folder (walked recursively for image files). Anything else still becomes a
:class:`Source` so that it gets an outcome: ``unsupported-scheme`` (ftp://,
file://, data:...), ``malformed-line`` (not a URL, no such path, ``~``, a
name the system refuses), ``file-missing``, ``not-a-file`` (a device, FIFO or
socket) or ``outside-root``: a local path must resolve, symlinks followed, inside
the root (the list's folder, the current folder for stdin, or ``--root``), and a
folder walk keeps to the walked folder. A password in a URL is dropped at once.
Whole-input problems (no such file, binary garbage, an empty GROUP column, one
locator given two groups) are :class:`~curator.errors.InputError`.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from curator.errors import InputError

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".jpe", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff"})
# Magic numbers of the formats we accept, to tell an image argument from a URL list.
_MAGIC = (b"\xff\xd8\xff", b"\x89PNG\r\n\x1a\n", b"GIF87a", b"GIF89a", b"BM", b"II*\x00", b"MM\x00*")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_CONTROLS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f]")
MAX_LINE = 8192
MAX_LIST_BYTES = 64 * 1024 * 1024
NAME_MAX = 255  # bytes in one file name, on every common filesystem


@dataclass(frozen=True)
class Provenance:
    """What a table or Hub row says about its image (curator.ingest.tables, curator.ingest.hub);
    None where the source does not say."""

    collection: str  # the table's file name, or the Hub repo
    licence: str | None = None
    attribution: str | None = None
    diagnosis: str | None = None  # the source's own value; mapped to the vocabulary at release
    body_site: str | None = None
    metadata: str | None = None  # JSON object of the row's other columns
    fitzpatrick: str | None = None  # a supplied skin type, as the source writes it
    monk: str | None = None


@dataclass(frozen=True)
class Source:
    """One thing to ingest. ``problem`` is a rejection reason found while parsing, if any."""

    locator: str  # the URL, or the absolute path of a local file
    kind: str  # 'url' or 'file'
    hint: str | None = None
    problem: str | None = None
    group: str | None = None  # patient/lesion group id from the input line
    provenance: Provenance | None = None
    # Where the bytes are at hand (a Hub dataset row): a reader instead of a fetch; None: no bytes
    read: Callable[[], bytes | None] | None = field(default=None, repr=False, compare=False)


def in_collection(sources: Iterable[Source], name: str) -> list[Source]:
    """The sources, each named a member of collection ``name`` (``curator ingest --collection``),
    over what its table or Hub dataset would have named; for a list or folder, the collection is
    all the source's provenance says."""
    return [replace(src, provenance=replace(src.provenance or Provenance(name), collection=name))
            for src in sources]


def read_argument(arg: str, *, hint_from_folder: bool = False, root: Path | None = None) -> list[Source]:
    """The sources named by the ``curator ingest`` argument: a list file, ``-``, a folder or an image.

    Everything is read and parsed before anything is fetched, so a bad input
    raises :class:`InputError` while the workspace is still untouched. Local paths
    in a list must lie under ``root`` (default: the list's folder, or the current one).
    """
    if arg == "-":
        text = _decode(_read_capped(sys.stdin.buffer, "<stdin>"), "<stdin>")
        return list(parse_lines(text.splitlines(), base=Path.cwd(), hint_from_folder=hint_from_folder,
                                root=root, name="<stdin>"))
    path = Path(arg).expanduser()
    if path.is_dir():
        return list(walk_folder(path, None, hint_from_folder))
    if not path.exists():
        raise InputError(f"{arg}: no such file or folder", path=arg)
    if not path.is_file():
        raise InputError(f"{arg}: not a regular file (a device, FIFO or socket)", path=arg)
    try:
        with path.open("rb") as fh:
            head = fh.read(16)
            if is_image_file(path, head):
                return [Source(str(path.resolve()), "file", _folder_hint(path, hint_from_folder))]
            data = head + _read_capped(fh, arg)
    except OSError as err:
        raise InputError(f"{arg}: cannot read ({err.strerror or err})", path=arg) from err
    text = _decode(data, arg)
    base = path.resolve().parent
    return list(parse_lines(text.splitlines(), base=base, hint_from_folder=hint_from_folder, root=root,
                            name=arg))


def _read_capped(fh: Any, name: str) -> bytes:
    data = fh.read(MAX_LIST_BYTES + 1)
    if len(data) > MAX_LIST_BYTES:
        raise InputError(f"{name}: a list over {MAX_LIST_BYTES // 2**20} MB; split it", path=name)
    return bytes(data)


def is_image_file(path: Path, head: bytes) -> bool:
    if path.suffix.lower() in IMAGE_SUFFIXES:
        return True
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return True
    return any(head.startswith(m) for m in _MAGIC)


def _decode(data: bytes, name: str) -> str:
    """The text of a URL list; binary data is refused rather than parsed into junk sources."""
    if b"\x00" in data:
        raise InputError(f"{name}: not a text URL list (binary data)", path=name)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise InputError(f"{name}: not a text URL list (not UTF-8 at byte {err.start})", path=name) from err
    controls = sum(1 for ch in text if ord(ch) < 32 and ch not in "\t\r\n\f\v")
    if controls > max(8, len(text) // 100):
        raise InputError(f"{name}: not a text URL list (binary data)", path=name)
    return text


def parse_lines(
    lines: Iterable[str],
    *,
    base: Path,
    hint_from_folder: bool = False,
    root: Path | None = None,
    name: str = "<input>",
) -> Iterator[Source]:
    """Sources from input lines; relative paths are taken relative to ``base``, and must
    resolve inside ``root`` (default ``base``)."""
    groups: dict[str, tuple[str, int]] = {}  # locator -> (group, line number)
    for number, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        group = _group_column(raw, name, number)
        for src in parse_line(line, base=base, hint_from_folder=hint_from_folder, root=root):
            if group is not None:
                earlier = groups.setdefault(src.locator, (group, number))
                if earlier[0] != group:
                    raise InputError(
                        f"{name} line {number}: {src.locator} is in group {group!r} here but in group "
                        f"{earlier[0]!r} on line {earlier[1]}",
                        path=name,
                    )
                src = replace(src, group=group)
            yield src


def _group_column(raw: str, name: str, number: int) -> str | None:
    """The GROUP column of a line (the third), None without one; present but empty is an error."""
    parts = raw.strip("\r\n").split("\t")
    if len(parts) != 3:
        return None  # more columns: parse_line makes it a malformed-line
    group = parts[2].strip()
    if not group:
        raise InputError(f"{name} line {number}: empty group id (the third, tab-separated column)", path=name)
    return group


def parse_line(
    line: str, *, base: Path, hint_from_folder: bool = False, root: Path | None = None
) -> Iterator[Source]:
    parts = [p.strip() for p in line.split("\t")]
    locator = parts[0]
    hint = parts[1] if len(parts) > 1 and parts[1] else None
    if len(parts) > 3 or len(line) > MAX_LINE or not locator or _has_controls(line):
        yield Source(_clip(line), "url", None, "malformed-line")
        return
    match = _SCHEME.match(locator)
    if match and (len(match.group(1)) > 1 or "://" in locator):  # 'C:\...' is a path, not a scheme
        yield _url_source(locator, match.group(1).lower(), hint)
        return
    too_long = any(len(part.encode()) > NAME_MAX for part in Path(locator).parts)
    if locator.startswith("~") or too_long:  # another user's home is never inside the root
        yield Source(_clip(locator), "url", hint, "malformed-line")
        return
    try:
        yield from _local_source(base / locator, locator, hint, (root or base).resolve(), hint_from_folder)
    except (OSError, RuntimeError):  # a name too long, a symlink loop
        yield Source(_clip(locator), "url", hint, "malformed-line")


def _local_source(path: Path, locator: str, hint: str | None, root: Path, hint_from_folder: bool
                  ) -> Iterator[Source]:
    resolved = path.resolve()
    if not resolved.is_relative_to(root):
        yield Source(_clip(str(path)), "file", hint, "outside-root")
    elif resolved.is_dir():
        yield from walk_folder(resolved, hint, hint_from_folder)
    elif resolved.is_file():
        yield Source(str(resolved), "file", hint or _folder_hint(resolved, hint_from_folder))
    elif resolved.exists():
        yield Source(str(resolved), "file", hint, "not-a-file")
    elif _looks_like_path(locator):
        yield Source(str(path), "file", hint, "file-missing")
    else:
        yield Source(_clip(locator), "url", hint, "malformed-line")


def _has_controls(text: str) -> bool:
    """C0 (but TAB, the column separator), DEL and C1 control characters."""
    return _CONTROLS.search(text) is not None


def _url_source(locator: str, scheme: str, hint: str | None) -> Source:
    if scheme not in ("http", "https"):
        return Source(_clip(locator), "url", hint, "unsupported-scheme")
    try:
        parts = urlsplit(locator)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError:
        return Source(_clip(locator), "url", hint, "malformed-line")
    if not parts.hostname or " " in locator:
        return Source(_clip(locator), "url", hint, "malformed-line")
    if parts.password is not None:  # never stored, printed or sent
        netloc = f"{parts.username}@{parts.netloc.rpartition('@')[2]}"
        locator = urlunsplit(parts._replace(netloc=netloc))
    return Source(locator, "url", hint)


def walk_folder(folder: Path, hint: str | None, hint_from_folder: bool) -> Iterator[Source]:
    """Image files under ``folder`` (recursive, sorted, hidden entries skipped). Symlinked
    folders are not followed; a file symlinked out of ``folder`` is ``outside-root``."""
    top = folder.resolve()
    for root, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(files):
            path = Path(root) / name
            if name.startswith(".") or path.suffix.lower() not in IMAGE_SUFFIXES:
                continue
            resolved = path.resolve()
            if not resolved.is_relative_to(top):
                yield Source(str(path), "file", hint, "outside-root")
            elif not resolved.is_file():
                yield Source(str(path), "file", hint, "not-a-file")
            else:
                yield Source(str(resolved), "file", hint or _folder_hint(path, hint_from_folder))


def _folder_hint(path: Path, hint_from_folder: bool) -> str | None:
    return path.resolve().parent.name or None if hint_from_folder else None


def _looks_like_path(text: str) -> bool:
    return text.startswith(("/", "./", "../", "~")) or os.sep in text or Path(text).suffix != ""


def _clip(text: str) -> str:
    return text if len(text) <= 500 else text[:497] + "..."
