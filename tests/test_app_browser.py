"""The web app driven by a real browser (headless Chromium), checked against the CLI.

Upload a photo, click the object, refine and undo, paint with the brush, drag it, move,
edit the result, box and drag a second object, move, download: the downloaded output must
be the CLI's output for the commands the page shows, pixel for pixel.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from tests.conftest import ROOT

pytestmark = pytest.mark.slow
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):
    pytest.skip(
        "needs Debian's chromium and chromium-driver (`make test` installs them)", allow_module_level=True
    )
webdriver = pytest.importorskip("selenium.webdriver")
from selenium.common.exceptions import TimeoutException  # noqa: E402
from selenium.webdriver.common.by import By  # noqa: E402
from selenium.webdriver.common.keys import Keys  # noqa: E402
from selenium.webdriver.support.ui import WebDriverWait  # noqa: E402

BROWSER_FLAGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--window-size=1400,1300",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    """The app, as `make app` starts it, on a free port; stopped after the module."""
    port = free_port()
    log = tmp_path_factory.mktemp("app") / "app.log"
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "object_displacement.app", "--port", str(port)],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        for _ in range(240):
            if proc.poll() is not None:
                pytest.fail(f"the app stopped: {log.read_text()}")
            try:
                urllib.request.urlopen(url, timeout=2)
                break
            except OSError:
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    downloads = tmp_path_factory.mktemp("downloads")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in BROWSER_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('profile')}")
    options.add_experimental_option("prefs", {"download.default_directory": str(downloads)})
    driver = webdriver.Chrome(options=options, service=webdriver.ChromeService(executable_path=CHROMEDRIVER))
    driver.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    driver.downloads = downloads
    yield driver
    driver.quit()


def wait_for(driver, condition, timeout: float = 120):
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.25).until(lambda d: condition(d))
    except TimeoutException:
        raise AssertionError(f"timed out; the page says: {status(driver)!r}") from None


def status(driver) -> str:
    return driver.find_element(By.ID, "status").text


def editor(driver):
    return driver.find_element(By.CSS_SELECTOR, "#editor canvas")


def offset(driver, x: float, y: float) -> tuple[float, float]:
    """Photo pixel ``(x, y)``'s centre as an offset from the editor's centre, at its zoom."""
    canvas = editor(driver)
    sx, sy = driver.execute_script(
        "return arguments[0].odEditor.toScreen(arguments[1], arguments[2])", canvas, x + 0.5, y + 0.5
    )
    width, height = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect(); return [r.width, r.height]", canvas
    )
    return sx - width / 2, sy - height / 2


def click_photo(driver, x: int, y: int) -> None:
    """Click pixel (x, y) of the photo as the editor shows it, whatever its zoom."""
    webdriver.ActionChains(driver).move_to_element_with_offset(
        editor(driver), *offset(driver, x, y)
    ).click().perform()


def drag_photo(driver, path: list[tuple[int, int]], before_release: str = "") -> None:
    """Press at the first photo pixel of ``path``, move through the others, release
    (``before_release``: the name of a :func:`snapshot` taken while the button is down)."""
    chain = webdriver.ActionChains(driver).move_to_element_with_offset(
        editor(driver), *offset(driver, *path[0])
    )
    chain.click_and_hold()
    last = offset(driver, *path[0])
    for point in path[1:]:
        here = offset(driver, *point)
        chain.move_by_offset(round(here[0] - last[0]), round(here[1] - last[1]))
        last = (last[0] + round(here[0] - last[0]), last[1] + round(here[1] - last[1]))
    if before_release:
        chain.perform()
        snapshot(driver, before_release)
        chain = webdriver.ActionChains(driver)
    chain.release().perform()


def shown_mask_area(driver) -> float:
    """The area of the mask the editor draws (its polygons, even-odd), in photo pixels."""
    return driver.execute_script(
        "const v = arguments[0].odEditor.view(); let area = 0;"
        "for (const s of v.mask) { let a = 0; for (let i = 0; i < s.length; i++) {"
        "const [x0, y0] = s[i], [x1, y1] = s[(i + 1) % s.length]; a += x0 * y1 - x1 * y0; }"
        "area += Math.abs(a) / 2 * (a > 0 ? 1 : -1); } return Math.abs(area);",
        editor(driver),
    )


def choose_mode(driver, name: str) -> None:
    for label in driver.find_elements(By.CSS_SELECTOR, "#mode label"):
        if label.text.strip() == name:
            label.click()
            return
    raise AssertionError(f"no mode {name}")


def command(driver) -> str:
    return driver.find_element(By.CSS_SELECTOR, "#command textarea").get_attribute("value")


def links(driver, name: str) -> list:
    return [
        a
        for a in driver.find_elements(By.CSS_SELECTOR, "#downloads a")
        if name in (a.get_attribute("href") or "")
    ]


def snapshot(driver, name: str) -> None:
    """With ``APP_SCREENSHOTS=folder``, keep the page as it looks now (the README's pictures)."""
    folder = os.environ.get("APP_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        driver.save_screenshot(str(Path(folder) / f"{name}.png"))


def download(driver, name: str) -> Path:
    found = wait_for(driver, lambda d: links(d, name))
    found[0].click()
    path = driver.downloads / name
    wait_for(driver, lambda d: path.is_file() and path.stat().st_size > 0, timeout=60)
    return path


def test_two_objects_moved_by_dragging_equal_the_cli(app_url, browser, tmp_path):
    """Open, click, refine and undo, brush, drag, move, edit the result, click, drag, move,
    download: the page's commands, run by the CLI on the same files, make the same pixels."""
    work = tmp_path / "cli"
    work.mkdir()
    photo = work / "rocket.png"
    Image.fromarray(data.rocket()).save(photo)
    browser.get(app_url)
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))

    # a mistake first: moving before anything is open is a message, not a failure
    browser.find_element(By.CSS_SELECTOR, "#move").click()
    wait_for(browser, lambda d: "⚠️" in status(d) and "open a photo" in status(d))

    # 1. open the photo: the editor shows it
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(photo))
    wait_for(browser, lambda d: "Opened rocket.png" in status(d))
    wait_for(browser, lambda d: d.execute_script("return arguments[0].odEditor.ready()", editor(d)))

    # 2. click the rocket's body: the mask shows at once
    click_photo(browser, 322, 250)
    wait_for(browser, lambda d: "Selected" in status(d))
    first = shown_mask_area(browser)
    assert first > 2000

    # 3. a click off the object refines the mask, undo takes that click back
    choose_mode(browser, "not object")
    click_photo(browser, 452, 300)  # the lightning tower the network took with the rocket
    wait_for(browser, lambda d: "Selected" in status(d) and shown_mask_area(d) != first)
    refined = shown_mask_area(browser)
    webdriver.ActionChains(browser).key_down(Keys.CONTROL).send_keys("z").key_up(Keys.CONTROL).perform()
    wait_for(browser, lambda d: "Undone (1 to undo, 1 to redo)" in status(d))  # Ctrl+Z: one step
    wait_for(browser, lambda d: abs(shown_mask_area(d) - first) < 1)
    browser.find_element(By.CSS_SELECTOR, "#redo").click()
    wait_for(browser, lambda d: "Redone" in status(d) and abs(shown_mask_area(d) - refined) < 1)
    browser.find_element(By.CSS_SELECTOR, "#undo").click()
    wait_for(browser, lambda d: "Undone" in status(d) and abs(shown_mask_area(d) - first) < 1)

    # 4. the brush paints the tower off the mask
    choose_mode(browser, "brush -")
    size = browser.find_element(By.CSS_SELECTOR, "#radius input[type=number]")
    size.clear()
    size.send_keys("16", Keys.TAB)  # wider than the tower
    radius = "return arguments[0].odEditor.view().radius"
    wait_for(browser, lambda d: d.execute_script(radius, editor(d)) == 16)
    drag_photo(browser, [(451, 120), (451, 220), (451, 300), (451, 405)])
    wait_for(browser, lambda d: "Painted" in status(d))
    painted = shown_mask_area(browser)
    assert painted < first
    snapshot(browser, "app-brushed")

    # 5. drag the rocket 100 px left: dx follows, the command reads the painted mask
    choose_mode(browser, "object")
    drag_photo(browser, [(322, 250), (300, 250), (260, 252), (222, 250)], before_release="app-dragging")
    wait_for(browser, lambda d: "Dragged" in status(d))
    wait_for(browser, lambda d: "segmenter=mask" in command(d) and "dx=0 " not in command(d))
    assert abs(int(browser.find_element(By.CSS_SELECTOR, "#dx input").get_attribute("value")) + 100) <= 2

    # 6. move, then edit the result and move the right tower in it
    browser.find_element(By.CSS_SELECTOR, "#move").click()
    wait_for(browser, lambda d: "Moved by" in status(d), timeout=300)
    assert "Ghost score" in browser.find_element(By.ID, "report").text
    snapshot(browser, "app-moved")
    browser.find_element(By.CSS_SELECTOR, "#edit-result").click()
    wait_for(browser, lambda d: "Editing the result" in status(d))
    choose_mode(browser, "box (2 clicks)")  # a box around the right tower: a click on it is too thin
    click_photo(browser, 430, 112)
    wait_for(browser, lambda d: "opposite corner" in status(d))
    click_photo(browser, 471, 422)
    wait_for(browser, lambda d: "Selected" in status(d) and "too small" not in status(d))
    choose_mode(browser, "object")
    drag_photo(browser, [(451, 300), (440, 300), (421, 300), (411, 300)])
    wait_for(browser, lambda d: "Dragged" in status(d))
    browser.find_element(By.CSS_SELECTOR, "#move").click()
    wait_for(
        browser,
        lambda d: status(d).startswith("Moved by") and links(d, "step-2.png"),
        timeout=300,
    )

    snapshot(browser, "app-second")
    # 7. download; the page's two commands, run by the CLI in a folder with the photo and the
    # downloaded mask, make the same pixels
    final = download(browser, "step-2.png")
    shutil.copy(download(browser, "mask-1.png"), work / "mask-1.png")
    lines = command(browser).splitlines()
    assert (
        len(lines) == 2
        and lines[0].startswith("displace image=rocket.png")
        and "output=step-1.png" in lines[0]
    )
    assert lines[1].startswith("displace image=step-1.png") and "output=step-2.png" in lines[1]
    for step, line in enumerate(lines, 1):
        shown = shlex.split(line)
        proc = subprocess.run(
            [
                sys.executable,
                str(ROOT / "scripts" / "displace.py"),
                *shown[1:],
                f"hydra.run.dir={tmp_path / 'runs' / str(step)}",
                "logger=none",
                "cache.enabled=false",
            ],
            capture_output=True,
            text=True,
            timeout=300,
            cwd=work,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
        )
        assert proc.returncode == 0, proc.stderr
    app = np.asarray(Image.open(final))
    cli = np.asarray(Image.open(work / "step-2.png"))
    assert app.shape == cli.shape == data.rocket().shape
    np.testing.assert_array_equal(app, cli)
    moved_first = np.asarray(Image.open(work / "step-1.png"))
    assert not np.array_equal(moved_first, data.rocket()) and not np.array_equal(app, moved_first)

    # another tab starts empty: it does not see this tab's photo or result
    browser.switch_to.new_window("tab")
    browser.get(app_url)
    # the editor's canvas is made by its js_on_load, after the status line is there
    wait_for(
        browser,
        lambda d: d.find_elements(By.ID, "status") and d.find_elements(By.CSS_SELECTOR, "#editor canvas"),
    )
    assert "Open a photo" in status(browser)
    assert not browser.execute_script("return arguments[0].odEditor.ready()", editor(browser))
