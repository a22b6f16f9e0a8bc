"""The task function on a scene whose right answer is exact."""

import json

import numpy as np
import pytest
from PIL import Image

from object_displacement.errors import DisplacementError
from object_displacement.ghost import ghost_score
from object_displacement.jobs import displace


@pytest.fixture
def square_png(tmp_path, square_scene):
    path = tmp_path / "square.png"
    Image.fromarray(square_scene[0]).save(path)
    return path


@pytest.mark.models
def test_moves_the_square_and_restores_the_wall(make_cfg, square_png, square_scene):
    image, mask = square_scene
    cfg = make_cfg(f"image={square_png}", "target.box=[25,35,65,75]", "dx=60", "dy=-30")
    metrics, result = displace(cfg)
    # the square now occupies rows 70..99, columns 90..119, pixel for pixel
    np.testing.assert_array_equal(result.output[70:100, 90:120], image[40:70, 30:60])
    # where it was, the flat grey wall is back
    assert np.abs(result.output[40:70, 30:60].astype(int) - 128).max() <= 2
    assert metrics["dx"] == 60 and metrics["dy"] == -30 and metrics["kept_fraction"] == 1.0
    # the reported ghost score is the kept output's, as a fresh computation gives it
    vacated = result.mask & ~result.plan.moved_mask
    assert metrics["quality"]["ghost_appearance"] == round(ghost_score(image, result.output, vacated), 4)
    assert metrics["object_area_px"] == pytest.approx(mask.sum(), rel=0.05)


@pytest.mark.models
def test_writes_every_artifact_and_metrics(make_cfg, square_png, tmp_path):
    out = tmp_path / "result.png"
    cfg = make_cfg(f"image={square_png}", "target.box=[25,35,65,75]", "dx=20", f"output={out}")
    metrics, _ = displace(cfg)
    run = tmp_path / "run"
    names = {"input", "mask", "overlay", "composite", "output", "grid"}
    assert {p.stem for p in run.glob("*.png")} == names
    saved = json.loads((run / "metrics.json").read_text())
    assert saved == metrics
    assert set(saved["timings_s"]) == {"segment", "select", "shadow", "plan", "composite", "inpaint"}
    assert saved["shadow"] is None  # a flat grey wall: no shadow beside the square
    assert saved["candidate_count"] >= 1 and 0 < saved["selection_score"] <= 1
    # the full ranking is kept, best first, for logging and comparison
    assert saved["ranking"][0]["score"] == saved["selection_score"]
    assert saved["ranking"][0]["bbox"] == saved["object_bbox"]
    np.testing.assert_array_equal(np.asarray(Image.open(out)), np.asarray(Image.open(run / "output.png")))


@pytest.mark.models
def test_without_displacement_it_writes_the_mask(make_cfg, square_png, square_scene, tmp_path):
    out = tmp_path / "mask.png"
    metrics, result = displace(make_cfg(f"image={square_png}", "target.point=[45,55]", f"output={out}"))
    assert metrics["mode"] == "mask" and result.output is None
    written = np.asarray(Image.open(out)) > 0
    assert (written & square_scene[1]).sum() / (written | square_scene[1]).sum() > 0.9
    assert not (tmp_path / "run" / "output.png").exists()


def test_output_equal_to_input_is_refused_before_anything_is_written(make_cfg, square_png):
    before = square_png.read_bytes()
    with pytest.raises(DisplacementError, match="is the input"):
        displace(make_cfg(f"image={square_png}", "target.box=[25,35,65,75]", "dx=5", f"output={square_png}"))
    assert square_png.read_bytes() == before


@pytest.mark.models
def test_demo_defaults_do_not_leak_into_a_users_photo(make_cfg, square_png):
    metrics, _ = displace(make_cfg(f"image={square_png}", "target.point=[45,55]"))
    assert metrics["mode"] == "mask" and metrics["target"] == "point"


@pytest.mark.models
def test_keep_out_boxes_are_never_copied_into_the_hole(make_cfg, square_scene, tmp_path):
    # the square sits on a green sign that fills most of the fill's source: without
    # keep_out the vacated place copies green from it; with the sign kept out, grey wall
    image = square_scene[0].copy()
    rng = np.random.default_rng(1)
    sign = np.array([30, 200, 30], dtype=np.uint8) + rng.integers(0, 30, (120, 100, 1), np.uint8)
    inside = image[36:74, 26:64].copy()
    image[:, :100] = sign
    image[36:74, 26:64] = inside
    path = tmp_path / "sign.png"
    Image.fromarray(image).save(path)
    move = [f"image={path}", "target.box=[25,35,65,75]", "dx=80", "ghost_check.max_attempts=1"]

    def green_in_hole(*extra: str) -> int:
        _, result = displace(make_cfg(*move, *extra))
        hole = result.output[40:70, 30:60].astype(int)
        if extra:
            assert np.abs(hole - 128).max() <= 2  # the grey wall, not black or red
        return int(((hole[..., 1] - hole[..., 0]) > 60).sum())

    assert green_in_hole() > 0  # the scene does provoke the copy
    # the box takes the whole sign with the square on it: what is left is the wall beyond
    assert green_in_hole("keep_out=[[0,0,100,120]]") == 0
