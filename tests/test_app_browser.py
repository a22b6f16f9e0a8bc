"""The web app driven by a real browser (headless Chromium), checked against the CLI.

Upload a photo, click the object, place it, move, download: the downloaded output must be
the CLI's output for the command the page shows, pixel for pixel.
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
from selenium.webdriver.common.by import By  # noqa: E402
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
    return WebDriverWait(driver, timeout, poll_frequency=0.25).until(lambda d: condition(d))


def status(driver) -> str:
    return driver.find_element(By.ID, "status").text


def click_photo(driver, x: int, y: int) -> None:
    """Click pixel (x, y) of the photo as shown, whatever its on-screen scale."""
    img = driver.find_element(By.CSS_SELECTOR, "#photo img")
    box = driver.execute_script(
        "const r = arguments[0].getBoundingClientRect();"
        "return [r.width, r.height, arguments[0].naturalWidth, arguments[0].naturalHeight];",
        img,
    )
    width, height, natural_w, natural_h = box
    ox = (x + 0.5) * width / natural_w - width / 2
    oy = (y + 0.5) * height / natural_h - height / 2
    webdriver.ActionChains(driver).move_to_element_with_offset(img, ox, oy).click().perform()


def choose_mode(driver, name: str) -> None:
    for label in driver.find_elements(By.CSS_SELECTOR, "#mode label"):
        if label.text.strip() == name:
            label.click()
            return
    raise AssertionError(f"no mode {name}")


def command(driver) -> str:
    return driver.find_element(By.CSS_SELECTOR, "#command textarea").get_attribute("value")


def test_move_from_the_page_equals_the_cli(app_url, browser, tmp_path):
    photo = tmp_path / "rocket.png"
    Image.fromarray(data.rocket()).save(photo)
    browser.get(app_url)
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#upload input[type=file]"))

    # a mistake first: placing before anything is selected is a message, not a failure
    browser.find_element(By.CSS_SELECTOR, "#move").click()
    wait_for(browser, lambda d: "⚠️" in status(d) and "open a photo" in status(d))

    # 1. open the photo
    browser.find_element(By.CSS_SELECTOR, "#upload input[type=file]").send_keys(str(photo))
    wait_for(browser, lambda d: "Opened rocket.png" in status(d))
    wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#photo img"))

    # 2. click the rocket's body: the mask shows at once
    click_photo(browser, 322, 250)
    wait_for(browser, lambda d: "Selected" in status(d))
    # the command box is a separate element: the browser may paint it a moment after the status
    wait_for(browser, lambda d: "target.points=[[" in command(d), timeout=30)

    # 3. place it: a click where the rocket should go
    choose_mode(browser, "place")
    click_photo(browser, 440, 200)
    wait_for(browser, lambda d: "Placed" in status(d))
    wait_for(browser, lambda d: "dx=" in command(d) and "dx=0 " not in command(d))

    # 4. move, then download the output
    browser.find_element(By.CSS_SELECTOR, "#move").click()
    wait_for(browser, lambda d: "Moved by" in status(d), timeout=300)
    assert "Ghost score" in browser.find_element(By.ID, "report").text
    links = wait_for(browser, lambda d: d.find_elements(By.CSS_SELECTOR, "#downloads a"))
    link = next(a for a in links if "output.png" in (a.get_attribute("href") or "") + a.text)
    link.click()
    downloaded = browser.downloads / "output.png"
    wait_for(browser, lambda d: downloaded.is_file() and downloaded.stat().st_size > 0, timeout=60)

    # the page's command, run by the CLI on the same file, makes the same pixels
    shown = shlex.split(command(browser))
    assert shown[0] == "displace" and shown[1] == "image=rocket.png", shown
    assert any(a.startswith("dy=") and a != "dy=0" for a in shown), shown  # the click was above: up
    run_dir = tmp_path / "cli"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "displace.py"),
            f"image={photo}",
            *shown[2:],
            f"hydra.run.dir={run_dir}",
            "logger=none",
            "cache.enabled=false",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    cli = np.asarray(Image.open(run_dir / "output.png"))
    app = np.asarray(Image.open(downloaded))
    assert app.shape == cli.shape == data.rocket().shape
    np.testing.assert_array_equal(app, cli)
    assert not np.array_equal(app, data.rocket())  # something moved

    # another tab starts empty: it does not see this tab's photo or result
    browser.switch_to.new_window("tab")
    browser.get(app_url)
    wait_for(browser, lambda d: d.find_elements(By.ID, "status"))
    assert "Open a photo" in status(browser)
    assert not browser.find_elements(By.CSS_SELECTOR, "#photo img")
    shutil.rmtree(run_dir, ignore_errors=True)
