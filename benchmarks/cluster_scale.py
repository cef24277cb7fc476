"""Near-duplicate clustering at scale: 100k to 10M stored 64-bit hashes, every planted pair found.

Synthetic uniform random 64-bit hashes (the worst case for an index: no structure)
with planted near pairs at distances 1..threshold. Clusters them with the same
HashIndex self-join that ``dedup.recluster`` uses (one phash per image, radius =
dedup.threshold) plus union-find, and checks that every planted pair is found and
that no pair beyond the radius is reported. Up to 200k it also runs the named peer,
a numpy brute-force all-pairs join (blocks of XOR + popcount), side by side; with
``--faiss`` (faiss-cpu installed), up to 1M, faiss's multi-index hashing
(IndexBinaryMultiHash: 3 tables of 21 bits, 2 bit flips, which covers radius 8).

    python benchmarks/cluster_scale.py [--sizes 100000,1000000] [--threshold 8] [--no-brute]
    python benchmarks/cluster_scale.py --sizes 10000000 --no-brute --workers 2

The index probes with numba's compiled loop where numba is installed (the ``fast`` extra),
else with numpy's steps; ``--numpy`` times numpy's steps either way. The first line says
which ran.

The search shards by queries: ``--workers N`` forks N processes that share the one index
(built first) and each search a slice of the hashes; ``--part i/k`` searches only the
i-th of k parts, one machine's share when k machines each hold a copy of the index, so
``--sizes 10000000 --part 0/20`` times a twentieth of a 10M run (its planted pairs whose
smaller index lies in that part are checked). Seconds, CPU seconds (on a shared machine
the steadier figure) and peak RSS (this process + the largest search process) are printed.

``--views`` times the search recluster and audit run (dedup.near_pairs): each image's 8
flips and quarter turns (hashing.DIHEDRAL) against every searched view of every image
(hashing.NAMES less the centres) at ``dedup.candidate_threshold``; the candidates it
yields then go to the keypoint check, which is not timed here.

    python benchmarks/cluster_scale.py --views --sizes 20000,100000
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import time
from functools import partial

import numpy as np

from curator import dedup
from curator.config import DedupConfig
from curator.hashing import HashIndex


def planted(n: int, pairs: int, threshold: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    values = rng.integers(0, 2**64 - 1, size=n, dtype=np.uint64, endpoint=True)
    picks = rng.choice(n, size=2 * pairs, replace=False).reshape(pairs, 2)
    for a, b in picks:
        bits = rng.choice(64, size=int(rng.integers(1, threshold + 1)), replace=False)
        values[b] = values[a] ^ np.uint64(sum(1 << int(x) for x in bits))
    return values, picks


# What the forked search processes read (set before they fork, shared copy-on-write).
_shared: dict[str, object] = {}


def index_pairs(
    values: np.ndarray,
    threshold: int,
    workers: int = 1,
    part: tuple[int, int] = (0, 1),
    compiled: bool = True,
) -> set[tuple[int, int]]:
    """Every pair within ``threshold``: one HashIndex of all values, its queries in slices
    searched by ``workers`` forked processes sharing the index (the way the search shards:
    the index is small and copied to every worker, the queries are split between them).
    ``part`` (i, k): only the i-th of k equal parts of the queries, so only the pairs whose
    smaller index lies in it (one machine's share of a k-way sharded run)."""
    index = HashIndex(compiled)
    index.extend(values, np.arange(len(values)), np.zeros(len(values)))
    chunks = index.prepare(len(values), threshold)
    _shared.update(index=index, values=values, threshold=threshold, chunks=chunks)
    first, last = (len(values) * p // part[1] for p in (part[0], part[0] + 1))
    # One slice per worker: the more queries one search has, the closer together its probes
    # fall in the chunk tables (at 10M hashes, 2.5M queries a search cost half the CPU per
    # query of 625k).
    step = -(-(last - first) // workers)
    slices = [(start, min(start + step, last)) for start in range(first, last, step)]
    if workers == 1:
        found = [_search_slice(s) for s in slices]
    else:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            found = pool.map(_search_slice, slices)
    qi = np.concatenate([q for q, _ in found])
    ei = np.concatenate([e for _, e in found])
    return set(zip(qi.tolist(), ei.tolist(), strict=True))


def _search_slice(bounds: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    start, stop = bounds
    index, values = _shared["index"], _shared["values"]
    assert isinstance(index, HashIndex) and isinstance(values, np.ndarray)
    qi, ei, _ = index.search(values[start:stop], int(_shared["threshold"]), chunks=int(_shared["chunks"]))
    qi = qi + start
    keep = qi < ei
    return qi[keep], ei[keep]


def cpu_seconds() -> float:
    """CPU time of this process and its finished children: on a shared machine, the figure
    that does not depend on what else runs."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def peak_mb() -> tuple[float, float]:
    """Peak RSS (MB) of this process and of the largest of its finished children (Linux: KB)."""
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def brute_pairs(values: np.ndarray, threshold: int) -> set[tuple[int, int]]:
    found: set[tuple[int, int]] = set()
    step = max(1, 20_000_000 // len(values))
    for start in range(0, len(values), step):
        block = values[start : start + step]
        dist = np.bitwise_count(block[:, None] ^ values[None, :])
        qi, ei = np.nonzero(dist <= threshold)
        qi = qi + start
        keep = qi < ei
        found.update(zip(qi[keep].tolist(), ei[keep].tolist(), strict=True))
    return found


def faiss_pairs(values: np.ndarray, threshold: int) -> set[tuple[int, int]]:
    import faiss

    if threshold > 8:
        raise SystemExit("--faiss covers a threshold up to 8")
    codes = values.view(np.uint8).reshape(len(values), 8)
    index = faiss.IndexBinaryMultiHash(64, 3, 21)  # 3 x 21 bits: one within 2 bits up to 8 apart
    index.nflip = 2
    index.add(codes)
    lims, _, ids = index.range_search(codes, threshold + 1)  # finds distances below the radius
    qi = np.repeat(np.arange(len(values)), np.diff(lims).astype(np.int64))
    keep = qi < ids
    return set(zip(qi[keep].tolist(), ids[keep].tolist(), strict=True))


def clusters(n: int, pairs: set[tuple[int, int]]) -> int:
    sets, merged = dedup.DisjointSets(n), 0
    for a, b in pairs:
        if sets.find(a) != sets.find(b):
            sets.union(a, b)
            merged += 1
    return n - merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--threshold", type=int, default=DedupConfig().threshold)
    parser.add_argument("--pairs", type=int, default=1000, help="planted near pairs per size")
    parser.add_argument("--no-brute", action="store_true", help="skip the brute-force peer")
    parser.add_argument("--views", action="store_true", help="time the view search instead")
    parser.add_argument("--workers", type=int, default=1, help="search processes sharing one index")
    parser.add_argument("--part", default="0/1", help="i/k: search only the i-th of k parts of the queries")
    parser.add_argument("--numpy", action="store_true", help="probe with numpy even where numba is installed")
    parser.add_argument("--faiss", action="store_true", help="also run faiss's multi-hash index (to 1M)")
    args = parser.parse_args()
    if args.views:
        return views(args)
    probes = "numba" if HashIndex(compiled=not args.numpy).compiled else "numpy"
    print(f"threshold={args.threshold} planted pairs={args.pairs} cpu={os.cpu_count()} "
          f"workers={args.workers} queries part {args.part} probes {probes} "
          f"load average {open('/proc/loadavg').read().split()[:3]}")
    header = ("hashes", "method", "seconds", "cpu s", "pairs", "planted found", "clusters", "peak MB")
    print("{:>9s} {:>12s} {:>8s} {:>7s} {:>7s} {:>14s} {:>9s} {:>13s}".format(*header))
    for n in (int(s) for s in args.sizes.split(",")):
        values, picks = planted(n, args.pairs, args.threshold, seed=n)
        want = {(min(int(a), int(b)), max(int(a), int(b))) for a, b in picks}
        i, k = (int(x) for x in args.part.split("/"))
        want = {pair for pair in want if n * i // k <= pair[0] < n * (i + 1) // k}
        search = partial(index_pairs, workers=args.workers, part=(i, k), compiled=not args.numpy)
        runs = [("multi-index", search)]
        if n <= 200_000 and not args.no_brute and args.part == "0/1":
            runs.append(("brute force", brute_pairs))
        if n <= 1_000_000 and args.faiss and args.part == "0/1":
            runs.append(("faiss", faiss_pairs))
        results = {}
        for name, method in runs:
            t0, c0 = time.perf_counter(), cpu_seconds()
            found = method(values, args.threshold)
            k = clusters(n, found)
            seconds, cpu = time.perf_counter() - t0, cpu_seconds() - c0
            results[name] = found
            hit = f"{len(want & found)}/{len(want)}"
            own, child = peak_mb()
            peak = f"{own:.0f}" + (f"+{child:.0f}" if args.workers > 1 else "")
            print(f"{n:9d} {name:>12s} {seconds:8.1f} {cpu:7.1f} {len(found):7d} {hit:>14s} {k:9d} "
                  f"{peak:>13s}")
        if any(found != results["multi-index"] for found in results.values()):
            raise SystemExit("the methods disagree")
        if not want <= results["multi-index"]:
            raise SystemExit("a planted pair was missed")


def views(args: argparse.Namespace) -> None:
    from curator import hashing

    radius = DedupConfig().candidate_threshold
    k = len(hashing.NAMES) - len(hashing.CENTRES)  # the searched views; the first 8 are DIHEDRAL
    forms = len(hashing.DIHEDRAL)
    probes = "numba" if HashIndex(compiled=not args.numpy).compiled else "numpy"
    print(f"view search: radius={radius}, {k} hashes per image, {forms} queries each, cpu={os.cpu_count()}, "
          f"probes {probes}, load average {open('/proc/loadavg').read().split()[:3]}")
    for n in (int(s) for s in args.sizes.split(",")):
        rng = np.random.default_rng(n)
        values = rng.integers(0, 2**64 - 1, size=(n, k), dtype=np.uint64, endpoint=True)
        index = HashIndex(compiled=not args.numpy)
        index.extend(values.reshape(-1), np.repeat(np.arange(n), k), np.tile(np.arange(k), n))
        t0 = time.perf_counter()
        qi, _, _ = index.search(values[:, :forms].reshape(-1), radius)
        seconds = time.perf_counter() - t0
        print(f"{n:9d} images {n * k:10d} hashes {seconds:8.1f} s {len(qi) - n * forms:8d} candidate pairs")


if __name__ == "__main__":
    main()
