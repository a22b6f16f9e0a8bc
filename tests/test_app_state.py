"""The app's tab as pure transitions, tested without a browser or Gradio: clicks name the
target, a place click gives the move, undo goes back, the tab's request is the CLI's, its
preview is the edit's geometry. Two tests build the app's handlers (Gradio, no page): the
photo's size bound and the components ``experiment=paper`` chooses."""

from __future__ import annotations

import ast
import inspect
import shlex
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image as PILImage

from object_displacement import app_state
from object_displacement.api import load_pipeline
from object_displacement.app_state import (
    BOX,
    MAX_UNDO,
    NOT_OBJECT,
    OBJECT,
    PLACE,
    Settings,
    Tab,
    adjusted,
    anchor_point,
    cleared,
    clicked,
    command,
    destination,
    names_object,
    opened,
    placed,
    preview,
    prompted,
    request,
    selection_view,
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
    assert first.corner == (61, 71) and first.box is None and not first.history[-1].corner
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
    assert undone(three) == two and undone(three).mask is two.mask  # the mask comes back: no re-segmenting
    assert undone(undone(three)) == one and undone(undone(three)).mask is mask
    assert undone(undone(undone(three))) == tab
    with pytest.raises(DisplacementError, match="nothing to undo"):
        undone(tab)
    # a cleared selection comes back; the scale and flip stay as the page shows them
    assert undone(adjusted(cleared(three), scale=2, flip=True)) == replace(three, scale=2.0, flip=True)


def test_undo_history_is_bounded(tab):
    for x in range(MAX_UNDO + 5):
        tab = clicked(tab, x, 3, OBJECT)
    assert len(tab.history) == MAX_UNDO
    assert all(not past.history for past in tab.history)  # no history within a history


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
    assert_outlines(preview(tab, anchor), selection_view(tab), alpha >= 0.5)


def assert_outlines(view: np.ndarray, under: np.ndarray, where: np.ndarray) -> None:
    """``view`` is ``under`` with an outline drawn along the edge of ``where`` and nowhere else."""
    drawn = np.any(view != under, axis=-1)
    assert drawn.any()
    inside = distance_to(~where)  # 0 outside, the depth into the mask inside
    outside = distance_to(where)
    assert not (drawn & (inside > 2.5)).any() and not (drawn & (outside > 1.5)).any()
    edge = where & (inside <= 1)
    assert (drawn | ~edge).all()  # every edge pixel of the outer outline is drawn
    x0, y0, x1, y1 = Candidate(drawn).bbox
    assert np.abs(np.subtract((x0, y0, x1, y1), Candidate(where).bbox)).max() <= 1


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
    assert_outlines(preview(placed_tab, defaults.anchor), selection_view(placed_tab), result.plan.moved_mask)


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
    from object_displacement.app import Handlers, Pipelines

    photo = big_photo(tmp_path / "big.png")
    pipelines = Pipelines([*CHEAP, "max_megapixels=1"], cache_dir=str(tmp_path / "cache"))
    on = Handlers(pipelines, root=str(tmp_path))
    with pytest.warns(UserWarning, match="max_megapixels=1"):  # gr.Warning, outside a page
        refused = on.open_photo(str(photo), None, None, *pipelines.choices)
    assert refused[0].startswith("⚠️") and "max_megapixels=1" in refused[0]
    small = big_photo(tmp_path / "small.png", 800, 600)
    status, _, tab, *_ = on.open_photo(str(small), None, None, *pipelines.choices)
    assert status.startswith("Opened small.png (800x600)") and tab.pixels.shape == (600, 800, 3)


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


def test_the_page_handlers_select_place_undo_and_move(tmp_path, square_scene):
    """The handlers the page wires, called as Gradio calls them: each returns what its
    outputs take, and the move is the edit of the tab's request."""
    from object_displacement.app import Handlers, Pipelines

    image, _ = square_scene
    photo_file = tmp_path / "square.png"
    PILImage.fromarray(image).save(photo_file)
    pipelines = Pipelines(list(CHEAP), cache_dir=str(tmp_path / "cache"))
    on, components = Handlers(pipelines, root=str(tmp_path)), pipelines.choices

    def at(x: int, y: int) -> SimpleNamespace:  # what gr.SelectData gives a click on the photo
        return SimpleNamespace(index=(x, y))

    status, _, tab, cli, *_ = on.open_photo(str(photo_file), None, None, *components)
    assert status.startswith("Opened square.png (160x120)") and cli == ""
    status, _, tab, _, _, cli = on.click(at(45, 55), OBJECT, tab, 1.0, False, *components)
    assert status.startswith("Selected") and tab.mask is not None and "target.points=[[45,55]]" in cli
    selected = tab
    status, shown, tab, dx, dy, cli = on.click(at(110, 60), PLACE, tab, 2.0, True, *components)
    assert status.startswith("Placed") and (dx, dy) == (tab.dx, tab.dy) != (0, 0)
    assert "scale=2.0" in cli and "flip=true" in cli
    np.testing.assert_array_equal(shown, preview(tab, "center"))
    status, _, undone_tab, dx, dy, _ = on.undo(tab, *components)
    assert undone_tab == replace(selected, scale=2.0, flip=True) and (dx, dy) == (0, 0)
    status, _, _, _, tab, _ = on.move(tab, 2.0, True, *components, progress=lambda *a, **k: None)
    assert status.startswith("Moved by"), status
    downloaded = np.asarray(PILImage.open(Path(tab.folder) / "output.png"))
    _, result = edit(load_pipeline(list(CHEAP)), request(tab, pipelines.get(components).defaults))
    np.testing.assert_array_equal(downloaded, result.output)
    with pytest.warns(UserWarning, match="nothing to undo"):  # gr.Warning, outside a page
        status, *_ = on.undo(Tab(folder=tab.folder), *components)
    assert status.startswith("⚠️") and "nothing to undo" in status
