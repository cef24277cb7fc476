"""Keypress to next image painted on the label page of `curator serve`, measured inside Chromium.

Builds a workspace of N images of 1024x768 (catalog rows written directly, as ingest would
leave them), starts the real `curator serve`, opens the annotator's link in headless Chromium
(Selenium) and answers K images by keyboard. The page marks each keydown (`key-N`) and the
moment the next image is decoded, swapped in and a frame has passed (`paint-N`); the
`key-to-paint` measures between them are read back from the page. Every answer is a real
catalog event, committed before the next image is shown. Also printed: the first page load
(navigation start to the first image painted) and the server's resident memory.

    python benchmarks/serve_latency.py                        # 10,000 images, 200 answers
    python benchmarks/serve_latency.py --images 2000 --answers 100 --think 0.3

Generating 10,000 distinct 1024x768 photos takes about an hour on 2 loaded cores, so the
workspace holds --distinct different photos (default 100), each stored under many byte-distinct
copies (a JPEG comment with the copy's number): 10,000 objects, sha256s and catalog rows, each
decoded and resized by the server on its own, but only --distinct different pictures.

Targets (issue 19): median under 50 ms, p95 under 100 ms, first page load under 1 s.
The terminal prompt's figures for the same keypress are in benchmarks/label_latency.py.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from curator import catalog, store, synthetic
from curator.workspace import Workspace, init_workspace

CLASSES = ["alopecia", "psoriasis", "folliculitis"]


def curator_exe() -> str:
    beside = Path(sys.executable).with_name("curator")
    return str(beside) if beside.exists() else (shutil.which("curator") or "curator")


def with_comment(jpeg: bytes, text: str) -> bytes:
    """The same JPEG with a COM segment after SOI: other bytes, same pixels."""
    payload = text.encode()
    return jpeg[:2] + b"\xff\xfe" + (len(payload) + 2).to_bytes(2, "big") + payload + jpeg[2:]


def build_workspace(root: Path, count: int, distinct: int) -> Workspace:
    ws = init_workspace(root / "ws", "bench", CLASSES)
    photos = [synthetic.encode(synthetic.photo(1000 + i, i % 3, (1024, 768)), "JPEG", quality=90)
              for i in range(distinct)]
    conn = ws.conn
    with catalog.atomic(conn):
        for i in range(count):
            data = with_comment(photos[i % distinct], f"curator-bench-{i}")
            sha = store.put(ws.objects, data, durable=False)
            cid = conn.execute("INSERT INTO clusters (representative) VALUES (?)", (sha,)).lastrowid
            conn.execute(
                "INSERT INTO images (sha256, fingerprint, width, height, format, bytes, cluster_id,"
                " created_at) VALUES (?, ?, 1024, 768, 'JPEG', ?, ?, ?)",
                (sha, "bench" + sha, len(data), cid, catalog.utcnow()),
            )
            conn.execute(
                "INSERT INTO sources (locator, kind, outcome, sha256, added_at)"
                " VALUES (?, 'url', 'stored', ?, ?)",
                (f"https://img.example/{i}.jpg", sha, catalog.utcnow()),
            )
    return ws


def start_server(ws: Workspace) -> tuple[subprocess.Popen[str], str]:
    command = [curator_exe(), "--workspace", str(ws.root), "--json", "serve", "--annotator", "bench"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines = []
    while not lines or lines[-1].rstrip() != "}":
        line = proc.stdout.readline()
        if not line:
            raise SystemExit("curator serve exited before printing its links")
        lines.append(line)
    return proc, json.loads("".join(lines))["links"]["bench"]


def rss_mib(pid: int) -> tuple[float, float]:
    """(resident now, peak resident) of a process, in MiB."""
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def measure(link: str, answers: int, think: float) -> tuple[float, list[float]]:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or "chromium"
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900"):
        options.add_argument(arg)
    service = Service(shutil.which("chromedriver") or "chromedriver")
    driver = webdriver.Chrome(options=options, service=service)
    try:
        driver.get(link)
        WebDriverWait(driver, 60).until(
            lambda d: d.execute_script("return performance.getEntriesByName('first-image').length"))
        first = float(driver.execute_script(
            "return performance.getEntriesByName('first-image')[0].startTime"))
        body = driver.find_element(By.TAG_NAME, "body")
        for k in range(answers):
            time.sleep(think)  # a person looks first; the page prefetches meanwhile
            before = driver.find_element(By.ID, "current").get_attribute("data-sha256")
            body.send_keys("123"[k % 3])
            WebDriverWait(driver, 60).until(
                lambda d, b=before: d.find_element(By.ID, "current").get_attribute("data-sha256") != b)
        WebDriverWait(driver, 60).until(
            lambda d: d.execute_script("return performance.getEntriesByName('key-to-paint').length")
            >= answers)
        durations = driver.execute_script(
            "return performance.getEntriesByName('key-to-paint').map(e => e.duration)")
        return first, [float(d) for d in durations]
    finally:
        driver.quit()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000)
    parser.add_argument("--distinct", type=int, default=100, help="different photos among them")
    parser.add_argument("--answers", type=int, default=200, help="images answered by keyboard")
    parser.add_argument("--think", type=float, default=0.3, help="seconds before each keypress")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="curator-serve-bench-") as tmp:
        start = time.perf_counter()
        ws = build_workspace(Path(tmp), args.images, min(args.distinct, args.images))
        ws.close()
        built = time.perf_counter() - start
        proc, link = start_server(ws)
        try:
            idle = rss_mib(proc.pid)
            first, lat = measure(link, args.answers, args.think)
            after = rss_mib(proc.pid)
        finally:
            proc.terminate()
            proc.wait(timeout=60)
            if proc.stdout is not None:
                proc.stdout.close()
    lat.sort()
    p95 = lat[int(0.95 * (len(lat) - 1))]
    print(f"curator serve, label page in headless Chromium: {args.images} images of 1024x768 "
          f"({args.distinct} distinct photos), {len(lat)} answers, think {args.think}s "
          f"(workspace built in {built:.0f} s)")
    print(f"{'measure':<36}{'curator serve':>16}{'target':>12}")
    print(f"{'keypress -> painted, median':<36}{statistics.median(lat):>13.1f} ms{'< 50 ms':>12}")
    print(f"{'keypress -> painted, p95':<36}{p95:>13.1f} ms{'< 100 ms':>12}")
    print(f"{'keypress -> painted, max':<36}{lat[-1]:>13.1f} ms{'':>12}")
    print(f"{'first page load (to first image)':<36}{first:>13.1f} ms{'< 1000 ms':>12}")
    print(f"{'server RSS after start':<36}{idle[0]:>12.0f} MiB")
    print(f"{'server RSS after answers (peak)':<36}{after[0]:>12.0f} MiB ({after[1]:.0f})")


if __name__ == "__main__":
    main()
