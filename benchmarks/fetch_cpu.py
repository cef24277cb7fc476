"""CPU that downloading costs: curator's Fetcher (aiohttp) vs plain aiohttp and httpx loops.

    python benchmarks/fetch_cpu.py              # 2,027 URLs from ingest_speed.py's images, 3 runs each
    python benchmarks/fetch_cpu.py --urls 500 --repeat 1

Why it matters: on two cores, the event loop's CPU is taken from decoding and, through
the GIL, from the catalog thread (curator/ingest/run.py). Each client runs in its own
process against one threaded server on 127.0.0.1, with 256 requests in flight, and
reads every body; its CPU (user + system, from ``wait4``) and wall time are printed.
``curator`` also checks robots.txt and X-Robots-Tag and records what it fetched, and runs
on the event loop that ingest uses (uvloop where it is installed); the others on asyncio's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

CONCURRENCY = 256
CLIENTS = ("curator", "aiohttp", "httpx")


async def _curator(urls: list[str]) -> None:
    import dataclasses

    from curator.config import IngestConfig
    from curator.ingest.fetch import Fetcher

    cfg = dataclasses.replace(IngestConfig(), concurrency=CONCURRENCY, per_host=CONCURRENCY)
    async with Fetcher(cfg) as fetcher:
        results = await asyncio.gather(*(fetcher.fetch(u) for u in urls))
    assert all(r.data for r in results), [r.reason for r in results if not r.data][:3]


async def _aiohttp(urls: list[str]) -> None:
    import aiohttp

    limit = asyncio.Semaphore(CONCURRENCY)
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def one(url: str) -> bytes:
            async with limit, session.get(url, allow_redirects=False) as resp:
                return b"".join([chunk async for chunk in resp.content.iter_chunked(1 << 16)])

        bodies = await asyncio.gather(*(one(u) for u in urls))
    assert all(bodies)


async def _httpx(urls: list[str]) -> None:
    import httpx

    # httpcore scans its whole pool for every request it queues or finishes, so one pool of
    # 256 connections costs ~13 s of CPU here; curator's httpx Fetcher used 16 clients of 16
    # connections, each request taking a token that names its client (the same here).
    per_client = 16
    limits = httpx.Limits(max_connections=per_client, max_keepalive_connections=per_client)
    clients = [httpx.AsyncClient(limits=limits, timeout=30.0) for _ in range(CONCURRENCY // per_client)]
    tokens: asyncio.Queue[httpx.AsyncClient] = asyncio.Queue()
    for i in range(CONCURRENCY):
        tokens.put_nowait(clients[i % len(clients)])

    async def one(url: str) -> bytes:
        client = await tokens.get()
        try:
            async with client.stream("GET", url) as resp:
                return b"".join([chunk async for chunk in resp.aiter_bytes()])
        finally:
            tokens.put_nowait(client)

    bodies = await asyncio.gather(*(one(u) for u in urls))
    for client in clients:
        await client.aclose()
    assert all(bodies)


def child(client: str, url_file: Path) -> None:
    from curator.ingest.fetch import loop_factory

    urls = url_file.read_text().split()
    # curator on the loop ingest uses (uvloop where installed); the others on asyncio's own.
    factory = loop_factory() if client == "curator" else None
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run({"curator": _curator, "aiohttp": _aiohttp, "httpx": _httpx}[client](urls))


def timed(client: str, url_file: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one client's process."""
    start = time.perf_counter()
    proc = subprocess.Popen([sys.executable, __file__, "--child", client, str(url_file)])
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status):
        raise SystemExit(f"{client} failed")
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--urls", type=int, default=2027)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "curator-bench-images-v2")
    parser.add_argument("--child", nargs=2, metavar=("CLIENT", "URL_FILE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], Path(args.child[1]))
        return

    import ingest_speed

    from tests.imageserver import ImageServer

    files = ingest_speed.images(args.cache, args.urls)
    runs: dict[str, list[tuple[float, float]]] = {c: [] for c in CLIENTS}
    with ImageServer() as server, tempfile.TemporaryDirectory() as tmp:
        url_file = Path(tmp) / "urls.txt"
        url_file.write_text("\n".join(ingest_speed.serve(server, files, args.urls)) + "\n")
        for _ in range(args.repeat):  # alternate, so drift hits every client alike
            for client in CLIENTS:
                runs[client].append(timed(client, url_file))
    print(f"{args.urls} URLs, {CONCURRENCY} in flight, loopback; medians of {args.repeat} runs "
          "(process start included)")
    print(f"{'client':>8} | {'wall s':>6} | {'CPU s':>6} | CPU per URL")
    for client in CLIENTS:
        wall = statistics.median(w for w, _ in runs[client])
        cpu = statistics.median(c for _, c in runs[client])
        print(f"{client:>8} | {wall:6.2f} | {cpu:6.2f} | {cpu / args.urls * 1000:.2f} ms")


if __name__ == "__main__":
    main()
