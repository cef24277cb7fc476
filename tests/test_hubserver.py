"""The local Hub server (tests/hubserver.py): routes, revisions, error codes and test hooks.

Raw HTTP with httpx for the wire details; ``HfApi(endpoint=...)`` for what the client parses.
The full upload + ``load_dataset`` round trip runs in tests/test_publish.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator

import httpx
import pytest

from tests.hubserver import HubServer, git_blob_oid, lfs_pointer

TOKEN = "hf_server_test_token"
REPO = "tester/ds"
PARQUET = b"PAR1" + bytes(range(256)) * 4 + b"PAR1"
CARD = b"---\nlicense: other\n---\n# v1\n"


@pytest.fixture
def server() -> Iterator[HubServer]:
    with HubServer(token=TOKEN) as hub:
        yield hub


@pytest.fixture
def client(server: HubServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5.0) as c:
        yield c


def _commit(client: httpx.Client, lines: list[dict[str, object]],
            parent: str | None = None) -> httpx.Response:
    header = {"key": "header", "value": {"summary": "test", "description": ""}}
    if parent:
        header["value"]["parentCommit"] = parent  # type: ignore[index]
    body = "\n".join(json.dumps(line) for line in [header, *lines])
    return client.post(f"/api/datasets/{REPO}/commit/main", content=body,
                       headers={"Content-Type": "application/x-ndjson"})


def _upload_lfs(client: httpx.Client, data: bytes) -> str:
    oid = hashlib.sha256(data).hexdigest()
    batch = client.post(f"/datasets/{REPO}.git/info/lfs/objects/batch",
                        json={"operation": "upload", "objects": [{"oid": oid, "size": len(data)}]}).json()
    actions = batch["objects"][0]["actions"]
    assert httpx.put(actions["upload"]["href"], content=data).status_code == 200  # no auth on the PUT
    assert client.post(actions["verify"]["href"], json={"oid": oid, "size": len(data)}).status_code == 200
    return oid


def _two_revisions(client: httpx.Client) -> tuple[str, str]:
    assert client.post("/api/repos/create", json={"name": "ds", "type": "dataset"}).status_code == 200
    oid = _upload_lfs(client, PARQUET)
    card = base64.b64encode(CARD).decode()
    first = _commit(client, [
        {"key": "file", "value": {"path": "README.md", "content": card, "encoding": "base64"}},
        {"key": "lfsFile", "value": {"path": "data/sub/train.parquet", "algo": "sha256", "oid": oid,
                                     "size": len(PARQUET)}},
    ]).json()["commitOid"]
    second = _commit(client, [{"key": "deletedFile", "value": {"path": "data/sub/train.parquet"}}],
                     parent=first).json()["commitOid"]
    return first, second


def test_each_revision_serves_its_own_files(server: HubServer, client: httpx.Client) -> None:
    first, second = _two_revisions(client)
    assert client.post(f"/api/datasets/{REPO}/tag/{first}", json={"tag": "v1.0.0"}).status_code == 200
    assert set(server.files(REPO, "v1.0.0")) == {".gitattributes", "README.md", "data/sub/train.parquet"}
    assert set(server.files(REPO, "main")) == {".gitattributes", "README.md"}
    assert server.files(REPO, first[:7])["data/sub/train.parquet"] == PARQUET  # short sha

    tree = client.get(f"/api/datasets/{REPO}/tree/v1.0.0/data%2Fsub", params={"recursive": "false"}).json()
    assert tree == [{"type": "file", "oid": git_blob_oid(lfs_pointer(hashlib.sha256(PARQUET).hexdigest(),
                                                                          len(PARQUET))),
                     "size": len(PARQUET), "path": "data/sub/train.parquet",
                     "lfs": {"oid": hashlib.sha256(PARQUET).hexdigest(), "size": len(PARQUET),
                             "pointerSize": len(lfs_pointer(hashlib.sha256(PARQUET).hexdigest(),
                                                            len(PARQUET)))}}]
    top = client.get(f"/api/datasets/{REPO}/tree/v1.0.0", params={"recursive": "false"}).json()
    assert [(e["type"], e["path"]) for e in top] == [
        ("file", ".gitattributes"), ("file", "README.md"), ("directory", "data")]
    missing = client.get(f"/api/datasets/{REPO}/tree/main/data")
    assert (missing.status_code, missing.headers["X-Error-Code"]) == (404, "EntryNotFound")

    info = client.get(f"/api/datasets/{REPO}/revision/v1.0.0", params={"blobs": "true"}).json()
    assert info["sha"] == first and info["cardData"] == {"license": "other"}
    assert [s["rfilename"] for s in info["siblings"]] == [
        ".gitattributes", "README.md", "data/sub/train.parquet"]
    paths = client.post(f"/api/datasets/{REPO}/paths-info/{first}",
                        data={"paths": ["README.md", "data", "nope"], "expand": "false"}).json()
    assert [(p["type"], p["path"]) for p in paths] == [("file", "README.md"), ("directory", "data")]


def test_resolve_headers_ranges_and_typed_404s(client: httpx.Client) -> None:
    first, _ = _two_revisions(client)
    url = f"/datasets/{REPO}/resolve/{first}/data/sub/train.parquet"
    head = client.head(url)
    assert head.status_code == 200 and head.headers["X-Repo-Commit"] == first
    assert head.headers["ETag"] == f'"{hashlib.sha256(PARQUET).hexdigest()}"'
    assert head.headers["Content-Length"] == str(len(PARQUET))
    card = client.head(f"/datasets/{REPO}/resolve/main/README.md")
    assert card.headers["ETag"] == f'"{git_blob_oid(CARD)}"'
    part = client.get(url, headers={"Range": "bytes=4-9"})
    assert (part.status_code, part.content, part.headers["Content-Range"]) == (
        206, PARQUET[4:10], f"bytes 4-9/{len(PARQUET)}")
    assert client.get(url, headers={"Range": f"bytes={len(PARQUET)}-"}).status_code == 416
    gone = client.head(f"/datasets/{REPO}/resolve/main/data/sub/train.parquet")
    assert (gone.status_code, gone.headers["X-Error-Code"]) == (404, "EntryNotFound")
    assert client.head(f"/datasets/{REPO}/resolve/v9/README.md").headers["X-Error-Code"] == "RevisionNotFound"
    assert client.get("/api/datasets/tester/none").headers["X-Error-Code"] == "RepoNotFound"


def test_preupload_modes_and_remote_oids(client: httpx.Client) -> None:
    _two_revisions(client)
    files = [{"path": "README.md", "sample": base64.b64encode(b"# v2").decode(), "size": 4},
             {"path": "data/x.parquet", "sample": base64.b64encode(b"PAR1").decode(), "size": 4},
             {"path": "blob.dat", "sample": base64.b64encode(b"a\0b").decode(), "size": 3}]
    got = client.post(f"/api/datasets/{REPO}/preupload/main", json={"files": files}).json()["files"]
    readme_oid = git_blob_oid(CARD)
    assert got == [
        {"path": "README.md", "uploadMode": "regular", "shouldIgnore": False, "oid": readme_oid},
        {"path": "data/x.parquet", "uploadMode": "lfs", "shouldIgnore": False},
        {"path": "blob.dat", "uploadMode": "lfs", "shouldIgnore": False},
    ]


def test_commit_checks_parent_deletions_and_uploads(server: HubServer, client: httpx.Client) -> None:
    first, second = _two_revisions(client)
    stale = _commit(client, [{"key": "deletedFile", "value": {"path": "README.md"}}], parent=first)
    assert stale.status_code == 412
    missing = _commit(client, [{"key": "deletedFile", "value": {"path": "nope.txt"}}])
    assert (missing.status_code, missing.headers["X-Error-Code"]) == (404, "EntryNotFound")
    never = _commit(client, [{"key": "lfsFile", "value": {"path": "a.parquet", "algo": "sha256",
                                                          "oid": "0" * 64, "size": 1}}])
    assert never.status_code == 422
    assert server.commits(REPO)[0] == second  # none of them landed


def test_tokens_are_checked(server: HubServer) -> None:
    with httpx.Client(base_url=server.url, timeout=5.0) as anonymous:
        assert anonymous.post("/api/repos/create", json={"name": "x", "type": "dataset"}).status_code == 401
        assert anonymous.get("/api/whoami-v2").status_code == 401
        wrong = anonymous.get("/api/whoami-v2", headers={"Authorization": "Bearer hf_wrong"})
        assert wrong.status_code == 401
        assert server.state.repos == {}
        server.create_repo("tester/secret", private=True)
        for url in ("/api/datasets/tester/secret", "/datasets/tester/secret/resolve/main/.gitattributes"):
            hidden = anonymous.get(url)
            assert (hidden.status_code, hidden.headers["X-Error-Code"]) == (404, "RepoNotFound")
            assert anonymous.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_hooks_inject_drop_before_and_tag(server: HubServer, client: httpx.Client) -> None:
    first, second = _two_revisions(client)
    server.inject(r"^GET /api/datasets/tester/ds/refs$", 503, times=2)
    assert [client.get(f"/api/datasets/{REPO}/refs").status_code for _ in range(3)] == [503, 503, 200]
    server.drop(r"^GET /api/datasets/tester/ds/refs$")
    with pytest.raises(httpx.RemoteProtocolError):
        client.get(f"/api/datasets/{REPO}/refs")
    moved: list[str] = []
    server.before(r"/refs$", lambda: moved.append(server.commit(REPO, add={"x.txt": b"x"})))
    refs = client.get(f"/api/datasets/{REPO}/refs").json()
    assert refs["branches"][0]["targetCommit"] == moved[0] != second
    server.tag(REPO, "v1.0.0", first)
    assert server.refs(REPO)["tags"] == {"v1.0.0": first}
    assert client.get(f"/api/datasets/{REPO}/refs").json()["tags"][0]["targetCommit"] == first


def test_hfapi_parses_refs_tags_and_tree(server: HubServer, client: httpx.Client) -> None:
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError, RevisionNotFoundError

    first, second = _two_revisions(client)
    api = HfApi(endpoint=server.url, token=TOKEN)
    api.create_tag(REPO, tag="v1.0.0", revision=first, repo_type="dataset")
    with pytest.raises(HfHubHTTPError) as info:
        api.create_tag(REPO, tag="v1.0.0", revision=second, repo_type="dataset")
    assert info.value.response.status_code == 409
    refs = api.list_repo_refs(REPO, repo_type="dataset")
    assert [(t.name, t.target_commit) for t in refs.tags] == [("v1.0.0", first)]
    tree = api.list_repo_tree(REPO, repo_type="dataset", revision="v1.0.0", recursive=True)
    files = {f.path: f for f in tree if hasattr(f, "size")}
    assert files["data/sub/train.parquet"].lfs.sha256 == hashlib.sha256(PARQUET).hexdigest()
    api.delete_tag(REPO, tag="v1.0.0", repo_type="dataset")
    with pytest.raises(RevisionNotFoundError):
        api.delete_tag(REPO, tag="v1.0.0", repo_type="dataset")
    assert api.dataset_info(REPO).sha == second
