"""Table ingest: parse and plan a generated 100,000-row CSV (target: under 5 s), side by side
with the same rows as a tab-separated URL list (URL, hint, group).

    python benchmarks/table_ingest.py                 # 100,000 rows, median of 5 runs
    python benchmarks/table_ingest.py --rows 20000 --runs 3

The CSV has Fitzpatrick17k's shape (url, label, fitzpatrick_scale, md5hash, license,
case_id) plus dx_type and site, mapped as in README "Tables and Hub datasets as sources".
"Parse" is reading the file into sources (curator.ingest.tables.read_table /
curator.ingest.read_argument); "plan" is what a run decides before its first request, on
a fresh workspace: the catalog's finished sources, each source's input position and
whether it is wanted (curator.ingest.run). Nothing is fetched.
"""

from __future__ import annotations

import argparse
import csv
import importlib
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from curator.ingest import read_argument, tables  # noqa: E402
from curator.workspace import init_workspace  # noqa: E402

ingest_run = importlib.import_module("curator.ingest.run")  # the package's `run` is the function
MAPPING = {"locator": "url", "hint": "label", "group": "case_id", "licence": "license",
           "diagnosis": "dx_type", "body_site": "site"}
LABELS = ["alopecia", "psoriasis", "folliculitis"]


def write_inputs(folder: Path, rows: int) -> tuple[Path, Path]:
    table, listing = folder / "fitzpatrick.csv", folder / "urls.txt"
    with table.open("w", newline="") as fh, listing.open("w") as lst:
        out = csv.writer(fh)
        out.writerow(["url", "label", "fitzpatrick_scale", "md5hash", "license", "case_id", "dx_type",
                      "site"])
        for i in range(rows):
            url = f"https://atlas{i % 50}.example/derm/images/{i:07d}.jpg"
            label, case = LABELS[i % 3], f"case-{i // 3:06d}"
            out.writerow([url, label, 1 + i % 6, f"{i:032x}", "cc-by-nc-3.0" if i % 2 else "",
                          case, ("histo", "clinical")[i % 2], "scalp"])
            lst.write(f"{url}\t{label}\t{case}\n")
    return table, listing


def plan(ws: object, sources: list) -> int:
    """The pre-fetch decisions of curator.ingest.run: finished sources, positions, wanted ones."""
    state = ingest_run._Run(ws, ingest_run.IngestOptions(), lambda n: None)
    try:
        done = state._done_sources()
        state._input_positions(sources)
        seen: set[str] = set()
        wanted = 0
        for src in sources:
            if src.locator not in seen and state._wanted(src, done):
                seen.add(src.locator)
                wanted += 1
        return wanted
    finally:
        state.pool.shutdown()
        state.writer.shutdown()
        state.syncer.shutdown()


def timed(parse: object, ws: object) -> tuple[float, float, int]:
    started = time.perf_counter()
    sources = parse()  # type: ignore[operator]
    parsed = time.perf_counter()
    wanted = plan(ws, sources)
    return parsed - started, time.perf_counter() - parsed, wanted


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        table, listing = write_inputs(folder, args.rows)
        ws = init_workspace(folder / "ws", "bench", LABELS)
        inputs = {
            "table (.csv, 6 mapped columns)": lambda: tables.read_table(table, MAPPING),
            "URL list (.txt, url/hint/group)": lambda: read_argument(str(listing)),
        }
        print(f"{args.rows:,} rows, median of {args.runs} runs (seconds)")
        print(f"{'input':34} {'parse':>7} {'plan':>7} {'total':>7}  wanted")
        for name, parse in inputs.items():
            results = [timed(parse, ws) for _ in range(args.runs)]
            p = statistics.median(r[0] for r in results)
            q = statistics.median(r[1] for r in results)
            t = statistics.median(r[0] + r[1] for r in results)
            print(f"{name:34} {p:7.2f} {q:7.2f} {t:7.2f}  {results[0][2]:,}")
        ws.close()
        print("target: table parse + plan under 5 s")


if __name__ == "__main__":
    main()
