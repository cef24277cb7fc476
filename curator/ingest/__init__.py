"""Ingest: from URL lists, files and folders to stored, hashed, deduplicated images.

    sources.py   input lines -> :class:`Source` (URL, local file, folder walk, parse-time rejections)
    fetch.py     HTTP: concurrency limits, robots.txt / noai, redirects, size cap, retries
    validate.py  decode checks with distinct reasons, then the hashes (curator.hashing)
    run.py       the orchestration: skip done sources, fetch, check, store, dedup, one transaction each

``run(ws, lines, options, on_progress)`` is the entry point; see :mod:`curator.ingest.run`.
"""

from __future__ import annotations

from curator.ingest.run import IngestOptions, IngestSummary, ItemResult, run, write_report
from curator.ingest.sources import Source, in_collection, read_argument

__all__ = ["IngestOptions", "IngestSummary", "ItemResult", "Source", "in_collection", "read_argument", "run",
           "write_report"]
