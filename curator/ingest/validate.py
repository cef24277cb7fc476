"""Deciding whether fetched bytes are a usable image, and hashing the ones that are.

Every refusal has its own reason code:

    empty               zero bytes
    not-an-image        HTML, SVG, text or anything PIL cannot identify
    unsupported-format  an image, but not JPEG, PNG, WebP, GIF, BMP or TIFF
    decompression-bomb  width x height over ``ingest.max_pixels`` (checked before decoding)
    too-small           the shorter side (after EXIF orientation) under ``ingest.min_side``
    truncated           the header is fine but the pixel data ends early or is corrupt

This runs in worker threads: it touches no catalog and no shared state.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, UnidentifiedImageError

from curator import hashing
from curator.config import IngestConfig
from curator.store import sha256_bytes

if TYPE_CHECKING:
    from curator.ingest.fetch import Fetched

FORMATS = frozenset({"JPEG", "PNG", "WEBP", "GIF", "BMP", "TIFF", "MPO"})
_TEXT_STARTS = (b"<", b"{", b"[", b"%PDF", b"\xef\xbb\xbf<")


@dataclass(frozen=True)
class Checked:
    """A decoded, normalised image ready for the catalog."""

    sha256: str  # of the original bytes
    fingerprint: str  # hashing.fingerprint; the pixel key is computed only when one is shared
    width: int
    height: int
    format: str
    nbytes: int
    grey: np.ndarray  # hashing.grey_of: what keypoint checks compare (the full pixels are not kept)
    hashes: dict[str, int]
    hashed_from: str  # hashing.LUMA (a JPEG's luma plane) or hashing.RGB


@dataclass(frozen=True)
class Refused:
    reason: str
    detail: str = ""


def check_fetched(fetched: Fetched, cfg: IngestConfig) -> Checked | Refused:
    """A fetched or read source's outcome: its failure to arrive, else :func:`check` of its bytes."""
    if fetched.reason is not None or fetched.data is None:
        return Refused(fetched.reason or "empty")
    return check(fetched.data, cfg)


def check(data: bytes, cfg: IngestConfig) -> Checked | Refused:
    """Decode ``data``, apply the checks above, and hash the normalised pixels."""
    if not data:
        return Refused("empty")
    try:
        with _bomb_warnings_ignored():
            img = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as err:
        return Refused("decompression-bomb", str(err))
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as err:
        return Refused(_unidentified_reason(data), str(err))
    with img:
        return _check_open(img, data, cfg)


def _check_open(img: Image.Image, data: bytes, cfg: IngestConfig) -> Checked | Refused:
    fmt = (img.format or "").upper()
    if fmt not in FORMATS:
        return Refused("unsupported-format", fmt)
    width, height = img.size
    if width * height > cfg.max_pixels:
        return Refused("decompression-bomb", f"{width}x{height} pixels")
    if min(hashing.oriented_size(img)) < cfg.min_side:
        return Refused("too-small", f"{width}x{height}")
    try:
        with _bomb_warnings_ignored():
            grey = hashing.grey_of(img)
    except Image.DecompressionBombError as err:
        return Refused("decompression-bomb", str(err))
    except (OSError, ValueError, SyntaxError, EOFError) as err:
        return Refused("truncated", str(err))
    hashes = hashing.hashes_of_grey(grey.pixels)
    width, height = grey.size
    return Checked(
        sha256=sha256_bytes(data),
        fingerprint=hashing.fingerprint(width, height, hashes),
        width=width,
        height=height,
        format="JPEG" if fmt == "MPO" else fmt,
        nbytes=len(data),
        grey=grey.pixels,
        hashes=hashes,
        hashed_from=grey.hashed_from,
    )


def pixel_sha256(data: bytes) -> str:
    """hashing.pixel_sha256 of bytes that :func:`check` accepted (decoding them again)."""
    with Image.open(io.BytesIO(data)) as img:
        return hashing.pixel_sha256(_normalized(img))


def _normalized(img: Image.Image) -> Image.Image:
    with _bomb_warnings_ignored():
        img.load()
        return hashing.normalize(img)


@contextlib.contextmanager
def _bomb_warnings_ignored() -> Iterator[None]:
    """PIL warns (DecompressionBombWarning) between its limit and twice it; our own cap decides."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


def _unidentified_reason(data: bytes) -> str:
    """PIL could not identify it: an image format we don't read, or not an image at all."""
    head = data[:512].lstrip()
    if head.startswith(_TEXT_STARTS) or b"<svg" in head.lower() or b"<html" in head.lower():
        return "not-an-image"
    if head[:4] in (b"\x00\x00\x00\x1c", b"\x00\x00\x00\x18", b"\x00\x00\x00\x20") and b"ftyp" in head[:12]:
        return "unsupported-format"  # HEIC / AVIF containers
    return "not-an-image"
