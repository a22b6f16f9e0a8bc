"""The Python API: one pipeline, many edits, the CLI's results and errors, no files."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from object_displacement import DisplacementError, load_pipeline, move
from object_displacement.jobs import displace


@pytest.fixture(scope="module")
def pipeline():
    return load_pipeline(["inpainter=telea"])


@pytest.mark.models
def test_move_gives_what_the_cli_task_gives(pipeline, make_cfg, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    moved = move("skimage:rocket", box=[300, 120, 345, 408], dx=100, dy=-10, pipeline=pipeline)
    assert list(tmp_path.iterdir()) == []  # no run dir, no cache, no file: nothing was asked for
    cfg = make_cfg(
        "image=skimage:rocket", "target.box=[300,120,345,408]", "dx=100", "dy=-10", "inpainter=telea"
    )
    metrics, result = displace(cfg)
    np.testing.assert_array_equal(moved.output, result.output)
    np.testing.assert_array_equal(moved.mask, result.mask)
    assert moved.metrics["dx"] == 100 and moved.metrics["dy"] == -10
    assert moved.metrics["object_bbox"] == metrics["object_bbox"]
    assert "ghost_appearance" in moved.metrics["quality"]


@pytest.mark.models
def test_any_picture_type_and_output_file(pipeline, square_scene, tmp_path):
    image, truth = square_scene
    from_array = move(image, box=[25, 35, 65, 75], dx=50, dy=20, pipeline=pipeline)
    out = tmp_path / "moved.png"
    from_pil = move(Image.fromarray(image), box=[25, 35, 65, 75], dx=50, dy=20, pipeline=pipeline, output=out)
    np.testing.assert_array_equal(from_array.output, from_pil.output)
    np.testing.assert_array_equal(np.asarray(Image.open(out)), from_pil.output)
    assert (from_array.mask & truth).sum() > 0.9 * truth.sum()
    # the square now stands 50 px right and 20 px up: dy > 0 is up
    np.testing.assert_array_equal(from_array.output[20:50, 80:110], image[40:70, 30:60])


@pytest.mark.models
def test_mask_mode_without_a_move(pipeline, square_scene):
    image, _ = square_scene
    moved = move(image, box=[25, 35, 65, 75], pipeline=pipeline)
    assert moved.output is None and moved.metrics["mode"] == "mask"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"image": "nowhere.png", "point": [1, 1], "dx": 5}, "image not found"),
        ({"image": "skimage:rocket", "point": [9999, 1], "dx": 5}, "outside the 640x427 image"),
        ({"image": "skimage:rocket", "dx": 5}, "no target"),
        ({"image": np.zeros((8, 8, 3), np.float32), "point": [1, 1]}, "must be uint8"),
        ({"image": "skimage:rocket", "point": [320, 250], "scale": 0}, "scale must be"),
        ({"image": "skimage:rocket", "point": [320, 250], "dx": 5, "keep_out": [[9, 9, 1, 1]]}, "keep_out"),
    ],
)
def test_the_cli_errors_as_displacement_error(pipeline, kwargs, message):
    image = kwargs.pop("image")
    with pytest.raises(DisplacementError, match=message):
        move(image, pipeline=pipeline, **kwargs)


def test_bad_overrides_and_missing_weights_are_user_errors(tmp_path):
    with pytest.raises(DisplacementError, match="cannot apply the overrides"):
        load_pipeline(["segmenter=nosuch"])
    with pytest.raises(DisplacementError, match="make weights"):
        load_pipeline(["segmenter=sam", f"paths.weights_dir={tmp_path}"])
