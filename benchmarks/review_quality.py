"""Review quality and speed: per kind precision and recall at the default `[review]` thresholds.

The planted set (nothing is downloaded): generated scalp photos (curator.synthetic, 640x480)
as the clean dataset; other photos
(generated, distinct) made blurred, dark, bright (washed out), tiny, near-uniform,
greyscale or cut to a strip; what an image is by construction (small, a strip, grey) counts
as true for its kind whether planted or not;
faces: scikit-image's astronaut and its crops (whole face, mirrored, perspective-warped as a
crude head turn, half faces, eye band, one eye, upper half), the astronaut's face pasted onto
scalp photos, partly off the edge too, and faces of scikit-image's LFW subset enlarged into
scalp photos; recall is printed per crop kind. No true profile is among them: no photo shipped
offline shows one, so recall on profiles is not measured;
off-topic: scikit-image's other photos. Every image is stored in a temporary workspace and
goes through the real `curator review --run` path (curator.review.run: decode, checks,
catalog). Clean photos flagged for anything are counted.

Label issues: out-of-fold probabilities from a small softmax regression on the off-topic
features (5-fold), trained on labels flipped at 5%, 10% and 20%; recall of the flips within
the top K (K = number of flips), beside a random ranking's expectation (K / n).

Speed: per-check CPU cost per 640x480 JPEG on one thread, and all checks as a run does them (in
chunks, check by check) and image by image; the whole `review --run` on the same generated photos,
median of --speed-runs (wall images/s, and CPU ms per image, which a loaded machine inflates less),
beside cleanvision's quality checks on the same files where cleanvision is installed (it is not
a dependency); ranking 10,000 images' label issues; and keypress to the next finding in the
real `curator review` prompt (a pseudo-terminal, each keypress a committed decision).

    python benchmarks/review_quality.py [--clean 120] [--label-images 600] [--speed-images 300]
        [--speed-runs 3] [--only planted|labels|speed|prompt ...]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np
from PIL import Image, ImageFilter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from curator import catalog, store, synthetic  # noqa: E402
from curator.config import ReviewConfig  # noqa: E402
from curator.review import findings, labelissues, offtopic, privacy, quality  # noqa: E402
from curator.review import run as review_run  # noqa: E402
from curator.workspace import init_workspace  # noqa: E402

OFFTOPIC_PHOTOS = ("coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry", "colorwheel",
                   "retina", "camera", "coins", "grass", "gravel", "brick", "text", "page", "moon")
QUALITY = ("blur", "dark", "bright", "low-resolution", "low-information", "greyscale", "odd-aspect")
SIZE = (640, 480)
CLASSES = ["alopecia", "psoriasis", "folliculitis"]
PARTS = ("planted", "labels", "speed", "prompt")


def skimage_photo(name: str) -> np.ndarray:
    from skimage import data

    img = getattr(data, name)()
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return np.ascontiguousarray(img[..., :3]).astype(np.uint8)


def fit(img: np.ndarray, size: tuple[int, int] = SIZE) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize(size, Image.Resampling.LANCZOS))


def plant(kind: str, base: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = Image.fromarray(base)
    if kind == "blur":
        return np.asarray(img.filter(ImageFilter.GaussianBlur(radius=img.width / 160)))
    if kind == "dark":
        return (base * 0.2).astype(np.uint8)
    if kind == "bright":
        return (base * 0.3 + 0.7 * 255).astype(np.uint8)
    if kind == "low-resolution":
        return np.asarray(img.resize((160, 120), Image.Resampling.LANCZOS))
    if kind == "low-information":
        mean = base.reshape(-1, 3).mean(axis=0)
        return np.clip(mean + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)
    if kind == "greyscale":
        return np.repeat(np.asarray(img.convert("L"))[..., None], 3, axis=2)
    if kind == "odd-aspect":
        return base[base.shape[0] // 2 - 70 : base.shape[0] // 2 + 70]  # 640x140 strip
    raise ValueError(kind)


def turned(img: np.ndarray, left: bool) -> np.ndarray:
    """``img`` with one side shrunk to 60% of its height: a crude head turn (not a true profile)."""
    import cv2

    height, width = img.shape[:2]
    inset = height * 0.2
    corners = np.float32([[0, 0], [width, 0], [width, height], [0, height]])
    moved = corners.copy()
    moved[[0, 3] if left else [1, 2], 1] += [inset, -inset]
    warp = cv2.getPerspectiveTransform(corners, moved)
    return cv2.warpPerspective(img, warp, (width, height), borderMode=cv2.BORDER_REFLECT)


def paste(photo_seed: int, face: Image.Image, size: tuple[int, int], where: tuple[int, int]) -> np.ndarray:
    photo = synthetic.photo(photo_seed, photo_seed % 3, SIZE)
    photo.paste(face.resize(size), where)
    return np.asarray(photo)


def faces(rng: np.random.Generator) -> dict[str, list[np.ndarray]]:
    """Privacy positives by crop kind: scikit-image's astronaut (one frontal face) cut, mirrored
    and warped, and 20 of the 100 faces of its LFW subset (25x25 grey, many people and poses)
    enlarged into scalp photos."""
    from skimage import data

    astro = skimage_photo("astronaut")
    face = astro[40:230, 140:310]
    head = astro[0:300, 80:380]
    crops = {
        "frontal": [astro, face],
        "mirrored": [np.ascontiguousarray(astro[:, ::-1]), np.ascontiguousarray(face[:, ::-1])],
        "turned (warped)": [turned(face, True), turned(face, False), turned(head, True), turned(head, False)],
        "half face": [astro[60:220, 150:225], astro[60:220, 225:300]],
        "upper half": [astro[60:140, 160:300]],
        "eye band": [astro[100:150, 170:290]],
        "one eye": [astro[100:145, 180:235], astro[100:145, 230:285]],
        "pasted": [],
        "pasted at edge": [],
        "LFW face pasted": [],
    }
    whole = Image.fromarray(face)
    for seed in range(6):
        where = (int(rng.integers(20, 500)), int(rng.integers(20, 330)))
        crops["pasted"].append(paste(9000 + seed, whole, (114, 128), where))
        # Half of the face off the right edge.
        edge = (SIZE[0] - 114, int(rng.integers(0, 200)))
        crops["pasted at edge"].append(paste(9100 + seed, whole, (228, 256), edge))
    lfw = data.lfw_subset()[:100]  # the first 100 are faces, the rest are not
    for index in range(0, 100, 5):
        grey = Image.fromarray((lfw[index] * 255).astype(np.uint8)).convert("RGB")
        side = int(rng.integers(100, 200))
        where = (int(rng.integers(0, SIZE[0] - side)), int(rng.integers(0, SIZE[1] - side)))
        crops["LFW face pasted"].append(paste(9200 + index, grey, (side, side), where))
    return crops


def facts(img: np.ndarray) -> set[str]:
    """What an image is by construction, planted or not: small, a strip, without colour."""
    height, width = img.shape[:2]
    found = set()
    if min(height, width) < ReviewConfig().min_side:
        found.add("low-resolution")
    if max(height, width) / min(height, width) > ReviewConfig().max_aspect:
        found.add("odd-aspect")
    if np.ptp(img.astype(np.int16), axis=2).max() <= 2:
        found.add("greyscale")
    return found


def add_image(ws, rgb: np.ndarray) -> str:
    payload = synthetic.encode(Image.fromarray(rgb), "JPEG", quality=92)
    sha = store.put(ws.objects, payload, durable=False)
    with catalog.atomic(ws.conn):
        cid = ws.conn.execute("INSERT OR IGNORE INTO clusters (representative) VALUES (?)", (sha,)).lastrowid
        ws.conn.execute(
            "INSERT OR IGNORE INTO images (sha256, fingerprint, width, height, format, bytes, cluster_id,"
            " created_at) VALUES (?, ?, ?, ?, 'JPEG', ?, ?, ?)",
            (sha, "fp" + sha, rgb.shape[1], rgb.shape[0], len(payload), cid, catalog.utcnow()),
        )
    return sha


def quality_and_privacy(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(7)
    truth: dict[str, set[str]] = defaultdict(set)  # sha -> planted kinds
    group: dict[str, str] = {}
    with tempfile.TemporaryDirectory() as tmp:
        ws = init_workspace(Path(tmp) / "ws", "review-bench", CLASSES)
        for seed in range(args.clean):
            group[add_image(ws, np.asarray(synthetic.photo(seed, seed % 3, SIZE)))] = "clean"
        # Distinct bases: copies of one photo would be each other's neighbours, hiding it from
        # the off-topic check, so the off-topic photos are not among them.
        bases = [np.asarray(synthetic.photo(5000 + i, i % 3, SIZE)) for i in range(args.bases)]
        for kind in QUALITY:
            for base in bases:
                img = plant(kind, base, rng)
                sha = add_image(ws, img)
                truth[sha] |= {kind} | facts(img)
                group[sha] = kind
        for name, images in faces(rng).items():
            for img in images:
                sha = add_image(ws, img)
                truth[sha] |= {"privacy"} | facts(img)
                group[sha] = f"face: {name}"
        for name in OFFTOPIC_PHOTOS:
            img = fit(skimage_photo(name))
            sha = add_image(ws, img)
            truth[sha] |= {"off-topic"} | facts(img)
            group[sha] = "off-topic"
        images = len(group)
        started = time.perf_counter()
        summary = review_run.run(ws)
        seconds = time.perf_counter() - started
        found: dict[str, set[str]] = defaultdict(set)
        for item in findings.listing(ws.conn):
            kind = "privacy" if item["kind"] in ("face", "eye") else item["kind"]
            found[item["sha256"]].add(kind)
        ws.close()
    print(f"planted set: {images} images ({args.clean} clean scalp photos), review --run {seconds:.1f} s "
          f"= {images / seconds:.0f} images/s with {os.cpu_count()} threads; errors {summary.errors}")
    print(f"{'kind':<16} {'planted':>7} {'flagged':>7} {'precision':>9} {'recall':>6}")
    for kind in (*QUALITY, "privacy", "off-topic"):
        planted = {sha for sha, kinds in truth.items() if kind in kinds}
        flagged = {sha for sha, kinds in found.items() if kind in kinds}
        hit = len(planted & flagged)
        precision = hit / len(flagged) if flagged else float("nan")
        wrong = defaultdict(int)
        for sha in flagged - planted:
            wrong[group[sha]] += 1
        print(f"{kind:<16} {len(planted):>7} {len(flagged):>7} {precision:>9.2f} {hit / len(planted):>6.2f}"
              f"  {'false: ' + str(dict(wrong)) if wrong else ''}")
    print("privacy recall per crop kind:")
    for name in sorted({g for g in group.values() if g.startswith("face: ")}):
        shas = [sha for sha, g in group.items() if g == name]
        hit = sum("privacy" in found[sha] for sha in shas)
        print(f"  {name[6:]:<16} {hit}/{len(shas)}")
    clean = [sha for sha, g in group.items() if g == "clean"]
    flagged_clean = [sha for sha in clean if found[sha]]
    why = defaultdict(int)
    for sha in flagged_clean:
        for kind in found[sha]:
            why[kind] += 1
    print(f"clean photos flagged for anything: {len(flagged_clean)}/{len(clean)} "
          f"({len(flagged_clean) / len(clean):.1%}) {dict(why)}")


def out_of_fold(features: np.ndarray, labels: np.ndarray, k: int, folds: int = 5) -> np.ndarray:
    """Softmax regression (full-batch gradient descent), probabilities for each fold's held-out rows."""
    rng = np.random.default_rng(0)
    fold = rng.permutation(len(labels)) % folds
    x = (features - features.mean(axis=0)) / (features.std(axis=0) + 1e-6)
    x = np.hstack([x, np.ones((len(x), 1))])
    probs = np.zeros((len(labels), k))
    for f in range(folds):
        train, test = fold != f, fold == f
        weights = np.zeros((x.shape[1], k))
        onehot = np.eye(k)[labels[train]]
        for _ in range(300):
            logits = x[train] @ weights
            p = np.exp(logits - logits.max(axis=1, keepdims=True))
            p /= p.sum(axis=1, keepdims=True)
            weights -= 0.5 * (x[train].T @ (p - onehot) / train.sum() + 1e-3 * weights)
        logits = x[test] @ weights
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        probs[test] = p / p.sum(axis=1, keepdims=True)
    return probs


def label_issues(args: argparse.Namespace) -> None:
    n, k = args.label_images, 3
    truth = np.arange(n) % k
    features = np.stack([offtopic.features(np.asarray(synthetic.photo(20000 + i, int(truth[i]), (320, 240))))
                         for i in range(n)])
    print(f"label issues: {n} generated photos, 3 classes, out-of-fold softmax regression on colour/texture "
          "features; recall of flipped labels within the top K (K = flips)")
    for rate in (0.05, 0.10, 0.20):
        rng = np.random.default_rng(int(rate * 100))
        flips = rng.random(n) < rate
        given = truth.copy()
        given[flips] = (given[flips] + rng.integers(1, k, flips.sum())) % k
        probs = out_of_fold(features, given, k)
        accuracy = float((probs.argmax(axis=1) == truth).mean())
        line = [f"  flips {rate:.0%} (K={flips.sum()}, model accuracy vs truth {accuracy:.2f}):"]
        for ranking in labelissues.RANKINGS:
            issues = labelissues.find_issues(probs, given, ranking)
            top = [issue.index for issue in issues[: flips.sum()]]
            recall = flips[top].sum() / flips.sum()
            line.append(f"{ranking} {recall:.2f} ({len(issues)} issues)")
        line.append(f"random {flips.sum() / n:.2f}")
        print(" ".join(line))


def cpu_seconds() -> float:
    """CPU time of this process and its finished children (all threads): what a run costs
    whatever else the machine is doing."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def per_check_cost(photos: list[Image.Image], passes: int = 2) -> None:
    """CPU ms per 640x480 JPEG for each per-image check, on one thread (OpenCV's too), then all
    checks as a run does them: review_run.check_images on chunks of review_run.CHUNK images
    (reading each object), and image by image."""
    import cv2

    cfg = ReviewConfig()
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    with tempfile.TemporaryDirectory() as tmp:
        objects = Path(tmp)
        shas = [store.put(objects, synthetic.encode(p, "JPEG", quality=92), durable=False) for p in photos]
        paths = [store.object_path(objects, sha) for sha in shas]
        decoded = [review_run.decode(path) for path in paths]
        every = [*review_run.IMAGE_CHECKS, review_run.FEATURES]
        items = [(sha, every, SIZE, path) for sha, path in zip(shas, paths, strict=True)]
        chunk = review_run.CHUNK
        costs = {
            "decode (draft)": lambda i: review_run.decode(paths[i]),
            "quality": lambda i: quality.check(decoded[i], 640, 480, cfg),
            "privacy": lambda i: privacy.check(decoded[i], cfg),
            "off-topic features": lambda i: offtopic.features(decoded[i]),
            f"all, {chunk} at a time": lambda i: i % chunk or review_run.check_images(cfg, items[i:][:chunk]),
            "all, image by image": lambda i: review_run.check_images(cfg, items[i : i + 1]),
        }
        print(f"per-check cost, CPU ms per 640x480 JPEG on one thread ({len(photos)} of the end-to-end "
              f"photos x {passes}):")
        total = 0.0
        for name, work in costs.items():
            work(0)
            started = time.process_time()
            for _ in range(passes):
                for i in range(len(photos)):
                    work(i)
            ms = (time.process_time() - started) / (passes * len(photos)) * 1000
            if name.startswith("all"):
                print(f"  {name:<20} {ms:6.2f} ms = {2000 / ms:.0f} images/s on 2 cores")
            else:
                total += ms
                print(f"  {name:<20} {ms:6.2f} ms")
                if name == "off-topic features":
                    print(f"  {'sum':<20} {total:6.2f} ms = {2000 / total:.0f} images/s on 2 cores")
    cv2.setNumThreads(threads)


def end_to_end(photos: list[Image.Image], runs: int) -> None:
    """`review --run` (decode, every check, catalog writes) on generated 640x480 ``photos``, ``runs``
    times on fresh workspaces (median printed last), and cleanvision's quality checks on the same
    files where it is installed."""
    count = len(photos)
    rates, costs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for attempt in range(runs):
            ws = init_workspace(Path(tmp) / f"ws{attempt}", "review-bench", CLASSES)
            for photo in photos:
                add_image(ws, np.asarray(photo))
            cpu, started = cpu_seconds(), time.perf_counter()
            review_run.run(ws)
            wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
            ws.close()
            rates.append(count / wall)
            costs.append(cpu / count * 1000)
            print(f"  run {attempt + 1}: {rates[-1]:.0f} images/s wall (load average "
                  f"{os.getloadavg()[0]:.1f}), {costs[-1]:.1f} CPU ms per image")
        rate, cost = float(np.median(rates)), float(np.median(costs))
        print(f"review --run end to end, {count} photos, median of {runs}: {rate:.0f} images/s wall, "
              f"{cost:.1f} CPU ms per image = {2000 / cost:.0f} images/s on 2 idle cores")
        try:
            from cleanvision import Imagelab
        except ImportError:
            print("cleanvision: not installed (pip install cleanvision), not compared")
            return
        folder = Path(tmp) / "files"
        folder.mkdir()
        for index, photo in enumerate(photos):
            photo.save(folder / f"{index}.jpg", quality=92)
        kinds = {kind: {} for kind in ("dark", "light", "blurry", "low_information", "grayscale",
                                       "odd_aspect_ratio")}
        cpu, started = cpu_seconds(), time.perf_counter()
        quiet = io.StringIO()  # its progress bars and messages
        with contextlib.redirect_stdout(quiet), contextlib.redirect_stderr(quiet):
            Imagelab(data_path=str(folder)).find_issues(issue_types=kinds, n_jobs=2, verbose=False)
        wall, cpu = time.perf_counter() - started, cpu_seconds() - cpu
        print(f"cleanvision find_issues (quality kinds only, no faces), same {count} files, n_jobs=2: "
              f"{count / wall:.0f} images/s wall, {cpu / count * 1000:.1f} CPU ms per image "
              f"= {2 * count / cpu:.0f} images/s on 2 idle cores")


def speed(args: argparse.Namespace) -> None:
    photos = [synthetic.photo(30000 + seed, seed % 3, SIZE) for seed in range(args.speed_images)]
    per_check_cost(photos[:60])
    end_to_end(photos, args.speed_runs)
    rng = np.random.default_rng(0)
    probs = rng.dirichlet(np.ones(3), size=10_000)
    labels = rng.integers(0, 3, 10_000)
    started = time.perf_counter()
    labelissues.find_issues(probs, labels)
    print(f"label-issue ranking, 10,000 images x 3 classes: {(time.perf_counter() - started) * 1000:.1f} ms")


def prompt_latency(count: int = 20, think: float = 0.3) -> None:
    """Keypress to the next finding's frame in the real `curator review` prompt (pty, blocks)."""
    import shutil as shell

    import pexpect

    exe = shell.which("curator")
    if exe is None:
        print("prompt latency: the curator console script is not installed; skipped")
        return
    with tempfile.TemporaryDirectory() as tmp:
        ws = init_workspace(Path(tmp) / "ws", "review-bench", CLASSES)
        shas = [add_image(ws, np.asarray(synthetic.photo(seed, seed % 3, SIZE))) for seed in range(count)]
        check = findings.Check("quality", ("blur",), quality.VERSION, {})
        findings.save(ws.conn, check, {sha: [quality.Result("blur", 2.0, {})] for sha in shas})
        ws.close()
        child = pexpect.spawn(exe, ["--workspace", str(ws.root), "review", "--reviewer", "bench",
                                    "--graphics", "blocks"], env=dict(os.environ, TERM="xterm-256color"),
                              dimensions=(40, 120), timeout=60)
        child.expect_exact(f"[1/{count}]")
        latencies = []
        for k in range(2, count + 1):
            time.sleep(think)
            started = time.perf_counter()
            child.send("k")
            child.expect_exact(f"[{k}/{count}]")
            latencies.append((time.perf_counter() - started) * 1000)
        child.send("q")
        child.expect(pexpect.EOF)
    latencies.sort()
    median = latencies[len(latencies) // 2]
    print(f"prompt: keypress to next finding (blocks, think {think}s): median {median:.0f} ms, "
          f"worst {latencies[-1]:.0f} ms over {len(latencies)} decisions")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clean", type=int, default=120, help="clean generated scalp photos")
    parser.add_argument("--bases", type=int, default=18, help="distinct photos planted with each problem")
    parser.add_argument("--label-images", type=int, default=600, help="images for the label-issue part")
    parser.add_argument("--speed-images", type=int, default=300, help="photos for the end-to-end speed run")
    parser.add_argument("--speed-runs", type=int, default=3, help="end-to-end runs (the median is printed)")
    parser.add_argument("--only", choices=PARTS, action="append", help="run only this part (repeatable)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f}")
    parts = {"planted": quality_and_privacy, "labels": label_issues, "speed": speed,
             "prompt": lambda args: prompt_latency()}
    for name in args.only or PARTS:
        parts[name](args)


if __name__ == "__main__":
    main()
