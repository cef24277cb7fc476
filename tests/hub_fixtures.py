"""Pytest fixtures for tests that talk to the local Hub server (``tests/hubserver.py``).

Bind them in a test module (an assignment, so linters don't flag the fixture arguments)::

    from tests import hub_fixtures

    hub_server = hub_fixtures.hub_server
    hub_env = hub_fixtures.hub_env

``hub_server`` is a started :class:`~tests.hubserver.HubServer` (stopped on teardown).
``hub_env`` is the environment a subprocess needs to use it: ``huggingface_hub`` and
``datasets`` read ``HF_ENDPOINT`` and ``HF_HUB_DISABLE_XET`` at import time, so run
the client (``curator publish``, ``load_dataset``) in a subprocess with this env
rather than in the test process. ``HF_HOME`` is a fresh folder per test, so caches and
saved tokens are never shared.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.hubserver import HubServer

TEST_TOKEN = "hf_test_token_0123456789"


@pytest.fixture
def hub_server() -> Iterator[HubServer]:
    with HubServer(token=TEST_TOKEN) as server:
        yield server


def env_for(server: HubServer, hf_home: Path, token: str | None = TEST_TOKEN) -> dict[str, str]:
    """The environment for a subprocess that should use ``server`` as the Hub."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGINGFACE_"))}
    env.update(
        HF_ENDPOINT=server.url,
        HF_HUB_DISABLE_XET="1",
        HF_HOME=str(hf_home),
        HF_HUB_DISABLE_TELEMETRY="1",
        HF_HUB_DISABLE_PROGRESS_BARS="1",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
    )
    if token is not None:
        env["HF_TOKEN"] = token
    return env


@pytest.fixture
def hub_env(hub_server: HubServer, tmp_path: Path) -> dict[str, str]:
    return env_for(hub_server, tmp_path / "hf_home")


LOAD_SCRIPT = """
import json, sys
import datasets
repo, revision, cache = sys.argv[1], sys.argv[2], sys.argv[3]
dd = datasets.load_dataset(repo, revision=revision, cache_dir=cache)
out = {}
for split, ds in dd.items():
    names = ds.features["label"].names if "label" in ds.features else None
    cols = ds.remove_columns([c for c in ds.column_names if c == "image"]).to_dict()
    out[split] = {"rows": ds.num_rows, "names": names, "columns": cols}
print(json.dumps(out))
"""


def load_from_hub(env: dict[str, str], repo: str, revision: str, cache: Path,
                  timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``datasets.load_dataset(repo, revision=...)`` in a subprocess; stdout is JSON:
    {split: {"rows", "names", "columns": {column: values, except image}}}."""
    return subprocess.run(
        [sys.executable, "-c", LOAD_SCRIPT, repo, revision, str(cache)],
        env=env, capture_output=True, text=True, timeout=timeout,
    )
