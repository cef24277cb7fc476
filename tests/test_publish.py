"""`curator publish` and `curator releases` against the local Hub server (tests/hubserver.py).

The CLI runs as a subprocess with HF_ENDPOINT pointing at the server (huggingface_hub reads
it at import time). Every release is built for real (tests/releases.py: init, ingest generated
photos, label, release.build); ``test_real_pipeline_publishes_two_versions`` runs the whole
path through the CLI: init, ingest, label, release, publish.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from curator import publish, synthetic
from curator.workspace import Workspace, open_workspace
from tests import hub_fixtures
from tests.conftest import CLASSES, run_cli, snapshot
from tests.hub_fixtures import TEST_TOKEN, env_for, load_from_hub
from tests.hubserver import HubServer
from tests.releases import add_images, build, manifest, released_workspace

hub_server = hub_fixtures.hub_server  # pytest fixtures, shared with other Hub tests
hub_env = hub_fixtures.hub_env

REPO = "tester/scalp"
SPLITS = ("train", "validation", "test")


# -- real releases (tests/releases.py) -----------------------------------------------------------

PHOTOS = {"alopecia": 6, "psoriasis": 6, "folliculitis": 6}


def next_release(ws: Workspace, root: Path, first_seed: int, counts: dict[str, int] | None = None,
                 **kwargs: Any) -> str:
    """Ingest and label more generated photos and build the next release; its version."""
    add_images(ws.root, root, counts or {"alopecia": 2, "psoriasis": 1}, first_seed)
    return build(ws.root, **kwargs).version


def manifest_of(ws: Path, version: str) -> dict[str, Any]:
    return manifest(ws, version.lstrip("v"))


def split_rows(ws: Path, version: str) -> dict[str, int]:
    """The non-empty splits' row counts, as publish's load_dataset check reports them."""
    return {s: info["rows"] for s, info in manifest_of(ws, version)["splits"].items() if info["rows"]}


# -- running the CLI -----------------------------------------------------------------------------


def curator(
    ws: Path, env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from curator.cli import main; main()", "--workspace", str(ws), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def publishes(ws: Path) -> list[dict[str, Any]]:
    conn = sqlite3.connect(ws / "catalog.sqlite")
    conn.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in conn.execute("SELECT * FROM publishes ORDER BY id")]
    finally:
        conn.close()


def state(ws: Path) -> tuple[list[dict[str, Any]], dict[str, bytes]]:
    """What a refused publish must leave unchanged: the publishes table and every file."""
    return publishes(ws), snapshot(ws)


def assert_no_token(*texts_or_roots: str | Path) -> None:
    for item in texts_or_roots:
        if isinstance(item, Path):
            for path in item.rglob("*"):
                if path.is_file():
                    assert TEST_TOKEN.encode() not in path.read_bytes(), path
        else:
            assert TEST_TOKEN not in item


@pytest.fixture
def released(tmp_path: Path) -> Workspace:
    """A workspace with release v1.0.0, built for real from 18 generated photos (closed again)."""
    ws = open_workspace(released_workspace(tmp_path, PHOTOS))
    ws.close()
    return ws


# -- the Hub -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_publish_two_versions_each_tag_loads_its_own_files(
    released: Workspace, hub_server: HubServer, hub_env: dict[str, str], tmp_path: Path
) -> None:
    ws = released.root
    first = curator(ws, hub_env, "publish", "--repo", REPO)
    assert first.returncode == 0, first.stderr
    assert "Published v1.0.0 to tester/scalp" in first.stdout
    counts = ", ".join(f"{s} {n}" for s, n in split_rows(ws, "1.0.0").items())
    assert f"verified with load_dataset: {counts}" in first.stdout

    # one image per shard: v1.1.0 has other shard names, so v1.0.0's data files are deleted
    assert next_release(released, tmp_path, 100, max_shard_bytes=1) == "1.1.0"
    second = curator(ws, hub_env, "--json", "publish", "--repo", REPO)
    assert second.returncode == 0, second.stderr
    result = json.loads(second.stdout)
    assert result["status"] == "published" and result["tag"] == "v1.1.0"
    old_files, new_files = (set(manifest_of(ws, v)["files"]) for v in ("1.0.0", "1.1.0"))
    assert result["deleted"] == sorted(old_files - new_files)
    assert "data/train-00000-of-00001.parquet" in result["deleted"]

    refs = hub_server.refs(REPO)
    assert set(refs["tags"]) == {"v1.0.0", "v1.1.0"} and refs["tags"]["v1.1.0"] == refs["branches"]["main"]
    v1, v11 = hub_server.files(REPO, "v1.0.0"), hub_server.files(REPO, "v1.1.0")
    assert "data/train-00000-of-00001.parquet" in v1 and "data/train-00000-of-00001.parquet" not in v11
    assert len([p for p in new_files if p.startswith("data/train-")]) > 1 and new_files <= set(v11)
    for version, files in (("1.0.0", v1), ("1.1.0", v11)):
        local = ws / "releases" / f"v{version}"
        assert "publish-log.jsonl" not in files
        assert set(files) - {".gitattributes"} == {
            p.relative_to(local).as_posix() for p in local.rglob("*") if p.is_file()
        } - {"publish-log.jsonl"}
        assert all(files[p] == (local / p).read_bytes() for p in files if p != ".gitattributes")

    for tag in ("v1.0.0", "v1.1.0"):
        loaded = load_from_hub(hub_env, REPO, tag, tmp_path / f"cache-{tag}")
        assert loaded.returncode == 0, loaded.stderr
        got = json.loads(loaded.stdout)
        manifest = json.loads((ws / "releases" / f"{tag}" / "manifest.json").read_text())
        for split, info in manifest["splits"].items():
            assert got[split]["rows"] == info["rows"]
            assert sorted(got[split]["columns"]["sha256"]) == sorted(
                r["sha256"] for r in manifest["rows"] if r["split"] == split
            )
            assert got[split]["names"] == CLASSES

    pubs = publishes(ws)
    assert [(p["version"], p["target"], p["location"], p["tag"]) for p in pubs] == [
        ("1.0.0", "hub", REPO, "v1.0.0"),
        ("1.1.0", "hub", REPO, "v1.1.0"),
    ]
    assert pubs[1]["commit_oid"] == refs["tags"]["v1.1.0"]
    log = [json.loads(line) for line in (ws / "releases/v1.1.0/publish-log.jsonl").read_text().splitlines()]
    assert [(e["commit_oid"], e["tag"], e["endpoint"]) for e in log] == [
        (refs["tags"]["v1.1.0"], "v1.1.0", hub_server.url)
    ]
    assert_no_token(first.stdout, first.stderr, second.stdout, second.stderr, ws)
    assert all(TEST_TOKEN.encode() not in data for data in v11.values())

    text = curator(ws, hub_env, "releases")
    assert text.returncode == 0, text.stderr
    assert f"    hub {REPO}  tag v1.1.0  commit {refs['tags']['v1.1.0']}" in text.stdout.splitlines()
    listed = curator(ws, hub_env, "--json", "releases")
    assert listed.returncode == 0, listed.stderr
    overview = json.loads(listed.stdout)
    assert [r["version"] for r in overview] == ["1.1.0", "1.0.0"]
    assert overview[0]["published"][0] | {"at": None} == {
        "target": "hub",
        "location": REPO,
        "commit": refs["tags"]["v1.1.0"],
        "tag": "v1.1.0",
        "at": None,
        "status": "published",
    }


@pytest.mark.slow
def test_republishing_the_same_version_is_a_no_op(
    released: Workspace, hub_server: HubServer, hub_env: dict[str, str]
) -> None:
    ws = released.root
    assert curator(ws, hub_env, "publish", "--repo", REPO, "--no-verify").returncode == 0
    commits, before = hub_server.commits(REPO), state(ws)
    again = curator(ws, hub_env, "publish", "v1.0.0", "--repo", REPO)
    assert again.returncode == 0, again.stderr
    assert (
        again.stdout.strip() == "v1.0.0 is already published to tester/scalp "
        f"({hub_server.url}); nothing to do."
    )
    assert hub_server.commits(REPO) == commits
    assert state(ws) == before

    # a workspace that never recorded this publish (another clone) records it once, without a commit
    conn = sqlite3.connect(ws / "catalog.sqlite")
    with conn:
        conn.execute("DELETE FROM publishes")
    conn.close()
    (ws / "releases/v1.0.0/publish-log.jsonl").unlink()
    adopted = curator(ws, hub_env, "publish", "v1.0.0", "--repo", REPO)
    assert adopted.returncode == 0 and "already published" in adopted.stdout
    assert [(p["tag"], p["commit_oid"], json.loads(p["detail"])["status"]) for p in publishes(ws)] == [
        ("v1.0.0", commits[0], "already-published")
    ]
    assert hub_server.commits(REPO) == commits


def test_missing_token_is_one_line_before_any_request(
    released: Workspace, hub_server: HubServer, tmp_path: Path
) -> None:
    env = env_for(hub_server, tmp_path / "empty_home", token=None)
    before = state(released.root)
    result = curator(released.root, env, "publish", "--repo", REPO)
    assert result.returncode == 6
    assert result.stderr.splitlines()[0] == (
        "Error: no Hugging Face token found (HF_TOKEN is unset and there is no saved login)"
    )
    assert hub_server.log == []
    assert state(released.root) == before


def test_rejected_token_is_one_line_before_any_upload(
    released: Workspace, hub_server: HubServer, tmp_path: Path
) -> None:
    env = env_for(hub_server, tmp_path / "home", token="hf_wrong_token")
    before = state(released.root)
    result = curator(released.root, env, "publish", "--repo", REPO)
    assert result.returncode == 6
    assert result.stderr.splitlines()[0] == (
        f"Error: the Hub at {hub_server.url} rejected the Hugging Face token (401 Unauthorized)"
    )
    assert hub_server.log == ["GET /api/whoami-v2"]
    assert "hf_wrong_token" not in result.stderr + result.stdout
    assert state(released.root) == before


def test_a_500_on_an_lfs_upload_is_retried(
    released: Workspace, hub_server: HubServer, hub_env: dict[str, str]
) -> None:
    hub_server.inject(r"^PUT /lfs/upload/", 500, times=1)
    result = curator(released.root, hub_env, "publish", "--repo", REPO, "--no-verify", "--private")
    assert result.returncode == 0, result.stderr
    assert hub_server.state.repos[("datasets", REPO)].private
    puts = [line for line in hub_server.log if line.startswith("PUT /lfs/upload/")]
    assert len(puts) == len(set(puts)) + 1  # one blob sent twice
    assert "v1.0.0" in hub_server.refs(REPO)["tags"]


def test_a_dropped_connection_before_the_commit_leaves_no_tag_and_a_rerun_completes(
    released: Workspace, hub_server: HubServer, hub_env: dict[str, str]
) -> None:
    ws = released.root
    hub_server.drop(r"^POST /api/datasets/tester/scalp/commit/main$")
    before = state(ws)
    failed = curator(ws, hub_env, "publish", "--repo", REPO, "--no-verify")
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[0].startswith(
        f"Error: tester/scalp at {hub_server.url}: RemoteProtocolError while committing: "
    )
    assert failed.stderr.splitlines()[1] == "Hint: nothing was tagged; rerun `curator publish` to complete"
    assert hub_server.refs(REPO)["tags"] == {}
    assert len(hub_server.commits(REPO)) == 1  # only the repo's initial commit
    assert state(ws) == before

    seen = len(hub_server.log)
    rerun = curator(ws, hub_env, "publish", "--repo", REPO, "--no-verify")
    assert rerun.returncode == 0, rerun.stderr
    assert not any(line.startswith("PUT /lfs/upload/") for line in hub_server.log[seen:])  # blobs kept
    assert hub_server.refs(REPO)["tags"]["v1.0.0"] == hub_server.commits(REPO)[0]


def test_a_500_on_the_commit_leaves_no_tag_and_no_local_change(
    released: Workspace, hub_server: HubServer, hub_env: dict[str, str]
) -> None:
    ws = released.root
    hub_server.inject(r"^POST /api/datasets/tester/scalp/commit/main$", 500)
    before = state(ws)
    failed = curator(ws, hub_env, "publish", "--repo", REPO, "--no-verify")
    assert failed.returncode == 1
    assert failed.stderr.splitlines()[0].startswith(
        f"Error: tester/scalp at {hub_server.url}: the Hub answered 500 while committing: ")
    assert hub_server.refs(REPO)["tags"] == {} and len(hub_server.commits(REPO)) == 1
    assert state(ws) == before


def test_a_moved_head_is_reported_not_overwritten(
    released: Workspace, hub_server: HubServer, tmp_path: Path
) -> None:
    ws = released.root
    # the token comes from the saved login this time (HF_HOME/token), not HF_TOKEN
    hub_env = env_for(hub_server, tmp_path / "login_home", token=None)
    (tmp_path / "login_home").mkdir()
    (tmp_path / "login_home/token").write_text(TEST_TOKEN)
    hub_server.create_repo(REPO)
    head = hub_server.commits(REPO)[0]
    hub_server.before(
        r"^POST /api/datasets/tester/scalp/commit/main$",
        lambda: hub_server.commit(REPO, add={"notes.txt": b"someone else"}),
    )
    before = state(ws)
    result = curator(ws, hub_env, "publish", "--repo", REPO, "--no-verify")
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: the Hub repo tester/scalp's main moved since {head[:12]} (someone else committed); "
        "pull/inspect and rerun"
    )
    assert hub_server.files(REPO)["notes.txt"] == b"someone else"
    assert hub_server.refs(REPO)["tags"] == {}
    assert state(ws) == before


def test_a_tag_with_other_data_is_refused(
    released: Workspace, hub_server: HubServer, hub_env: dict[str, str]
) -> None:
    ws = released.root
    hub_server.create_repo(REPO)
    hub_server.commit(REPO, add={"data/train-00000-of-00001.parquet": b"PAR1 other data PAR1"})
    hub_server.tag(REPO, "v1.0.0")
    commits, before = hub_server.commits(REPO), state(ws)
    result = curator(ws, hub_env, "publish", "--repo", REPO)
    assert result.returncode == 1
    data = sorted(p for p in publish.release_files(ws / "releases/v1.0.0") if not publish.is_card_file(p))
    assert result.stderr.splitlines()[0] == (
        f"Error: tester/scalp: tag v1.0.0 already exists with other data ({len(data)} files differ, "
        f"e.g. {data[0]})"
    )
    assert hub_server.commits(REPO) == commits
    assert state(ws) == before


@pytest.mark.slow
def test_baseline_follow_up_moves_the_tag_and_keeps_the_data(
    released: Workspace, hub_server: HubServer, hub_env: dict[str, str], tmp_path: Path
) -> None:
    ws = released.root
    assert curator(ws, hub_env, "publish", "--repo", REPO, "--no-verify").returncode == 0
    data_commit = hub_server.refs(REPO)["tags"]["v1.0.0"]
    folder = ws / "releases/v1.0.0"
    card = (
        (folder / "README.md")
        .read_text()
        .replace("<!-- baseline:start -->\n", "<!-- baseline:start -->\nAccuracy 0.91\n")
    )
    (folder / "README.md").write_text(card)
    (folder / "baseline.json").write_text('{"accuracy": 0.91}\n')
    (folder / "baseline").mkdir()
    (folder / "baseline/confusion.png").write_bytes(synthetic.encode(synthetic.photo(5, 0, (32, 32)), "PNG"))

    result = curator(ws, hub_env, "--json", "publish", "v1.0.0", "--repo", REPO)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["status"] == "follow-up" and out["data_commit"] == data_commit
    assert out["uploaded"] == ["README.md", "baseline.json", "baseline/confusion.png"]
    tags = hub_server.refs(REPO)["tags"]
    assert tags["v1.0.0"] == out["commit_oid"] != data_commit
    assert hub_server.commits(REPO)[:2] == [out["commit_oid"], data_commit]
    old, new = hub_server.files(REPO, data_commit), hub_server.files(REPO, "v1.0.0")
    assert {p: b for p, b in new.items() if p.startswith("data/")} == {
        p: b for p, b in old.items() if p.startswith("data/")
    }
    assert new["README.md"].decode() == card
    log = [json.loads(line) for line in (folder / "publish-log.jsonl").read_text().splitlines()]
    assert [(e["status"], e["commit_oid"], e["data_commit"]) for e in log] == [
        ("published", data_commit, None),
        ("follow-up", out["commit_oid"], data_commit),
    ]
    assert out["verified"] == split_rows(ws, "1.0.0")

    again = curator(ws, hub_env, "publish", "v1.0.0", "--repo", REPO)
    assert "already published" in again.stdout


def _add_baseline(folder: Path) -> None:
    """What `curator baseline` changes in a release folder: the card, baseline.json, baseline/*.png."""
    (folder / "README.md").write_text((folder / "README.md").read_text() + "\nBaseline: accuracy 0.9\n")
    (folder / "baseline.json").write_text('{"accuracy": 0.9}\n')
    (folder / "baseline").mkdir()
    (folder / "baseline/curves.png").write_bytes(synthetic.encode(synthetic.photo(6, 0, (32, 32)), "PNG"))


@pytest.mark.slow
def test_follow_up_of_an_older_version_goes_on_a_branch_and_leaves_main(
    released: Workspace, hub_server: HubServer, hub_env: dict[str, str], tmp_path: Path
) -> None:
    ws = released.root
    next_release(released, tmp_path, 100)
    for version in ("v1.0.0", "v1.1.0"):
        assert curator(ws, hub_env, "publish", version, "--repo", REPO, "--no-verify").returncode == 0
    refs = hub_server.refs(REPO)
    _add_baseline(ws / "releases/v1.0.0")
    result = curator(ws, hub_env, "--json", "publish", "v1.0.0", "--repo", REPO, "--no-verify")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert (out["status"], out["branch"], out["data_commit"]) == (
        "follow-up",
        "release-v1.0.0",
        refs["tags"]["v1.0.0"],
    )
    after = hub_server.refs(REPO)
    assert after["branches"] == {"main": refs["branches"]["main"], "release-v1.0.0": out["commit_oid"]}
    assert after["tags"] == {"v1.0.0": out["commit_oid"], "v1.1.0": refs["tags"]["v1.1.0"]}
    assert "baseline.json" in hub_server.files(REPO, "v1.0.0")
    assert "baseline.json" not in hub_server.files(REPO, "main")


@pytest.mark.slow
def test_verify_reports_a_hub_revision_that_does_not_match_the_manifest(
    released: Workspace, hub_server: HubServer, hub_env: dict[str, str]
) -> None:
    ws = released.root
    path = ws / "releases/v1.0.0/manifest.json"
    changed = json.loads(path.read_text())
    rows = changed["splits"]["train"]["rows"]
    changed["splits"]["train"]["rows"] = rows + 1
    path.write_text(json.dumps(changed))
    # a manifest changed after the build is refused before anything is sent
    before = state(ws)
    refused = curator(ws, hub_env, "publish", "--repo", REPO)
    assert refused.returncode == 1 and hub_server.log == []
    assert refused.stderr.splitlines()[0] == (
        f"Error: {path}: changed since v1.0.0 was built (its SHA-256 is not the one the catalog recorded)")
    assert state(ws) == before
    # one the catalog recorded (a build that wrote a wrong manifest) is caught by load_dataset
    conn = sqlite3.connect(ws / "catalog.sqlite")
    with conn:
        conn.execute("UPDATE releases SET manifest_sha256 = ?",
                     (hashlib.sha256(path.read_bytes()).hexdigest(),))
    conn.close()
    result = curator(ws, hub_env, "publish", "--repo", REPO)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        f"Error: verify: tester/scalp@v1.0.0 split train has {rows} rows, the manifest {rows + 1}"
    )
    # it was published (and tagged), so the publish is recorded, with the failed check
    (pub,) = publishes(ws)
    assert json.loads(pub["detail"])["verify_error"] == result.stderr.splitlines()[0][len("Error: ") :]
    assert "v1.0.0" in hub_server.refs(REPO)["tags"]


def test_publishing_an_older_version_after_a_newer_one_is_refused(
    released: Workspace, hub_server: HubServer, hub_env: dict[str, str], tmp_path: Path
) -> None:
    ws = released.root
    next_release(released, tmp_path, 100)
    assert curator(ws, hub_env, "publish", "--repo", REPO, "--no-verify").returncode == 0
    before = state(ws)
    result = curator(ws, hub_env, "publish", "v1.0.0", "--repo", REPO)
    assert result.returncode == 1
    assert result.stderr.splitlines()[0] == (
        "Error: tester/scalp: the Hub repo already has v1.1.0, newer than v1.0.0; "
        "publishing would roll main back"
    )
    assert state(ws) == before


# -- a folder ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_publish_to_a_folder_loads_and_matches_the_release(
    released: Workspace, hub_env: dict[str, str], tmp_path: Path
) -> None:
    import datasets

    ws, dest = released.root, tmp_path / "out" / "scalp-v1"
    result = curator(ws, hub_env, "--json", "publish", "--to", str(dest))
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["status"] == "published" and out["verified"] == split_rows(ws, "1.0.0")
    source = ws / "releases/v1.0.0"
    assert snapshot(dest) == {k: v for k, v in snapshot(source).items() if k != "publish-log.jsonl"}
    loaded = datasets.load_dataset(str(dest), cache_dir=str(tmp_path / "cache"))
    manifest = json.loads((source / "manifest.json").read_text())
    assert {s: loaded[s].num_rows for s in loaded} == {s: i["rows"] for s, i in manifest["splits"].items()}
    assert publishes(ws)[0]["location"] == str(dest)

    again = curator(ws, hub_env, "publish", "--to", str(dest))
    assert again.returncode == 0 and "already published" in again.stdout

    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    before = state(ws)
    refused = curator(ws, hub_env, "publish", "--to", str(other))
    assert refused.returncode == 1
    assert refused.stderr.splitlines()[0] == (
        f"Error: --to {other}: the folder exists and holds other files than release v1.0.0"
    )
    assert (other / "keep.txt").read_text() == "mine" and len(list(other.iterdir())) == 1
    assert state(ws) == before


def test_unknown_version_and_no_repo_are_one_line_errors(
    released: Workspace, hub_env: dict[str, str]
) -> None:
    ws = released.root
    before = state(ws)
    unknown = curator(ws, hub_env, "publish", "v9.9.9", "--repo", REPO)
    assert unknown.returncode == 5
    assert unknown.stderr.splitlines()[0] == "Error: no release v9.9.9 in this workspace (built: v1.0.0)"
    no_repo = curator(ws, hub_env, "publish")
    assert no_repo.returncode == 1
    assert no_repo.stderr.splitlines() == [
        "Error: no Hub repo to publish to",
        "Hint: set dataset.hub_repo in curator.toml, or pass --repo ns/name",
    ]
    assert state(ws) == before


def test_a_data_file_changed_after_the_build_is_refused_naming_it(
    released: Workspace, hub_server: HubServer, hub_env: dict[str, str], tmp_path: Path
) -> None:
    ws = released.root
    shard = ws / "releases/v1.0.0" / sorted(manifest_of(ws, "1.0.0")["files"])[-1]
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF  # same size, other bytes
    shard.write_bytes(bytes(data))
    before = state(ws)
    line = (f"Error: {shard}: changed since v1.0.0 was built (its size or SHA-256 is not the one "
            "manifest.json lists)")
    for args in (("--repo", REPO), ("--to", str(tmp_path / "out"))):
        result = curator(ws, hub_env, "publish", *args)
        assert result.returncode == 1
        assert result.stderr.splitlines()[0] == line
    assert hub_server.log == [] and not (tmp_path / "out").exists()
    assert state(ws) == before


@pytest.mark.parametrize(("args", "code", "message"), [
    (("--repo", REPO, "--to", "out"), 5, "Error: give either --repo or --to, not both"),
    (("v1.0.0", "--release"), 5, "Error: --release builds the next version; do not also name a VERSION"),
    (("--repo", "not-a-repo"), 5, "Error: --repo 'not-a-repo': not a Hub repo id (use namespace/name)"),
])
def test_bad_flags_are_one_line_errors(
    released: Workspace, args: tuple[str, ...], code: int, message: str
) -> None:
    before = state(released.root)
    result = run_cli("publish", *args, workspace=released.root)
    assert result.exit_code == code
    assert result.stderr.splitlines()[0] == message
    assert state(released.root) == before


# -- the whole path ------------------------------------------------------------------------------


def _image_folder(root: Path, seeds: range) -> Path:
    for label in CLASSES:
        (root / label).mkdir(parents=True, exist_ok=True)
        for seed in seeds:
            img = synthetic.photo(seed * 10 + CLASSES.index(label), label, (96, 96))
            (root / label / f"{seed}.png").write_bytes(synthetic.encode(img, "PNG"))
    return root


@pytest.mark.slow
def test_real_pipeline_publishes_two_versions(
    hub_server: HubServer, hub_env: dict[str, str], tmp_path: Path
) -> None:
    ws = tmp_path / "ws"
    started = time.monotonic()
    steps: list[tuple[str, ...]] = [
        ("init", "scalp", "--classes", ",".join(CLASSES)),
        ("ingest", str(_image_folder(tmp_path / "imgs1", range(8))), "--hint-from-folder"),
        ("label", "--accept-hints"),
        ("release",),
        ("publish", "--repo", REPO),
        ("ingest", str(_image_folder(tmp_path / "imgs2", range(8, 12))), "--hint-from-folder"),
        ("label", "--accept-hints"),
    ]
    outputs = []
    for step in steps:
        done = curator(ws, hub_env, *step, timeout=300)
        assert done.returncode == 0, f"curator {' '.join(step)}: {done.stderr}"
        outputs += [done.stdout, done.stderr]
    before = state(ws)
    pending = curator(ws, hub_env, "publish", "--repo", REPO)
    assert pending.returncode == 1
    assert pending.stderr.splitlines()[0].startswith(
        "Error: the catalog has changes that are in no release yet (next: v1.1.0, minor: "
    )
    assert pending.stderr.splitlines()[1] == (
        "Hint: run `curator release` first, pass --release to build and publish, or name a VERSION"
    )
    assert state(ws) == before
    built = curator(ws, hub_env, "publish", "--release", "--repo", REPO, timeout=300)
    assert built.returncode == 0, built.stderr
    assert built.stdout.startswith(f"Published v1.1.0 to {REPO}")
    assert built.stderr == ""  # no progress bars from datasets when not on a terminal
    for tag in ("v1.0.0", "v1.1.0"):
        loaded = load_from_hub(hub_env, REPO, tag, tmp_path / f"cache-{tag}")
        assert loaded.returncode == 0, loaded.stderr
        got = json.loads(loaded.stdout)
        manifest = json.loads((ws / "releases" / tag / "manifest.json").read_text())
        assert {s: got[s]["rows"] for s in got} == {
            s: i["rows"] for s, i in manifest["splits"].items() if i["rows"]
        }
    assert hub_server.refs(REPO)["tags"]["v1.1.0"] == hub_server.refs(REPO)["branches"]["main"]
    assert_no_token(ws, *outputs, built.stdout, built.stderr, pending.stderr)
    assert all(TEST_TOKEN.encode() not in data for data in hub_server.files(REPO, "v1.1.0").values())
    assert time.monotonic() - started < 240
    shutil.rmtree(tmp_path / "imgs1")
