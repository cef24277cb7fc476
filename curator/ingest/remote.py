"""Ingest on Ray: URLs fetched, decoded, checked and hashed by Ray tasks, a batch each.

    driver (run.py)                               Ray workers
    _one(src) -> Batcher.prepare(url) ----------> prepare_batch(job, urls): Fetcher + validate.check
              <- (Fetched, Checked | Refused) ---  (bytes come back with the result)
    store.put + the catalog thread, as for local work

The driver groups URLs into batches of ``[engine] batch_size`` (or whatever is waiting
after :data:`LINGER` seconds) and keeps its catalog thread, its input positions and its
order-independent placement: results may come back in any order and from any worker.
Local files and Hub rows are read on the driver, as with the local engine.

Politeness holds for the whole cluster: every worker's Fetcher takes its per-host
slots from one :class:`HostGate`, a named actor per run, and a Retry-After pauses the
host there for every worker. A slot is a lease that lapses after the longest a request
may take, so a worker killed while holding one cannot block its host for the rest of
the run. Each worker process keeps the robots.txt rules it fetched for the run.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from curator import engine
from curator.config import EngineConfig, IngestConfig
from curator.ingest.fetch import Fetched, Fetcher, Robots, loop_factory

if TYPE_CHECKING:
    from curator.ingest import validate

LINGER = 0.05  # seconds a partial batch waits for more URLs before it goes
Prepared = tuple[Fetched, "validate.Checked | validate.Refused"]


@dataclass(frozen=True)
class BatchJob:
    cfg: IngestConfig
    gate: str  # the HostGate actor's name
    run: str  # this run's id: robots.txt rules are kept per run


def prepare_batch(job: BatchJob, urls: list[str]) -> list[Prepared]:
    """On a worker: fetch every URL of the batch (concurrently, politely), then check and hash each."""
    from curator.engine import single_threaded_opencv
    from curator.ingest import validate

    with asyncio.Runner(loop_factory=loop_factory()) as runner:
        fetched = runner.run(_fetch_all(job, urls))
    with single_threaded_opencv():
        return [(f, validate.check_fetched(f, job.cfg)) for f in fetched]


_robots: dict[str, Robots] = {}  # run id -> the rules this worker process fetched in that run


async def _fetch_all(job: BatchJob, urls: list[str]) -> list[Fetched]:
    import ray

    if job.run not in _robots:
        _robots.clear()  # a later run on the same cluster fetches them afresh
        _robots[job.run] = {}
    hosts = _GateClient(ray.get_actor(job.gate))
    async with Fetcher(job.cfg, hosts=hosts, robots=_robots[job.run]) as fetcher:
        return list(await asyncio.gather(*(fetcher.fetch(url) for url in urls)))


class HostGate:
    """Per-host request slots and Retry-After pauses for every worker of a run (a Ray actor)."""

    def __init__(self, per_host: int, lease: float) -> None:
        self.per_host = per_host
        self.lease = lease  # seconds after which a slot that was never given back lapses
        self.held: defaultdict[str, dict[int, float]] = defaultdict(dict)  # host -> slot -> expiry
        self.resume: dict[str, float] = {}  # host -> monotonic time before which nobody asks it
        self.changed: defaultdict[str, asyncio.Condition] = defaultdict(asyncio.Condition)
        self.issued = 0

    async def acquire(self, host: str) -> int:
        async with self.changed[host]:
            while True:
                now = time.monotonic()
                held = self.held[host]
                for slot in [s for s, expiry in held.items() if expiry <= now]:
                    del held[slot]
                wait = self.resume.get(host, 0.0) - now
                if wait <= 0 and len(held) < self.per_host:
                    self.issued += 1
                    held[self.issued] = now + self.lease
                    return self.issued
                timeout = wait if wait > 0 else min(held.values()) - now
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.changed[host].wait(), timeout)

    async def release(self, host: str, slot: int) -> None:
        async with self.changed[host]:
            self.held[host].pop(slot, None)
            self.changed[host].notify_all()

    async def pause(self, host: str, seconds: float) -> None:
        async with self.changed[host]:
            self.resume[host] = max(self.resume.get(host, 0.0), time.monotonic() + seconds)


class _GateClient:
    """fetch.SharedHosts over the HostGate actor."""

    def __init__(self, gate: Any) -> None:
        self.gate = gate

    @contextlib.asynccontextmanager
    async def slot(self, host: str) -> AsyncIterator[None]:
        slot = await self.gate.acquire.remote(host)
        try:
            yield
        finally:
            await self.gate.release.remote(host, slot)

    async def pause(self, host: str, seconds: float) -> None:
        await self.gate.pause.remote(host, seconds)


class Batcher:
    """On the driver's event loop: URLs in, one Ray task per batch, each URL's result out."""

    def __init__(self, job: BatchJob, size: int) -> None:
        self.job = job
        self.size = size
        self.in_flight = 2 * size * engine.cluster_cpus()  # URLs the driver should keep going
        self._waiting: list[tuple[str, asyncio.Future[Prepared]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def prepare(self, url: str) -> Prepared:
        future: asyncio.Future[Prepared] = asyncio.get_running_loop().create_future()
        self._waiting.append((url, future))
        if len(self._waiting) >= self.size:
            self._flush()
        elif self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(LINGER, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._waiting = self._waiting, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[str, asyncio.Future[Prepared]]]) -> None:
        try:
            results = await engine.submit(prepare_batch, self.job, [url for url, _ in batch])
        except BaseException as err:  # every URL of the batch waits on it
            for _, future in batch:
                if not future.done():
                    future.set_exception(err)
            if not isinstance(err, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if not future.done():
                future.set_result(result)


@contextlib.asynccontextmanager
async def batcher(engine_cfg: EngineConfig, cfg: IngestConfig) -> AsyncIterator[Batcher | None]:
    """A Batcher and its run's HostGate while the block runs; None for the local engine."""
    if not engine.is_ray(engine_cfg):
        yield None
        return
    import ray

    run = uuid.uuid4().hex
    name = f"curator-hosts-{run}"
    lease = cfg.connect_timeout + 4 * cfg.read_timeout + 1.0  # fetch.Fetcher._get's deadline, and a second
    gate: Any = ray.remote(num_cpus=0)(HostGate).options(name=name).remote(cfg.per_host, lease)
    try:
        yield Batcher(BatchJob(cfg, name, run), engine_cfg.batch_size)
    finally:
        ray.kill(gate)
