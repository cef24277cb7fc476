"""Settings that would defeat a check are refused at load, naming the key, exit 4."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import CLASSES, run_cli, snapshot


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    assert run_cli("init", "cfg", "--classes", ",".join(CLASSES), workspace=root).exit_code == 0
    return root


def _set(ws: Path, section: str, body: str) -> None:
    toml = ws / "curator.toml"
    text = toml.read_text()
    assert f"[{section}]\n" in text
    toml.write_text(text.replace(f"[{section}]\n", f"[{section}]\n{body}\n", 1))


def _drop(ws: Path, line_start: str) -> None:
    toml = ws / "curator.toml"
    toml.write_text("".join(line for line in toml.read_text().splitlines(keepends=True)
                            if not line.startswith(line_start)))


@pytest.mark.parametrize(("section", "key", "value", "message"), [
    ("split", "train", "nan", "'split.train' must be a finite number, not nan"),
    ("split", "test", "inf", "'split.test' must be a finite number, not inf"),
    ("ingest", "connect_timeout", "inf", "'ingest.connect_timeout' must be a finite number, not inf"),
    ("ingest", "read_timeout", "nan", "'ingest.read_timeout' must be a finite number, not nan"),
    ("ingest", "backoff", "-inf", "'ingest.backoff' must be a finite number, not -inf"),
    ("baseline", "learning_rate", "nan", "'baseline.learning_rate' must be a finite number, not nan"),
    ("preprocess", "steps", '[{op = "resize", size = 64, mode = "longest"}, {op = "enhance", amount = nan}]',
     "'preprocess.steps[1].amount' must be a finite number, not nan"),
    ("ingest", "user_agent", '"curator\\r\\nX-Evil: 1"',
     "'ingest.user_agent' must not contain control characters (CR, LF, ...)"),
    ("dataset", "hub_repo", '"not a repo"', "'dataset.hub_repo' must be 'namespace/name' on the Hub, "
     "not 'not a repo'"),
    ("dataset", "hub_repo", '"ns/../x"', "'dataset.hub_repo' must be 'namespace/name' on the Hub, "
     "not 'ns/../x'"),
])
def test_values_that_defeat_checks_are_refused(ws: Path, section: str, key: str, value: str,
                                               message: str) -> None:
    _drop(ws, f"{key} ")
    if section not in ("split", "ingest", "dataset"):
        (ws / "curator.toml").write_text((ws / "curator.toml").read_text() + f"\n[{section}]\n")
    _set(ws, section, f"{key} = {value}")
    before = snapshot(ws)
    result = run_cli("status", workspace=ws)
    assert (result.exit_code, result.stderr.strip()) == (4, f"Error: curator.toml: {message}")
    assert snapshot(ws) == before


def test_a_good_hub_repo_and_user_agent_load(ws: Path) -> None:
    _drop(ws, "hub_repo ")
    _set(ws, "dataset", 'hub_repo = "my-lab/scalp_diseases.v2"')
    _set(ws, "ingest", 'user_agent = "lab-bot/1.0 (+https://lab.example)"')
    result = run_cli("--json", "status", workspace=ws)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["images"] == 0


def test_user_agent_flag_with_a_newline_is_refused(ws: Path, tmp_path: Path) -> None:
    listing = tmp_path / "urls.txt"
    listing.write_text("http://127.0.0.1:9/a.jpg\n")
    result = run_cli("ingest", str(listing), "--user-agent", "a\r\nb", workspace=ws)
    assert (result.exit_code, result.stderr.strip()) == (
        5, "Error: --user-agent: must not contain control characters (CR, LF, ...)")
