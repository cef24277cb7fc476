"""Patient or lesion groups: which photos belong together although no hash can see it.

A source gets a group id from, in order of precedence:

    an input      the third column of a URL list line, or ``curator label --import``
                  (a ``group_id`` column); stored in ``sources.group_id``
    a rule        ``[groups] pattern`` in curator.toml, a regular expression searched
                  in the source's URL (or a local file's path): its first capture
                  group, else the whole match

An image's groups are those of its sources, earliest input first; the first is the
one a release reports (``group_id``). The split keeps every group, and every
near-duplicate cluster that touches it, in one split (curator.split).
"""

from __future__ import annotations

import re
import sqlite3

from curator.config import GroupsConfig


def of_source(locator: str, explicit: str | None, cfg: GroupsConfig) -> str | None:
    """A source's group id: the one an input gave, else the configured pattern's match, else None."""
    if explicit:
        return explicit
    if not cfg.pattern:
        return None
    found = re.search(cfg.pattern, locator)
    if found is None:
        return None
    return (found.group(1) if found.re.groups else found.group(0)) or None


def of_images(conn: sqlite3.Connection, cfg: GroupsConfig) -> dict[str, tuple[str, ...]]:
    """sha256 -> its distinct group ids, earliest input first, for every image that has one."""
    result: dict[str, list[str]] = {}
    for sha, locator, explicit in conn.execute(
        "SELECT sha256, locator, group_id FROM sources WHERE sha256 IS NOT NULL "
        "ORDER BY COALESCE(position, id), id"
    ):
        group = of_source(locator, explicit, cfg)
        if group is not None and group not in result.setdefault(sha, []):
            result[sha].append(group)
    return {sha: tuple(groups) for sha, groups in result.items() if groups}


def counts(conn: sqlite3.Connection, cfg: GroupsConfig) -> dict[str, int]:
    """For `curator status`: images with a group id, and how many distinct groups they form."""
    found = of_images(conn, cfg)
    return {"images_with_group": len(found), "groups": len({g for groups in found.values() for g in groups})}
