"""Ingest at scale: distinct photos stay apart, planted copies are found, throughput holds.

``--images`` distinct photo-like JPEGs (480x360: smooth lighting, blobs, a random
multi-scale texture and grain; distinct seeds, so no two are copies) plus, for every
``--copy-every``-th one, a near copy under one of benchmarks/dedup_quality.py's
transforms in turn (every flip and quarter turn, rotations of 3-25 degrees in each fill,
brightness, contrast, hue, crops, combinations, re-encodes), all served on loopback in a
shuffled order and ingested by `curator ingest`'s own run (a child process) with
concurrency 64. Printed: throughput per tenth of the run (the last tenth should keep
at least 80% of the first), merges of distinct photos (should be 0), recall of the
planted copies per transform family, peak RSS of the ingest; then the time and peak RSS
of `curator dups --threshold 10` on that workspace.

    python benchmarks/ingest_scale.py [--images 20000] [--copy-every 50] [--seed 7]

The images are generated once into ``--cache`` (in parallel) and read from there later.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.dedup_quality import FAMILIES, TRANSFORMS  # noqa: E402
from benchmarks.ingest_speed import timed  # noqa: E402
from tests.imageserver import ImageServer, Reply  # noqa: E402

SIZE = (480, 360)


def make_one(job: tuple[Path, int, int, str | None]) -> None:
    from benchmarks.dedup_quality import encode, transformed
    from curator import synthetic

    cache, k, seed, transform = job
    img = synthetic.textured(seed * 1_000_003 + k, SIZE)
    original = encode(img, quality=90)
    (cache / f"o{k:05d}.jpg").write_bytes(original)
    if transform is not None:
        data = transformed(img, transform, original, random.Random(seed * 7 + k))
        (cache / f"c{k:05d}-{transform}.jpg").write_bytes(data)
    (cache / f"done{k:05d}").touch()


def images(cache: Path, count: int, copy_every: int, seed: int) -> list[tuple[Path, int, str | None]]:
    """(file, original index, transform or None) for every image, generated once."""
    cache.mkdir(parents=True, exist_ok=True)
    plan = {k: TRANSFORMS[(k // copy_every) % len(TRANSFORMS)] if k % copy_every == 0 else None
            for k in range(count)}
    missing = [(cache, k, seed, plan[k]) for k in range(count) if not (cache / f"done{k:05d}").exists()]
    if missing:
        print(f"generating {len(missing)} images into {cache} (once)...", file=sys.stderr)
        with ProcessPoolExecutor(os.cpu_count() or 2) as pool:
            list(pool.map(make_one, missing, chunksize=64))
    files: list[tuple[Path, int, str | None]] = []
    for k, transform in plan.items():
        files.append((cache / f"o{k:05d}.jpg", k, None))
        if transform is not None:
            files.append((cache / f"c{k:05d}-{transform}.jpg", k, transform))
    return files


def child(ws_path: str, urls_path: str, out_path: str) -> None:
    """Run in a child process: ingest every URL, record when each source finished."""
    from curator.ingest.run import IngestOptions, run
    from curator.workspace import open_workspace

    ws = open_workspace(ws_path)
    lines = Path(urls_path).read_text().split()
    times: list[float] = []
    options = IngestOptions.from_config(ws.config.ingest, concurrency=64, per_host=64)
    start = time.monotonic()
    summary = run(ws, lines, options, on_progress=lambda n: times.append(time.monotonic() - start))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = {"times": times, "peak": usage.ru_maxrss * 1024, "cpu": usage.ru_utime + usage.ru_stime,
              "summary": summary.as_dict()}
    Path(out_path).write_text(json.dumps(report))


def tenths(times: list[float]) -> list[float]:
    """Images per second over each tenth of the sources, in completion order."""
    n = len(times)
    cuts = [round(n * i / 10) for i in range(11)]
    rates = []
    for a, b in zip(cuts, cuts[1:], strict=False):
        start = times[a - 1] if a else 0.0
        rates.append((b - a) / max(times[b - 1] - start, 1e-9))
    return rates


def score(catalog_path: Path, origin: dict[str, tuple[int, str | None]]) -> tuple[int, dict[str, list[int]]]:
    """(distinct photos merged into another's cluster, per family [found, planted])."""
    conn = sqlite3.connect(catalog_path)
    rows = conn.execute(
        "SELECT s.locator, i.cluster_id FROM sources s JOIN images i ON i.sha256 = s.sha256"
    ).fetchall()
    conn.close()
    cluster_of = {locator: cid for locator, cid in rows}
    originals_in: dict[int, set[int]] = defaultdict(set)
    original_cluster: dict[int, int] = {}
    for locator, (k, transform) in origin.items():
        if transform is None and locator in cluster_of:
            originals_in[cluster_of[locator]].add(k)
            original_cluster[k] = cluster_of[locator]
    merged = sum(len(ks) - 1 for ks in originals_in.values())
    family_of = {name: family for family, (members, _) in FAMILIES.items() for name in members}
    recall: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for locator, (k, transform) in origin.items():
        if transform is not None:
            found = cluster_of.get(locator) == original_cluster.get(k)
            recall[family_of[transform]][0] += int(found)
            recall[family_of[transform]][1] += 1
    return merged, recall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20_000, help="distinct photos")
    parser.add_argument("--copy-every", type=int, default=50, help="one planted copy per this many photos")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "curator-scale-images-v1")
    parser.add_argument("--profile", type=Path,
                        help="record the ingest with py-spy into this SVG (or .txt: collapsed stacks)")
    parser.add_argument("--no-dups", action="store_true", help="skip `curator dups --threshold 10`")
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)
    files = images(args.cache / f"seed{args.seed}", args.images, args.copy_every, args.seed)
    random.Random(args.seed).shuffle(files)
    curator = [sys.executable, "-c", "from curator.cli import main; main()"]
    with tempfile.TemporaryDirectory(prefix="curator-scale-") as tmp, ImageServer() as server:
        work = Path(tmp)
        server.route("/robots.txt", Reply(body=b"User-agent: *\nAllow: /\n", content_type="text/plain"))
        origin = {}
        for i, (path, k, transform) in enumerate(files):
            origin[server.route(f"/img/{i}.jpg", Reply(body=path.read_bytes()))] = (k, transform)
        urls = work / "urls.txt"
        urls.write_text("\n".join(origin) + "\n")
        ws = work / "ws"
        subprocess.run([*curator, "--workspace", str(ws), "init", "scale", "--classes", "a,b"],
                       check=True, stdout=subprocess.DEVNULL)
        out = work / "times.json"
        t0 = time.perf_counter()
        raw = ["--format", "raw"] if args.profile and args.profile.suffix == ".txt" else []
        spy = ["py-spy", "record", "--nonblocking", "--threads", *raw, "-o", str(args.profile), "--"]
        spy = spy if args.profile else []
        subprocess.run([*spy, sys.executable, __file__, "--child", str(ws), str(urls), str(out)], check=True)
        wall = time.perf_counter() - t0
        report = json.loads(out.read_text())
        merged, recall = score(ws / "catalog.sqlite", origin)
        rates = tenths(report["times"])
        planted = sum(r[1] for r in recall.values())
        found = sum(r[0] for r in recall.values())
        print(f"{args.images} distinct photos + {planted} planted copies ({len(files)} URLs), loopback, "
              f"cpu={os.cpu_count()}, load average {Path('/proc/loadavg').read_text().split()[:3]}")
        print(f"ingest: {wall:.1f} s wall, {report.get('cpu', 0):.1f} s CPU, "
              f"{report['summary']['per_second']} sources/s, peak RSS {report['peak'] / 2**20:.0f} MB")
        print("throughput per tenth (images/s): " + " ".join(f"{r:.0f}" for r in rates)
              + f"; last/first {rates[-1] / rates[0]:.2f} (target >= 0.80)")
        print(f"distinct photos merged: {merged} (target 0); planted copies found: {found}/{planted}")
        for family, (hit, total) in sorted(recall.items()):
            print(f"  {family:14s} {hit:4d}/{total:<4d} {hit / total:.3f}")
        if args.no_dups:
            return
        seconds, code, largest, _tree = timed([*curator, "--workspace", str(ws), "--json", "dups",
                                               "--threshold", "10"], work)
        print(f"curator dups --threshold 10: {seconds:.1f} s, peak RSS {largest / 2**20:.0f} MB, exit {code} "
              "(targets < 120 s, < 1024 MB)")
        merged10, recall10 = score(ws / "catalog.sqlite", origin)
        found10 = sum(r[0] for r in recall10.values())
        print(f"after dups --threshold 10: distinct photos merged {merged10}, "
              f"planted found {found10}/{planted}")
        print(f"load average after: {Path('/proc/loadavg').read_text().split()[:3]}")


if __name__ == "__main__":
    main()
