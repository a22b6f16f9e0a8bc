"""The app as a server under load, on 127.0.0.1: many tabs opening 12 MP photos keep its
memory bounded, an upload over the limit is refused, and SIGTERM removes what the users left
in its temporary folder, as Ctrl-C does."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import cv2
import pytest
from PIL import Image
from skimage import data

from tests.test_app_browser import free_port

pytestmark = pytest.mark.slow
client = pytest.importorskip("gradio_client")

SESSIONS_KEPT = 3


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.fixture
def server(tmp_path):
    port = free_port()
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "HF_HUB_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
    log = (tmp_path / "app.log").open("w")
    args = ["--port", str(port), "--max-sessions", str(SESSIONS_KEPT), "--max-upload-mb", "8"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "object_displacement.app", *args, "segmenter=grabcut", "inpainter=telea"],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
    )
    url = f"http://127.0.0.1:{port}/"
    for _ in range(240):
        if proc.poll() is not None:
            pytest.fail((tmp_path / "app.log").read_text())
        try:
            urllib.request.urlopen(url, timeout=2)
            break
        except OSError:
            time.sleep(0.5)
    yield proc, url, temp
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_many_tabs_with_large_photos_keep_memory_bounded(server, tmp_path):
    proc, url, temp = server
    photo = tmp_path / "big.jpg"
    Image.fromarray(cv2.resize(data.astronaut(), (4000, 3000), interpolation=cv2.INTER_CUBIC)).save(
        photo, quality=90
    )
    rss = []
    for _ in range(SESSIONS_KEPT + 5):
        tab = client.Client(url, verbose=False)  # a session of its own, as a browser tab
        status, *_ = tab.predict(
            client.handle_file(str(photo)), "grabcut", "paste", "telea", api_name="/open_upload"
        )
        assert status.startswith("Opened big.jpg (4000x3000)"), status
        rss.append(rss_mb(proc.pid))
        print(f"tab {len(rss)}: server RSS {rss[-1]:.0f} MB")
    # once the server holds as many tabs as it keeps, five more tabs with 12 MP photos (36 MB
    # each as pixels alone) add no more than one tab's worth
    assert rss[-1] - rss[SESSIONS_KEPT - 1] < 150, rss
    assert not list(temp.glob("displace-app-*/uploads/**/big.jpg"))  # read, then not kept

    # an upload over --max-upload-mb is refused, and the server goes on
    huge = tmp_path / "huge.png"
    huge.write_bytes(photo.read_bytes() + os.urandom(9 * 2**20))
    with pytest.raises(Exception, match=r"(?i)size|large|413"):
        client.Client(url, verbose=False).predict(
            client.handle_file(str(huge)), "grabcut", "paste", "telea", api_name="/open_upload"
        )
    status, *_ = client.Client(url, verbose=False).predict(
        client.handle_file(str(photo)), "grabcut", "paste", "telea", api_name="/open_upload"
    )
    assert status.startswith("Opened")

    # SIGTERM: the app stops and leaves no photos or downloads behind
    assert list(temp.glob("displace-app-*"))
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=60)
    assert not list(temp.glob("displace-app-*")), list(temp.rglob("*"))[:10]
    left = [p for p in temp.rglob("*") if p.is_file() and p.suffix.lower() in (".jpg", ".png", ".webp")]
    assert not left, left[:10]  # Gradio's own uploads and files were in the app's folder too
