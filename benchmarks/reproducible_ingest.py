"""Do two fresh workspaces fed the same URLs end up with the same clusters, ids and representatives?

    python benchmarks/reproducible_ingest.py              # the 2,027 URLs of ingest_speed.py
    python benchmarks/reproducible_ingest.py --urls 400

The URLs are ingest_speed.py's (1,000 photos, each with one near copy, listed after
it, plus 27 repeated bytes), served from one loopback server. `curator ingest` runs
twice, each into a fresh workspace with ``--concurrency 256`` (so downloads and
threads finish in a different order each time), and the two catalogs are compared:
clusters as sets of members, the cluster id of every image, the representative of
every cluster, and how many representatives are the original photo (not its copy).
"""

from __future__ import annotations

import argparse
import hashlib
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from benchmarks.ingest_speed import CLASSES, images, serve  # noqa: E402
from tests.imageserver import ImageServer  # noqa: E402

CURATOR = [sys.executable, "-c", "from curator.cli import main; main()"]


def ingest(urls: Path, ws: Path) -> tuple[dict[str, int], dict[int, str]]:
    """sha256 -> cluster id, and cluster id -> representative, after one fresh ingest."""
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": True}
    init = ["init", "bench", "--classes", ",".join(CLASSES)]
    subprocess.run([*CURATOR, "--workspace", str(ws), *init], **quiet)
    subprocess.run([*CURATOR, "--workspace", str(ws), "ingest", str(urls), "--concurrency", "256",
                    "--per-host", "256"], **quiet)
    conn = sqlite3.connect(ws / "catalog.sqlite")
    try:
        members = {str(s): int(c) for s, c in conn.execute("SELECT sha256, cluster_id FROM images")}
        reps = {int(c): str(r) for c, r in conn.execute("SELECT id, representative FROM clusters")}
    finally:
        conn.close()
    return members, reps


def by_members(members: dict[str, int], reps: dict[int, str]) -> dict[frozenset[str], str]:
    clusters: dict[int, set[str]] = {}
    for sha, cid in members.items():
        clusters.setdefault(cid, set()).add(sha)
    return {frozenset(shas): reps[cid] for cid, shas in clusters.items()}


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--urls", type=int, default=2027)
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "curator-bench-images-v2")
    args = parser.parse_args()
    files = images(args.cache, args.urls)
    originals = {hashlib.sha256(f.read_bytes()).hexdigest() for f in files if f.name.endswith("-0.jpg")}
    with ImageServer() as server, tempfile.TemporaryDirectory() as tmp:
        urls = Path(tmp) / "urls.txt"
        urls.write_text("\n".join(serve(server, files, args.urls)) + "\n")
        (a_members, a_reps), (b_members, b_reps) = (ingest(urls, Path(tmp) / f"ws{i}") for i in range(2))
    a, b = by_members(a_members, a_reps), by_members(b_members, b_reps)
    multi = [shas for shas in a if len(shas) > 1]
    print(f"{len(a_members)} images, {len(multi)} clusters with copies")
    print(f"same clusters (as member sets): {set(a) == set(b)}")
    print(f"images with the same cluster id: {sum(a_members[s] == b_members.get(s) for s in a_members)}")
    print(f"clusters with copies and a different representative: {sum(a[k] != b.get(k) for k in multi)}")
    kept = sum(a[k] in originals for k in multi)
    print(f"representatives that are the original photo: {kept} of {len(multi)}")


if __name__ == "__main__":
    main()
