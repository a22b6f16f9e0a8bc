"""The app's tab as pure transitions, tested without a browser or Gradio: clicks name the
target, a place click gives the move, undo goes back, the tab's request is the CLI's, its
drawn destination is the edit's geometry. Two tests build the app's handlers (Gradio, no page): the
photo's size bound and the components ``experiment=paper`` chooses."""

from __future__ import annotations

import ast
import inspect
import json
import shlex
from dataclasses import replace
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
from PIL import Image as PILImage

from object_displacement import app_state, app_view
from object_displacement.api import load_pipeline
from object_displacement.app_state import (
    BOX,
    MAX_UNDO,
    NOT_OBJECT,
    OBJECT,
    Settings,
    Tab,
    adjusted,
    anchor_point,
    cleared,
    clicked,
    command,
    destination,
    dragged,
    edited,
    mask_file,
    moved,
    names_object,
    opened,
    output_file,
    placed,
    prompted,
    redone,
    request,
    stroked,
    too_small,
    undone,
    with_mask,
)
from object_displacement.build import edit_defaults
from object_displacement.config import compose_config, group_choices
from object_displacement.edit import edit
from object_displacement.errors import DisplacementError
from object_displacement.geometry import distance_to, place_object
from object_displacement.jobs import config_request
from object_displacement.request import make_request
from object_displacement.types import Candidate, EditDefaults, Target

CHEAP = ("segmenter=grabcut", "inpainter=telea")
"""Components that need no weights and run in well under a second on a small photo."""


@pytest.fixture
def tab(square_scene) -> Tab:
    image, _ = square_scene
    return Tab(source="/photos/square.png", name="square.png", pixels=image, folder="/tmp/tab")


@pytest.fixture
def selected(tab, square_scene) -> Tab:
    """The square selected with a click, its exact mask found."""
    _, mask = square_scene
    return with_mask(clicked(tab, 45, 55, OBJECT), mask)


def test_a_click_on_the_object_is_its_target(tab):
    after = clicked(tab, 45, 55, OBJECT)
    assert (after.points, after.labels) == (((45, 55),), (1,))
    assert names_object(after) and not names_object(tab)
    assert request(after, EditDefaults()).target == Target(points=((45, 55),), labels=(1,))
    assert tab.points == ()  # the old tab is unchanged: undo goes back to it


def test_a_click_off_the_object_is_a_negative_point(tab):
    off = clicked(tab, 10, 10, NOT_OBJECT)
    assert off.labels == (0,) and not names_object(off)
    with pytest.raises(DisplacementError, match="nothing selected"):
        request(off, EditDefaults())  # a negative click alone names nothing
    both = clicked(off, 45, 55, OBJECT)
    target = request(both, EditDefaults()).target
    assert target is not None
    assert (target.positive, target.negative) == (((45, 55),), ((10, 10),))


def test_a_box_is_two_clicks_in_any_order(tab, selected):
    first = clicked(selected, 61, 71, BOX)
    assert first.corner == (61, 71) and first.box is None and not first.history[-1].tab.corner
    boxed = clicked(first, 28, 38, BOX)
    assert boxed.corner is None and boxed.box == (28, 38, 62, 72)  # both corners inside, x1/y1 exclusive
    assert boxed.mask is None  # the selection changed: the pipeline finds the new mask
    target = request(boxed, EditDefaults()).target
    assert target == Target(box=(28, 38, 62, 72), points=((45, 55),), labels=(1,))


@pytest.mark.parametrize("anchor", ["center", "bottom"])
def test_place_moves_the_anchor_to_the_click_with_dy_up(selected, anchor):
    ax, ay = anchor_point(selected.mask, anchor)
    assert (ax, ay) == ((45.0, 55.0) if anchor == "center" else (45.0, 70.0))
    moved = placed(selected, 120, 20, anchor)
    assert moved.dx > 0 and moved.dy > 0  # right of and above the square: dy > 0 is up
    x0, y0, x1, y1 = Candidate(destination(moved, anchor)).bbox
    assert abs((x0 + x1) / 2 - 120.5) <= 0.5  # the anchor lands on the clicked pixel
    if anchor == "center":
        assert abs((y0 + y1) / 2 - 20.5) <= 0.5
    else:
        assert y1 == 21  # standing on the clicked pixel: its last row is that pixel's
    assert placed(selected, 45, 54, "center").dy == 1  # one row up, one pixel of dy


def test_place_needs_a_selection(tab):
    with pytest.raises(DisplacementError, match="click the object first"):
        placed(tab, 10, 10)


def test_undo_goes_back_one_step_at_a_time(tab, square_scene):
    _, mask = square_scene
    one = with_mask(clicked(tab, 45, 55, OBJECT), mask)
    two = with_mask(clicked(one, 5, 5, NOT_OBJECT), mask[::-1].copy())
    three = placed(two, 120, 20)
    four = clicked(three, 10, 10, BOX)
    assert undone(four) == three
    assert undone(three) == two  # the mask comes back: no re-segmenting
    np.testing.assert_array_equal(undone(three).mask, two.mask)
    assert undone(undone(three)) == one
    np.testing.assert_array_equal(undone(undone(three)).mask, mask)
    assert undone(undone(undone(three))) == tab
    with pytest.raises(DisplacementError, match="nothing to undo"):
        undone(tab)
    # a cleared selection comes back; the scale and flip stay as the page shows them
    assert undone(adjusted(cleared(three), scale=2, flip=True)) == replace(three, scale=2.0, flip=True)


def test_undo_history_is_bounded(tab):
    for x in range(MAX_UNDO + 5):
        tab = clicked(tab, x, 3, OBJECT)
    assert len(tab.history) == MAX_UNDO
    assert all(not past.tab.history for past in tab.history)  # no history within a history


def test_the_tab_request_is_the_cli_request(selected):
    tab = adjusted(
        placed(
            with_mask(prompted(clicked(selected, 5, 5, NOT_OBJECT), "a cup, red"), selected.mask), 120, 20
        ),
        scale=1.5,
        flip=True,
    )
    defaults = EditDefaults(scale=1.0, anchor="bottom", keep_out=((0, 0, 9, 9),), max_megapixels=20.0)
    expected = make_request(
        tab.source,
        prompt="a cup, red",
        points=[[45, 55], [5, 5]],
        labels=[1, 0],
        dx=tab.dx,
        dy=tab.dy,
        scale=1.5,
        flip=True,
        defaults=defaults,
    )
    assert request(tab, defaults) == expected
    assert request(tab, defaults).pixels is tab.pixels  # the photo in memory, not read again
    found = request(tab, defaults, moving=False)
    assert not found.moves and found.target == expected.target  # finding the object: no move


@pytest.mark.parametrize(
    "overrides, scale, flip",
    [
        ((), 1.0, False),  # the run's own settings: left out of the command
        ((), 1.5, True),
        (("scale=2", "anchor=bottom", "keep_out=[[0,0,9,9]]", "max_megapixels=20"), 2.0, False),
        (("scale=2", "flip=true", "target.box=[1,1,5,5]", "dx=7"), 0.5, False),  # the tab's own win
    ],
)
def test_the_shown_command_makes_the_tab_request(selected, overrides, scale, flip):
    """Run as the CLI composes it, the page's command asks for the edit the page runs."""
    components = tuple(zip(("segmenter", "inpainter"), ("grabcut", "telea"), strict=True))
    defaults = edit_defaults(compose_config([*CHEAP, *overrides]))
    settings = Settings(components=components, overrides=overrides, defaults=defaults)
    named = with_mask(prompted(selected, "it's a (red) cup, square"), selected.mask)
    tab = adjusted(placed(named, 120, 20), scale=scale, flip=flip)
    shown = shlex.split(command(tab, settings))
    assert shown[:2] == ["displace", "image=square.png"]
    own = shown[: shown.index("segmenter=grabcut")]  # what the tab writes, before the run's settings
    assert any(p.startswith("scale=") for p in own) == (scale != defaults.scale)
    assert any(p.startswith("flip=") for p in own) == (flip != defaults.flip)
    cli = config_request(compose_config([f"image={tab.source}", *shown[2:]]))
    assert cli == request(tab, defaults)
    assert cli.target is not None and cli.target.prompt == "it's a (red) cup, square"


def test_no_command_before_an_object_is_named(tab):
    assert command(tab, Settings()) == "" and command(Tab(), Settings()) == ""
    assert command(clicked(tab, 45, 55, OBJECT), Settings()).startswith("displace image=square.png")


@pytest.mark.parametrize("anchor", ["center", "bottom"])
def test_the_preview_outline_is_place_object(selected, square_scene, anchor):
    image, mask = square_scene
    tab = adjusted(placed(selected, 100, 60, anchor), scale=2, flip=True)
    _, alpha, _ = place_object(image, mask, tab.dx, tab.dy, 2.0, True, anchor)
    np.testing.assert_array_equal(destination(tab, anchor), alpha >= 0.5)
    assert destination(selected, anchor) is None  # not placed: nothing to outline
    assert_outlines(drawn_destination(tab, anchor), alpha >= 0.5)


def drawn_destination(tab: Tab, anchor: str) -> np.ndarray:
    """The destination as the editor draws it: the view's polygons filled even-odd."""
    view = json.loads(app_view.view(tab, anchor))
    drawn = np.zeros(tab.pixels.shape[:2], np.uint8)
    for shape in view["destination"]:
        outline = np.zeros_like(drawn)
        cv2.fillPoly(outline, [np.round(np.asarray(shape) - 0.5).astype(np.int32)], 1)
        drawn ^= outline
    return drawn.astype(bool)


def assert_outlines(drawn: np.ndarray, where: np.ndarray) -> None:
    """The drawn destination is ``where`` but for a pixel along its edge."""
    inside = distance_to(~where)  # 0 outside, the depth into the mask inside
    outside = distance_to(where)
    assert drawn.any()
    assert not (where & ~drawn & (inside > 1.5)).any() and not (drawn & ~where & (outside > 1.5)).any()
    assert np.abs(np.subtract(Candidate(drawn).bbox, Candidate(where).bbox)).max() <= 1


@pytest.mark.parametrize("anchor", ["center", "bottom"])
def test_the_preview_shows_where_a_real_edit_puts_the_object(tab, anchor):
    """scale 2 + flip: the outline is the moved mask of the edit the page then runs."""
    pipeline = load_pipeline([*CHEAP, f"anchor={anchor}"])
    defaults = pipeline.defaults
    boxed = clicked(clicked(tab, 28, 38, BOX), 61, 71, BOX)
    _, found = edit(pipeline, request(boxed, defaults, moving=False))
    assert found.plan is None  # finding the object moves nothing
    placed_tab = adjusted(placed(with_mask(boxed, found.mask), 100, 62, defaults.anchor), scale=2, flip=True)
    _, result = edit(pipeline, request(placed_tab, defaults))
    assert result.plan is not None and result.plan.move.anchor == anchor
    np.testing.assert_array_equal(result.mask, placed_tab.mask)
    np.testing.assert_array_equal(destination(placed_tab, defaults.anchor), result.plan.moved_mask)
    assert_outlines(drawn_destination(placed_tab, defaults.anchor), result.plan.moved_mask)


def big_photo(path, width: int = 1200, height: int = 1000):
    PILImage.new("RGB", (width, height), (90, 120, 150)).save(path)
    return path


def test_a_photo_opens_within_the_run_size_bound(tmp_path):
    photo = big_photo(tmp_path / "big.png")  # 1.2 MP
    with pytest.raises(DisplacementError, match="max_megapixels=1"):
        opened(str(photo), "big.png", EditDefaults(max_megapixels=1.0))
    tab = opened(str(photo), "big.png", EditDefaults(scale=1.5, flip=True, max_megapixels=2.0), folder="f")
    assert tab.pixels is not None and tab.pixels.shape == (1000, 1200, 3)
    assert (tab.scale, tab.flip, tab.folder, tab.history) == (1.5, True, "f", ())


def test_the_app_reads_an_upload_with_the_pipeline_size_bound(tmp_path):
    """The page's upload handler reads the photo within the pipeline's ``max_megapixels``."""
    from object_displacement.app import Handlers, Pipelines, Sessions

    photo = big_photo(tmp_path / "big.png")
    pipelines = Pipelines([*CHEAP, "max_megapixels=1"], cache_dir=str(tmp_path / "cache"))
    on = Handlers(pipelines, Sessions(str(tmp_path)))
    me = SimpleNamespace(session_hash="tab-1")
    with pytest.warns(UserWarning, match="max_megapixels=1"):  # gr.Warning, outside a page
        refused = on.open_upload(me, str(photo), *pipelines.choices)
    assert refused[0].startswith("⚠️") and "max_megapixels=1" in refused[0]
    assert str(tmp_path) not in refused[0]  # no server path in a message
    small = big_photo(tmp_path / "small.png", 800, 600)
    status, *_ = on.open_upload(me, str(small), *pipelines.choices)
    tab = on.sessions.peek("tab-1")
    assert status.startswith("Opened small.png (800x600)") and tab.pixels.shape == (600, 800, 3)
    assert not small.exists()  # read into memory, the upload is not kept on the server


@pytest.mark.parametrize("overrides", [["experiment=paper"], ["experiment=paper", "segmenter=grabcut"], []])
def test_the_app_components_are_the_ones_the_cli_composes(tmp_path, overrides):
    """With ``experiment=paper`` the page starts on SAM + CLIP + SDXL, as the CLI runs."""
    from object_displacement.app import SWITCHABLE, Pipelines

    pipelines = Pipelines(overrides, cache_dir=str(tmp_path / "cache"))  # loads nothing yet
    cli = group_choices(overrides)
    assert pipelines.choices == tuple(cli[group] for group in SWITCHABLE)
    if overrides == ["experiment=paper"]:
        assert (cli["segmenter"], cli["selector"], cli["inpainter"]) == ("sam", "clip", "sdxl")
    # what the app loads (its overrides and the page's choices) composes as the CLI's config
    loads = compose_config([*pipelines.overrides, *pipelines.settings(pipelines.choices)])
    assert loads == compose_config(overrides)


def test_the_state_module_needs_no_gradio():
    """The transitions import no Gradio (nor the app, which does): a test needs no page."""
    tree = ast.parse(inspect.getsource(app_state))
    imported = {alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names}
    imported |= {node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)}
    assert not {
        name for name in imported if name.split(".")[0] == "gradio" or name == "object_displacement.app"
    }


def test_a_brush_stroke_paints_the_mask_on_and_off(selected, square_scene):
    _, mask = square_scene
    on = stroked(selected, [(100, 20), (120, 20)], radius=3)
    assert on.mask[20, 100:121].all() and on.mask[17:24, 110].all() and not on.mask[16, 110]
    assert (on.mask & ~mask).sum() == (on.mask.sum() - mask.sum())  # the square is kept
    assert on.found is selected.found  # what the pipeline found stays, under the strokes
    off = stroked(on, [(45, 55)], radius=4, add=False)
    assert not off.mask[51:60, 45].any() and off.mask[45, 35]  # a round hole, the rest stays
    assert off.brushed and names_object(off) and not selected.brushed
    np.testing.assert_array_equal(undone(off).mask, on.mask)  # a stroke is one step


def test_strokes_stay_painted_when_a_click_finds_a_new_mask(selected, square_scene):
    _, mask = square_scene
    painted_tab = stroked(selected, [(130, 100)], radius=5)
    refined = with_mask(clicked(painted_tab, 10, 10, NOT_OBJECT), mask)
    assert refined.mask[100, 130] and refined.mask[55, 45]  # found again, the stroke on top


def test_a_stroke_outside_the_photo_is_clipped(tab):
    edge = stroked(tab, [(-50, -50), (5000, 5)], radius=2)
    assert edge.mask.shape == tab.pixels.shape[:2] and edge.mask[0, 0] and edge.mask[:, -1].any()
    with pytest.raises(DisplacementError, match="at least one point"):
        stroked(tab, [], radius=2)


def test_redo_brings_back_what_undo_took(selected):
    one = stroked(selected, [(100, 20)], radius=3)
    two = placed(one, 120, 20)
    back = undone(undone(two))
    assert back == selected and len(back.future) == 2
    again = redone(back)
    assert again == one
    np.testing.assert_array_equal(again.mask, one.mask)
    assert redone(again) == two and not redone(again).future
    with pytest.raises(DisplacementError, match="nothing to redo"):
        redone(two)
    assert not clicked(back, 3, 3, OBJECT).future  # a new step: nothing left to redo


def test_the_undo_history_keeps_masks_packed(tab):
    big = Tab(source="s", name="s.png", pixels=np.zeros((3000, 4000, 3), np.uint8))
    mask = np.zeros((3000, 4000), bool)
    mask[100:2000, 300:3000] = True
    for x in range(MAX_UNDO + 3):
        big = stroked(with_mask(big, mask), [(x, 5)], radius=2)
    kept = sum(s.found.bits.nbytes + (0 if s.mask is None else s.mask.bits.nbytes) for s in big.history)
    assert kept <= MAX_UNDO * 2 * 4000 * 3000 / 8  # a bit a pixel: 1.5 MB a mask at 12 MP
    assert all(s.tab.pixels is big.pixels for s in big.history)  # one photo, shared


def test_a_drag_adds_to_the_move_with_dy_up(selected):
    moved = dragged(selected, 30.4, -12.6)
    assert (moved.dx, moved.dy) == (30, 13)  # dragged up the screen: dy > 0
    assert (dragged(moved, -10, 20).dx, dragged(moved, -10, 20).dy) == (20, -7)
    assert undone(moved) == selected
    with pytest.raises(DisplacementError, match="click the object first"):
        dragged(replace(selected, mask=None), 3, 3)


def test_a_speck_is_not_an_object(tab):
    speck = stroked(tab, [(80, 60)], radius=2)
    assert too_small(speck)
    assert not too_small(stroked(tab, [(40, 60), (100, 60)], radius=12))


def test_a_brushed_tab_asks_for_its_mask_file(selected):
    brushed = placed(stroked(selected, [(100, 20)], radius=3), 120, 20)
    assert request(brushed, EditDefaults()).target is None  # the mask file names the object
    settings = Settings(components=(("segmenter", "grabcut"), ("inpainter", "telea")))
    shown = shlex.split(command(brushed, settings, output="step-1.png"))
    assert "segmenter=mask" in shown and f"segmenter.path={mask_file(brushed)}" in shown
    assert "segmenter=grabcut" not in shown and not any(p.startswith("target.") for p in shown)
    assert shown[-1] == "output=step-1.png"
    cli = config_request(compose_config([f"image={brushed.source}", *shown[2:-1]]))
    assert cli == request(brushed, EditDefaults())


def test_edit_the_result_chains_the_commands(selected):
    first = placed(selected, 120, 20)
    settings = Settings(components=(("segmenter", "grabcut"),))
    line = command(first, settings, output=output_file(first))
    output = np.zeros_like(first.pixels)
    with pytest.raises(DisplacementError, match="Move first"):
        edited(first, "/tabs/x/step-1.png")
    made = moved(first, output, line)
    later = dragged(made, 30, 0)  # moved on after the Move: the chain keeps what made the output
    second = edited(later, f"/tabs/x/{output_file(first)}")
    assert second.pixels is output and second.name == "step-1.png" and second.step == 2
    assert second.mask is None and not second.history and second.folder == first.folder
    assert command(second, settings) == line  # nothing named yet: the chain so far
    then = placed(with_mask(clicked(second, 10, 10, OBJECT), selected.mask), 100, 30)
    lines = command(then, settings).splitlines()
    assert lines[0] == line and lines[1].startswith("displace image=step-1.png")
    assert mask_file(then) == "mask-2.png" and output_file(then) == "step-2.png"
