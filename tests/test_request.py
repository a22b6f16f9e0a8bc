"""One edit request through every entry point: the command line, a manifest row and the API
build the same request from the same values, and a row or a call that says nothing of a
setting gets the run's."""

from __future__ import annotations

import json

import numpy as np
import pytest
from omegaconf import open_dict
from PIL import Image

from object_displacement import build as build_module
from object_displacement.dataset import read_manifest, row_request
from object_displacement.errors import DisplacementError
from object_displacement.jobs import config_request, displace, run_dataset
from object_displacement.request import make_defaults, make_request
from object_displacement.types import EditDefaults, EditRequest, Move, Target


def test_a_request_takes_the_runs_settings_where_it_is_silent():
    defaults = make_defaults(scale=2, flip="yes", anchor="bottom", keep_out=[[0, 0, 5, 5]], max_megapixels=3)
    request = make_request("a.png", box=[1, 2, 30, 40], dx="7", dy="", defaults=defaults)
    assert request == EditRequest(
        "a.png", Target(box=(1, 2, 30, 40)), Move(7, 0, 2.0, True, "bottom"), ((0, 0, 5, 5),), 3.0
    )
    spoken = make_request(
        "a.png", box=[1, 2, 30, 40], dx=7, scale=1, flip=False, anchor="center", keep_out=[]
    )
    assert spoken.move == Move(7, 0) and spoken.keep_out == ()
    assert make_request("a.png").target is None  # the segmenter's own target (a mask file)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"max_megapixels": 0}, "max_megapixels must be a number above 0"),
        ({"max_megapixels": "lots"}, "max_megapixels must be"),
        ({"anchor": "top"}, "anchor must be center or bottom"),
        ({"keep_out": [[5, 5, 1, 1]]}, r"keep_out box \[5, 5, 1, 1\] is empty"),
    ],
)
def test_bad_run_settings_say_what_is_wrong(values, message):
    with pytest.raises(DisplacementError, match=message):
        make_defaults(**values)


def test_the_command_line_and_the_api_build_the_same_request(make_cfg):
    cfg = make_cfg("image=photo.png", "target.box=[1,2,30,40]", "dx=7", "dy=-3", "scale=1.5", "anchor=bottom")
    defaults = build_module.edit_defaults(cfg)
    assert defaults == EditDefaults(scale=1.5, anchor="bottom")
    assert config_request(cfg) == make_request(
        "photo.png", box=(1, 2, 30, 40), dx=7, dy=-3, defaults=defaults
    )


@pytest.fixture
def square_manifest(tmp_path, square_scene):
    Image.fromarray(square_scene[0]).save(tmp_path / "square.png")
    manifest = tmp_path / "edits.csv"
    manifest.write_text("id,image,prompt,point,box,dx,dy\nsquare,square.png,,,25 35 65 75,40,0\n")
    return manifest


def test_a_manifest_row_gets_the_runs_anchor_scale_and_flip(make_cfg, square_manifest, tmp_path):
    # the row has no scale, flip or anchor column: `scale=2 anchor=bottom flip=true` apply
    cfg = make_cfg(
        f"+dataset.manifest={square_manifest}", "+dataset.name=t", "segmenter=grabcut", "inpainter=telea"
    )
    with open_dict(cfg):
        cfg.scale, cfg.flip, cfg.anchor = 0.5, True, "bottom"
    (row,) = run_dataset(cfg)
    assert row["status"] == "ok", row["error"]
    saved = json.loads((tmp_path / "run" / "edits" / "square" / "metrics.json").read_text())
    assert (saved["scale"], saved["flip"], saved["anchor"]) == (0.5, True, "bottom")
    # anchored at the bottom: the half-size square stands where the square stood (rows 40..69)
    output = np.asarray(Image.open(tmp_path / "run" / "edits" / "square" / "output.png")).astype(int)
    red = (output[..., 0] - output[..., 1]) > 100
    rows = np.flatnonzero(red[:, 70:].any(axis=1))
    assert rows.min() >= 53 and rows.max() == 69


def test_a_manifest_row_keeps_the_runs_keep_out(make_cfg, square_manifest):
    cfg = make_cfg(f"+dataset.manifest={square_manifest}", "+dataset.name=t", "keep_out=[[0,0,8,8]]")
    (row,) = read_manifest(square_manifest)
    assert row_request(row, build_module.edit_defaults(cfg)).keep_out == ((0, 0, 8, 8),)


def test_a_job_builds_each_component_once(make_cfg, tmp_path, square_scene, monkeypatch):
    Image.fromarray(square_scene[0]).save(tmp_path / "square.png")
    built: list[str] = []
    real = build_module.build

    def counting(node, kind):
        built.append(str(node.get("_target_")))
        return real(node, kind)

    monkeypatch.setattr(build_module, "build", counting)
    from object_displacement import jobs

    monkeypatch.setattr(jobs, "build", counting)
    image = f"image={tmp_path / 'square.png'}"
    displace(make_cfg(image, "segmenter=grabcut", "target.box=[25,35,65,75]", "dx=40"))
    assert len(built) == len(set(built)), built  # the logger and every stage: once each


def test_a_request_holds_its_pixels_and_names_its_source(square_scene):
    image = square_scene[0]
    request = make_request("<ndarray>", pixels=image, point=[45, 55])
    assert request.pixels is image and request.source == "<ndarray>" and not request.moves
    np.testing.assert_array_equal(request.pixels, image)
