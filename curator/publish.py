"""Publish a built release: to the Hugging Face Hub as one commit plus a tag, or to a folder.

Which release (``publish``): VERSION, else the newest; with no VERSION and catalog changes
that no release holds yet (``release.plan_release`` would build something), it refuses with a
hint, or with ``--release`` builds the next release first (``release.build``). The release is
read and verified (``released.read_release``: manifest and data files unchanged) before use.

Hub publish of release ``X.Y.Z`` to ``ns/name`` (``publish_hub``)::

    token    huggingface_hub.get_token() (HF_TOKEN, then the saved login); none -> AuthError;
             whoami() first, so a rejected token is one line before anything is uploaded
    refs     create the dataset repo if missing (--private); read the tags and main's head;
             refuse a version older than a tag already there (it would roll main back)
    tag      vX.Y.Z missing   -> ONE create_commit(parent_commit=head) that makes the repo's files
                                 exactly the release's (adds + deletions of files the release
                                 lacks; .gitattributes is kept), then create_tag(vX.Y.Z, that oid)
             vX.Y.Z, same files          -> "already published", no commit, exit 0 (recorded
                                            only if the catalog has no record of it)
             vX.Y.Z, same data/ files,   -> follow-up commit (the card and baseline.json that
               other card/baseline          `curator baseline` added), then the tag MOVES to it
             vX.Y.Z, other data files    -> refused
    verify   (default) datasets.load_dataset(repo, revision=vX.Y.Z) from the same endpoint:
             splits, row counts, class names and (sha256, label) per split against manifest.json
    record   a row in the catalog's ``publishes`` table and one JSON line in
             releases/vX.Y.Z/publish-log.jsonl (never uploaded)

Files compared per path: the LFS sha256 for LFS files, the git blob sha1 for regular files.
The tag is created only after the commit succeeded, so a network error or a 5xx mid-upload
leaves no tag and rerunning completes the publish (already-uploaded LFS blobs are skipped).
A head that moved between our read and the commit is a 412 from the Hub: reported, never
overwritten.

Why the tag moves on a follow-up: ``load_dataset(repo, revision="vX.Y.Z")`` should give the
release's data *and* its scored card. We move the tag only after checking that every data file
in the follow-up commit has the same sha256 as in the commit the tag pointed to, so the tag's
data never changes; both commits are kept in the publish log (``data_commit`` and
``commit_oid``) for anyone who pinned the first. When main already carries other data (a later
version was published), the follow-up goes on a branch ``release-vX.Y.Z`` started at the tagged
commit, so main is not rolled back.

Folder publish (``publish_folder``): a copy of the release folder, built under a temp name and
renamed into place; an existing folder is left alone if it already holds the same files,
updated (card and baseline only, by swapping folders) if only those differ, refused otherwise.

Not uploaded: publish-log.jsonl and hidden files (temp files of atomic writes). Every other
file of the release folder is part of the dataset repo, manifest.json included.

Verification failing after the tag was created is an error, but the publish did happen, so it
is recorded (``verify_error`` in the detail) before the error is raised.

The token is never written anywhere: it is not in any message, log line, catalog row or file.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from curator import catalog
from curator.errors import AuthError, CuratorError, InputError, PublishError, ReleaseError
from curator.fsutil import atomic_directory, fsync_dir, write_atomic
from curator.released import (
    Manifest,
    list_releases,
    manifest_mismatch,
    quiet_datasets,
    read_manifest,
    read_release,
)
from curator.versions import semver_key
from curator.workspace import Workspace

PUBLISH_LOG = "publish-log.jsonl"
# Files of a release folder that describe the data's evaluation, not the data: a follow-up
# commit may change only these.
CARD_FILES = ("README.md", "baseline.json")
CARD_FOLDERS = ("baseline/",)
KEEP_REMOTE = (".gitattributes",)  # Hub infrastructure, never deleted by a publish
REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class LocalFile:
    path: Path
    size: int
    sha256: str
    git_oid: str  # sha1 of "blob <size>\0" + bytes


@dataclass(frozen=True)
class RemoteFile:
    size: int
    git_oid: str
    sha256: str | None  # set for LFS files

    def matches(self, local: LocalFile) -> bool:
        if self.sha256 is not None:
            return self.sha256 == local.sha256
        return self.git_oid == local.git_oid


@dataclass
class PublishResult:
    version: str
    target: str  # 'hub' or 'folder'
    location: str  # repo id or absolute folder path
    status: str  # 'published', 'follow-up', 'already-published'
    tag: str | None = None
    commit_oid: str | None = None
    data_commit: str | None = None  # for a follow-up: the commit the tag pointed to before
    branch: str | None = None
    endpoint: str | None = None
    uploaded: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    verified: dict[str, int] | None = None  # split -> rows, when --verify ran

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- entry points --------------------------------------------------------------------------------


def publish(
    ws: Workspace,
    version: str | None = None,
    *,
    repo: str | None = None,
    to: Path | None = None,
    private: bool = False,
    verify: bool = True,
    build: bool = False,
    on_progress: ProgressCallback | None = None,
) -> PublishResult:
    """Publish one release (default: the newest) to the Hub repo or to folder ``to``."""
    from curator import release

    if repo and to:
        raise InputError("give either a Hub repo or a target folder, not both", key="to", reason="conflict")
    pending = unreleased_changes(ws) if version is None else None
    if build and (pending or not list_releases(ws)):
        version = release.build(ws, on_progress=on_progress).version
    elif pending and not build:
        raise ReleaseError(
            f"the catalog has changes that are in no release yet ({pending})",
            reason="unreleased-changes",
        )
    chosen = read_release(ws, version)
    full, folder, manifest = chosen.version, chosen.folder, chosen.manifest
    if to is not None:
        return publish_folder(ws, full, folder, manifest, Path(to), verify=verify)
    repo_id = repo or ws.config.dataset.hub_repo
    if not repo_id:
        raise PublishError(
            "no Hub repo to publish to", key="repo", reason="no-hub-repo"
        )
    if not REPO_ID.match(repo_id):
        raise InputError(f"repo {repo_id!r}: not a Hub repo id (use namespace/name)", key="repo",
                         value=repo_id, reason="not-a-repo-id")
    return publish_hub(ws, full, folder, manifest, repo_id, private=private, verify=verify)


# -- the release's files -------------------------------------------------------------------------


def release_files(folder: Path) -> dict[str, LocalFile]:
    """Every file of a release folder that belongs to the dataset, by repo path.

    Left out: the publish log, and hidden files and folders (temp files of atomic writes).
    """
    files = {}
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if not path.is_file() or rel == PUBLISH_LOG or any(p.startswith(".") for p in rel.split("/")):
            continue
        files[rel] = _hash_file(path)
    return files


def _hash_file(path: Path) -> LocalFile:
    """sha256 and git blob sha1 in one streamed pass (shards can be large)."""
    size = path.stat().st_size
    sha256, sha1 = hashlib.sha256(), hashlib.sha1(b"blob %d\0" % size)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            sha256.update(chunk)
            sha1.update(chunk)
    return LocalFile(path, size, sha256.hexdigest(), sha1.hexdigest())


def is_card_file(rel: str) -> bool:
    return rel in CARD_FILES or rel.startswith(CARD_FOLDERS)


def differing(local: dict[str, LocalFile], remote: dict[str, RemoteFile]) -> list[str]:
    """Paths whose content differs, plus paths present on one side only (sorted)."""
    paths = set(local) | set(remote)
    return sorted(p for p in paths if p not in local or p not in remote or not remote[p].matches(local[p]))


# -- Hub -----------------------------------------------------------------------------------------


def publish_hub(
    ws: Workspace, version: str, folder: Path, manifest: Manifest, repo_id: str,
    *, private: bool = False, verify: bool = True,
) -> PublishResult:
    from huggingface_hub import constants

    token = _token()
    hub = _Hub(repo_id, token, constants.ENDPOINT)
    hub.check_token()
    local = release_files(folder)
    tag = f"v{version}"
    hub.ensure_repo(private)
    tags, head = hub.refs()
    _refuse_rollback(repo_id, version, tags)
    result = PublishResult(version, "hub", repo_id, "published", tag=tag, endpoint=constants.ENDPOINT)
    if tag in tags:
        remote = hub.files_at(tags[tag])
        changed = differing(local, remote)
        if not changed:
            result.status, result.commit_oid = "already-published", tags[tag]
            return _record_if_missing(ws, result, folder)
        data_changed = [p for p in changed if not is_card_file(p)]
        if data_changed:
            raise PublishError(
                f"{repo_id}: tag {tag} already exists with other data ({len(data_changed)} files differ, "
                f"e.g. {data_changed[0]})",
                hint="a published version is immutable; build and publish a new version",
            )
        _follow_up(hub, result, local, remote, tags[tag], head)
    else:
        remote_head = hub.files_at(head) if head else {}
        result.commit_oid = hub.commit(local, remote_head, head, f"Release {tag}", _describe(manifest))
        result.uploaded, result.deleted = _changes(local, remote_head)
        hub.create_tag(tag, result.commit_oid, f"curator release {tag}")
    return _finish(ws, result, manifest, folder, verify, token)


def _follow_up(
    hub: _Hub, result: PublishResult, local: dict[str, LocalFile], tagged: dict[str, RemoteFile],
    tagged_oid: str, head: str | None,
) -> None:
    """Commit the new card/baseline files on top of the tagged data, then move the tag there."""
    tag = result.tag or ""
    branch = "main"
    head_files = hub.files_at(head) if head else {}
    if head is None or any(not is_card_file(p) for p in differing(local, head_files)):
        # main carries other data now: put the follow-up on a branch from the tagged commit
        branch = f"release-{tag}"
        head = hub.ensure_branch(branch, tagged_oid)
        head_files = hub.files_at(head)
    oid = hub.commit(local, head_files, head, f"Baseline and card for {tag}",
                     "Only README.md and baseline files change; the data files are those of "
                     f"{tag} ({tagged_oid}).", branch=branch)
    new_files = hub.files_at(oid)
    for path, remote in tagged.items():
        if not is_card_file(path) and path not in KEEP_REMOTE:
            if path not in new_files or new_files[path] != remote:
                raise PublishError(
                    f"{hub.repo_id}: follow-up commit {oid[:12]} changed data file {path}; "
                    f"tag {tag} not moved"
                )
    hub.move_tag(tag, oid, f"curator release {tag} (with baseline)")
    result.status, result.commit_oid, result.data_commit = "follow-up", oid, tagged_oid
    result.branch = None if branch == "main" else branch
    result.uploaded, result.deleted = _changes(local, head_files)


def _changes(local: dict[str, LocalFile], remote: dict[str, RemoteFile]) -> tuple[list[str], list[str]]:
    uploaded = [p for p in sorted(local) if p not in remote or not remote[p].matches(local[p])]
    deleted = [p for p in sorted(remote) if p not in local and p not in KEEP_REMOTE]
    return uploaded, deleted


def _refuse_rollback(repo_id: str, version: str, tags: dict[str, str]) -> None:
    """Publishing an older version that is not yet tagged would roll main back past newer ones."""
    if f"v{version}" in tags:
        return
    newer = sorted((t for t in tags if _semver(t) and _semver(t) > _semver(f"v{version}")), key=_semver)
    if newer:
        raise PublishError(
            f"{repo_id}: the Hub repo already has {newer[-1]}, newer than v{version}; "
            "publishing would roll main back",
            reason="newer-on-hub",
        )


def _semver(tag: str) -> tuple[int, ...]:
    """A tag's version for sorting; () for tags that are no version."""
    return semver_key(tag) or ()


def _describe(manifest: Manifest) -> str:
    counts = ", ".join(f"{name}: {info.get('rows')}" for name, info in manifest.splits.items())
    return f"curator release {manifest.version} of {manifest.name} ({counts})."


def _token() -> str:
    from huggingface_hub import get_token

    token = get_token()
    if not token:
        raise AuthError(
            "no Hugging Face token found (HF_TOKEN is unset and there is no saved login)",
            hint="run `hf auth login`, or set HF_TOKEN to a token with write access",
        )
    return token


class _Hub:
    """The few ``HfApi`` calls publish makes, with Hub errors translated to one-line errors."""

    def __init__(self, repo_id: str, token: str, endpoint: str) -> None:
        from huggingface_hub import HfApi

        self.repo_id = repo_id
        self.endpoint = endpoint
        self._token = token
        self.api = HfApi(endpoint=endpoint, token=token)
        self._head_read: str | None = None

    def check_token(self) -> None:
        with self.errors("checking the token"):
            self.api.whoami()

    def ensure_repo(self, private: bool) -> None:
        from huggingface_hub.errors import RepositoryNotFoundError

        with self.errors("reading the repo"):
            try:
                self.api.dataset_info(self.repo_id)
                return
            except RepositoryNotFoundError:
                pass
        with self.errors("creating the repo"):
            self.api.create_repo(self.repo_id, repo_type="dataset", private=private, exist_ok=True)

    def refs(self) -> tuple[dict[str, str], str | None]:
        """Tags (name -> commit) and main's head (None for a repo without commits)."""
        with self.errors("reading refs"):
            refs = self.api.list_repo_refs(self.repo_id, repo_type="dataset")
        tags = {t.name: t.target_commit for t in refs.tags}
        heads = {b.name: b.target_commit for b in refs.branches}
        self._head_read = heads.get("main")
        return tags, self._head_read

    def files_at(self, revision: str) -> dict[str, RemoteFile]:
        """The files at ``revision``, except the Hub's own (.gitattributes)."""
        from huggingface_hub.hf_api import RepoFile

        with self.errors(f"listing files at {revision[:12]}"):
            entries = self.api.list_repo_tree(self.repo_id, repo_type="dataset", revision=revision,
                                              recursive=True)
            files = {}
            for entry in entries:
                if isinstance(entry, RepoFile) and entry.path not in KEEP_REMOTE:
                    sha = entry.lfs.sha256 if entry.lfs else None
                    files[entry.path] = RemoteFile(entry.size, entry.blob_id, sha)
        return files

    def commit(self, local: dict[str, LocalFile], remote: dict[str, RemoteFile], parent: str | None,
               message: str, description: str, branch: str = "main") -> str:
        """One commit making ``branch``'s files exactly ``local`` (+ kept Hub files); returns its oid."""
        from huggingface_hub import CommitOperationAdd, CommitOperationDelete

        uploaded, deleted = _changes(local, remote)
        if not uploaded and not deleted and parent:
            return parent  # the branch already holds exactly these files
        ops: list[Any] = [CommitOperationAdd(path_in_repo=p, path_or_fileobj=str(local[p].path))
                          for p in uploaded]
        ops += [CommitOperationDelete(path_in_repo=p) for p in deleted]
        with self.errors("committing", head=parent):
            info = self.api.create_commit(
                self.repo_id, ops, commit_message=message, commit_description=description,
                repo_type="dataset", revision=branch, parent_commit=parent,
            )
        return str(info.oid)

    def create_tag(self, tag: str, oid: str, message: str) -> None:
        with self.errors(f"creating tag {tag}"):
            self.api.create_tag(self.repo_id, tag=tag, revision=oid, tag_message=message, repo_type="dataset")

    def move_tag(self, tag: str, oid: str, message: str) -> None:
        from huggingface_hub.errors import RevisionNotFoundError

        with self.errors(f"moving tag {tag}"):
            # A tag lost between delete and create is restored by rerunning: the tag is then
            # missing, main already holds the files, and publish only re-creates the tag.
            with contextlib.suppress(RevisionNotFoundError):
                self.api.delete_tag(self.repo_id, tag=tag, repo_type="dataset")
            self.api.create_tag(self.repo_id, tag=tag, revision=oid, tag_message=message, repo_type="dataset")

    def ensure_branch(self, branch: str, start: str) -> str:
        with self.errors(f"creating branch {branch}"):
            self.api.create_branch(self.repo_id, branch=branch, revision=start, repo_type="dataset",
                                   exist_ok=True)
            refs = self.api.list_repo_refs(self.repo_id, repo_type="dataset")
        return next(b.target_commit for b in refs.branches if b.name == branch)

    @contextlib.contextmanager
    def errors(self, doing: str, head: str | None = None) -> Iterator[None]:
        """Turn huggingface_hub / transport errors into one-line PublishError/AuthError."""
        try:
            yield
        except PublishError:
            raise
        except Exception as err:  # noqa: BLE001 - translated below, never swallowed
            raise self._translate(err, doing, head) from err

    def _translate(self, err: Exception, doing: str, head: str | None) -> PublishError:
        from huggingface_hub.errors import HfHubHTTPError, RepositoryNotFoundError

        where = f"{self.repo_id} at {self.endpoint}"
        response = getattr(err, "response", None)
        status = getattr(response, "status_code", None) if isinstance(err, HfHubHTTPError) else None
        if status == 401:
            return AuthError(f"the Hub at {self.endpoint} rejected the Hugging Face token (401 Unauthorized)",
                             hint="check HF_TOKEN or run `hf auth login` again")
        if status == 403:
            return AuthError(f"{where}: the token may not write to this repo (403 Forbidden)",
                             hint="use a token with write access to the repo's namespace")
        if status == 412:
            return PublishError(
                f"the Hub repo {self.repo_id}'s main moved since {(head or '?')[:12]} "
                "(someone else committed); pull/inspect and rerun",
                hint="nothing was committed or tagged; rerun `curator publish` to publish on the new head",
            )
        if isinstance(err, RepositoryNotFoundError):
            return PublishError(f"{where}: repository not found while {doing}")
        if status is not None:
            return PublishError(
                f"{where}: the Hub answered {status} while {doing}: {self._scrub(_first_line(err))}",
                hint="nothing was tagged; rerun `curator publish` to complete",
            )
        return PublishError(
            f"{where}: {type(err).__name__} while {doing}: {self._scrub(_first_line(err))}",
            hint="nothing was tagged; rerun `curator publish` to complete",
        )

    def _scrub(self, text: str) -> str:
        return text.replace(self._token, "***") if self._token else text


def _first_line(err: Exception) -> str:
    text = str(err).strip().splitlines()
    return text[0][:200] if text else type(err).__name__


# -- folder --------------------------------------------------------------------------------------


def publish_folder(
    ws: Workspace, version: str, folder: Path, manifest: Manifest, target: Path, *, verify: bool = True
) -> PublishResult:
    target = target.expanduser().resolve()
    if target == folder.resolve() or folder.resolve() in target.parents:
        raise PublishError(f"to {target}: inside the release folder itself", key="to", path=str(target),
                           reason="inside-release")
    local = release_files(folder)
    result = PublishResult(version, "folder", str(target), "published")
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()  # an empty folder made for the copy is as good as none
    if target.exists():
        existing = _folder_state(target)
        if existing is None:
            raise PublishError(f"to {target}: exists and is not a folder", key="to", path=str(target),
                               reason="not-a-folder")
        changed = differing(local, existing)
        if not changed:
            result.status = "already-published"
            return _record_if_missing(ws, result, folder)
        if any(not is_card_file(p) for p in changed):
            raise PublishError(
                f"to {target}: the folder exists and holds other files than release v{version}",
                key="to", path=str(target), reason="other-files",
                hint="choose a new folder, or remove this one first",
            )
        _swap_folder(local, target)
        result.status = "follow-up"
    else:
        with atomic_directory(target) as tmp:
            _copy_files(local, tmp)
    result.uploaded = differing(local, {}) if result.status == "published" else changed
    return _finish(ws, result, manifest, folder, verify, None)


def _folder_state(target: Path) -> dict[str, RemoteFile] | None:
    if not target.is_dir():
        return None
    return {rel: RemoteFile(f.size, f.git_oid, f.sha256) for rel, f in release_files(target).items()}


def _copy_files(local: dict[str, LocalFile], dest: Path) -> None:
    for rel, f in local.items():
        out = dest / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(f.path, out)


def _swap_folder(local: dict[str, LocalFile], target: Path) -> None:
    """Replace ``target`` with a fresh copy: build beside it, then two renames."""
    old = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old"))
    old.rmdir()
    new = target.parent / f".{target.name}.new"
    shutil.rmtree(new, ignore_errors=True)
    with atomic_directory(new) as tmp:
        _copy_files(local, tmp)
    os.rename(target, old)
    os.rename(new, target)
    fsync_dir(target.parent)
    shutil.rmtree(old, ignore_errors=True)


# -- verify and record ---------------------------------------------------------------------------


def _finish(ws: Workspace, result: PublishResult, manifest: Manifest, folder: Path, verify: bool,
            token: str | None) -> PublishResult:
    problem = None
    if verify:
        try:
            result.verified = verify_published(result, manifest, token)
        except PublishError as err:
            problem = err
    _record(ws, result, folder, problem)
    if problem is not None:
        raise problem
    return result


def verify_published(result: PublishResult, manifest: Manifest, token: str | None) -> dict[str, int]:
    """Load what was published with ``datasets.load_dataset`` and compare it with the manifest."""
    import datasets

    where = f"{result.location}@{result.tag}" if result.target == "hub" else result.location
    with tempfile.TemporaryDirectory(prefix="curator-verify-") as cache, quiet_datasets():
        try:
            if result.target == "hub":
                loaded = datasets.load_dataset(result.location, revision=result.tag, cache_dir=cache,
                                               token=token)
            else:
                loaded = datasets.load_dataset(result.location, cache_dir=cache)
        except Exception as err:  # noqa: BLE001 - any load failure is a failed verification
            raise PublishError(f"verify: loading {where} failed: {_first_line(err)}") from err
        return _compare_with_manifest(where, loaded, manifest)


def _compare_with_manifest(where: str, loaded: Any, manifest: Manifest) -> dict[str, int]:
    problem = manifest_mismatch(loaded, manifest, ordered=False)
    if problem:
        raise PublishError(f"verify: {where} {problem}")
    return {split: ds.num_rows for split, ds in loaded.items()}


def _record_if_missing(ws: Workspace, result: PublishResult, folder: Path) -> PublishResult:
    """A no-op publish changes nothing, unless the catalog has never heard of this publish
    (e.g. the process died between tagging and recording): then it is recorded once."""
    known = ws.conn.execute(
        "SELECT 1 FROM publishes WHERE version = ? AND target = ? AND location = ? AND commit_oid IS ?",
        (result.version, result.target, result.location, result.commit_oid),
    ).fetchone()
    if known is None:
        _record(ws, result, folder, None)
    return result


def _record(ws: Workspace, result: PublishResult, folder: Path, problem: Exception | None) -> None:
    """A row in ``publishes`` and a line in the release's publish log."""
    at = catalog.utcnow()
    detail = {
        "status": result.status, "endpoint": result.endpoint, "data_commit": result.data_commit,
        "branch": result.branch, "uploaded": result.uploaded, "deleted": result.deleted,
        "verified": result.verified, "verify_error": str(problem) if problem else None,
    }
    line = {"version": result.version, "target": result.target, "location": result.location,
            "commit_oid": result.commit_oid, "tag": result.tag, "at": at, **detail}
    log = folder / PUBLISH_LOG
    previous = log.read_text(encoding="utf-8") if log.exists() else ""
    with catalog.atomic(ws.conn):
        ws.conn.execute(
            "INSERT INTO publishes (version, target, location, commit_oid, tag, at, detail) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (result.version, result.target, result.location, result.commit_oid, result.tag, at,
             json.dumps(detail, sort_keys=True)),
        )
        # Inside the transaction: if the log write fails, the catalog row is rolled back too.
        write_atomic(log, previous + json.dumps(line, sort_keys=True) + "\n")


# -- listing -------------------------------------------------------------------------------------


def releases_overview(ws: Workspace) -> list[dict[str, Any]]:
    """Every local release (newest first) with where it was published."""
    conn = ws.conn
    rows = conn.execute("SELECT version, parent, created_at, rows, path FROM releases").fetchall()
    out = []
    for row in sorted(rows, key=lambda r: _semver(f"v{r['version']}"), reverse=True):
        pubs = conn.execute(
            "SELECT target, location, commit_oid, tag, at, detail FROM publishes "
            "WHERE version = ? ORDER BY id",
            (row["version"],),
        ).fetchall()
        latest: dict[tuple[str, str], dict[str, Any]] = {}
        for p in pubs:  # the latest publish per location wins (a follow-up moves the tag)
            latest[(p["target"], p["location"])] = {
                "target": p["target"], "location": p["location"], "commit": p["commit_oid"],
                "tag": p["tag"], "at": p["at"], "status": json.loads(p["detail"] or "{}").get("status"),
            }
        out.append({"version": row["version"], "created_at": row["created_at"], "rows": row["rows"],
                    "parent": row["parent"], "path": row["path"], "published": list(latest.values())})
    return out


def unreleased_changes(ws: Workspace) -> str | None:
    """What the next release would change (the planned bump's reason), or None if nothing would.

    Catalog-only (``release.plan_release``, no image work). A plan that cannot be made (no
    labelled images, a licence problem) is not "unreleased changes" and gives None.
    """
    from curator import release

    if not list_releases(ws):
        return None
    # the manifest alone: plan_release verifies this release's files as the next one's parent
    include = read_manifest(ws, None).manifest.include_restricted
    try:
        plan = release.plan_release(ws, None, include)
    except CuratorError:
        return None
    return f"next: v{plan.version}, {plan.bump.kind}: {plan.bump.reason}"
