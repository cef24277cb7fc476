"""``--engine local|ray``, shared by ingest, review and release."""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator
from typing import Any

import click

from curator.config import ENGINES

engine_option = click.option(
    "--engine", type=click.Choice(ENGINES),
    help="Where the per-image work runs: local threads and processes, or ray (the [engine] address, "
         "or a Ray started for the run). Default: [engine] kind.")


@contextlib.contextmanager
def engine_for(ws: Any, kind: str | None) -> Iterator[None]:
    """The chosen engine connected while the stage runs (``kind`` overrides ``[engine] kind``)."""
    from curator import engine

    if kind is not None:
        ws.config = dataclasses.replace(ws.config, engine=dataclasses.replace(ws.config.engine, kind=kind))
    with engine.session(ws.config.engine):
        yield
