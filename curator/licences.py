"""Licence terms per source: the ``[[sources]]`` rules of curator.toml applied to each image.

A rule's ``prefix`` is a URL prefix (``https://atlas.example/derm/``) or a domain
(``atlas.example``, matching its subdomains too); the longest matching rule wins.
Local files have the domain ``local`` and are published as ``local:<file name>``,
never with the user's absolute path. A licence or attribution given by the source's own
table row (curator.ingest.tables) wins over the rule's. An image reached from several sources takes
the best one: redistributable first, then one with a known licence, then the oldest.
"""

from __future__ import annotations

import sqlite3
from collections import Counter
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from curator.config import SourceRule
from curator.errors import ReleaseError


@dataclass(frozen=True)
class Source:
    """Where one released image came from, and the licence terms that apply to it."""

    url: str
    domain: str
    license: str  # "" when neither the source's table nor a [[sources]] rule says
    attribution: str
    redistributable: bool
    kind: str = "url"  # sources.kind: how the image was obtained
    # What a table or Hub row said (catalog migration 9); None: not said
    diagnosis: str | None = None
    body_site: str | None = None
    collection: str | None = None
    metadata: str | None = None
    fitzpatrick: str | None = None  # supplied skin types, as the source wrote them (migration 11)
    monk: str | None = None


def unknown_source() -> Source:
    return Source(url="", domain="unknown", license="", attribution="", redistributable=True, kind="unknown")


def by_image(conn: sqlite3.Connection, rules: tuple[SourceRule, ...]) -> dict[str, Source]:
    """The best source of each image: redistributable first, then one with a known licence, then
    the earliest in the inputs (the input position, not the order downloads finished in)."""
    best: dict[str, tuple[tuple[int, int, int], Source]] = {}
    for row in conn.execute(
        "SELECT COALESCE(position, id) AS position, locator, kind, final_url, sha256, licence, attribution, "
        "diagnosis, body_site, collection, metadata, fitzpatrick, monk FROM sources "
        "WHERE sha256 IS NOT NULL AND outcome IN ('stored', 'duplicate') ORDER BY position"
    ):
        src = with_row_terms(describe_source(row["locator"], row["kind"], rules), row)
        rank = (0 if src.redistributable else 1, 0 if src.license else 1, row["position"])
        current = best.get(row["sha256"])
        if current is None or rank < current[0]:
            best[row["sha256"]] = (rank, src)
    return {sha: src for sha, (_, src) in best.items()}


def with_row_terms(src: Source, row: sqlite3.Row) -> Source:
    """What a source's own row said (a table column) wins over its [[sources]] rule."""
    return replace(
        src,
        license=row["licence"] or src.license,
        attribution=row["attribution"] or src.attribution,
        diagnosis=row["diagnosis"] or src.diagnosis,
        body_site=row["body_site"] or src.body_site,
        collection=row["collection"],
        metadata=row["metadata"],
        fitzpatrick=row["fitzpatrick"],
        monk=row["monk"],
    )


def describe_source(locator: str, kind: str, rules: tuple[SourceRule, ...]) -> Source:
    """Domain, public URL and licence terms of one source.

    Local files are published as ``local:<file name>`` (never the user's absolute path) under
    the domain ``local``. The longest matching [[sources]] prefix wins; a prefix without
    ``://`` matches the host and its subdomains.
    """
    if kind == "file":
        url, domain = f"local:{Path(locator).name}", "local"
    elif locator.startswith("hf://"):  # a Hub dataset row (curator.ingest.hub), fetched as kind 'url'
        url, domain, kind = locator, "huggingface.co", "hub"
    else:
        url, domain = locator, (urlsplit(locator).hostname or "unknown").lower()
    rule = match_rule(rules, url, domain)
    if rule is None:
        return Source(url, domain, "", "", True, kind)
    return Source(url, domain, rule.license, rule.attribution, rule.redistributable, kind,
                  diagnosis=rule.diagnosis or None, body_site=rule.body_site or None)


def match_rule(rules: tuple[SourceRule, ...], url: str, domain: str) -> SourceRule | None:
    best: SourceRule | None = None
    for rule in rules:
        prefix = rule.prefix.strip().lower()
        if "://" in prefix:
            hit = url.lower().startswith(prefix)
        else:
            prefix = prefix.rstrip("/")
            hit = domain == prefix or domain.endswith("." + prefix)
        if hit and (best is None or len(prefix) > len(best.prefix.strip())):
            best = rule
    return best


def check(sources: list[Source], include_restricted: bool) -> list[str]:
    """Refuse sources marked not redistributable (unless ``include_restricted``); warnings for
    sources with no known licence."""
    restricted = Counter(src.domain for src in sources if not src.redistributable)
    if restricted and not include_restricted:
        listed = ", ".join(f"{d} ({n})" for d, n in sorted(restricted.items()))
        raise ReleaseError(
            f"{sum(restricted.values())} image(s) come from sources marked redistributable = false: {listed}",
            reason="restricted-sources",
        )
    unknown = Counter(src.domain for src in sources if not src.license)
    if not unknown:
        return []
    listed = ", ".join(f"{d} ({n})" for d, n in sorted(unknown.items()))
    return [f"{sum(unknown.values())} image(s) come from sources with no known licence: {listed}"]
