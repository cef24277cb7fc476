"""HashIndex's probes: the numba-compiled loop (the ``fast`` extra) and numpy's steps find
exactly the pairs a brute-force comparison finds."""

from __future__ import annotations

import numpy as np
import pytest

from curator import hashing


def _values(seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 2**64 - 1, size=3000, dtype=np.uint64, endpoint=True)
    # Near copies at every distance up to 14, and a crowd sharing its low 24 bits (photos'
    # hashes are far from uniform), so probes find full buckets as well as empty ones.
    flips = np.array([sum(1 << int(b) for b in rng.choice(64, k, replace=False)) for k in range(15)] * 20)
    near = base[: len(flips)] ^ flips.astype(np.uint64)
    crowd = (base[:200] & ~np.uint64(0xFFFFFF)) | np.uint64(0xABCDEF)
    return np.concatenate([base, near, crowd])


def _brute(queries: np.ndarray, values: np.ndarray, radius: int) -> list[tuple[int, int, int]]:
    dist = np.bitwise_count(queries[:, None] ^ values[None, :])
    qi, ei = np.nonzero(dist <= radius)
    return list(zip(qi.tolist(), ei.tolist(), dist[qi, ei].tolist(), strict=True))


def _search(
    values: np.ndarray, queries: np.ndarray, radius: int, chunks: int, compiled: bool
) -> list[tuple[int, int, int]]:
    """(query, entry, distance) found, sorted: each pair once, so a repeat would show."""
    index = hashing.HashIndex(compiled)
    split = len(values) - 100  # most entries in the chunk tables, the rest in the scanned tail
    index.extend(values[:split], np.arange(split), np.zeros(split))
    index.prepare(len(queries), radius)  # folds: the tables hold the first part
    index.extend(values[split:], np.arange(split, len(values)), np.zeros(len(values) - split))
    return sorted(zip(*(col.tolist() for col in index.search(queries, radius, chunks=chunks)), strict=True))


@pytest.mark.parametrize("compiled", [True, False], ids=["numba", "numpy"])
@pytest.mark.parametrize(("radius", "chunks"), [(0, 3), (5, 3), (8, 3), (8, 4), (12, 5), (14, 8)])
def test_probes_find_what_brute_force_finds(compiled: bool, radius: int, chunks: int) -> None:
    if compiled:
        pytest.importorskip("numba")
        assert hashing._compiled_probe() is not None
    values = _values(radius)
    queries = np.concatenate([values[::7], values[3000:3020] ^ np.uint64(1 << 40)])
    got = _search(values, queries, radius, chunks, compiled)
    assert got == _brute(queries, values, radius)
    assert radius == 0 or max(d for _, _, d in got) > 0  # not only each stored query finding itself


def test_numpy_steps_find_the_same_in_small_steps(monkeypatch) -> None:
    """Without numba (compiled=False), probes and expansions go a bounded number at a time; the steps'
    boundaries (here every 7 probes and 5 entries) must not lose or repeat a pair."""
    values = _values(1)
    queries = values[::60]
    want = _brute(queries, values, 9)
    monkeypatch.setattr(hashing, "_PROBES", 7)
    monkeypatch.setattr(hashing, "_EXPAND", 5)
    assert _search(values, queries, 9, 4, compiled=False) == want


def test_folding_the_tail_keeps_the_tables_a_fresh_build_makes(monkeypatch) -> None:
    """Entries added after a search are merged into the cached chunk tables (hashing._merged),
    in many folds, and the tables are then exactly those of one build of every entry."""
    monkeypatch.setattr(hashing, "_FOLD_NS_PER_ENTRY", 0.0)  # folds cost nothing: every search folds
    monkeypatch.setattr(hashing, "_FOLD_NS_PER_SLOT", 0.0)
    values = _values(3)
    index = hashing.HashIndex()
    index.extend(values[:1000], np.arange(1000), np.zeros(1000))
    chunks = index.prepare(len(values), 8)
    folds = 0
    for start in range(1000, len(values), 333):
        part = values[start : start + 333]
        index.extend(part, np.arange(start, start + len(part)), np.zeros(len(part)))
        if start % 999 == 1:  # a search every third part: each folds the tail it finds
            folded = index._folded
            index.search(values[:5], 8, chunks=chunks)
            folds += index._folded > folded
    assert folds >= 3 and index._folded > 3000
    folded = values[: index._folded]
    for got, want in zip(index._tables[chunks], hashing._build_tables(folded, chunks), strict=True):
        for name in ("order", "values", "starts"):
            assert np.array_equal(getattr(got, name), getattr(want, name)), name
    queries = values[::11]
    found = sorted(zip(*(col.tolist() for col in index.search(queries, 8, chunks=chunks)), strict=True))
    assert found == _brute(queries, values, 8)


def test_the_tail_is_folded_once_its_scans_have_cost_what_a_fold_costs() -> None:
    """Rent or buy: a search scans the tail until the scans so far would have paid for a fold."""
    values = _values(3)
    index = hashing.HashIndex()
    index.extend(values[:3000], np.arange(3000), np.zeros(3000))
    index.search(values[:1], 8, chunks=4)  # the first search folds everything and builds m = 4
    index.extend(values[3000:3100], np.arange(3000, 3100), np.zeros(100))
    per_query = 100 * hashing._SCAN_NS_PER_PAIR  # one query against the 100-entry tail
    affordable = int(index._fold_price() // per_query) - 1
    index.search(np.resize(values[:3000], affordable), 8, chunks=4)
    assert index._folded == 3000  # scanned: cheaper than a fold so far
    found = sorted(zip(*(col.tolist() for col in index.search(values[:50], 8, chunks=4)), strict=True))
    assert index._folded == 3100  # the scans now add up to the fold's price: folded
    assert found == _brute(values[:50], values[:3100], 8)


def test_the_compiled_loop_is_loaded_once_numpy_probes_would_have_paid_for_it(monkeypatch) -> None:
    """An index probes with numpy's steps (rent) until their estimated cost reaches loading the
    compiled loop (buy): a small catalog's ingest never pays for importing numba."""
    pytest.importorskip("numba")
    hashing._compiled_probe.cache_clear()  # as in a fresh process: not loaded yet
    values = _values(2)
    queries = values[::7]
    index = hashing.HashIndex()
    index.extend(values, np.arange(len(values)), np.zeros(len(values)))
    monkeypatch.setattr(hashing, "_LOAD_COST", 2.5 * hashing._cost(len(values), len(queries), 8, 4))
    want = _brute(queries, values, 8)
    for loaded in (False, False, True):
        got = sorted(zip(*(col.tolist() for col in index.search(queries, 8, chunks=4)), strict=True))
        assert got == want
        assert (hashing._compiled_probe.cache_info().currsize > 0) == loaded
