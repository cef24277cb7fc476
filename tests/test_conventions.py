"""CLI conventions: output flags after the command, JSON errors, the umask, the settings
reference, the curator.toml that init writes, and every ``Example:`` line of every --help."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from curator import config, settings_doc
from curator.cli import cli
from tests import hub_fixtures
from tests.conftest import CLASSES, run_cli
from tests.imageserver import ImageServer, Reply
from tests.ingest_data import jpeg, photo
from tests.test_prompt import curator_exe
from tests.test_release import make_workspace, write_images

hub_server = hub_fixtures.hub_server
hub_env = hub_fixtures.hub_env
ROOT = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-c", "from curator.cli import main; main()"]


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    assert run_cli("init", "conv", "--classes", ",".join(CLASSES), workspace=root).exit_code == 0
    return root


def test_json_and_quiet_after_the_command(ws: Path) -> None:
    for args in (["status", "--json"], ["--json", "status"], ["status", "-q", "--json"]):
        result = run_cli(*args, workspace=ws)
        assert result.exit_code == 0, (args, result.output)
        assert json.loads(result.stdout)["images"] == 0
    assert json.loads(run_cli("releases", "--json", workspace=ws).stdout) == []


def test_quiet_init_prints_only_its_result(tmp_path: Path) -> None:
    result = run_cli("init", "q", "--classes", "a,b", "-q", workspace=tmp_path / "q")
    assert result.exit_code == 0 and result.stderr == ""
    assert "Next:" in run_cli("init", "r", "--classes", "a,b", workspace=tmp_path / "r").stderr


@pytest.mark.parametrize("where", ["before", "after"])
def test_errors_in_json_mode_are_json_on_stderr(tmp_path: Path, where: str) -> None:
    args = ["--json", "status"] if where == "before" else ["status", "--json"]
    result = run_cli(*args, workspace=tmp_path / "none")
    assert result.exit_code == 3 and result.stdout == ""
    error = json.loads(result.stderr)
    assert error == {"error": f"{tmp_path / 'none'} is not a curator workspace (no curator.toml)",
                     "hint": "run `curator init NAME --classes a,b,c` to create one, or pass --workspace DIR",
                     "exit_code": 3}


@pytest.fixture
def umask_027() -> Iterator[None]:
    old = os.umask(0o027)
    try:
        yield
    finally:
        os.umask(old)


@pytest.mark.slow
def test_release_and_publish_follow_the_umask(tmp_path: Path, umask_027: None) -> None:
    ws = make_workspace(tmp_path, {"alopecia": 3, "psoriasis": 3, "folliculitis": 3})
    assert run_cli("release", workspace=ws).exit_code == 0
    assert run_cli("publish", "--to", str(tmp_path / "out"), "--no-verify", workspace=ws).exit_code == 0
    for top in (ws / "releases" / "v1.0.0", tmp_path / "out", ws / "curator.toml"):
        for path in [top, *top.rglob("*")] if top.is_dir() else [top]:
            mode = stat.S_IMODE(path.stat().st_mode)
            assert mode == (0o750 if path.is_dir() else 0o640), (path, oct(mode))


def test_the_settings_reference_is_current_and_complete() -> None:
    keys = [key for key, _, _ in settings_doc.schema()]
    assert sorted(keys) == sorted(settings_doc.MEANINGS), "each curator.toml key needs a meaning, only those"
    committed = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    assert committed == settings_doc.reference(), "run: python -m curator.settings_doc > docs/settings.md"
    for key in keys:  # each example is a value that loads
        example = tomllib.loads(f"x = {settings_doc.MEANINGS[key][1]}")["x"]
        assert example is not None, key
    assert "docs/settings.md" in (ROOT / "README.md").read_text(encoding="utf-8")


def test_the_toml_init_writes_lists_every_section_with_a_comment() -> None:
    text = config.default_toml("x", ["a", "b"])
    for section in config.Config.__dataclass_fields__:
        header = "[[sources]]" if section == "sources" else f"[{section}]"
        line = next((ln for ln in text.splitlines() if header in ln), None)
        assert line is not None, section
        before = text.splitlines()[text.splitlines().index(line) - 1]
        assert "#" in line or before.startswith("#"), f"{section} needs a short comment"
    loaded = config.from_dict(tomllib.loads(text))
    assert loaded == config.Config(dataset=loaded.dataset)  # every value written is the default


# -- every Example: line of every --help ------------------------------------------------------------


def examples() -> dict[str, list[str]]:
    found = {}
    for name, command in cli.commands.items():
        lines = [ln.strip() for ln in (command.help or "").splitlines() if ln.strip().startswith("Example:")]
        assert len(lines) == 1, f"curator {name} --help needs exactly one Example: line"
        found[name] = lines[0].removeprefix("Example:").split()
    return found


def test_every_help_ends_with_an_example() -> None:
    for name, argv in examples().items():
        assert argv[:2] == ["curator", name], argv
        help_text = run_cli(name, "--help").stdout
        assert "Example: " + " ".join(argv) in help_text.replace("\n  ", " ")


TINY_BASELINE = ("\n[baseline]\nimage_size = 32\nepochs = 2\nbatch_size = 8\npatience = 1\nbootstrap = 20\n"
                 "cv_folds = 3\ncv_repeats = 1\n")


@pytest.mark.slow
def test_every_example_runs_in_a_real_workspace(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                hub_server: object, hub_env: dict[str, str]) -> None:
    ws = make_workspace(tmp_path, {"alopecia": 5, "psoriasis": 5, "folliculitis": 5}, TINY_BASELINE)
    assert run_cli("release", "--version", "1.0.0", workspace=ws).exit_code == 0
    write_images(tmp_path / "more", {"alopecia": 2, "psoriasis": 2, "folliculitis": 2}, 500)
    assert run_cli("ingest", str(tmp_path / "more"), "--hint-from-folder", workspace=ws).exit_code == 0
    assert run_cli("label", "--accept-hints", workspace=ws).exit_code == 0
    assert run_cli("release", "--version", "1.1.0", workspace=ws).exit_code == 0
    write_images(tmp_path / "later", {"alopecia": 1, "psoriasis": 1}, 700)  # so there is a next release
    assert run_cli("ingest", str(tmp_path / "later"), "--hint-from-folder", workspace=ws).exit_code == 0
    assert run_cli("label", "--accept-hints", workspace=ws).exit_code == 0
    monkeypatch.chdir(ws)
    ran = set()
    with ImageServer() as server:
        server.route("/robots.txt", Reply(body=b"User-agent: *\nAllow: /\n", content_type="text/plain"))
        bodies = [jpeg(photo(900 + i, CLASSES[i % 3])) for i in range(3)]
        urls = [server.route(f"/e/{i}.jpg", Reply(body=body)) for i, body in enumerate(bodies)]
        (ws / "urls.txt").write_text("\n".join(urls) + "\n")
        for name, argv in examples().items():
            args = argv[1:]
            if name == "init":
                result = run_cli(*args, workspace=tmp_path / "fresh")
            elif name == "label":
                child = pexpect.spawn(curator_exe(), ["--workspace", str(ws), *args], timeout=60,
                                      env=dict(os.environ, TERM="xterm-256color"), dimensions=(40, 100))
                child.expect_exact("alice")
                child.send("q")
                child.expect(pexpect.EOF)
                child.close()
                assert child.exitstatus == 0, child.before
                ran.add(name)
                continue
            elif name == "serve":  # runs until stopped: wait for its links, then Ctrl-C it
                server_proc = subprocess.Popen([*CLI, "--workspace", str(ws), *args], stdout=subprocess.PIPE,
                                               stderr=subprocess.PIPE, text=True, cwd=ws)
                try:
                    assert server_proc.stdout is not None
                    lines = [server_proc.stdout.readline() for _ in range(2)]  # the heading, a link
                    assert "http://127.0.0.1:" in lines[1], lines
                finally:
                    server_proc.send_signal(signal.SIGINT)
                    _, err = server_proc.communicate(timeout=60)
                assert "Traceback" not in err
                assert server_proc.returncode in (0, 130), err
                ran.add(name)
                continue
            elif name in ("publish", "baseline", "demo"):  # the Hub client reads HF_ENDPOINT at
                # import; the ML stack warns at import in ways pytest makes errors: run as a user does
                env = hub_env if name == "publish" else dict(os.environ)
                where = ["--workspace", str(ws)] if name != "demo" else []
                done = subprocess.run([*CLI, *where, *args], env=env, capture_output=True, text=True,
                                      timeout=400, cwd=tmp_path if name == "demo" else ws)
                assert "Traceback" not in done.stderr
                assert done.returncode in ({0, 7} if name == "baseline" else {0}), done.stderr
                ran.add(name)
                continue
            else:
                result = run_cli(*args, workspace=ws)
            assert "Traceback" not in result.output
            assert result.exit_code == 0, (argv, result.output)
            ran.add(name)
    assert ran == set(cli.commands)
