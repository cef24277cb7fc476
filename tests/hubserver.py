"""A small Hugging Face Hub-compatible server for tests, on 127.0.0.1 port 0.

It speaks the subset of the Hub's HTTP API that the real ``huggingface_hub`` and
``datasets`` clients use to publish and load a dataset (see ``shared/hub-api.md``
section 2), with no git and no Xet: run clients with ``HF_HUB_DISABLE_XET=1``.

    write   W1  POST   /api/repos/create
            W2  POST   /api/validate-yaml
            W3  POST   /api/{t}/{ns}/{name}/preupload/{rev}
            W4  POST   /{datasets/}{ns}/{name}.git/info/lfs/objects/batch
            W5  PUT    /lfs/upload/{sha256}            (the self-authorising upload href)
            W6  POST   /lfs/verify/{sha256}
            W7  POST   /api/{t}/{ns}/{name}/commit/{rev}
            W8  POST   /api/{t}/{ns}/{name}/tag/{rev}
            W9  DELETE /api/{t}/{ns}/{name}/tag/{tag}
            W10 POST   /api/{t}/{ns}/{name}/branch/{branch}
    read    R1  GET    /api/{t}/{ns}/{name}[/revision/{rev}]   (?blobs=true)
            R2  GET    /api/{t}/{ns}/{name}/refs
            R3  GET    /api/{t}/{ns}/{name}/tree/{rev}[/{path}]  (?recursive=true)
            R4  POST   /api/{t}/{ns}/{name}/paths-info/{rev}
            R5  HEAD   /{datasets/}{ns}/{name}/resolve/{rev}/{path}
            R6  GET    same, with Range support
    side    S1  GET    /api/agent-harnesses
                GET    /api/whoami-v2

The store is in memory: blobs by sha256, and per repo its commits (each a full
``path -> FileEntry`` snapshot), branches and tags, so every revision serves its
own files. A new repo gets an initial commit holding ``.gitattributes``, as on the
real Hub. Errors carry ``X-Error-Code`` (``RepoNotFound``, ``RevisionNotFound``,
``EntryNotFound``) so the client raises its typed errors; every response has a
Content-Length (the client keeps connections alive).

Test hooks (all thread-safe):

    server.inject(pattern, status, times=1)   answer the next ``times`` requests whose
                                              "METHOD /path" matches the regex with ``status``
    server.drop(pattern, times=1)             read the request, then close the socket
                                              without answering (a dropped connection)
    server.before(pattern, fn, times=1)       call fn() first, then answer normally
    server.commit(repo_id, add={path: bytes}, delete=[...])
                                              a commit made behind the client's back
    server.tag(repo_id, tag, rev)             create or move a tag behind its back
    server.files(repo_id, rev) -> {path: bytes}, server.refs(repo_id), server.log

Only requests carrying ``Authorization: Bearer <server.token>`` may write; a wrong
token gets 401 on any route, a missing one gets 401 on writes.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import json
import re
import socket
import threading
import time
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import yaml

REPO_TYPES = {"models": "model", "datasets": "dataset", "spaces": "space"}
LFS_PATTERNS = ("*.parquet", "*.arrow", "*.png", "*.jpg", "*.jpeg", "*.webp", "*.gif", "*.bin", "*.zip")
LFS_SIZE = 10 * 1024 * 1024
GITATTRIBUTES = "".join(f"{p} filter=lfs diff=lfs merge=lfs -text\n" for p in LFS_PATTERNS).encode()


def git_blob_oid(data: bytes) -> str:
    """The git object id of a blob: sha1 of ``"blob <len>\\0" + data``."""
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


@dataclass(frozen=True)
class FileEntry:
    """One file in a commit's snapshot; its bytes live in the blob store under ``sha256``."""

    sha256: str
    size: int
    lfs: bool
    content_oid: str = ""  # git blob oid of the bytes (regular files only)

    @property
    def pointer(self) -> bytes:
        return lfs_pointer(self.sha256, self.size)

    @property
    def git_oid(self) -> str:
        """The oid git gives the file: of its bytes, or of its LFS pointer."""
        return git_blob_oid(self.pointer) if self.lfs else self.content_oid

    def tree_entry(self, path: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"type": "file", "oid": self.git_oid, "size": self.size, "path": path}
        if self.lfs:
            entry["lfs"] = {"oid": self.sha256, "size": self.size, "pointerSize": len(self.pointer)}
        return entry


@dataclass
class Commit:
    oid: str
    parents: list[str]
    title: str
    message: str
    date: str
    files: dict[str, FileEntry]


@dataclass
class Repo:
    repo_type: str  # "datasets", "models", "spaces"
    repo_id: str
    private: bool
    created_at: str
    commits: dict[str, Commit] = field(default_factory=dict)
    branches: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


class HubError(Exception):
    """Raised inside a handler: becomes an error response with X-Error-Code."""

    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.code = code


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())


class HubState:
    """The in-memory store plus the test hooks; shared by all handler threads."""

    def __init__(self, token: str | None, user: str) -> None:
        self.token = token
        self.user = user
        self.lock = threading.RLock()
        self.blobs: dict[str, bytes] = {}
        self.repos: dict[tuple[str, str], Repo] = {}
        self.log: list[str] = []  # "METHOD /path" of every request, in arrival order
        self._faults: list[dict[str, Any]] = []
        self._counter = 0

    # -- hooks -----------------------------------------------------------------------------------
    def add_fault(self, pattern: str, kind: str, status: int, times: int,
                  call: Callable[[], object] | None = None) -> None:
        with self.lock:
            self._faults.append(
                {"re": re.compile(pattern), "kind": kind, "status": status, "left": times, "call": call}
            )

    def take_fault(self, line: str) -> dict[str, Any] | None:
        with self.lock:
            for fault in self._faults:
                if fault["left"] > 0 and fault["re"].search(line):
                    fault["left"] -= 1
                    return fault
        return None

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    # -- store -----------------------------------------------------------------------------------
    def new_oid(self, seed: str) -> str:
        with self.lock:
            self._counter += 1
            return hashlib.sha1(f"{seed}:{self._counter}:{time.time_ns()}".encode()).hexdigest()

    def put_blob(self, data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        with self.lock:
            self.blobs[digest] = data
        return digest

    def entry_for(self, data: bytes, lfs: bool) -> FileEntry:
        digest = self.put_blob(data)
        return FileEntry(digest, len(data), lfs, "" if lfs else git_blob_oid(data))

    def repo(self, repo_type: str, repo_id: str) -> Repo:
        repo = self.repos.get((repo_type, repo_id))
        if repo is None:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def create_repo(self, repo_type: str, repo_id: str, private: bool) -> Repo:
        with self.lock:
            if (repo_type, repo_id) in self.repos:
                raise HubError(409, f"You already created this {REPO_TYPES[repo_type]} repo: {repo_id}")
            repo = Repo(repo_type, repo_id, private, _now())
            self.repos[(repo_type, repo_id)] = repo
            oid = self.new_oid(repo_id)
            attrs = self.entry_for(GITATTRIBUTES, lfs=False)
            repo.commits[oid] = Commit(oid, [], "initial commit", "", _now(), {".gitattributes": attrs})
            repo.branches["main"] = oid
            return repo

    def resolve(self, repo: Repo, rev: str) -> Commit:
        """A branch, a tag, a full or short (>= 7 hex) commit oid."""
        rev = urllib.parse.unquote(rev)
        for table in (repo.branches, repo.tags):
            if rev in table:
                return repo.commits[table[rev]]
        if rev in repo.commits:
            return repo.commits[rev]
        if re.fullmatch(r"[0-9a-f]{7,39}", rev):
            found = [c for oid, c in repo.commits.items() if oid.startswith(rev)]
            if len(found) == 1:
                return found[0]
        raise HubError(404, f"Invalid rev id: {rev}", "RevisionNotFound")

    def apply_commit(
        self, repo: Repo, branch: str, ops: list[dict[str, Any]], header: dict[str, Any],
        entries: dict[str, FileEntry] | None = None,
    ) -> Commit:
        """Apply NDJSON operations (then ``entries``, already-stored files) on ``branch``
        atomically; 412 if parentCommit isn't the head."""
        with self.lock:
            head_oid = repo.branches.get(branch)
            if head_oid is None:
                raise HubError(404, f"Invalid rev id: {branch}", "RevisionNotFound")
            parent = header.get("parentCommit")
            if parent and parent != head_oid:
                raise HubError(412, f"A commit has happened since. Please refresh and try again ({head_oid})")
            files = dict(repo.commits[head_oid].files)
            for op in ops:
                self._apply_op(files, op)
            files.update(entries or {})
            oid = self.new_oid(repo.repo_id)
            commit = Commit(
                oid, [head_oid], header.get("summary", ""), header.get("description", ""), _now(), files
            )
            repo.commits[oid] = commit
            repo.branches[branch] = oid
            return commit

    def _apply_op(self, files: dict[str, FileEntry], op: dict[str, Any]) -> None:
        key, value = op.get("key"), op.get("value", {})
        path = value.get("path", "")
        if key == "file":
            files[path] = self.entry_for(base64.b64decode(value["content"]), lfs=False)
        elif key == "lfsFile":
            oid = value["oid"]
            if oid not in self.blobs:
                raise HubError(422, f"LFS object {oid} for {path} was never uploaded")
            files[path] = FileEntry(oid, len(self.blobs[oid]), lfs=True)
        elif key == "deletedFile":
            if path not in files:
                raise HubError(404, f"A file with this name doesn't exist: {path}", "EntryNotFound")
            del files[path]
        elif key == "deletedFolder":
            prefix = path.rstrip("/") + "/"
            gone = [p for p in files if p.startswith(prefix)]
            if not gone:
                raise HubError(404, f"A folder with this name doesn't exist: {path}", "EntryNotFound")
            for p in gone:
                del files[p]
        else:
            raise HubError(400, f"unknown commit operation {key!r}")


def should_use_lfs(path: str, size: int, sample: bytes) -> bool:
    name = path.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(name, p) for p in LFS_PATTERNS) or size >= LFS_SIZE or b"\0" in sample


class _Dropped(Exception):
    """The request was answered by closing the socket."""


class HubHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    # -- plumbing --------------------------------------------------------------------------------
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - keep test output quiet
        pass

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    @property
    def state(self) -> HubState:
        return self.server.state

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().strip().split(b";")[0], 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
              content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, value: Any, headers: dict[str, str] | None = None) -> None:
        self._send(status, json.dumps(value).encode(), headers)

    def _error(self, status: int, message: str, code: str | None = None,
               headers: dict[str, str] | None = None) -> None:
        extra = dict(headers or {})
        extra["X-Error-Message"] = message
        if code:
            extra["X-Error-Code"] = code
        self._json(status, {"error": message}, extra)

    def _dispatch(self, method: str) -> None:
        raw_path, _, query = self.path.partition("?")
        line = f"{method} {raw_path}"
        with self.state.lock:
            self.state.log.append(line)
        body = self._body()
        fault = self.state.take_fault(line)
        if fault is not None and fault["kind"] == "call":
            fault["call"]()
            fault = None
        if fault is not None:
            if fault["kind"] == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return
            self._error(fault["status"], f"injected {fault['status']} for {line}")
            return
        try:
            self._check_token(method, raw_path)
            self._route(method, raw_path, urllib.parse.parse_qs(query), body)
        except HubError as err:
            self._error(err.status, err.message, err.code)

    def _check_token(self, method: str, raw_path: str) -> None:
        expected = self.state.token
        if expected is None or raw_path.startswith("/lfs/upload/") or raw_path == "/api/agent-harnesses":
            return
        auth = self.headers.get("Authorization", "")
        given = auth[len("Bearer "):] if auth.startswith("Bearer ") else None
        if given is not None and given != expected:
            raise HubError(401, "Invalid credentials in Authorization header")
        if given is None and (method != "GET" and method != "HEAD" or raw_path == "/api/whoami-v2"):
            raise HubError(401, "You must be authenticated to do this")

    # -- routing ---------------------------------------------------------------------------------
    def _route(self, method: str, raw_path: str, query: dict[str, list[str]], body: bytes) -> None:
        parts = [urllib.parse.unquote(p) for p in raw_path.strip("/").split("/")]
        if raw_path == "/api/agent-harnesses":
            return self._json(200, {"standardEnvVars": [], "harnesses": {}})
        if raw_path == "/api/whoami-v2":
            return self._json(200, {"type": "user", "name": self.state.user, "orgs": [],
                                    "auth": {"type": "access_token", "accessToken": {"role": "write"}}})
        if method == "POST" and raw_path == "/api/repos/create":
            return self._create_repo(json.loads(body or b"{}"))
        if method == "POST" and raw_path == "/api/validate-yaml":
            return self._validate_yaml(json.loads(body or b"{}"))
        if parts[:2] == ["lfs", "upload"] and method == "PUT":
            return self._lfs_put(parts[2], body)
        if parts[:2] == ["lfs", "verify"] and method == "POST":
            return self._lfs_verify(json.loads(body or b"{}"))
        if parts[0] == "api" and len(parts) >= 4 and parts[1] in REPO_TYPES:
            repo_type, repo_id, rest = parts[1], f"{parts[2]}/{parts[3]}", parts[4:]
            return self._api_repo(method, repo_type, repo_id, rest, query, body)
        repo_type = "models"
        if parts and parts[0] in ("datasets", "spaces"):
            repo_type, parts = parts[0], parts[1:]
        if len(parts) >= 2 and parts[1].endswith(".git") and parts[2:] == ["info", "lfs", "objects", "batch"]:
            return self._lfs_batch(repo_type, f"{parts[0]}/{parts[1][:-4]}", json.loads(body))
        if len(parts) >= 5 and parts[2] == "resolve" and method in ("GET", "HEAD"):
            return self._resolve(repo_type, f"{parts[0]}/{parts[1]}", parts[3], "/".join(parts[4:]))
        raise HubError(404, f"no route for {method} {raw_path}")

    def _repo(self, repo_type: str, repo_id: str) -> Repo:
        """The repo; a private one looks missing without a token (as on the Hub)."""
        repo = self.state.repo(repo_type, repo_id)
        if repo.private and self.headers.get("Authorization") is None:
            raise HubError(404, f"Repository {repo_id} not found", "RepoNotFound")
        return repo

    def _api_repo(self, method: str, repo_type: str, repo_id: str, rest: list[str],
                  query: dict[str, list[str]], body: bytes) -> None:
        repo = self._repo(repo_type, repo_id)
        action = rest[0] if rest else ""
        if method == "GET" and action in ("", "revision"):
            commit = self.state.resolve(repo, rest[1] if action else "main")
            return self._json(200, self._repo_info(repo, commit, query.get("blobs") == ["true"]))
        if method == "GET" and action == "refs":
            return self._json(200, self._refs(repo, "include_prs" in query))
        if method == "GET" and action == "tree" and len(rest) >= 2:
            return self._tree(repo, rest[1], "/".join(rest[2:]), query.get("recursive") == ["true"])
        if method == "POST" and action == "paths-info" and len(rest) == 2:
            return self._paths_info(repo, rest[1], urllib.parse.parse_qs(body.decode()))
        if method == "POST" and action == "preupload" and len(rest) == 2:
            return self._preupload(repo, rest[1], json.loads(body))
        if method == "POST" and action == "commit" and len(rest) == 2:
            return self._commit(repo, rest[1], body)
        if method == "POST" and action == "tag" and len(rest) == 2:
            return self._create_tag(repo, rest[1], json.loads(body or b"{}"))
        if method == "DELETE" and action == "tag" and len(rest) == 2:
            return self._delete_tag(repo, rest[1])
        if method == "POST" and action == "branch" and len(rest) == 2:
            return self._create_branch(repo, rest[1], json.loads(body or b"{}"))
        raise HubError(404, f"no route for {method} /api/{repo_type}/{repo_id}/{'/'.join(rest)}")

    # -- write path ------------------------------------------------------------------------------
    def _create_repo(self, payload: dict[str, Any]) -> None:
        kind = payload.get("type") or "model"
        repo_type = {v: k for k, v in REPO_TYPES.items()}.get(kind)
        if repo_type is None:
            raise HubError(400, f"invalid repo type {kind!r}")
        ns = payload.get("organization") or self.state.user
        repo_id = f"{ns}/{payload['name']}"
        private = payload.get("private") is True or payload.get("visibility") == "private"
        self.state.create_repo(repo_type, repo_id, private)
        prefix = "" if repo_type == "models" else f"{repo_type}/"
        self._json(200, {"url": f"{self.server.url}/{prefix}{repo_id}"})

    def _validate_yaml(self, payload: dict[str, Any]) -> None:
        content = payload.get("content", "")
        match = re.match(r"^---\s*\n(.*?)\n---\s*(\n|$)", content, re.S)
        if match:
            try:
                data = yaml.safe_load(match.group(1))
            except yaml.YAMLError as err:
                return self._json(400, {"errors": [{"message": f"Invalid YAML: {err}"}]})
            if data is not None and not isinstance(data, dict):
                return self._json(400, {"errors": [{"message": "YAML metadata must be a mapping"}]})
            for config in (data or {}).get("configs") or []:
                if not isinstance(config, dict) or "config_name" not in config:
                    return self._json(400, {"errors": [{"message": "configs: config_name is required"}]})
        self._json(200, {"errors": [], "warnings": []})

    def _preupload(self, repo: Repo, rev: str, payload: dict[str, Any]) -> None:
        current = self._files_or_empty(repo, rev)
        answers = []
        for item in payload.get("files", []):
            path, size = item["path"], int(item["size"])
            sample = base64.b64decode(item.get("sample", ""))
            mode = "lfs" if size > 0 and should_use_lfs(path, size, sample) else "regular"
            answer: dict[str, Any] = {"path": path, "uploadMode": mode, "shouldIgnore": False}
            existing = current.get(path)
            if existing is not None:
                answer["oid"] = existing.sha256 if mode == "lfs" else existing.git_oid
            answers.append(answer)
        self._json(200, {"files": answers})

    def _files_or_empty(self, repo: Repo, rev: str) -> dict[str, FileEntry]:
        try:
            return self.state.resolve(repo, rev).files
        except HubError:
            return {}

    def _lfs_batch(self, repo_type: str, repo_id: str, payload: dict[str, Any]) -> None:
        self._repo(repo_type, repo_id)
        objects = []
        for obj in payload.get("objects", []):
            oid, size = obj["oid"], int(obj["size"])
            entry: dict[str, Any] = {"oid": oid, "size": size}
            if oid not in self.state.blobs:
                entry["actions"] = {
                    "upload": {"href": f"{self.server.url}/lfs/upload/{oid}"},
                    "verify": {"href": f"{self.server.url}/lfs/verify/{oid}"},
                }
            objects.append(entry)
        self._send(200, json.dumps({"transfer": "basic", "objects": objects}).encode(),
                   content_type="application/vnd.git-lfs+json")

    def _lfs_put(self, oid: str, body: bytes) -> None:
        if hashlib.sha256(body).hexdigest() != oid:
            raise HubError(400, f"uploaded bytes do not match sha256 {oid}")
        self.state.put_blob(body)
        self._send(200)

    def _lfs_verify(self, payload: dict[str, Any]) -> None:
        blob = self.state.blobs.get(payload.get("oid", ""))
        if blob is None or len(blob) != payload.get("size"):
            raise HubError(404, f"LFS object {payload.get('oid')} not found")
        self._json(200, {})

    def _commit(self, repo: Repo, rev: str, body: bytes) -> None:
        lines = [json.loads(line) for line in body.decode().splitlines() if line.strip()]
        if not lines or lines[0].get("key") != "header":
            raise HubError(400, "commit payload must start with a header line")
        commit = self.state.apply_commit(repo, rev, lines[1:], lines[0]["value"])
        prefix = "" if repo.repo_type == "models" else f"{repo.repo_type}/"
        self._json(200, {"commitOid": commit.oid,
                         "commitUrl": f"{self.server.url}/{prefix}{repo.repo_id}/commit/{commit.oid}"})

    def _create_tag(self, repo: Repo, rev: str, payload: dict[str, Any]) -> None:
        with self.state.lock:
            commit = self.state.resolve(repo, rev)
            tag = payload.get("tag", "")
            if not tag:
                raise HubError(400, "tag name is required")
            if tag in repo.tags:
                raise HubError(409, f"Tag {tag} already exists")
            repo.tags[tag] = commit.oid
        self._json(200, {})

    def _delete_tag(self, repo: Repo, tag: str) -> None:
        with self.state.lock:
            if tag not in repo.tags:
                raise HubError(404, f"Invalid rev id: {tag}", "RevisionNotFound")
            del repo.tags[tag]
        self._json(200, {})

    def _create_branch(self, repo: Repo, branch: str, payload: dict[str, Any]) -> None:
        with self.state.lock:
            if branch in repo.branches:
                raise HubError(409, f"Branch {branch} already exists")
            start = self.state.resolve(repo, payload.get("startingPoint") or "main")
            repo.branches[branch] = start.oid
        self._json(200, {})

    # -- read path -------------------------------------------------------------------------------
    def _repo_info(self, repo: Repo, commit: Commit, blobs: bool) -> dict[str, Any]:
        siblings = []
        for path, entry in sorted(commit.files.items()):
            sibling: dict[str, Any] = {"rfilename": path}
            if blobs:
                sibling.update(size=entry.size, blobId=entry.git_oid)
                if entry.lfs:
                    sibling["lfs"] = {"size": entry.size, "sha256": entry.sha256,
                                      "pointerSize": len(entry.pointer)}
            siblings.append(sibling)
        info: dict[str, Any] = {
            "id": repo.repo_id, "author": repo.repo_id.split("/")[0], "sha": commit.oid,
            "private": repo.private, "gated": False, "disabled": False, "downloads": 0, "likes": 0,
            "lastModified": commit.date, "createdAt": repo.created_at, "tags": [], "siblings": siblings,
        }
        card = commit.files.get("README.md")
        if card is not None:
            match = re.match(r"^---\s*\n(.*?)\n---", self.state.blobs[card.sha256].decode(), re.S)
            if match:
                try:
                    info["cardData"] = yaml.safe_load(match.group(1)) or {}
                except yaml.YAMLError:
                    pass
        return info

    def _refs(self, repo: Repo, include_prs: bool) -> dict[str, Any]:
        refs: dict[str, Any] = {
            "branches": [{"name": n, "ref": f"refs/heads/{n}", "targetCommit": o}
                         for n, o in sorted(repo.branches.items())],
            "tags": [{"name": n, "ref": f"refs/tags/{n}", "targetCommit": o}
                     for n, o in sorted(repo.tags.items())],
            "converts": [],
        }
        if include_prs:
            refs["pullRequests"] = []
        return refs

    def _tree(self, repo: Repo, rev: str, path: str, recursive: bool) -> None:
        commit = self.state.resolve(repo, rev)
        prefix = path.strip("/") + "/" if path.strip("/") else ""
        if prefix and not any(p.startswith(prefix) for p in commit.files):
            raise HubError(404, f"{path} does not exist on {rev}", "EntryNotFound")
        entries: dict[str, dict[str, Any]] = {}
        for file_path, entry in sorted(commit.files.items()):
            if not file_path.startswith(prefix):
                continue
            rest = file_path[len(prefix):].split("/")
            if not recursive and len(rest) > 1:
                folder = prefix + rest[0]
                entries.setdefault(folder, self._folder_entry(folder))
                continue
            if recursive:
                for depth in range(1, len(rest)):
                    folder = prefix + "/".join(rest[:depth])
                    entries.setdefault(folder, self._folder_entry(folder))
            entries[file_path] = entry.tree_entry(file_path)
        self._json(200, list(entries.values()))

    @staticmethod
    def _folder_entry(path: str) -> dict[str, Any]:
        return {"type": "directory", "oid": hashlib.sha1(path.encode()).hexdigest(), "path": path}

    def _paths_info(self, repo: Repo, rev: str, form: dict[str, list[str]]) -> None:
        commit = self.state.resolve(repo, rev)
        out = []
        for path in form.get("paths", []):
            path = path.strip("/")
            if path in commit.files:
                out.append(commit.files[path].tree_entry(path))
            elif any(p.startswith(path + "/") for p in commit.files):
                out.append(self._folder_entry(path))
        self._json(200, out)

    def _resolve(self, repo_type: str, repo_id: str, rev: str, path: str) -> None:
        repo = self._repo(repo_type, repo_id)
        commit = self.state.resolve(repo, rev)
        entry = commit.files.get(path)
        if entry is None:
            raise_headers = {"X-Repo-Commit": commit.oid}
            return self._error(404, f"Entry not found: {path}", "EntryNotFound", raise_headers)
        data = self.state.blobs[entry.sha256]
        etag = entry.sha256 if entry.lfs else entry.git_oid
        headers = {"X-Repo-Commit": commit.oid, "ETag": f'"{etag}"', "Accept-Ranges": "bytes"}
        status, body = 200, data
        match = re.fullmatch(r"bytes=(\d*)-(\d*)", self.headers.get("Range", ""))
        if match:
            start = int(match.group(1) or 0)
            end = int(match.group(2)) if match.group(2) else len(data) - 1
            if start >= len(data):
                return self._send(416, b"", {"Content-Range": f"bytes */{len(data)}"})
            end = min(end, len(data) - 1)
            status, body = 206, data[start:end + 1]
            headers["Content-Range"] = f"bytes {start}-{end}/{len(data)}"
        self._send(status, body, headers, content_type="application/octet-stream")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    state: HubState
    url: str


class HubServer:
    """The server plus its hooks. Use as a context manager, or start()/stop()."""

    def __init__(self, token: str | None = "hf_test_token_0123456789", user: str = "tester") -> None:
        self.state = HubState(token, user)
        self._server = _Server(("127.0.0.1", 0), HubHandler)
        self._server.state = self.state
        self.port = self._server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._server.url = self.url
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="hubserver", daemon=True)

    @property
    def token(self) -> str | None:
        return self.state.token

    @property
    def log(self) -> list[str]:
        with self.state.lock:
            return list(self.state.log)

    def start(self) -> HubServer:
        self._thread.start()
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:  # bounded readiness wait
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    return self
            except OSError:
                time.sleep(0.02)
        raise RuntimeError(f"hub server on port {self.port} did not start within 5 s")

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5.0)

    def __enter__(self) -> HubServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- hooks -----------------------------------------------------------------------------------
    def inject(self, pattern: str, status: int, times: int = 1) -> None:
        """Answer the next ``times`` requests matching ``pattern`` ("METHOD /path" regex) with ``status``."""
        self.state.add_fault(pattern, "status", status, times)

    def drop(self, pattern: str, times: int = 1) -> None:
        """Read the next ``times`` matching requests, then close the connection without a response."""
        self.state.add_fault(pattern, "drop", 0, times)

    def before(self, pattern: str, call: Callable[[], object], times: int = 1) -> None:
        """Run ``call()`` before handling the next ``times`` matching requests (then handle them
        normally), e.g. ``server.before("POST .*/commit/", lambda: server.commit(...))``."""
        self.state.add_fault(pattern, "call", 0, times, call)

    def clear_faults(self) -> None:
        self.state.clear_faults()

    def tag(self, repo_id: str, tag: str, rev: str = "main", repo_type: str = "datasets") -> None:
        """Create or move tag ``tag`` to ``rev`` directly in the store."""
        with self.state.lock:
            repo = self.state.repo(repo_type, repo_id)
            repo.tags[tag] = self.state.resolve(repo, rev).oid

    def create_repo(self, repo_id: str, repo_type: str = "datasets", private: bool = False) -> None:
        self.state.create_repo(repo_type, repo_id, private)

    def commit(self, repo_id: str, add: dict[str, bytes] | None = None, delete: list[str] | None = None,
               branch: str = "main", repo_type: str = "datasets", message: str = "external change") -> str:
        """Make a commit directly in the store (e.g. to move the head behind a client's back)."""
        ops: list[dict[str, Any]] = [{"key": "deletedFile", "value": {"path": p}} for p in delete or []]
        entries = {path: self.state.entry_for(data, should_use_lfs(path, len(data), data[:512]))
                   for path, data in (add or {}).items()}
        repo = self.state.repo(repo_type, repo_id)
        commit = self.state.apply_commit(repo, branch, ops, {"summary": message}, entries)
        return commit.oid

    def files(self, repo_id: str, rev: str = "main", repo_type: str = "datasets") -> dict[str, bytes]:
        """Every file of ``repo_id`` at ``rev`` with its bytes."""
        with self.state.lock:
            commit = self.state.resolve(self.state.repo(repo_type, repo_id), rev)
            return {p: self.state.blobs[e.sha256] for p, e in commit.files.items()}

    def refs(self, repo_id: str, repo_type: str = "datasets") -> dict[str, dict[str, str]]:
        """{"branches": {name: oid}, "tags": {name: oid}}"""
        with self.state.lock:
            repo = self.state.repo(repo_type, repo_id)
            return {"branches": dict(repo.branches), "tags": dict(repo.tags)}

    def commits(self, repo_id: str, repo_type: str = "datasets") -> list[str]:
        """Commit oids on main, newest first."""
        with self.state.lock:
            repo = self.state.repo(repo_type, repo_id)
            out, oid = [], repo.branches.get("main")
            while oid:
                out.append(oid)
                parents = repo.commits[oid].parents
                oid = parents[0] if parents else None
            return out
