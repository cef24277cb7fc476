"""The content-addressed store of original bytes, exactly as fetched.

    objects/
    ├── 3a/
    │   └── 3a7bd3e2360a3d29eea436fcfb7e44c735d117c42d1c1835420b6b9942dd4f1b
    └── f0/
        └── f0e4c2f76c58916ec258f246851bea091d14d4247a2fc3e18694461b1816e13b

The file name is the SHA-256 of the bytes; the folder is its first two hex digits.
Writes are atomic and idempotent; stored bytes are never changed or removed here.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from curator.fsutil import write_atomic


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def object_path(objects: Path, sha256: str) -> Path:
    return Path(objects) / sha256[:2] / sha256


def put(objects: Path, data: bytes, *, durable: bool = True) -> str:
    """Store ``data`` once; return its SHA-256. Storing the same bytes again changes nothing.

    ``durable=False``: not fsync'd; the caller makes a batch durable at once
    (fsutil.sync_filesystem) before the catalog refers to it. A file that such a write
    left incomplete (power cut before the sync) fails the check here and is written again.
    """
    digest = sha256_bytes(data)
    path = object_path(objects, digest)
    if not _holds(path, digest):
        write_atomic(path, data, durable=durable)
    return digest


def _holds(path: Path, digest: str) -> bool:
    """Does ``path`` exist with exactly the bytes named by ``digest``? (Rare: bytes seen before.)"""
    try:
        return sha256_bytes(path.read_bytes()) == digest
    except FileNotFoundError:
        return False


def read(objects: Path, sha256: str) -> bytes:
    return object_path(objects, sha256).read_bytes()
