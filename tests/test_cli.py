"""The command line as a user runs it, through a subprocess."""

import json

import numpy as np
import pytest
from PIL import Image
from skimage import data

from tests.conftest import displace

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("demo")
    proc = displace(f"hydra.run.dir={run_dir}")
    assert proc.returncode == 0, proc.stderr
    return run_dir


def test_demo_moves_the_rocket_and_fills_its_old_place(demo_run):
    names = {p.name for p in demo_run.iterdir()}
    assert {"input.png", "mask.png", "overlay.png", "composite.png", "output.png", "grid.png"} <= names
    metrics = json.loads((demo_run / "metrics.json").read_text())
    assert metrics["dx"] == 100 and metrics["dy"] == 0
    y0 = metrics["object_bbox"][1]
    assert y0 <= 130  # nose cone included
    original = data.rocket().astype(int)
    output = np.asarray(Image.open(demo_run / "output.png")).astype(int)
    # the old place now looks like the sky beside it, not like the white rocket body
    body = (slice(200, 300), slice(318, 328))
    sky = original[200:300, 270:280].mean(axis=(0, 1))
    assert np.abs(output[body].mean(axis=(0, 1)) - sky).max() < 20
    assert np.abs(original[body].mean(axis=(0, 1)) - sky).max() > 60  # it was not sky before
    # and the rocket body stands 100 px to the right
    np.testing.assert_array_equal(output[200:300, 418:428], original[body])


@pytest.fixture
def cat_jpg(tmp_path):
    path = tmp_path / "cat.jpg"
    Image.fromarray(data.chelsea()).save(path)
    return path


def test_user_photo_with_box_and_output_path(cat_jpg, tmp_path):
    out = tmp_path / "moved.png"
    proc = displace(
        f"image={cat_jpg}",
        "target.box=[140,40,330,300]",
        "dx=40",
        "dy=10",
        f"output={out}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert proc.returncode == 0, proc.stderr
    assert np.asarray(Image.open(out)).shape == (300, 451, 3)


def test_mask_mode_writes_the_mask_and_an_overlay(cat_jpg, tmp_path):
    proc = displace(f"image={cat_jpg}", "target.point=[250,150]", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr
    mask = np.asarray(Image.open(tmp_path / "run" / "mask.png"))
    assert mask.shape == (300, 451) and mask[150, 250] == 255
    assert (tmp_path / "run" / "overlay.png").exists() and not (tmp_path / "run" / "output.png").exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["image=/no/such/photo.jpg", "target.point=[1,1]"], "image not found"),
        (["image={bad}", "target.point=[1,1]"], "cannot read"),
        (["image={cat}", "target.box=[10,10,5,40]"], "is empty"),
        (["image={cat}", "target.box=[900,900,990,990]"], "outside"),
        (["image={cat}", "target.point=[451,10]"], "outside"),
        (["image={flat}", "target.box=[10,10,60,60]"], "no candidate"),
        (["image={cat}", "target.box=[140,40,330,300]", "dx=5000"], "wholly out"),
        (["image={cat}", "target.box=[140,40,330,300]", "dx=5", "output={cat}"], "is the input"),
        (["image={cat}", "target.prompt=cat"], "text-only target"),
        (["dx=left"], "dx must be a number"),
    ],
)
def test_bad_input_is_one_line_exit_2_and_nothing_overwritten(args, message, cat_jpg, tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("this is not a picture")
    flat = tmp_path / "flat.png"
    Image.fromarray(np.full((80, 80, 3), 90, np.uint8)).save(flat)
    before = cat_jpg.read_bytes()
    args = [a.format(bad=bad, cat=cat_jpg, flat=flat) for a in args]
    proc = displace(*args, f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and lines[0].startswith("error:")
    assert "Traceback" not in proc.stdout + proc.stderr
    assert cat_jpg.read_bytes() == before


def test_help_and_cfg_job_work_as_in_any_hydra_app():
    help_text = displace("--help")
    assert help_text.returncode == 0 and "dy > 0 moves UP" in help_text.stdout
    listed = dict(line.split(": ", 1) for line in help_text.stdout.splitlines() if ": " in line)
    assert {"ns", "patchmatch", "telea", "sd", "sdxl"} == {o.strip() for o in listed["inpainter"].split(",")}
    job = displace("--cfg", "job", "inpainter=telea", "dx=5")
    assert job.returncode == 0 and "method: telea" in job.stdout and "dx: 5" in job.stdout


def test_multirun_over_two_inpainters_gives_two_run_dirs(tmp_path):
    proc = displace("-m", "inpainter=telea,patchmatch", f"hydra.sweep.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    runs = sorted(p for p in tmp_path.iterdir() if (p / "output.png").exists())
    assert [p.name for p in runs] == ["0", "1"]
    outputs = [np.asarray(Image.open(p / "output.png")) for p in runs]
    assert (outputs[0] != outputs[1]).any()
