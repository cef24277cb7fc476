"""Semantic versions of releases: ``1.2.0`` in manifests, ``v1.2.0`` in folder names and tags."""

from __future__ import annotations

import re

from curator.errors import InputError

_SEMVER = re.compile(r"^v?(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")

Version = tuple[int, int, int]


def semver_key(text: str) -> Version | None:
    """'v1.2.0' or '1.2.0' -> (1, 2, 0), for sorting; None for anything else (a branch, a sha)."""
    match = _SEMVER.match(text.strip())
    if not match:
        return None
    major, minor, patch = (int(g) for g in match.groups())
    return major, minor, patch


def parse_version(text: str) -> Version:
    """Like :func:`semver_key`, but a string that is no version is an InputError."""
    parts = semver_key(text)
    if parts is None:
        raise InputError(f"version {text!r} is not a semantic version (expected X.Y.Z, e.g. 1.2.0)")
    return parts


def format_version(parts: Version) -> str:
    return ".".join(str(p) for p in parts)


def bumped(previous: str | None, kind: str) -> str:
    """The next version after ``previous`` for a bump ``kind`` (first release: 1.0.0)."""
    if previous is None:
        return "1.0.0"
    major, minor, patch = parse_version(previous)
    if kind == "major":
        return format_version((major + 1, 0, 0))
    if kind == "minor":
        return format_version((major, minor + 1, 0))
    return format_version((major, minor, patch + 1))
