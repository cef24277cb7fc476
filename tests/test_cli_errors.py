"""Never a traceback: a busy catalog, a full disk, an unexpected error, secrets in error chains."""

from __future__ import annotations

import ast
import http.server
import os
import re
import shutil
import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from curator.workspace import Workspace
from tests import ingest_data as data
from tests.conftest import CLASSES, run_cli, snapshot
from tests.test_release import make_workspace

CURATOR = [sys.executable, "-c", "from curator.cli import main; main()"]


def _photos(folder: Path, n: int, size: tuple[int, int] = (96, 96)) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        (folder / f"{i}.png").write_bytes(data.png(data.photo(100 + i, CLASSES[i % 3], size)))
    return folder


def test_a_catalog_held_by_another_writer_is_busy(workspace: Workspace, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    photos = _photos(tmp_path / "photos", 3)
    monkeypatch.setenv("CURATOR_BUSY_TIMEOUT", "0.2")
    before = snapshot(workspace.root)
    holder = sqlite3.connect(workspace.catalog_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        result = run_cli("ingest", str(photos), workspace=workspace.root)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert "Traceback" not in result.output
    assert result.exit_code == 8, result.output
    assert result.stderr.splitlines()[0] == "Error: workspace is busy: another curator command is writing"
    assert snapshot(workspace.root) == before
    assert run_cli("ingest", str(photos), workspace=workspace.root).exit_code == 0


def test_an_unexpected_error_is_one_line(workspace: Workspace, tmp_path: Path) -> None:
    (workspace.root / "catalog.sqlite").write_bytes(b"this is not a database, but long enough" * 100)
    result = run_cli("status", workspace=workspace.root)
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: internal error (DatabaseError: file is not a database); "
        "rerun with CURATOR_DEBUG=1 for details"
    ]
    debug = subprocess.run([*CURATOR, "--workspace", str(workspace.root), "status"], capture_output=True,
                           text=True, env={**os.environ, "CURATOR_DEBUG": "1"}, timeout=120)
    assert debug.returncode == 1 and "Traceback" in debug.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("unshare") is None, reason="needs unshare(1) to mount a small tmpfs")
def test_a_full_disk_is_one_line_and_a_rerun_completes(tmp_path: Path) -> None:
    photos = _photos(tmp_path / "photos", 12, (400, 400))
    mnt, out = tmp_path / "mnt", tmp_path / "out"
    mnt.mkdir()
    out.mkdir()
    curator = " ".join(f"'{a}'" for a in CURATOR)
    script = f"""
        mount -t tmpfs -o size=900k tmpfs '{mnt}' || exit 99
        {curator} -w '{mnt}/ws' init full --classes {",".join(CLASSES)} >/dev/null 2>&1 || exit 98
        {curator} -w '{mnt}/ws' ingest '{photos}' >'{out}/first.out' 2>'{out}/first.err'
        echo $? >'{out}/first.rc'
        mount -o remount,size=20m '{mnt}'
        {curator} -w '{mnt}/ws' --json ingest '{photos}' >'{out}/second.out' 2>'{out}/second.err'
        echo $? >'{out}/second.rc'
    """
    done = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300)
    if done.returncode in (98, 99) or not (out / "first.rc").exists():
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()[:200]}")
    first_err = (out / "first.err").read_text()
    assert "Traceback" not in first_err
    assert (out / "first.rc").read_text().strip() == "1", first_err
    assert first_err.strip().splitlines()[0] == f"Error: {mnt}/ws: the disk is full (No space left on device)"
    assert (out / "second.rc").read_text().strip() == "0", (out / "second.err").read_text()


class _EchoAuth(http.server.BaseHTTPRequestHandler):
    """A careless server: every answer is a 500 that quotes the request's Authorization header."""

    def _echo(self) -> None:
        body = f"internal error handling {self.headers.get('Authorization')}".encode()
        self.send_response(500)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_POST = do_HEAD = _echo

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass


@pytest.fixture
def echo_server() -> Iterator[str]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _EchoAuth)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_the_token_never_reaches_the_screen_even_in_a_traceback(tmp_path: Path, echo_server: str) -> None:
    ws = make_workspace(tmp_path, {"alopecia": 3, "psoriasis": 3, "folliculitis": 3})
    assert run_cli("release", workspace=ws).exit_code == 0
    token = "hf_SECRETsecretSECRET0123456789"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HF_")}
    env.update(HF_ENDPOINT=echo_server, HF_TOKEN=token, HF_HOME=str(tmp_path / "hf"), CURATOR_DEBUG="1",
               HF_HUB_DISABLE_TELEMETRY="1", NO_PROXY="127.0.0.1", HF_HUB_ETAG_TIMEOUT="5")
    done = subprocess.run([*CURATOR, "--workspace", str(ws), "publish", "--repo", "me/data"],
                          capture_output=True, text=True, env=env, timeout=180)
    assert done.returncode != 0
    assert "Traceback" in done.stderr  # CURATOR_DEBUG=1 shows the chain ...
    assert "internal error handling" in done.stderr or "500" in done.stderr
    assert token not in done.stdout + done.stderr  # ... without the token
    assert "SECRETsecret" not in done.stdout + done.stderr


# -- one table of exit codes, and the inconsistencies it removed ----------------------------------------


def test_the_exit_code_table_is_readmes() -> None:
    from curator.cli.errors import EXIT_CODES

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (.+) \|$", section, re.MULTILINE)
    assert [(int(code), meaning) for code, meaning in rows] == [(e.code, e.meaning) for e in EXIT_CODES]
    assert len({e.code for e in EXIT_CODES}) == len(EXIT_CODES)


def test_a_bad_class_for_init_names_the_flag(tmp_path: Path) -> None:
    result = run_cli("init", "x", "--classes", "alopecia,Bad Class", workspace=tmp_path / "ws")
    assert (result.exit_code, result.stderr.strip()) == (
        5, "Error: --classes: invalid class name 'Bad Class' (use a-z, 0-9, '-', '_')")
    assert not (tmp_path / "ws").exists()


CHECK_MODULES = """
import sys
from curator.cli import cli
try:
    cli(sys.argv[1:], prog_name="curator")
except SystemExit as done:
    print(done.code, sorted(m for m in ("keras", "jax", "datasets") if m in sys.modules))
"""


@pytest.mark.parametrize("version", ["v9.9.9", "banana"])
def test_a_bad_baseline_version_is_exit_5_before_the_ml_stack_loads(workspace: Workspace,
                                                                    version: str) -> None:
    workspace.close()
    args = ["--workspace", str(workspace.root), "baseline", version]
    done = subprocess.run([sys.executable, "-c", CHECK_MODULES, *args], capture_output=True, text=True,
                          timeout=120)
    assert done.stdout.strip() == "5 []", done.stderr


@pytest.mark.slow
def test_ctrl_c_in_the_labeler_saves_and_exits_130(workspace: Workspace, tmp_path: Path) -> None:
    import pexpect

    from tests.test_prompt import curator_exe

    assert run_cli("ingest", str(_photos(tmp_path / "p", 3)), workspace=workspace.root).exit_code == 0
    workspace.close()
    child = pexpect.spawn(curator_exe(), ["--workspace", str(workspace.root), "label", "--annotator", "ann"],
                          env=dict(os.environ, TERM="xterm-256color"), dimensions=(40, 100), timeout=60)
    child.expect_exact("[1/3]")
    child.send("1")
    child.expect_exact("[2/3]")
    child.send("\x03")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 130
    conn = sqlite3.connect(workspace.catalog_path)
    assert conn.execute("SELECT COUNT(*) FROM label_events").fetchone()[0] == 1
    conn.close()


FLAG = re.compile(r"(^|[\s(`'\"])--[a-z]")
LIBRARY = ("curator", "baseline", "dataset_card")


def _literal_text(node: ast.expr) -> str:
    """The constant parts of a (formatted) string expression."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(_literal_text(v) for v in node.values)
    if isinstance(node, ast.BinOp):
        return _literal_text(node.left) + _literal_text(node.right)
    return ""


def test_library_error_messages_name_no_flag() -> None:
    """Flags are the CLI's words: a library error names the parameter (``key``) and
    curator/cli/errors.worded spells it as the running command's flag; hints that name flags
    come from curator/cli/errors.HINTS by the error's reason."""
    root = Path(__file__).resolve().parents[1]
    found = []
    for path in sorted(p for package in LIBRARY for p in (root / package).rglob("*.py")):
        if path.relative_to(root).parts[:2] == ("curator", "cli"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
                continue
            if not node.func.id.endswith("Error"):
                continue
            hints = [k.value for k in node.keywords if k.arg == "hint"]
            if any(FLAG.search(_literal_text(text)) for text in [node.args[0], *hints]):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    assert found == []


def test_every_hint_reason_is_raised_somewhere() -> None:
    """The CLI's hint table has no entry that no library error raises (a renamed reason would
    silently lose its hint)."""
    from curator.cli.errors import HINTS

    root = Path(__file__).resolve().parents[1]
    code = "".join(path.read_text(encoding="utf-8")
                   for package in LIBRARY for path in (root / package).rglob("*.py"))
    assert [reason for reason in HINTS if f'reason="{reason}"' not in code] == []


def test_the_cli_spells_a_keyed_error_as_the_commands_flag() -> None:
    from curator.cli import cli
    from curator.cli.errors import worded
    from curator.errors import InputError

    publish = cli.get_command(None, "publish")  # type: ignore[arg-type]
    message = "repo 'x': not a Hub repo id"
    assert worded(InputError(message, key="repo"), publish) == "--" + message
    assert worded(InputError(message), publish) == message
    assert worded(InputError("nothing: else", key="nothing"), publish) == "nothing: else"
