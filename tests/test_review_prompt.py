"""The interactive `curator review` prompt, driven in a real pseudo-terminal with pexpect."""

from __future__ import annotations

import os
import signal

import pexpect
import pytest

from curator import catalog, labeling
from curator.review import findings
from curator.review.quality import Result
from curator.workspace import Workspace
from tests.test_prompt import TIMEOUT, curator_exe, step
from tests.test_review import add_image, scalp

CHECK = findings.Check("quality", ("blur",), "quality-1", {})
LABELS = findings.Check("label-issue", ("label-issue",), "cl-1", {})


@pytest.fixture
def four(workspace: Workspace) -> list[str]:
    """Four findings, worst first: three blur, one label issue (scores 4, 3, 2, 1)."""
    shas = [add_image(workspace, scalp(seed, (160, 120))) for seed in range(4)]
    blurred = {sha: [Result("blur", 4.0 - i, {})] for i, sha in enumerate(shas[:3])}
    findings.save(workspace.conn, CHECK, blurred)
    labeling.record(workspace.conn, shas[3], "ann", "alopecia", "label")
    issue = Result("label-issue", 1.0, {"given_label": "alopecia", "suggested_label": "psoriasis",
                                        "top": [["psoriasis", 0.9], ["alopecia", 0.05]]}, issue=True)
    findings.save(workspace.conn, LABELS, {shas[3]: [issue]})
    workspace.close()  # the prompt runs in another process
    return shas


def spawn(ws: Workspace) -> pexpect.spawn:
    return pexpect.spawn(curator_exe(), ["--workspace", str(ws.root), "review", "--reviewer", "rev",
                                         "--graphics", "blocks"],
                         env=dict(os.environ, TERM="xterm-256color"), dimensions=(40, 120), timeout=TIMEOUT)


def statuses(ws: Workspace) -> dict[str, str]:
    conn = catalog.connect(ws.catalog_path)
    try:
        return {(i["sha256"]): i["status"] for i in findings.listing(conn)}
    finally:
        conn.close()


@pytest.mark.slow
def test_decide_undo_accept_suggestion_and_quit(workspace: Workspace, four: list[str]) -> None:
    child = spawn(workspace)
    child.expect_exact("[1/4]")
    step(child, "x", "[2/4]")
    step(child, "u", "Undone: back to open")  # the first finding again, open
    for key, marker in (("k", "[2/4]"), ("s", "[3/4]"), ("n", "[4/4]")):
        step(child, key, marker)
    child.expect_exact("suggested psoriasis")
    child.send("a")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    assert statuses(workspace) == {four[0]: "keep", four[1]: "open", four[2]: "not-a-problem",
                                   four[3]: "relabel"}
    conn = catalog.connect(workspace.catalog_path)
    try:
        assert labeling.annotator_label(conn, four[3], "rev") == "psoriasis"
    finally:
        conn.close()


@pytest.mark.slow
def test_kill_9_keeps_every_decision_given(workspace: Workspace, four: list[str]) -> None:
    child = spawn(workspace)
    child.expect_exact("[1/4]")
    step(child, "x", "[2/4]")
    step(child, "n", "[3/4]")
    child.kill(signal.SIGKILL)
    child.wait()
    assert statuses(workspace) == {four[0]: "exclude", four[1]: "not-a-problem", four[2]: "open",
                                   four[3]: "open"}
    child = spawn(workspace)  # the next session starts from what is still open
    child.expect_exact("[1/2]")
    child.send("q")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
