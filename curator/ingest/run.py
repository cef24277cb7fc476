"""The ingest run: sources in, one committed outcome per source out.

    parse (sources.py) -> skip what the catalog already has -> fetch (fetch.py)
        -> on a worker thread: read a local file, decode, check and hash (validate.py),
           store.put the bytes (atomic) unless the catalog has these very bytes
        -> on the catalog thread, with every other source ready by then, one transaction:
           exact duplicate? -> source row only; else dedup.NearIndex.add_image + source row

Sources finish in whatever order downloads and threads allow; what the catalog ends
up with does not depend on it. Each source gets an input position (its place in the
inputs, counted over every run of the workspace), and at the end of each group the
clusters it touched are settled (dedup.settle_clusters): ids and representatives
follow from members and positions alone.

An exact duplicate has the same decoded pixels as a stored image. Equal pixels hashed
the same way have equal fingerprints (size and perceptual hashes, hashing.fingerprint),
so the full pixel keys are computed and compared only when a fingerprint is already in
the catalog, or, between images hashed the two ways (a JPEG from its luma plane, others
from RGB: hashing.grey_of), when their sizes are equal and their ``phash`` values within
:data:`hashing.ACROSS_HASHINGS` bits. A catalog of JPEGs only never needs the second case.

Downloads run on an asyncio event loop (uvloop's where installed: fetch.loop_factory);
everything CPU-bound on a small thread pool; and the catalog on exactly one thread
of its own, so transactions never interleave and none waits on the network. Each
source costs one hop to a worker; the catalog thread takes sources in groups,
whatever is ready when it is free, one transaction per group (a hop or a commit
per source handed the GIL and the cores around more often than the work of a
source took). A group's bytes are durable in ``objects/`` before its transaction
opens, so a crash leaves complete rows only; bytes stored just before a crash are
orphans that ``store.put`` makes harmless on the rerun.
Temp files that a kill left in ``objects/`` (names starting with ``.``) are removed
when a run starts; one run at a time holds an exclusive lock on the workspace's
catalog file.

The first requests (robots.txt first) go out before the image side is ready: numpy,
Pillow, OpenCV and the catalog's hash index load on the catalog thread meanwhile
(~0.15 s, longer for a big catalog), and a source waits for them only once it is
fetched. That is why ``dedup`` and ``validate`` are imported inside the methods
that run after :meth:`_Run._load`.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import sqlite3
import stat
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from curator import catalog, engine, fsutil, store
from curator.config import IngestConfig
from curator.errors import BusyError
from curator.fsutil import write_atomic
from curator.ingest import remote
from curator.ingest.fetch import Fetched, Fetcher, loop_factory, robots_policy
from curator.ingest.sources import Provenance, Source, parse_lines
from curator.workspace import Workspace

if TYPE_CHECKING:
    from curator.ingest import validate

ProgressCallback = Callable[[int], None]


@dataclass(frozen=True)
class IngestOptions:
    settings: IngestConfig = field(default_factory=IngestConfig)
    retry_failed: bool = False  # fetch again sources whose rejection was transient
    hint_from_folder: bool = False  # for plain-text lines naming folders
    report: Path | None = None  # JSONL, one object per source
    workers: int | None = None  # decode/hash threads; default: CPU count

    @classmethod
    def from_config(cls, cfg: IngestConfig, **overrides: Any) -> IngestOptions:
        """Options from ``[ingest]`` with CLI overrides; None values mean 'keep the config's'."""
        own = {f.name for f in dataclasses.fields(cls)}
        mine = {k: v for k, v in overrides.items() if k in own and v is not None}
        settings = {k: v for k, v in overrides.items() if k not in own and v is not None}
        return cls(settings=dataclasses.replace(cfg, **settings), **mine)


@dataclass(frozen=True)
class ItemResult:
    url: str  # the locator: URL or absolute path
    status: str  # stored | duplicate | rejected | skipped
    reason: str | None
    sha256: str | None


@dataclass
class _Ready:
    """A source on its way to the catalog thread, and the future its outcome is set on."""

    src: Source
    fetched: Fetched | None  # None for a malformed line
    checked: validate.Checked | validate.Refused
    wrote: bool  # whether its bytes were written to objects/ (not durable yet)
    placed: asyncio.Future[ItemResult]


@dataclass
class IngestSummary:
    total: int = 0
    stored: int = 0
    exact_duplicates: int = 0
    near_duplicates: int = 0
    skipped: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0
    items: list[ItemResult] = field(default_factory=list)

    def add(self, item: ItemResult) -> None:
        self.items.append(item)  # completion order; run() restores input order at the end
        if item.status == "stored":
            self.stored += 1
        elif item.status == "duplicate":
            if item.reason == "exact":
                self.exact_duplicates += 1
            else:
                self.near_duplicates += 1
        elif item.status == "skipped":
            self.skipped += 1
        else:
            self.rejected[item.reason or "unknown"] += 1

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "stored": self.stored,
            "exact_duplicates": self.exact_duplicates,
            "near_duplicates": self.near_duplicates,
            "rejected": sum(self.rejected.values()),
            "rejected_by_reason": dict(sorted(self.rejected.items())),
            "skipped": self.skipped,
            "seconds": round(self.seconds, 3),
            "per_second": round(self.total / self.seconds, 1) if self.seconds else None,
        }


def run(
    ws: Workspace,
    lines: Iterable[str | Source],
    options: IngestOptions | None = None,
    on_progress: ProgressCallback | None = None,
) -> IngestSummary:
    """Ingest every source named by ``lines`` (text lines or parsed :class:`Source` items)."""
    options = options or IngestOptions(settings=ws.config.ingest)
    sources = list(_as_sources(lines, options.hint_from_folder))
    started = time.monotonic()
    with exclusive(ws):
        remove_temp_files(ws.objects)
        with asyncio.Runner(loop_factory=loop_factory()) as runner:
            summary = runner.run(_Run(ws, options, on_progress or (lambda n: None)).main(sources))
        # Sources done in an earlier run may be given a group or provenance now (a list that gained
        # the column, a table mapped anew).
        grouped = [(src.group, src.locator) for src in sources if src.group is not None]
        described = [(*_provenance_values(src.provenance), src.locator) for src in sources if src.provenance]
        with catalog.atomic(ws.conn):
            ws.conn.executemany("UPDATE sources SET group_id = ? WHERE locator = ?", grouped)
            ws.conn.executemany(
                "UPDATE sources SET collection = ?, licence = ?, attribution = ?, diagnosis = ?, "
                "body_site = ?, metadata = ?, fitzpatrick = ?, monk = ? WHERE locator = ?",
                described,
            )
    summary.seconds = time.monotonic() - started
    if options.report is not None:
        write_report(options.report, summary.items)
    return summary


def _provenance_values(p: Provenance) -> tuple[str | None, ...]:
    return (p.collection, p.licence, p.attribution, p.diagnosis, p.body_site, p.metadata, p.fitzpatrick,
            p.monk)


def _as_sources(lines: Iterable[str | Source], hint_from_folder: bool) -> Iterator[Source]:
    for line in lines:
        if isinstance(line, Source):
            yield line
        else:
            # a line handed over in code is named by its caller, like a command-line argument
            yield from parse_lines([line], base=Path.cwd(), hint_from_folder=hint_from_folder,
                                   root=Path(Path.cwd().anchor))


def write_report(path: Path, items: list[ItemResult]) -> None:
    text = "".join(json.dumps(dataclasses.asdict(item)) + "\n" for item in items)
    write_atomic(Path(path), text)


@contextlib.contextmanager
def exclusive(ws: Workspace) -> Iterator[None]:
    """One ingest per workspace at a time (an advisory lock on the catalog file; no new files)."""
    try:
        import fcntl
    except ImportError:  # not on POSIX: no lock, as before
        yield
        return
    with open(ws.catalog_path, "rb") as fh:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as err:
            raise BusyError(
                f"workspace is busy: another curator command is writing ({ws.root}: a `curator ingest`)",
                path=str(ws.root),
            ) from err
        try:
            with catalog.atomic(ws.conn):  # another writer (not an ingest): busy before anything is stored
                pass
            yield
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)


def remove_temp_files(objects: Path) -> int:
    """Delete temp files (``.name.tmp``) that a killed run left behind; return how many."""
    removed = 0
    for pattern in (".*.tmp", "*/.*.tmp"):
        for path in objects.glob(pattern):
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
    return removed


class _Run:
    """The state of one run. Catalog methods run on ``self.writer`` (see :meth:`_db`); the initial
    reads in :meth:`main` happen before any other thread starts."""

    def __init__(self, ws: Workspace, options: IngestOptions, on_progress: ProgressCallback) -> None:
        self.ws = ws
        self.conn: sqlite3.Connection = ws.conn
        self.cfg = options.settings
        self.options = options
        self.on_progress = on_progress
        self.summary = IngestSummary()
        self.robots = robots_policy(self.cfg)
        # Reading, decoding, hashing and storing a source's bytes: CPU-bound (C code, without the GIL).
        self.pool = ThreadPoolExecutor(options.workers or os.cpu_count() or 2, "curator-decode")
        # The one thread that uses the catalog connection: transactions never interleave, and
        # dedup's work inside add_image never stalls the event loop's downloads.
        self.writer = ThreadPoolExecutor(1, "curator-catalog")
        # The images in the catalog (sha256 of their bytes), so a worker can skip storing bytes
        # that are there already. Only the catalog thread adds to it.
        self.known_bytes: set[str] = set()
        # How the catalog's images were hashed (hashing.LUMA, hashing.RGB): see _hashed_otherwise.
        self.hashed_from: set[str] = set()
        # Group durability: workers write objects without fsync, and one syncfs per group makes
        # the group's objects durable before its rows are committed (see _place_group).
        # Two fsyncs per object cost ~1 s of the benchmark's 7.5 s, and on a disk where an
        # fsync takes 10 ms they held the two workers for 20 ms per image (26 s instead of 8).
        self.group_sync = fsutil.can_sync_filesystem()
        self.syncer = ThreadPoolExecutor(1, "curator-sync")
        self.positions: dict[str, int] = {}  # locator -> input position (see main)
        # Images this run added; an exact duplicate listed earlier may take one's place (_replace_image).
        self.added: set[str] = set()
        self._orphans: list[str] = []  # bytes of replaced images, deleted once their group commits
        self._replaced_now: set[str] = set()  # images of this group that replaced one (to settle)
        self._ready: list[_Ready] = []  # prepared sources waiting for the catalog thread
        self._placing = False  # whether a group is on the catalog thread now
        self.batcher: remote.Batcher | None = None  # with the Ray engine: URLs go to its workers
        self._opencv = contextlib.ExitStack()  # engine.single_threaded_opencv, from _load to the end
        self.loaded: asyncio.Future[None]  # _load, on the catalog thread (set in main)

    async def main(self, sources: list[Source]) -> IngestSummary:
        self.summary.total = len(sources)
        done = self._done_sources()
        self.positions = self._input_positions(sources)
        # The image side loads while the first requests are in flight; _one waits for it.
        self.loaded = asyncio.get_running_loop().run_in_executor(self.writer, self._load)
        seen: set[str] = set()
        try:
            async with (Fetcher(self.cfg) as fetcher,
                        remote.batcher(self.ws.config.engine, self.cfg) as batcher,
                        asyncio.TaskGroup() as group):
                self.tasks = group
                self.batcher = batcher
                # Bounds memory: a source holds its bytes and pixels only while one of these slots is held.
                local = self.cfg.concurrency + 2 * (self.options.workers or os.cpu_count() or 2)
                slots = asyncio.Semaphore(max(local, batcher.in_flight if batcher else 0))
                for src in sources:
                    if src.locator in seen or not self._wanted(src, done):
                        self._finish(self._skipped(src, done))
                        continue
                    seen.add(src.locator)
                    await slots.acquire()
                    group.create_task(self._one(src, fetcher, slots))
            await self.loaded  # a failed load surfaces even when no source waited for it
        except BaseExceptionGroup:
            # Every source waiting for a failed load fails with it: raise that one error.
            failed = self.loaded.exception() if self.loaded.done() and not self.loaded.cancelled() else None
            if failed is None:
                raise
            raise failed from None
        finally:
            self.pool.shutdown(wait=True, cancel_futures=True)
            self.writer.shutdown(wait=True)
            self.syncer.shutdown(wait=True)
            self._opencv.close()
        self._summary_from_catalog()
        order = {src.locator: i for i, src in reversed(list(enumerate(sources)))}
        self.summary.items.sort(key=lambda item: (order.get(item.url, -1), item.status != "skipped"))
        return self.summary

    def _summary_from_catalog(self) -> None:
        """Each placed source's final outcome, as the catalog has it once the run's clusters are
        settled (_settle_outcomes may have changed it since it was placed)."""
        placed = [i.url for i in self.summary.items if i.status in ("stored", "duplicate")]
        sql = "SELECT locator, outcome, reason, sha256 FROM sources WHERE locator IN ({marks})"
        final = {row[0]: row for row in catalog.select_in(self.conn, sql, placed)}
        fresh = IngestSummary(total=self.summary.total)
        for item in self.summary.items:
            row = final.get(item.url)
            fresh.add(ItemResult(item.url, row[1], row[2], row[3]) if row is not None else item)
        self.summary = fresh

    def _load(self) -> None:
        """On the catalog thread, first: the modules and catalog state that sources need."""
        from curator import dedup
        from curator.ingest import validate  # noqa: F401 (imported here, not by the first worker)

        self._opencv.enter_context(engine.single_threaded_opencv())
        self.known_bytes = {row[0] for row in self.conn.execute("SELECT sha256 FROM images")}
        self.hashed_from = {row[0] for row in self.conn.execute("SELECT DISTINCT hashed_from FROM images")}
        self.index = dedup.NearIndex.load(self.conn, self.ws.objects, self.ws.config.dedup)

    def _input_positions(self, sources: list[Source]) -> dict[str, int]:
        """Each locator's place in the inputs, after every source of earlier runs (a source
        keeps the position it was first given: see _write_source)."""
        start = int(self.conn.execute("SELECT COALESCE(MAX(position), 0) FROM sources").fetchone()[0])
        positions: dict[str, int] = {}
        for i, src in enumerate(sources, start=start + 1):
            positions.setdefault(src.locator, i)
        return positions

    def _done_sources(self) -> dict[str, sqlite3.Row]:
        rows = self.conn.execute(
            "SELECT locator, outcome, reason, transient, sha256 FROM sources WHERE outcome IS NOT NULL"
        )
        return {row["locator"]: row for row in rows}

    def _wanted(self, src: Source, done: dict[str, sqlite3.Row]) -> bool:
        row = done.get(src.locator)
        if row is None:
            return True
        return self.options.retry_failed and row["outcome"] == "rejected" and bool(row["transient"])

    def _skipped(self, src: Source, done: dict[str, sqlite3.Row]) -> ItemResult:
        row = done.get(src.locator)
        if row is None:  # the same locator twice in one input
            return ItemResult(src.locator, "skipped", "repeated", None)
        return ItemResult(src.locator, "skipped", f"already-{row['outcome']}", row["sha256"])

    def _finish(self, item: ItemResult) -> None:
        self.summary.add(item)
        self.on_progress(1)

    async def _one(self, src: Source, fetcher: Fetcher, slots: asyncio.Semaphore) -> None:
        try:
            loop = asyncio.get_running_loop()
            fetching = src.kind == "url" and not src.problem and src.read is None
            checked: validate.Checked | validate.Refused
            if fetching and self.batcher is not None:  # fetched and checked by a Ray worker
                got, checked = await self.batcher.prepare(src.locator)
                await self.loaded
                wrote = await loop.run_in_executor(self.pool, self._store, got, checked)
                await self._hand_over(_Ready(src, got, checked, wrote, loop.create_future()))
                return
            fetched = await fetcher.fetch(src.locator) if fetching else None
            await self.loaded
            from curator.ingest import validate

            wrote = False
            if src.problem:
                checked = validate.Refused(src.problem)
            elif fetched is not None and fetched.reason is not None:
                checked = validate.Refused(fetched.reason)
            else:
                fetched, checked, wrote = await loop.run_in_executor(self.pool, self._prepare, src, fetched)
            await self._hand_over(_Ready(src, fetched, checked, wrote, loop.create_future()))
        finally:
            slots.release()

    async def _hand_over(self, ready: _Ready) -> None:
        """Queue a prepared source for the catalog thread and wait for its outcome."""
        self._ready.append(ready)
        if not self._placing:
            self._placing = True
            self.tasks.create_task(self._place_ready())
        self._finish(await ready.placed)

    async def _place_ready(self) -> None:
        """Hand the catalog thread every ready source, a group at a time, until none is left."""
        loop = asyncio.get_running_loop()
        try:
            while self._ready:
                group, self._ready = self._ready, []
                try:
                    results = await loop.run_in_executor(self.writer, self._place_group, group)
                except BaseException as err:  # every source of the group waits on this outcome
                    for ready in group:
                        if not ready.placed.done():  # done: its task was cancelled
                            ready.placed.set_exception(err)
                    raise
                for ready, result in zip(group, results, strict=True):
                    if not ready.placed.done():
                        ready.placed.set_result(result)
        finally:
            self._placing = False

    # On a worker thread: no catalog access.

    def _prepare(
        self, src: Source, fetched: Fetched | None
    ) -> tuple[Fetched, validate.Checked | validate.Refused, bool]:
        """Read a local file (URLs come fetched), decode and hash it, and store its bytes
        unless the catalog has them already (the flag says whether it stored them).
        Decoded pixels (~1 MB per photo) live only in here; what goes on is the hashes and
        a small grey copy."""
        from curator.ingest import validate

        if fetched is None and src.read is not None:
            fetched = _at_hand(src.locator, src.read(), self.cfg.max_bytes)
        elif fetched is None:
            fetched = read_local(src.locator, self.cfg.max_bytes)
        checked = validate.check_fetched(fetched, self.cfg)
        return fetched, checked, self._store(fetched, checked)

    def _store(self, fetched: Fetched, checked: validate.Checked | validate.Refused) -> bool:
        """Put a checked image's bytes in objects/ unless the catalog has them; whether it did."""
        from curator.ingest import validate

        if not isinstance(checked, validate.Checked) or fetched.data is None:
            return False
        if checked.format == "JPEG":
            from curator import dedup

            dedup.jpeg_quality(self.ws.objects, checked.sha256, fetched.data)  # for the representative rule
        if checked.sha256 not in self.known_bytes:
            store.put(self.ws.objects, fetched.data, durable=not self.group_sync)
            return True
        return False

    # The methods below run on the catalog thread, one group at a time, inside its transaction.

    def _place_group(self, group: list[_Ready]) -> list[ItemResult]:
        """One transaction for the whole group, committed once its new objects are durable.

        The sync runs beside the group's placement, not before it: syncfs waits for every
        dirty page of the filesystem, other programs' too, and on the catalog thread (the
        pipeline's slowest stage) that wait held up everything behind it.
        """
        wrote = self.group_sync and any(ready.wrote for ready in group)
        synced = self.syncer.submit(fsutil.sync_filesystem, self.ws.objects) if wrote else None
        from curator import dedup
        from curator.ingest import validate

        # The images that may be new (bytes already in the catalog are exact duplicates: _same_pixels).
        checked = [r.checked for r in group
                   if isinstance(r.checked, validate.Checked) and r.checked.sha256 not in self.known_bytes]
        new = {c.sha256: c.hashes for c in checked}
        with catalog.atomic(self.conn), self.index.group(new, {c.sha256: c.grey for c in checked}):
            results = [self._place(ready.src, ready.fetched, ready.checked) for ready in group]
            # A source that started a cluster of its own left it settled (dedup.NewImage.position);
            # the clusters that duplicates joined (or replaced an image in) are settled here.
            joined = sorted({r.sha256 for r in results if r.sha256 is not None and r.status == "duplicate"}
                            | self._replaced_now)
            self._replaced_now = set()
            sql = "SELECT cluster_id FROM images WHERE sha256 IN ({marks})"
            touched = catalog.select_in(self.conn, sql, joined)
            dedup.settle_clusters(self.conn, [row[0] for row in touched], self.ws.objects)
            self._settle_outcomes(joined)
            if synced is not None:
                synced.result()  # every object of the group was written before the sync began
        orphans, self._orphans = self._orphans, []
        for sha in orphans:  # after the commit: until then the catalog may still refer to them
            with contextlib.suppress(FileNotFoundError):
                store.object_path(self.ws.objects, sha).unlink()
        return results

    def _place(
        self, src: Source, fetched: Fetched | None, checked: validate.Checked | validate.Refused
    ) -> ItemResult:
        """A refusal, an exact duplicate of an image in the catalog, or a new image (near or not)."""
        from curator.ingest import validate

        if isinstance(checked, validate.Refused):
            transient = fetched is not None and fetched.transient
            self._write_source(src, fetched, "rejected", checked.reason, None, transient)
            return ItemResult(src.locator, "rejected", checked.reason, None)
        assert fetched is not None and fetched.data is not None  # a checked image was read or fetched
        same, pixel_key = self._same_pixels(checked, fetched.data)
        if same is None:
            result = self._add_image(src, fetched, checked, pixel_key)
            self.known_bytes.add(checked.sha256)
            self.added.add(checked.sha256)
            return result
        if checked.sha256 != same and pixel_key is not None and self._listed_earlier(src, checked, same):
            return self._replace_image(same, src, fetched, checked, pixel_key)
        self._write_source(src, fetched, "duplicate", "exact", same)
        if checked.sha256 != same:
            # Other bytes with the same pixels, stored by the worker; no image can refer to
            # them (it would have these pixels, so it would be that image).
            with contextlib.suppress(FileNotFoundError):
                store.object_path(self.ws.objects, checked.sha256).unlink()
        return ItemResult(src.locator, "duplicate", "exact", same)

    def _settle_outcomes(self, shas: list[str]) -> None:
        """Outcomes by input order, not arrival: in each cluster these images are in, the earliest
        source is 'stored', every other image's earliest source a 'near' duplicate, and every
        other source an 'exact' duplicate of its image."""
        for start in range(0, len(shas), 500):
            chunk = shas[start : start + 500]
            self.conn.execute(_SETTLE_OUTCOMES.format(marks=",".join("?" * len(chunk))), chunk)

    def _listed_earlier(self, src: Source, checked: validate.Checked, image: str) -> bool:
        """Whether ``src`` (other bytes, the same pixels) should be ``image`` instead: it comes
        earlier in the inputs than every source of ``image``, which this run added and nobody has
        labelled or released yet, and its own bytes are in objects/."""
        position = self.positions.get(src.locator)
        if image not in self.added or position is None:
            return False
        row = self.conn.execute(
            "SELECT MIN(position) AS first, "
            "EXISTS (SELECT 1 FROM label_events WHERE sha256 = :sha) AS labelled, "
            "EXISTS (SELECT 1 FROM image_splits WHERE sha256 = :sha) AS released "
            "FROM sources WHERE sha256 = :sha",
            {"sha": image},
        ).fetchone()
        if row["first"] is None or position > row["first"] or row["labelled"] or row["released"]:
            return False
        return store.object_path(self.ws.objects, checked.sha256).exists()

    def _replace_image(
        self, old: str, src: Source, fetched: Fetched, checked: validate.Checked, pixel_key: str
    ) -> ItemResult:
        """Make ``checked`` (the same pixels as ``old``, listed earlier) the image in ``old``'s place.

        Of two files with equal pixels (a JPEG and its PNG conversion), the catalog keeps the
        one listed first, whichever finished first. The image row is rewritten under its new
        key and every row that names it follows (foreign keys are checked at commit); the
        outcomes are settled at the end of the group (_settle_outcomes).
        """
        from curator import hashing

        conn = self.conn
        conn.execute("PRAGMA defer_foreign_keys = ON")  # switched off again at COMMIT
        conn.execute(
            "UPDATE images SET sha256 = ?, fingerprint = ?, pixel_sha256 = ?, hashes = ?, format = ?,"
            " bytes = ?, hashed_from = ? WHERE sha256 = ?",
            (checked.sha256, checked.fingerprint, pixel_key, hashing.pack_hashes(checked.hashes),
             checked.format, checked.nbytes, checked.hashed_from, old),
        )
        conn.execute("UPDATE sources SET sha256 = ? WHERE sha256 = ?", (checked.sha256, old))
        conn.execute("UPDATE clusters SET representative = ? WHERE representative = ?", (checked.sha256, old))
        self._write_source(src, fetched, "stored", None, checked.sha256)
        self.index.extend({checked.sha256: checked.hashes})
        if self.index.confirmer is not None:
            self.index.confirmer.remember(checked.sha256, checked.grey)
        self.known_bytes.discard(old)
        self.known_bytes.add(checked.sha256)
        self.added.discard(old)
        self.added.add(checked.sha256)
        self.hashed_from.add(checked.hashed_from)
        self._orphans.append(old)
        self._replaced_now.add(checked.sha256)
        return ItemResult(src.locator, "stored", None, checked.sha256)

    def _same_pixels(self, checked: validate.Checked, data: bytes) -> tuple[str | None, str | None]:
        """The stored image with the same pixels as ``data`` (or None), and the pixel key of
        ``data`` if comparing needed it. Keys missing from stored images are filled in."""
        from curator.ingest import validate

        if checked.sha256 in self.known_bytes:
            return checked.sha256, None
        sql = "SELECT sha256, pixel_sha256 FROM images WHERE fingerprint = ?"
        found = self.conn.execute(sql, (checked.fingerprint,)).fetchall() + self._hashed_otherwise(checked)
        rows = {row["sha256"]: row for row in found}.values()  # a small image can be both
        if not rows:
            return None, None  # the usual case: no stored image can have these pixels
        for row in rows:
            if row["pixel_sha256"] is None:
                self._fill_pixel_key(row["sha256"])
        key = validate.pixel_sha256(data)
        row = self.conn.execute("SELECT sha256 FROM images WHERE pixel_sha256 = ?", (key,)).fetchone()
        return (row[0] if row else None), key

    def _hashed_otherwise(self, checked: validate.Checked) -> list[sqlite3.Row]:
        """Stored images hashed the other way (luma or RGB) that may have these very pixels:
        the same size, and a ``phash`` within hashing.ACROSS_HASHINGS bits."""
        from curator import hashing

        if not self.hashed_from - {checked.hashed_from}:
            return []  # every stored image was hashed the way this one was
        near = self.index.same_phash(checked.hashes[hashing.PHASH], hashing.ACROSS_HASHINGS)
        sql = (
            "SELECT sha256, pixel_sha256 FROM images WHERE sha256 IN ({marks})"
            " AND width = ? AND height = ? AND hashed_from != ?"
        )
        return catalog.select_in(self.conn, sql, near, checked.width, checked.height, checked.hashed_from)

    def _fill_pixel_key(self, sha: str) -> None:
        from curator.ingest import validate

        try:
            key = validate.pixel_sha256(store.read(self.ws.objects, sha))
        except (OSError, ValueError, SyntaxError):  # missing or unreadable: it cannot match
            return
        self.conn.execute("UPDATE images SET pixel_sha256 = ? WHERE sha256 = ?", (key, sha))

    def _add_image(
        self, src: Source, fetched: Fetched, checked: validate.Checked, pixel_key: str | None
    ) -> ItemResult:
        from curator import dedup

        new = dedup.NewImage(
            sha256=checked.sha256,
            fingerprint=checked.fingerprint,
            pixel_sha256=pixel_key,
            width=checked.width,
            height=checked.height,
            format=checked.format,
            bytes=checked.nbytes,
            hashed_from=checked.hashed_from,
            position=self.positions.get(src.locator),
        )
        placement = self.index.add_image(self.conn, new, checked.grey, checked.hashes)
        self.hashed_from.add(checked.hashed_from)
        outcome, reason = ("stored", None) if placement.near_of is None else ("duplicate", "near")
        self._write_source(src, fetched, outcome, reason, checked.sha256)
        return ItemResult(src.locator, outcome, reason, checked.sha256)

    def _write_source(
        self,
        src: Source,
        fetched: Fetched | None,
        outcome: str,
        reason: str | None,
        sha256: str | None,
        transient: bool = False,
    ) -> None:
        f = fetched or Fetched(src.locator)
        self.conn.execute(
            """
            INSERT INTO sources (locator, kind, hint, final_url, http_status, content_type, bytes,
                                 fetched_at, outcome, reason, transient, sha256, robots, added_at,
                                 position, group_id)
            VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
            ON CONFLICT (locator) DO UPDATE SET
                hint = COALESCE(excluded.hint, sources.hint), final_url = excluded.final_url,
                position = COALESCE(sources.position, excluded.position),
                group_id = COALESCE(excluded.group_id, sources.group_id),
                http_status = excluded.http_status, content_type = excluded.content_type,
                bytes = excluded.bytes, fetched_at = excluded.fetched_at, outcome = excluded.outcome,
                reason = excluded.reason, transient = excluded.transient, sha256 = excluded.sha256,
                robots = excluded.robots
            """,
            (
                src.locator,
                src.kind,
                src.hint,
                f.final_url if src.kind == "url" else None,
                f.status,
                f.content_type,
                len(f.data) if f.data is not None else None,
                f.fetched_at or None,
                outcome,
                reason,
                int(transient),
                sha256,
                self.robots if src.kind == "url" and src.read is None else None,
                catalog.utcnow(),
                self.positions.get(src.locator),
                src.group,
            ),
        )


# For _settle_outcomes: every source of every image in the clusters of the images in {marks}.
_SETTLE_OUTCOMES = """
WITH ranked AS (
    SELECT s.id,
           ROW_NUMBER() OVER (PARTITION BY i.cluster_id ORDER BY s.position, s.id) AS in_cluster,
           ROW_NUMBER() OVER (PARTITION BY i.sha256 ORDER BY s.position, s.id) AS in_image
    FROM images i JOIN sources s ON s.sha256 = i.sha256  -- stored or duplicate: only those name an image
    WHERE i.cluster_id IN (SELECT cluster_id FROM images WHERE sha256 IN ({marks}))
)
UPDATE sources SET
    outcome = CASE WHEN ranked.in_cluster = 1 THEN 'stored' ELSE 'duplicate' END,
    reason = CASE WHEN ranked.in_cluster = 1 THEN NULL WHEN ranked.in_image = 1 THEN 'near' ELSE 'exact' END
FROM ranked WHERE sources.id = ranked.id
"""


def _at_hand(locator: str, data: bytes | None, max_bytes: int) -> Fetched:
    """Bytes read from where the source keeps them (a Hub dataset row), under the same size cap as
    a download."""
    if not data:
        return Fetched(locator, reason="no-image-bytes", fetched_at=catalog.utcnow())
    if len(data) > max_bytes:
        return Fetched(locator, reason="too-large", fetched_at=catalog.utcnow())
    return Fetched(locator, data=data, fetched_at=catalog.utcnow())


def read_local(path: str, max_bytes: int) -> Fetched:
    """A local file as if fetched: its bytes, or a reason it can't be read.

    The read stops at ``max_bytes`` whatever ``st_size`` says (it says 0 for /dev/zero),
    and only regular files are read (O_NONBLOCK: opening a FIFO must not wait for a writer).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        return Fetched(path, reason="file-missing", fetched_at=catalog.utcnow())
    except OSError:
        return Fetched(path, reason="unreadable", fetched_at=catalog.utcnow())
    with os.fdopen(fd, "rb") as fh:
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return Fetched(path, reason="not-a-file", fetched_at=catalog.utcnow())
            data = fh.read(max_bytes + 1)
        except OSError:
            return Fetched(path, reason="unreadable", fetched_at=catalog.utcnow())
    if len(data) > max_bytes:
        return Fetched(path, reason="too-large", fetched_at=catalog.utcnow())
    return Fetched(path, data=data, fetched_at=catalog.utcnow())
