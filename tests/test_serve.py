"""`curator serve` and `curator annotators` over raw HTTP: tokens, CSRF, what may be served."""

from __future__ import annotations

import http.client
import re
import sqlite3
from urllib.parse import urlsplit

import httpx
import pytest

from curator import annotators, labeling, store
from curator.workspace import Workspace
from tests.conftest import run_cli, snapshot
from tests.serving import Served, serving
from tests.test_labeling import add_image, events

TIMEOUT = 30.0


def login(served: Served, who: str) -> tuple[httpx.Client, str]:
    """A client holding ``who``'s cookie, and the CSRF token of their page."""
    client = httpx.Client(base_url=served.base, timeout=TIMEOUT)
    first = client.get(served.links[who])
    assert first.status_code == 303 and first.headers["location"] == "/label"
    assert "curator_token" in first.cookies
    page = client.get("/label")
    match = re.search(r'name="csrf-token" content="([0-9a-f]+)"', page.text)
    assert match
    return client, match.group(1)


def raw_get(served: Served, path: str, cookie: str = "") -> tuple[int, bytes]:
    """GET a path exactly as written (no client-side normalising of '..' or %-escapes)."""
    url = urlsplit(served.base)
    conn = http.client.HTTPConnection(url.hostname or "", url.port, timeout=TIMEOUT)
    try:
        conn.request("GET", path, headers={"Cookie": cookie} if cookie else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_annotators_add_list_revoke_store_only_a_hash(workspace: Workspace) -> None:
    added = run_cli("--json", "annotators", "add", "alice", workspace=workspace.root)
    assert added.exit_code == 0, added.output
    token = re.search(r'"token": "([^"]+)"', added.stdout)
    assert token and f"/label?token={token.group(1)}" in added.stdout
    assert annotators.lookup(workspace.conn, token.group(1)) == "alice"
    stored = [tuple(r) for r in workspace.conn.execute("SELECT name, token_hash FROM annotators")]
    assert stored == [("alice", annotators.token_hash(token.group(1)))]
    workspace.close()
    assert token.group(1).encode() not in b"".join(snapshot(workspace.root).values())
    again = run_cli("annotators", "add", "alice", workspace=workspace.root)
    assert again.exit_code != 0 and "already exists" in again.stderr
    assert "alice" in run_cli("annotators", "list", workspace=workspace.root).stdout
    assert run_cli("annotators", "revoke", "alice", workspace=workspace.root).exit_code == 0
    assert annotators.lookup(workspace.conn, token.group(1)) is None
    missing = run_cli("annotators", "revoke", "nobody", workspace=workspace.root)
    assert missing.exit_code != 0 and missing.stderr.count("\n") == 1


def test_serve_without_annotators_says_how_to_add_one(workspace: Workspace) -> None:
    before = snapshot(workspace.root)
    result = run_cli("serve", workspace=workspace.root)
    assert result.exit_code != 0
    assert "curator annotators add NAME" in result.stderr and "Traceback" not in result.stderr
    workspace.close()
    assert snapshot(workspace.root) == before


def test_requests_without_a_valid_token_are_refused(workspace: Workspace) -> None:
    sha = add_image(workspace, 1)
    workspace.close()
    with serving(workspace.root, "--annotator", "alice") as served:
        for path in ("/label", "/review", "/api/label", f"/img/{sha}", "/static/app.js", "/api/browse"):
            assert httpx.get(served.base + path, timeout=TIMEOUT).status_code == 401, path
            wrong = httpx.get(served.base + path, cookies={"curator_token": "x" * 43}, timeout=TIMEOUT)
            assert wrong.status_code == 401, path
        assert httpx.get(served.base + "/label?token=wrong", timeout=TIMEOUT).status_code == 403
        client, csrf = login(served, "alice")
        assert client.get("/api/label").status_code == 200
        # revoked while the server runs: refused at the very next request
        assert run_cli("annotators", "revoke", "alice", workspace=workspace.root).exit_code == 0
        assert client.get("/api/label").status_code == 401
        assert client.post("/api/label", json={"key": "1"}, headers={"X-CSRF-Token": csrf}).status_code == 401
        assert httpx.get(served.links["alice"], timeout=TIMEOUT).status_code == 403
        client.close()
    assert events(workspace.conn) == []
    assert served.token("alice") not in served.log.read_text()


def test_writes_need_the_csrf_token(workspace: Workspace) -> None:
    sha = add_image(workspace, 1)
    workspace.close()
    with serving(workspace.root, "--annotator", "alice") as served:
        client, csrf = login(served, "alice")
        for headers in ({}, {"X-CSRF-Token": "0" * 64}, {"X-CSRF-Token": served.token("alice")}):
            response = client.post("/api/label", json={"key": "1"}, headers=headers)
            assert response.status_code == 403 and "CSRF" in response.json()["error"]
        assert client.post("/api/review", json={"key": "k"}).status_code == 403
        assert events(workspace.conn) == []
        answered = client.post("/api/label", json={"key": "1"}, headers={"X-CSRF-Token": csrf})
        assert answered.status_code == 200 and answered.json()["done"]
        client.close()
    assert events(workspace.conn) == [(sha, "alice", "alopecia", None, "label")]


@pytest.mark.parametrize("path", [
    "/catalog.sqlite", "/curator.toml", "/objects", "/static/../catalog.sqlite",
    "/static/..%2fcatalog.sqlite",
    "/static/%2e%2e%2fcatalog.sqlite", "/static/%2e%2e/%2e%2e/curator.toml", "/img/../catalog.sqlite",
    "/img/..%2f..%2fcatalog.sqlite", "/img/%2e%2e%2fcatalog.sqlite", "/img/%252e%252e%252fcatalog.sqlite",
    "/label/../../catalog.sqlite", "/api/../catalog.sqlite", "/static/page.html%00.js",
    "/img/..\\..\\catalog.sqlite", "/static/%5c..%5ccatalog.sqlite",
])
def test_nothing_outside_images_by_sha256_is_served(workspace: Workspace, path: str) -> None:
    add_image(workspace, 1)
    workspace.close()
    with serving(workspace.root, "--annotator", "alice") as served:
        cookie = f"curator_token={served.token('alice')}"
        status, body = raw_get(served, path, cookie)
        assert status in (400, 404), (path, status)
        assert b"SQLite format 3" not in body and b"[dataset]" not in body


def test_images_by_sha256_only(workspace: Workspace) -> None:
    sha = add_image(workspace, 1, size=(640, 480))
    workspace.close()
    with serving(workspace.root, "--annotator", "alice") as served:
        client, _ = login(served, "alice")
        full = client.get(f"/img/{sha}?size=full")
        assert full.status_code == 200 and full.content == store.read(workspace.objects, sha)
        thumb = client.get(f"/img/{sha}?size=thumb")
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"
        assert client.get(f"/img/{'0' * 64}").status_code == 404  # well-formed but not in the catalog
        assert client.get(f"/img/{sha}?size=../../catalog.sqlite").status_code == 404
        assert client.get(f"/img/{sha[:12]}").status_code == 404
        client.close()


def test_two_annotators_each_have_their_own_queue(workspace: Workspace) -> None:
    shas = [add_image(workspace, seed) for seed in range(3)]
    workspace.close()
    with serving(workspace.root, "--annotator", "alice", "--annotator", "bob") as served:
        alice, alice_csrf = login(served, "alice")
        bob, bob_csrf = login(served, "bob")
        crossed = alice.post("/api/label", json={"key": "1"}, headers={"X-CSRF-Token": bob_csrf})
        assert crossed.status_code == 403
        after_a = alice.post("/api/label", json={"key": "1"}, headers={"X-CSRF-Token": alice_csrf}).json()
        after_b = bob.post("/api/label", json={"key": "x"}, headers={"X-CSRF-Token": bob_csrf}).json()
        assert after_a["item"]["sha256"] == after_b["item"]["sha256"] == shas[1]
        assert (after_a["annotator"], after_b["annotator"]) == ("alice", "bob")
        alice.close()
        bob.close()
    assert events(workspace.conn) == [(shas[0], "alice", "alopecia", None, "label"),
                                      (shas[0], "bob", labeling.EXCLUDED, None, "exclude")]


def test_host_other_than_loopback_warns_plain_http(workspace: Workspace) -> None:
    add_image(workspace, 1)
    workspace.close()
    with serving(workspace.root, "--annotator", "alice", "--host", "127.0.0.2") as served:
        assert served.base.startswith("http://127.0.0.2:")
        assert httpx.get(served.links["alice"], timeout=TIMEOUT).status_code == 303
    assert "plain HTTP" in served.log.read_text()


def test_catalog_gets_migration_7(workspace: Workspace) -> None:
    versions = [row[0] for row in workspace.conn.execute("SELECT version FROM schema_migrations")]
    assert 7 in versions
    with pytest.raises(sqlite3.IntegrityError):
        workspace.conn.execute(
            "INSERT INTO annotators (name, token_hash, created_at) VALUES ('a', NULL, 'now')")


def test_split_a_wrong_cluster_and_adjudicate(workspace: Workspace) -> None:
    toml = workspace.root / "curator.toml"
    toml.write_text(toml.read_text().replace("[labels]\n", '[labels]\nadjudicator = "alice"\n'))
    first = add_image(workspace, 1)
    near = add_image(workspace, 2, cluster_of=first)
    labeling.record(workspace.conn, first, "bob", "alopecia", "label")
    labeling.record(workspace.conn, first, "carol", "psoriasis", "label")
    workspace.close()
    with serving(workspace.root, "--annotator", "alice", "--annotator", "bob") as served:
        alice, alice_csrf = login(served, "alice")
        bob, bob_csrf = login(served, "bob")
        clusters = alice.get("/api/duplicates").json()["clusters"]
        assert [[m["sha256"] for m in c["members"]] for c in clusters] == [[first, near]]
        assert clusters[0]["members"][1]["reason"] == "near"
        assert alice.post("/api/duplicates/split", json={"sha256": near}).status_code == 403  # no CSRF
        csrf = {"X-CSRF-Token": alice_csrf}
        after = alice.post("/api/duplicates/split", json={"sha256": near}, headers=csrf)
        assert after.status_code == 200 and after.json()["clusters"] == []
        again = alice.post("/api/duplicates/split", json={"sha256": near}, headers=csrf)
        assert again.status_code == 400 and "alone" in again.json()["error"]
        disagree = alice.get("/api/agreement").json()
        assert disagree["adjudicator"] == "alice"
        assert [(i["sha256"], i["votes"], i["resolved"]) for i in disagree["images"]] == [
            (first, {"bob": "alopecia", "carol": "psoriasis"}, None)]
        denied = bob.post("/api/agreement", json={"sha256": first, "label": "alopecia"},
                          headers={"X-CSRF-Token": bob_csrf})
        assert denied.status_code == 403
        decided = alice.post("/api/agreement", json={"sha256": first, "label": "psoriasis"},
                             headers={"X-CSRF-Token": alice_csrf})
        assert decided.status_code == 200
        alice.close()
        bob.close()
    cluster_of = dict(workspace.conn.execute("SELECT sha256, cluster_id FROM images").fetchall())
    assert cluster_of[first] != cluster_of[near]
    assert events(workspace.conn)[-1] == (first, "alice", "psoriasis", None, "label")
