"""`curator ingest` of local files and folders, its bad inputs, and the pieces it is built from."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest
from click.testing import Result
from PIL import Image

from curator import catalog, fsutil, hashing, store
from curator.config import IngestConfig
from curator.ingest import fetch, sources, validate
from curator.workspace import Workspace
from tests import ingest_data as data
from tests.conftest import CLASSES, run_cli, snapshot


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three class folders of small generated photos, one exact copy (PNG of a JPEG's pixels)."""
    root = tmp_path / "photos"
    for i in range(6):
        label = CLASSES[i % 3]
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f"{i}.jpg").write_bytes(data.jpeg(data.photo(i, label)))
    first = (root / "alopecia" / "0.jpg").read_bytes()
    (root / "alopecia" / "0-copy.png").write_bytes(data.png(data.decoded(first)))
    (root / "alopecia" / "notes.txt").write_text("not an image: skipped by the folder walk")
    (root / ".hidden").mkdir()
    (root / ".hidden" / "x.jpg").write_bytes(first)
    return root


def _json(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def test_folder_with_hints_from_folder_names(workspace: Workspace, folder: Path) -> None:
    summary = _json(run_cli("--json", "ingest", str(folder), "--hint-from-folder", workspace=workspace.root))
    assert (summary["total"], summary["stored"], summary["exact_duplicates"]) == (7, 6, 1)
    rows = workspace.conn.execute("SELECT locator, kind, hint, outcome FROM sources").fetchall()
    assert {(Path(r["locator"]).parent.name, r["hint"]) for r in rows} == {(c, c) for c in CLASSES}
    assert {r["kind"] for r in rows} == {"file"}
    status = _json(run_cli("--json", "status", workspace=workspace.root))
    assert status["images"] == 6
    assert status["hints"]["per_class"] == {"alopecia": 2, "psoriasis": 2, "folliculitis": 2}
    assert status["sources"]["exact_duplicates"] == 1


def test_exact_duplicates_leave_no_bytes_behind(workspace: Workspace, tmp_path: Path) -> None:
    """Workers store bytes before the catalog decides; an exact duplicate's bytes that got
    stored (two encodings of one photo in flight at once) are removed when it is placed."""
    first = tmp_path / "first"
    first.mkdir()
    photo = data.decoded(data.jpeg(data.photo(3, "alopecia")))
    (first / "a.png").write_bytes(data.png(photo))
    _json(run_cli("--json", "ingest", str(first), workspace=workspace.root))
    later = tmp_path / "later"
    later.mkdir()
    (later / "b.bmp").write_bytes(data.encode(photo, "BMP"))  # same pixels, other bytes
    (later / "c.png").write_bytes((first / "a.png").read_bytes())  # the very same bytes
    # As if a worker had stored b.bmp's bytes while a.png was being placed.
    raced = store.put(workspace.root / "objects", (later / "b.bmp").read_bytes())
    summary = _json(run_cli("--json", "ingest", str(later), workspace=workspace.root))
    assert (summary["stored"], summary["exact_duplicates"]) == (0, 2)
    (kept,) = [row[0] for row in workspace.conn.execute("SELECT sha256 FROM images")]
    stored = sorted(p.name for p in (workspace.root / "objects").rglob("*") if p.is_file())
    assert stored == [kept] and raced != kept


def test_pixel_keys_are_computed_only_for_shared_fingerprints(workspace: Workspace, tmp_path: Path) -> None:
    photos = tmp_path / "photos"
    photos.mkdir()
    for seed in (5, 6):
        (photos / f"{seed}.png").write_bytes(data.png(data.photo(seed, "alopecia")))
    _json(run_cli("--json", "ingest", str(photos), workspace=workspace.root))
    keys = [row[0] for row in workspace.conn.execute("SELECT pixel_sha256 FROM images")]
    assert keys == [None, None]  # distinct fingerprints: no image needed its full pixel hash
    same = tmp_path / "same"
    same.mkdir()
    copy = data.decoded((photos / "5.png").read_bytes())
    (same / "5.bmp").write_bytes(data.encode(copy, "BMP"))
    summary = _json(run_cli("--json", "ingest", str(same), workspace=workspace.root))
    assert summary["exact_duplicates"] == 1
    filled = {row[0]: row[1] for row in workspace.conn.execute("SELECT sha256, pixel_sha256 FROM images")}
    assert sorted(filled.values(), key=str) == sorted([None, validate.pixel_sha256(data.png(copy))], key=str)


def test_different_pixels_with_one_fingerprint_are_both_kept(
    workspace: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A shared fingerprint only says the pixels may be equal: the full pixel hashes decide."""
    monkeypatch.setattr(hashing, "fingerprint", lambda width, height, hashes: "one for all")
    photos = tmp_path / "photos"
    photos.mkdir()
    photo = data.photo(7, "alopecia")
    (photos / "a.png").write_bytes(data.png(photo))
    (photos / "b.png").write_bytes(data.png(data.brighter(photo, 1.05)))  # other pixels
    (photos / "c.bmp").write_bytes(data.encode(photo, "BMP"))  # a.png's pixels
    summary = _json(run_cli("--json", "ingest", str(photos), "--workers", "1", workspace=workspace.root))
    assert summary["exact_duplicates"] == 1
    assert summary["stored"] + summary["near_duplicates"] == 2
    keys = [row[0] for row in workspace.conn.execute("SELECT pixel_sha256 FROM images")]
    assert len(keys) == 2 and None not in keys and len(set(keys)) == 2


def test_put_rewrites_an_object_left_incomplete(tmp_path: Path) -> None:
    """Objects written without fsync (made durable later, in a batch) can be cut short by a
    power cut after their rename: storing the same bytes again must repair, not trust, them."""
    objects = tmp_path / "objects"
    blob = data.jpeg(data.photo(5, "alopecia"))
    path = store.object_path(objects, store.sha256_bytes(blob))
    path.parent.mkdir(parents=True)
    path.write_bytes(blob[: len(blob) // 2])
    assert store.put(objects, blob, durable=False) == path.name
    assert path.read_bytes() == blob
    before = path.stat().st_mtime_ns
    store.put(objects, blob)  # complete now: left alone
    assert path.stat().st_mtime_ns == before


def test_ingest_without_syncfs_fsyncs_each_object(
    workspace: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where syncfs is missing (not Linux), every object is fsync'd on its own instead."""
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(fsutil, "can_sync_filesystem", lambda: False)
    monkeypatch.setattr(fsutil, "sync_filesystem", lambda folder: pytest.fail("syncfs used"))
    monkeypatch.setattr(os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    summary = _json(run_cli("--json", "ingest", str(folder), workspace=workspace.root))
    assert summary["stored"] == 6
    assert len(synced) >= 2 * 6  # each object and its folder


def test_ingest_makes_objects_durable_in_batches(
    workspace: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[Path] = []
    real = fsutil.sync_filesystem
    monkeypatch.setattr(fsutil, "sync_filesystem", lambda folder: calls.append(folder) or real(folder))
    summary = _json(run_cli("--json", "ingest", str(folder), workspace=workspace.root))
    assert summary["stored"] == 6
    assert 1 <= len(calls) <= 7 and set(calls) == {workspace.root / "objects"}


def test_many_encodings_of_one_photo_store_one_object(workspace: Workspace, tmp_path: Path) -> None:
    photo = data.decoded(data.jpeg(data.photo(4, "psoriasis")))
    files = tmp_path / "encodings"
    files.mkdir()
    for name, fmt, extra in [("a.png", "PNG", {}), ("b.bmp", "BMP", {}), ("c.tif", "TIFF", {}),
                             ("d.tif", "TIFF", {"compression": "tiff_lzw"}),
                             ("e.webp", "WEBP", {"lossless": True}), ("f.png", "PNG", {"compress_level": 1})]:
        (files / name).write_bytes(data.encode(photo, fmt, **extra))
    summary = _json(run_cli("--json", "ingest", str(files), "--workers", "4", workspace=workspace.root))
    assert (summary["stored"], summary["exact_duplicates"]) == (1, 5)
    stored = [p for p in (workspace.root / "objects").rglob("*") if p.is_file()]
    assert len(stored) == 1


def test_rerun_skips_everything(workspace: Workspace, folder: Path) -> None:
    _json(run_cli("--json", "ingest", str(folder), workspace=workspace.root))
    before = snapshot(workspace.root / "objects")
    again = _json(run_cli("--json", "ingest", str(folder), workspace=workspace.root))
    assert (again["skipped"], again["stored"]) == (7, 0)
    assert snapshot(workspace.root / "objects") == before


def test_list_file_with_relative_paths_and_hints(workspace: Workspace, folder: Path) -> None:
    listing = folder / "list.txt"
    listing.write_text("# local files\n\npsoriasis/1.jpg\tpsoriasis\nfolliculitis\tfolliculitis\n")
    report = folder.parent / "report.jsonl"
    result = run_cli("--json", "ingest", str(listing), "--report", str(report), workspace=workspace.root)
    summary = _json(result)
    assert summary["stored"] == 3
    items = [json.loads(line) for line in report.read_text().splitlines()]
    assert [Path(i["url"]).name for i in items] == ["1.jpg", "2.jpg", "5.jpg"]
    assert {i["status"] for i in items} == {"stored"}
    assert all(len(i["sha256"]) == 64 for i in items)
    hints = {r[0] for r in workspace.conn.execute("SELECT hint FROM sources")}
    assert hints == {"psoriasis", "folliculitis"}


def test_single_image_and_stdin(workspace: Workspace, folder: Path) -> None:
    image = folder / "psoriasis" / "1.jpg"
    assert _json(run_cli("--json", "ingest", str(image), workspace=workspace.root))["stored"] == 1
    lines = f"{image}\n{folder / 'alopecia'}\n"
    piped = _json(run_cli("--json", "ingest", "-", "--root", str(folder), workspace=workspace.root,
                          input=lines))
    assert (piped["skipped"], piped["stored"], piped["exact_duplicates"]) == (1, 2, 1)


def test_summary_for_humans(workspace: Workspace, folder: Path) -> None:
    result = run_cli("ingest", str(folder / "alopecia"), workspace=workspace.root)
    assert result.exit_code == 0
    assert "3 sources" in result.stdout and "2 stored, 1 exact duplicates" in result.stdout


@pytest.mark.parametrize("command", [["ingest", "x.txt"], ["status"], ["dups"]])
def test_outside_a_workspace(tmp_path: Path, command: list[str]) -> None:
    result = run_cli(*command, workspace=tmp_path)
    assert result.exit_code == 3
    assert result.stderr.splitlines() == [
        f"Error: {tmp_path} is not a curator workspace (no curator.toml)",
        "Hint: run `curator init NAME --classes a,b,c` to create one, or pass --workspace DIR",
    ]


def _refused(workspace: Workspace, arg: str, message: str, stdin: str | None = None) -> None:
    before = snapshot(workspace.root)
    result = run_cli("ingest", arg, workspace=workspace.root, input=stdin)
    assert result.exit_code == 5, result.output
    assert result.stderr.strip() == f"Error: {message}"
    assert snapshot(workspace.root) == before


def test_missing_input_file(workspace: Workspace, tmp_path: Path) -> None:
    missing = tmp_path / "nope.txt"
    _refused(workspace, str(missing), f"{missing}: no such file or folder")


def test_binary_garbage_list(workspace: Workspace, tmp_path: Path) -> None:
    junk = tmp_path / "urls.txt"
    junk.write_bytes(bytes(range(256)) * 8)
    _refused(workspace, str(junk), f"{junk}: not a text URL list (binary data)")


def test_list_that_is_not_utf8(workspace: Workspace, tmp_path: Path) -> None:
    latin = tmp_path / "urls.txt"
    latin.write_bytes("http://example.invalid/caf\xe9.jpg\n".encode("latin-1"))
    _refused(workspace, str(latin), f"{latin}: not a text URL list (not UTF-8 at byte 26)")


def test_binary_stdin(workspace: Workspace) -> None:
    _refused(workspace, "-", "<stdin>: not a text URL list (binary data)", stdin="\x00\x01\x02")


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_list(workspace: Workspace, tmp_path: Path) -> None:
    locked = tmp_path / "urls.txt"
    locked.write_text("http://example.invalid/a.jpg\n")
    locked.chmod(0)
    _refused(workspace, str(locked), f"{locked}: cannot read (Permission denied)")


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux /proc")
def test_list_that_fails_to_read(workspace: Workspace) -> None:
    # /proc/self/mem opens but reading offset 0 fails with EIO, even for root.
    _refused(workspace, "/proc/self/mem", "/proc/self/mem: cannot read (Input/output error)")


@pytest.mark.parametrize("first", ["jpeg", "png"])
def test_same_pixels_hashed_from_luma_and_from_rgb_are_one_image(
    workspace: Workspace, tmp_path: Path, first: str
) -> None:
    """A JPEG is hashed from its luma plane, its pixels saved as PNG from RGB: their
    fingerprints differ, so only the comparison across the two ways finds them equal."""
    jpeg = data.jpeg(data.photo(2, "alopecia", (640, 480)))
    files = {"jpeg": ("a.jpg", jpeg), "png": ("a.png", data.png(data.decoded(jpeg)))}
    checked = {kind: validate.check(blob, CFG) for kind, (_, blob) in files.items()}
    assert isinstance(checked["jpeg"], validate.Checked) and isinstance(checked["png"], validate.Checked)
    assert (checked["jpeg"].hashed_from, checked["png"].hashed_from) == (hashing.LUMA, hashing.RGB)
    assert checked["jpeg"].fingerprint != checked["png"].fingerprint
    order = [first, "png" if first == "jpeg" else "jpeg"]
    for kind in order:
        name, blob = files[kind]
        (tmp_path / name).write_bytes(blob)
        summary = _json(run_cli("--json", "ingest", str(tmp_path / name), workspace=workspace.root))
    assert (summary["stored"], summary["exact_duplicates"]) == (0, 1)
    rows = workspace.conn.execute("SELECT sha256, hashed_from FROM images").fetchall()
    kept = checked[first]
    assert [(r["sha256"], r["hashed_from"]) for r in rows] == [(kept.sha256, kept.hashed_from)]


def test_jpeg_hashed_from_rgb_before_luma_still_has_exact_duplicates(
    workspace: Workspace, tmp_path: Path
) -> None:
    """An image stored before catalog migration 3 was hashed from RGB; a copy of its JPEG with
    other metadata, hashed from luma now, is still its exact duplicate."""
    jpeg = data.jpeg(data.photo(3, "psoriasis", (640, 480)))
    (tmp_path / "old.jpg").write_bytes(jpeg)
    _json(run_cli("--json", "ingest", str(tmp_path / "old.jpg"), workspace=workspace.root))
    rgb = hashing.perceptual_hashes(hashing.normalize(Image.open(tmp_path / "old.jpg")))
    with catalog.atomic(workspace.conn):  # the row as migration 3 left it: hashed from RGB
        workspace.conn.execute(
            "UPDATE images SET hashed_from = 'rgb', hashes = ?, fingerprint = ?",
            (hashing.pack_hashes(rgb), hashing.fingerprint(640, 480, rgb)),
        )
    commented = jpeg[:2] + b"\xff\xfe\x00\x0ecopied here!" + jpeg[2:]  # a COM segment: other bytes
    (tmp_path / "new.jpg").write_bytes(commented)
    assert validate.pixel_sha256(commented) == validate.pixel_sha256(jpeg)
    summary = _json(run_cli("--json", "ingest", str(tmp_path / "new.jpg"), workspace=workspace.root))
    assert (summary["stored"], summary["exact_duplicates"]) == (0, 1)
    assert workspace.conn.execute("SELECT COUNT(*) FROM images").fetchone()[0] == 1


def test_dups_lists_exact_and_near_and_reclusters(workspace: Workspace, tmp_path: Path) -> None:
    base = data.photo(7, "psoriasis", (200, 150))
    files = tmp_path / "dups"
    files.mkdir()
    (files / "a.jpg").write_bytes(data.jpeg(base))
    (files / "b.jpg").write_bytes(data.jpeg(base.resize((150, 112))))
    (files / "c.png").write_bytes(data.png(data.decoded((files / "a.jpg").read_bytes())))
    (files / "d.jpg").write_bytes(data.jpeg(data.photo(8, "alopecia")))
    _json(run_cli("--json", "ingest", str(files), workspace=workspace.root))
    result = run_cli("--json", "dups", workspace=workspace.root)
    clusters = json.loads(result.stdout)
    assert len(clusters) == 1
    urls = sorted(Path(u).name for m in clusters[0]["members"] for u in m["urls"])
    assert urls == ["a.jpg", "b.jpg", "c.png"]
    text = run_cli("dups", workspace=workspace.root).stdout
    assert re.match(
        r"Cluster \d+: 2 images, 3 sources; representative [0-9a-f]{12} "
        r"\(most pixels: 200x150 vs 150x112\)\n",
        text,
    ), text
    # re-clustering reads stored hashes only: sources and objects stay as they were, d.jpg stays alone
    sources_before = [tuple(r) for r in workspace.conn.execute("SELECT * FROM sources ORDER BY id")]
    objects_before = snapshot(workspace.root / "objects")
    result = run_cli("--json", "dups", "--threshold", "0", workspace=workspace.root)
    assert result.exit_code == 0 and "Re-clustered 3 images at threshold 0" in result.stderr
    listed = {Path(u).name for c in json.loads(result.stdout) for m in c["members"] for u in m["urls"]}
    assert listed <= {"a.jpg", "b.jpg", "c.png"} and {"a.jpg", "c.png"} <= listed
    assert [tuple(r) for r in workspace.conn.execute("SELECT * FROM sources ORDER BY id")] == sources_before
    assert snapshot(workspace.root / "objects") == objects_before
    images = workspace.conn.execute("SELECT COUNT(*), COUNT(DISTINCT cluster_id) FROM images").fetchone()
    assert images[0] == 3 and images[1] in (2, 3)


# The pieces, tested directly -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line,expected",
    [
        ("https://a.example/x.jpg", ("https://a.example/x.jpg", "url", None, None)),
        ("https://a.example/x.jpg\tpsoriasis", ("https://a.example/x.jpg", "url", "psoriasis", None)),
        ("HTTP://A.example/x.jpg", ("HTTP://A.example/x.jpg", "url", None, None)),
        ("ftp://a.example/x.jpg", ("ftp://a.example/x.jpg", "url", None, "unsupported-scheme")),
        ("data:image/png;base64,AAAA", ("data:image/png;base64,AAAA", "url", None, "unsupported-scheme")),
        ("https://", ("https://", "url", None, "malformed-line")),
        ("a\tb\tc\td", ("a\tb\tc\td", "url", None, "malformed-line")),
        ("hello", ("hello", "url", None, "malformed-line")),
    ],
)
def test_parse_line(line: str, expected: tuple[str, str, str | None, str | None], tmp_path: Path) -> None:
    (src,) = sources.parse_line(line, base=tmp_path)
    assert (src.locator, src.kind, src.hint, src.problem) == expected


def test_parse_missing_path(tmp_path: Path) -> None:
    (src,) = sources.parse_line("./gone.jpg", base=tmp_path)
    assert (src.locator, src.kind, src.problem) == (str(tmp_path / "gone.jpg"), "file", "file-missing")


CFG = IngestConfig(min_side=64, max_pixels=2_000_000)


def test_validate_decompression_bomb_from_pil() -> None:
    # A 1-bit PNG of 200 M pixels is ~30 KB; PIL refuses it at open (over twice its pixel limit).
    huge = data.encode(Image.new("1", (14_200, 14_200)), "PNG")
    result = validate.check(huge, IngestConfig())
    assert isinstance(result, validate.Refused) and result.reason == "decompression-bomb"


def test_validate_exif_orientation_is_applied_for_hashes() -> None:
    upright = data.photo(11, size=(160, 120))
    stored_sideways = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90 CW to display": undoes ROTATE_90 (which is CCW)
    tagged_bytes, plain_bytes = data.encode(stored_sideways, "PNG", exif=exif), data.png(upright)
    tagged, plain = validate.check(tagged_bytes, CFG), validate.check(plain_bytes, CFG)
    assert isinstance(tagged, validate.Checked) and isinstance(plain, validate.Checked)
    assert (tagged.width, tagged.height) == (160, 120)
    assert tagged.hashes == plain.hashes and tagged.fingerprint == plain.fingerprint
    assert validate.pixel_sha256(tagged_bytes) == validate.pixel_sha256(plain_bytes)
    assert tagged.sha256 != plain.sha256


def test_validate_small_side_uses_orientation() -> None:
    exif = Image.Exif()
    exif[0x0112] = 6
    wide = data.encode(data.photo(12, size=(200, 60)), "PNG", exif=exif)
    result = validate.check(wide, CFG)
    assert isinstance(result, validate.Refused) and result.reason == "too-small"


def test_validate_gif_first_frame() -> None:
    frames = [data.photo(13, size=(96, 96)), data.photo(14, size=(96, 96))]
    buf = data.encode(frames[0], "GIF", save_all=True, append_images=frames[1:])
    result = validate.check(buf, CFG)
    assert isinstance(result, validate.Checked) and result.format == "GIF"
    single_bytes = data.encode(frames[0], "GIF")
    single = validate.check(single_bytes, CFG)
    assert isinstance(single, validate.Checked) and single.fingerprint == result.fingerprint
    assert validate.pixel_sha256(single_bytes) == validate.pixel_sha256(buf)


@pytest.mark.parametrize(
    "value,expected",
    [(["noai"], True), (["noimageai"], True), (["noindex, noai"], True), (["otherbot: noimageai"], True),
     (["noindex", "nofollow"], False), ([], False), (["noaitest"], False)],
)
def test_noai_header(value: list[str], expected: bool) -> None:
    assert fetch._says_noai(value) is expected


def test_retry_after_forms() -> None:
    assert fetch._retry_after("7") == 7.0
    assert fetch._retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0  # in the past: no wait
    assert fetch._retry_after("soon") is None


def test_progress_bar_with_rate_on_a_terminal(workspace: Workspace, folder: Path) -> None:
    import sys

    import pexpect

    child = pexpect.spawn(
        sys.executable,
        ["-c", "from curator.cli import main; main()", "--workspace", str(workspace.root),
         "ingest", str(folder)],
        env={**os.environ, "COLUMNS": "120", "TERM": "xterm"},
        timeout=60,
        encoding="utf-8",
    )
    child.expect(pexpect.EOF)
    child.close()
    screen = child.before
    assert child.exitstatus == 0, screen
    assert "Ingesting" in screen and "7/7" in screen and "/s" in screen
    assert "7 sources in" in screen


def test_one_ingest_at_a_time(workspace: Workspace, folder: Path) -> None:
    import fcntl

    before = snapshot(workspace.root)
    with open(workspace.catalog_path, "rb") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        result = run_cli("ingest", str(folder), workspace=workspace.root)
    assert result.exit_code == 8
    message = ("Error: workspace is busy: another curator command is writing "
               f"({workspace.root}: a `curator ingest`)")
    assert result.stderr.strip() == message
    assert snapshot(workspace.root) == before


@pytest.mark.parametrize("already_done", [False, True])
def test_a_failed_catalog_load_fails_the_run_with_its_own_error(
    workspace: Workspace, folder: Path, monkeypatch: pytest.MonkeyPatch, already_done: bool
) -> None:
    """The hash index loads beside the first fetches; its failure is the run's error, even
    when every source was done before (none waits for the load), and nothing is written."""
    from curator import dedup, ingest

    if already_done:
        ingest.run(workspace, [str(folder)])
    rows = workspace.conn.execute("SELECT COUNT(*) FROM sources").fetchone()[0]
    before = snapshot(workspace.root / "objects")

    def broken(*args: object) -> None:
        raise RuntimeError("the hash index cannot be read")

    monkeypatch.setattr(dedup.NearIndex, "load", broken)
    with pytest.raises(RuntimeError, match="hash index"):
        ingest.run(workspace, [str(folder)])
    assert workspace.conn.execute("SELECT COUNT(*) FROM sources").fetchone()[0] == rows
    assert snapshot(workspace.root / "objects") == before
