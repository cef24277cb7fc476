"""The pages of `curator serve` in a real headless Chromium (Selenium), against the real CLI server.

Keys are pressed as an annotator would; the catalog's events are then checked exactly.
Needs Debian's `chromium` and `chromium-driver`; without them the tests skip (outside CI).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from curator import labeling
from curator.review import findings
from curator.review.quality import Result
from curator.workspace import Workspace
from tests.serving import serving
from tests.test_labeling import add_image, events

WAIT = 30  # seconds; bounded, generous for 2 shared cores
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
INSTALL = "apt-get install -y chromium chromium-driver"

if not (CHROMIUM and DRIVER):
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but no Chromium / chromedriver found; install them: {INSTALL}", pytrace=False)
    pytest.skip(f"no Chromium found; to run the browser tests: {INSTALL}", allow_module_level=True)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.remote.webdriver import WebDriver  # noqa: E402
from selenium.webdriver.support.wait import WebDriverWait  # noqa: E402


def browser() -> WebDriver:
    """A fresh headless Chromium: its own profile, so its own cookies (a browser context)."""
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,900",
                "--disable-gpu", "--no-first-run"):
        options.add_argument(arg)
    return webdriver.Chrome(options=options, service=Service(str(DRIVER)))


@pytest.fixture
def drivers() -> Iterator[list[WebDriver]]:
    opened: list[WebDriver] = []
    yield opened
    for driver in opened:
        driver.quit()


def shown(driver: WebDriver) -> str:
    return str(driver.find_element(By.ID, "current").get_attribute("data-sha256") or "")


def wait_shown(driver: WebDriver, sha: str) -> None:
    WebDriverWait(driver, WAIT).until(lambda d: shown(d) == sha, f"waiting for image {sha[:12]}")


def press(driver: WebDriver, key: str) -> None:
    driver.find_element(By.TAG_NAME, "body").send_keys(key)


def snap(driver: WebDriver, name: str) -> None:
    """Screenshots for the README, when CURATOR_SCREENSHOTS names a folder."""
    folder = os.environ.get("CURATOR_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


@pytest.fixture
def labeled_workspace(workspace: Workspace) -> Workspace:
    """Seven images in six clusters (one near duplicate), with a blur finding on the first."""
    shas = [add_image(workspace, seed, size=(640, 480), hint="alopecia" if seed == 2 else None)
            for seed in range(6)]
    add_image(workspace, 10, cluster_of=shas[1], size=(640, 480))
    check = findings.Check("quality", ("blur",), "quality-1", {"t": 1})
    findings.save(workspace.conn, check, {shas[0]: [Result("blur", 1.5, {"sharpness": 0.01})]})
    workspace.close()
    return workspace


def test_label_undo_reload_two_annotators_and_review(labeled_workspace: Workspace,
                                                      drivers: list[WebDriver]) -> None:
    ws = labeled_workspace
    queue = [item.sha256 for item in labeling.queue(ws.conn, ws.config, "alice")]
    assert len(queue) == 6
    with serving(ws.root, "--annotator", "alice", "--annotator", "bob") as served:
        alice, bob = browser(), browser()
        drivers += [alice, bob]
        alice.get(served.links["alice"])
        bob.get(served.links["bob"])
        assert "token=" not in alice.current_url  # the redirect drops the token from the address bar
        wait_shown(alice, queue[0])
        wait_shown(bob, queue[0])
        # alice: five answers by keyboard, then undo the last
        for key, nxt in zip("123x1", queue[1:], strict=True):
            press(alice, key)
            wait_shown(alice, nxt)
            if nxt == queue[1]:
                snap(alice, "label")  # the image with a near duplicate
        press(alice, "u")
        wait_shown(alice, queue[4])
        # bob, at the same time in his own browser: the same first image, another label
        press(bob, "2")
        wait_shown(bob, queue[1])
        # a reload resumes where alice was
        alice.refresh()
        wait_shown(alice, queue[4])
        assert alice.find_element(By.ID, "progress").text == "[5/6]"
        # a reviewer's decision: keep the blur finding
        alice.get(served.base + "/review")
        wait_shown(alice, queue[0])
        assert alice.find_element(By.ID, "finding-kind").text == "blur"
        snap(alice, "review")
        press(alice, "k")
        WebDriverWait(alice, WAIT).until(lambda d: d.find_element(By.ID, "main").get_attribute("data-done")
                                         == "true")
        for page in ("duplicates", "browse", "agreement"):
            alice.get(f"{served.base}/{page}")
            WebDriverWait(alice, WAIT).until(lambda d: d.find_elements(By.CSS_SELECTOR, ".tile"))
            snap(alice, page)
    assert events(ws.conn) == [
        (queue[0], "alice", "alopecia", None, "label"),
        (queue[1], "alice", "psoriasis", None, "label"),
        (queue[2], "alice", "folliculitis", None, "label"),
        (queue[3], "alice", labeling.EXCLUDED, None, "exclude"),
        (queue[4], "alice", "alopecia", None, "label"),
        (queue[4], "alice", None, "alopecia", "undo"),
        (queue[0], "bob", "psoriasis", None, "label"),
    ]
    decisions = ws.conn.execute("SELECT reviewer, decision, previous, action FROM review_events").fetchall()
    assert [tuple(row) for row in decisions] == [("alice", "keep", None, "decide")]


def test_read_only_page_shows_but_saves_nothing(labeled_workspace: Workspace,
                                                 drivers: list[WebDriver]) -> None:
    ws = labeled_workspace
    first = labeling.queue(ws.conn, ws.config, "carol")[0].sha256
    with serving(ws.root, "--annotator", "carol", "--read-only") as served:
        driver = browser()
        drivers.append(driver)
        driver.get(served.links["carol"])
        wait_shown(driver, first)
        press(driver, "1")
        WebDriverWait(driver, WAIT).until(lambda d: "Read-only" in d.find_element(By.ID, "message").text)
        assert shown(driver) == first
    assert events(ws.conn) == []
