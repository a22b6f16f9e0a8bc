"""The app's handlers and sessions without a browser: what a tab holds and when it lets go,
what a failed or rejected action leaves, one tab never waiting on another, and the
editor's display-size view of a 12 MP photo."""

from __future__ import annotations

import base64
import io
import json
import os
import threading
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from object_displacement import app_view
from object_displacement.api import load_pipeline
from object_displacement.app_state import NOT_OBJECT, OBJECT, PLACE, Tab, clicked, with_mask
from object_displacement.config import compose_config
from object_displacement.edit import edit
from object_displacement.errors import DisplacementError
from object_displacement.jobs import config_request

gr = pytest.importorskip("gradio")
from object_displacement.app import EXPIRED, Handlers, Pipelines, Sessions, number  # noqa: E402

CHEAP = ("segmenter=grabcut", "inpainter=telea")


def no_progress(*args, **kwargs) -> None:
    """What gr.Progress is outside a page."""


def event(**data) -> SimpleNamespace:
    """What gr.EventData gives a handler: the editor's action in ``_data``."""
    return SimpleNamespace(_data=data)


@pytest.fixture
def app(tmp_path):
    pipelines = Pipelines(list(CHEAP), cache_dir=str(tmp_path / "cache"))
    root = tmp_path / "root"
    root.mkdir()
    on = Handlers(pipelines, Sessions(str(root)))
    return SimpleNamespace(on=on, c=pipelines.choices, me=SimpleNamespace(session_hash="me"), root=root)


@pytest.fixture
def photo(tmp_path, square_scene) -> Path:
    image, _ = square_scene
    path = tmp_path / "upload" / "square.jpg"
    path.parent.mkdir()
    PILImage.fromarray(image).save(path, quality=95)
    return path


def opened(app, photo: Path) -> Tab:
    status, *_ = app.on.open_upload(app.me, str(photo), *app.c)
    assert status.startswith("Opened square.jpg"), status
    return app.on.sessions.peek("me")


def click(app, x: int, y: int, mode: str = OBJECT, radius: float = 4):
    return app.on.act(app.me, event(kind="click", x=x, y=y), mode, radius, 1.0, False, *app.c)


def moved(app, keep_format: bool = False):
    """Move, with the dx/dy boxes showing the tab's move (as the page keeps them)."""
    tab = app.on.sessions.peek("me")
    return app.on.move(app.me, no_progress, tab.dx, tab.dy, 1.0, False, keep_format, *app.c)


def test_a_dragged_brushed_move_is_the_command_it_shows(app, photo, tmp_path):
    """Click, paint, drag, Move: the output is the CLI's for the shown command, which reads
    the downloaded mask with segmenter=mask."""
    opened(app, photo)
    assert click(app, 45, 55)[0].startswith("Selected")
    stroke = event(kind="stroke", points=[[100, 20], [110, 20]], radius=3)
    status, *_ = app.on.act(app.me, stroke, "brush +", 3, 1.0, False, *app.c)
    assert status.startswith("Painted")
    status, _, dx, dy, cli = app.on.act(
        app.me, event(kind="drag", dx=40, dy=-10), OBJECT, 3, 1.0, False, *app.c
    )
    assert status.startswith("Dragged") and (dx, dy) == (40, 10)
    status, compare, files, _, cli = moved(app)
    assert status.startswith("Moved by dx=40, dy=10"), status
    names = [Path(f).name for f in files]
    assert names == ["step-1.png", "mask-1.png"]
    tab = app.on.sessions.peek("me")
    shown = cli.split()
    assert (
        "segmenter=mask" in shown
        and "segmenter.path=mask-1.png" in shown
        and shown[-1] == "output=step-1.png"
    )
    again = tmp_path / "square.png"  # the upload is gone from the server: the user's own copy
    PILImage.fromarray(tab.pixels).save(again)
    overrides = [f"image={again}", *shown[2:-1], f"segmenter.path={Path(files[1])}"]
    cli_request = config_request(compose_config(overrides))
    _, result = edit(load_pipeline(overrides[1:]), cli_request)
    np.testing.assert_array_equal(np.asarray(PILImage.open(files[0])), result.output)
    assert compare[0].shape == tab.pixels.shape  # a small photo is shown as it is


def test_a_new_photo_clears_what_belonged_to_the_old_one(app, photo):
    opened(app, photo)
    click(app, 45, 55)
    click(app, 120, 30, PLACE)
    assert moved(app)[0].startswith("Moved")
    out = app.on.open_sample(app.me, "coffee", *app.c)
    status, view, cli, dx, dy, _, _, compare, downloads, report, mode, _, upload = out
    assert status.startswith("Opened skimage:coffee") and cli == "" and (dx, dy) == (0, 0)
    assert compare is None and downloads is None and report == "" and mode == OBJECT and upload is None
    tab = app.on.sessions.peek("me")
    assert tab.mask is None and tab.result is None and not tab.history and not tab.earlier
    assert json.loads(view)["mask"] == []
    assert not list(Path(tab.folder).iterdir())  # the old photo's downloads are gone


def test_a_failed_move_clears_the_previous_result(app, photo):
    opened(app, photo)
    click(app, 45, 55)
    click(app, 120, 30, PLACE)
    assert moved(app)[0].startswith("Moved")
    app.on.adjust(app.me, 0, 0, 1.0, False, OBJECT, 4, *app.c)  # back where it was: no move
    with pytest.warns(UserWarning, match="not moved"):
        status, compare, downloads, report, _ = moved(app)
    assert status.startswith("⚠️") and compare is None and downloads is None and report == ""
    assert app.on.sessions.peek("me").result is None
    with pytest.warns(UserWarning, match="Move first"):
        assert app.on.edit_result(app.me, *app.c)[0].startswith("⚠️")


def test_a_rejected_action_leaves_the_tab_as_it_was(app, photo):
    before = opened(app, photo)
    with pytest.warns(UserWarning, match="outside"):
        status, *_ = click(app, 5000, 5000)  # sent through the API: outside the photo
    assert status.startswith("⚠️")
    after = app.on.sessions.peek("me")
    assert after is before and after.points == ()
    assert click(app, 45, 55)[0].startswith("Selected")  # and the next action works
    with pytest.warns(UserWarning, match="unknown editor action"):
        app.on.act(app.me, event(kind="teleport"), OBJECT, 4, 1.0, False, *app.c)
    with pytest.warns(UserWarning, match="brush"):
        app.on.act(app.me, event(kind="stroke", points=[[1, 1]]), OBJECT, 4, 1.0, False, *app.c)
    assert app.on.sessions.peek("me").points == ((45, 55),)


def test_empty_boxes_and_the_chosen_components_reach_the_command(app, photo):
    opened(app, photo)
    click(app, 45, 55)
    _, view, cli = app.on.adjust(app.me, None, "", None, False, OBJECT, 4, *app.c)  # emptied boxes
    assert "dx=0 dy=0" in cli and json.loads(view)["move"]["dx"] == 0
    assert number(None) == 0 and number("", 1) == 1 and number("2.5") == 2.5
    segmenter, compositor, _ = app.c
    *_, cli = app.on.view_changed(app.me, OBJECT, 4, segmenter, compositor, "ns")
    assert "inpainter=ns" in cli  # the command follows the page's choice
    *_, cli = app.on.view_changed(app.me, OBJECT, 4, *app.c)
    assert "inpainter=telea" in cli


def test_undo_redo_and_a_warning_for_a_speck(app, photo):
    opened(app, photo)
    click(app, 45, 55)
    click(app, 5, 5, NOT_OBJECT)
    assert app.on.undo(app.me, OBJECT, 4, *app.c)[0].startswith("Undone (1 to undo, 1 to redo)")
    assert app.on.redo(app.me, OBJECT, 4, *app.c)[0].startswith("Redone (2 to undo, 0 to redo)")
    app.on.clear(app.me, OBJECT, 4, *app.c)
    status, *_ = app.on.act(app.me, event(kind="click", x=80, y=60), "brush +", 2, 1.0, False, *app.c)
    assert "too small to be an object" in status


def test_no_server_path_in_a_message(app, tmp_path):
    upload = app.root / "uploads" / "abc123" / "broken.jpg"
    upload.parent.mkdir(parents=True)
    upload.write_bytes(b"not a photo")
    app.on.scrubbed = (*app.on.scrubbed, str(app.root / "uploads"))
    with pytest.warns(UserWarning):
        status, *_ = app.on.open_upload(app.me, str(upload), *app.c)
    assert "broken.jpg" in status and str(app.root) not in status and "abc123" not in status
    assert not upload.exists()  # a refused upload is not kept either


def test_the_download_keeps_the_photo_format_when_asked(app, photo):
    opened(app, photo)
    click(app, 45, 55)
    click(app, 120, 30, PLACE)
    _, _, files, _, _ = moved(app, keep_format=True)
    assert [Path(f).name for f in files] == ["step-1.jpg", "step-1.png"]
    assert PILImage.open(files[0]).format == "JPEG"


def test_edit_the_result_moves_a_second_object_in_the_output(app, photo):
    opened(app, photo)
    click(app, 45, 55)
    click(app, 120, 30, PLACE)
    first = moved(app)
    status, view, cli, *_ = app.on.edit_result(app.me, *app.c)
    tab = app.on.sessions.peek("me")
    assert status.startswith("Editing the result (step-1.png)") and tab.step == 2
    np.testing.assert_array_equal(tab.pixels, np.asarray(PILImage.open(first[2][0])))
    assert cli == first[4] and json.loads(view)["mask"] == []
    click(app, 120, 30)
    click(app, 40, 90, PLACE)
    _, _, files, _, cli = moved(app)
    assert [Path(f).name for f in files] == ["step-2.png", "step-1.png"]
    lines = cli.splitlines()
    assert (
        len(lines) == 2
        and lines[1].startswith("displace image=step-1.png")
        and "output=step-2.png" in lines[1]
    )


def test_sessions_are_bounded_and_released(tmp_path):
    sessions = Sessions(str(tmp_path), capacity=2, idle_s=60, grace_s=5)
    folders = {}
    for key in "abc":
        with sessions.use(key, fresh=True) as session:
            session.tab = Tab(folder=session.tab.folder, pixels=np.zeros((3, 3, 3), np.uint8))
            folders[key] = Path(session.tab.folder)
    assert len(sessions) == 2 and sessions.peek("a") is None and not folders["a"].exists()
    with pytest.raises(DisplacementError, match="expired"), sessions.use("a"):
        pass
    with pytest.raises(DisplacementError, match="open a photo first"), sessions.use("new"):  # never seen
        pass
    sessions.close("b")  # the browser tab closed, or its connection dropped: kept a grace period
    assert sessions.peek("b") is not None
    sessions.kept["b"].used -= 6
    sessions.close("c")
    assert sessions.peek("b") is None and not folders["b"].exists()  # released after the grace
    with sessions.use("c"):  # the connection came back in time: the work is there
        pass
    sessions.kept["c"].used -= 61  # idle past the bound
    with sessions.use("d", fresh=True):
        pass
    assert sessions.peek("c") is None and not folders["c"].exists() and len(sessions) == 1
    assert EXPIRED.startswith("this tab's session expired")


def test_a_busy_session_is_never_released_under_its_action(tmp_path):
    """A long Move in one tab while others open photos past capacity: its tab and folder
    stay until the Move is done."""
    sessions = Sessions(str(tmp_path), capacity=1, idle_s=60)
    with sessions.use("moving", fresh=True) as session:
        folder = Path(session.tab.folder)
        for key in "xyz":
            with sessions.use(key, fresh=True):
                pass
        sessions.close("moving")
        sessions.kept["moving"].used -= 1000
        with sessions.use("w", fresh=True):
            pass
        assert sessions.peek("moving") is not None and folder.is_dir()
    with sessions.use("v", fresh=True):
        pass
    assert sessions.peek("moving") is None and not folder.exists()  # released once done


def test_one_tab_does_not_wait_on_another(tmp_path, app, photo):
    """A slow action in one tab (its lock held) and a classical pipeline busy in another
    edit: a second tab's click still runs."""
    sessions = app.on.sessions
    with sessions.use("slow", fresh=True):
        pass
    opened(app, photo)
    held = threading.Event()
    release = threading.Event()

    def slow() -> None:
        with sessions.use("slow"):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=slow)
    thread.start()
    held.wait(10)
    key = tuple(app.c)
    pipeline_lock = app.on.pipelines.lock(key)
    pipeline_lock.acquire()  # as if another tab were loading or editing with a model
    try:
        done = []
        worker = threading.Thread(target=lambda: done.append(click(app, 45, 55)))
        worker.start()
        worker.join(60)
        assert done and done[0][0].startswith("Selected")
    finally:
        pipeline_lock.release()
        release.set()
        thread.join()


def big_photo(height: int = 3000, width: int = 4000) -> np.ndarray:
    """A 12 MP photo with detail everywhere (scikit-image's astronaut, enlarged)."""
    from skimage import data

    return cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_CUBIC)


def test_a_12mp_photo_reaches_the_browser_at_display_size():
    pixels = big_photo()
    mask = np.zeros(pixels.shape[:2], bool)
    cv2.circle(mask.view(np.uint8), (2000, 1500), 700, 1, -1)
    cv2.circle(mask.view(np.uint8), (2000, 1500), 200, 0, -1)  # a hole
    tab = with_mask(clicked(Tab(source="s", name="big.jpg", pixels=pixels), 1500, 1500, OBJECT), mask)
    shown = app_view.view(tab)
    view = json.loads(shown)
    assert len(shown) < 1_500_000  # against 5 MB PNGs a click before
    photo = PILImage.open(io.BytesIO(base64.b64decode(view["photo"]["url"].split(",")[1])))
    assert photo.format == "JPEG" and max(photo.size) == app_view.DISPLAY_SIDE
    assert (view["photo"]["width"], view["photo"]["height"]) == (
        4000,
        3000,
    )  # clicks come back in photo pixels
    drawn = np.zeros(mask.shape, np.uint8)
    for shape in view["mask"]:  # even-odd: the hole stays out
        outline = np.zeros_like(drawn)
        cv2.fillPoly(outline, [np.round(np.asarray(shape) - 0.5).astype(np.int32)], 1)
        drawn ^= outline
    iou = (drawn.astype(bool) & mask).sum() / (drawn.astype(bool) | mask).sum()
    assert iou > 0.98
    again = json.loads(app_view.view(clicked(tab, 10, 10, NOT_OBJECT)))
    assert again["photo"]["url"] == view["photo"]["url"]
    assert app_view.photo_url(pixels) is app_view.photo_url(pixels)  # encoded once, not per click


def test_handlers_need_a_session(app):
    with pytest.warns(UserWarning, match="reload the page"):
        status, *_ = app.on.undo(SimpleNamespace(session_hash=None), OBJECT, 4, *app.c)
    assert status.startswith("⚠️")


def test_the_app_stage_cache_stays_within_its_bound(tmp_path):
    pipelines = Pipelines(list(CHEAP), cache_dir=str(tmp_path), max_cache_mb=1)
    for i in range(6):
        entry = tmp_path / f"segment-{i}.npz"
        entry.write_bytes(b"x" * 300_000)
        os.utime(entry, (1000 + i, 1000 + i))
    pipelines.prune()
    kept = sorted(p.name for p in tmp_path.glob("*.npz"))
    assert kept == ["segment-3.npz", "segment-4.npz", "segment-5.npz"]  # the newest, under 1 MB
