"""The Ray engine's cost and how far one driver scales: `curator ingest --engine local` vs `--engine ray`.

    python benchmarks/engine_scale.py                # 2,000 URLs: both engines, the driver's ceiling,
                                                     # one worker's rate, and the scaling model
    python benchmarks/engine_scale.py --urls 400     # a quick sanity run

Four measurements, on this machine, against benchmarks/ingest_speed.py's images served
by one loopback server (2,000 URLs by default: 640x480 JPEGs, each photo with one near copy):

1. ``curator ingest`` with ``--engine local`` and ``--engine ray`` (a local Ray started for
   the run, two CPUs), each in a fresh workspace, as subprocesses: the wall time from start
   to exit, and the stage's own seconds (the summary's, without Ray's start-up). Their ratio
   is Ray's overhead.
2. The driver's apply ceiling: the ingest stage with the Ray engine's batcher replaced by
   one that answers at once with results computed beforehand (what infinitely fast workers
   would send). What is left is the driver's own work per result: storing the bytes,
   the JPEG quality read, dedup placement and one transaction per group.
3. One worker's rate: ``prepare_batch`` (fetch, decode, check, hash) as Ray tasks on a
   Ray with one CPU, batches of ``--batch`` URLs.
4. The scaling model from 2 and 3: a cluster's rate at n workers is min(n x worker rate,
   driver ceiling, driver link / bytes per image).

The machine is shared and has two cores: the server, the driver and the workers compete
for them, so every figure is a lower bound for a real cluster; runs are kept short.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import importlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ingest_speed import images, serve  # noqa: E402
from tests.imageserver import ImageServer  # noqa: E402

CLASSES = "alopecia,psoriasis,folliculitis"
LINK = 125e6  # bytes/s of a 1 Gbit/s driver link, for the model
WORKERS = (8, 32, 128)


def _curator(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-c", "from curator.cli import main; main()", "--workspace", str(ws), *args]
    return subprocess.run(cmd, capture_output=True, text=True, check=False)


def ingest_cli(urls: Path, work: Path, engine: str) -> tuple[float, float, dict[str, Any]]:
    """(wall seconds, stage seconds, summary) of one `curator ingest --engine ENGINE` in a fresh workspace."""
    ws = work / f"ws-{engine}"
    _curator(ws, "init", "bench", "--classes", CLASSES).check_returncode()
    start = time.perf_counter()
    done = _curator(ws, "--json", "ingest", str(urls), "--engine", engine,
                    "--concurrency", "256", "--per-host", "256")
    wall = time.perf_counter() - start
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    summary = json.loads(done.stdout)
    return wall, float(summary["seconds"]), summary


def precompute(urls: list[str]) -> dict[str, Any]:
    """Every URL's (Fetched, Checked | Refused), as a worker would return it, computed here."""
    from curator.config import IngestConfig
    from curator.ingest import validate
    from curator.ingest.fetch import Fetcher

    cfg = IngestConfig(concurrency=256, per_host=256)

    async def fetch_all() -> list[Any]:
        async with Fetcher(cfg) as fetcher:
            return list(await asyncio.gather(*(fetcher.fetch(u) for u in urls)))

    results = {}
    for f in asyncio.run(fetch_all()):
        results[f.url] = (f, validate.check(f.data, cfg) if f.data else validate.Refused(f.reason or "empty"))
    return results


class _Answered:
    """A stand-in for remote.Batcher whose workers are infinitely fast."""

    def __init__(self, results: dict[str, Any]) -> None:
        self.results = results
        self.in_flight = 512

    async def prepare(self, url: str) -> Any:
        return self.results[url]


def apply_ceiling(urls: list[str], work: Path) -> tuple[float, int]:
    """(results per second, bytes per image) the driver applies when every result is ready at once."""
    from curator.config import EngineConfig
    from curator.ingest import remote
    ingest_run = importlib.import_module("curator.ingest.run")  # the package's `run` is the function
    from curator.workspace import init_workspace

    results = precompute(urls)
    size = sum(len(f.data or b"") for f, _ in results.values()) // max(1, len(results))

    @contextlib.asynccontextmanager
    async def answered(engine_cfg: EngineConfig, cfg: Any) -> AsyncIterator[Any]:
        yield _Answered(results)

    ws = init_workspace(work / "ws-ceiling", "bench", CLASSES.split(","))
    ws.config = dataclasses.replace(ws.config, engine=EngineConfig(kind="ray"))
    original = remote.batcher
    remote.batcher = answered  # the benchmark's seam: the driver's side alone is measured
    try:
        start = time.perf_counter()
        summary = ingest_run.run(ws, urls, ingest_run.IngestOptions(settings=ws.config.ingest))
        seconds = time.perf_counter() - start
    finally:
        remote.batcher = original
        ws.close()
    assert summary.stored > 0 and summary.total == len(urls)
    return len(urls) / seconds, size


def worker_rate(urls: list[str], batch: int) -> float:
    """URLs per second that one Ray worker fetches, checks and hashes."""
    import ray

    from curator import engine
    from curator.config import IngestConfig
    from curator.ingest import remote

    cfg = IngestConfig(concurrency=256, per_host=256)
    with _ray(num_cpus=1):
        gate = ray.remote(num_cpus=0)(remote.HostGate).options(name="bench-hosts").remote(256, 60.0)
        job = remote.BatchJob(cfg, "bench-hosts", "bench")
        ray.get(engine.submit(remote.prepare_batch, job, urls[:4]))  # the worker process is up
        start = time.perf_counter()
        ray.get([engine.submit(remote.prepare_batch, job, urls[i : i + batch])
                 for i in range(0, len(urls), batch)])
        seconds = time.perf_counter() - start
        ray.kill(gate)
    return len(urls) / seconds


@contextlib.contextmanager
def _ray(num_cpus: int) -> Iterator[None]:
    import logging

    import ray

    with tempfile.TemporaryDirectory(prefix="ray", dir="/tmp") as temp:
        ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False, _temp_dir=temp,
                 logging_level=logging.ERROR)
        try:
            yield
        finally:
            ray.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--urls", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=64, help="URLs per Ray task ([engine] batch_size)")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "curator-bench-images-v2")
    args = parser.parse_args()
    files = images(args.cache, args.urls)
    with tempfile.TemporaryDirectory() as tmp, ImageServer() as server:
        work = Path(tmp)
        urls = serve(server, files, args.urls)
        (work / "urls.txt").write_text("\n".join(urls) + "\n")
        runs = {engine: ingest_cli(work / "urls.txt", work, engine) for engine in ("local", "ray")}
        assert runs["local"][2]["stored"] == runs["ray"][2]["stored"], "the engines disagree"
        ceiling, size = apply_ceiling(urls, work)
        per_worker = worker_rate(urls, args.batch)
    _print(args.urls, runs, ceiling, size, per_worker)


def _print(count: int, runs: dict[str, Any], ceiling: float, size: int, per_worker: float) -> None:
    (lw, ls, _), (rw, rs, _) = runs["local"], runs["ray"]
    print(f"{count} URLs, one loopback server, this 2-core machine (shared, loaded: lower bounds)")
    print(f"{'':<28}{'wall s':>8}{'stage s':>9}{'URLs/s':>9}")
    print(f"{'--engine local':<28}{lw:>8.1f}{ls:>9.1f}{count / ls:>9.0f}")
    print(f"{'--engine ray (2 CPUs)':<28}{rw:>8.1f}{rs:>9.1f}{count / rs:>9.0f}")
    print(f"Ray's overhead: x{rw / lw:.2f} wall (Ray's start-up included), x{rs / ls:.2f} stage")
    print(f"driver apply ceiling: {ceiling:.0f} results/s (precomputed results, {size / 1e3:.0f} kB each)")
    print(f"one worker (1 CPU, fetch+decode+check+hash): {per_worker:.0f} URLs/s")
    link = LINK / size
    absorbed = ceiling / per_worker
    print(f"model: one driver absorbs ~{absorbed:.0f} workers; its 1 Gbit/s link carries {link:.0f} images/s")
    for n in WORKERS:
        rate = min(n * per_worker, ceiling, link)
        bound = "workers" if rate == n * per_worker else ("driver CPU" if rate == ceiling else "driver link")
        print(f"  {n:>4} workers: {rate:>7.0f} URLs/s (bound by {bound})")


if __name__ == "__main__":
    main()
