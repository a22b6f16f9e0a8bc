"""Issue 5: scenes with a known answer, the scores against them, the runner."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from object_displacement.benchmark.scenes import generate, make_scene
from object_displacement.benchmark.scoring import mask_iou, regions, score
from object_displacement.geometry import shift
from object_displacement.segmenters.mask_file import MaskFileSegmenter
from object_displacement.types import Target
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def scenes():
    return generate()


def test_scene_generation_is_deterministic():
    a, b = make_scene(5, seed=3), make_scene(5, seed=3)
    np.testing.assert_array_equal(a.input, b.input)
    np.testing.assert_array_equal(a.truth, b.truth)
    assert (a.dx, a.dy, a.box) == (b.dx, b.dy, b.box)
    assert not np.array_equal(make_scene(5, seed=4).input, a.input)


def test_truth_differs_from_input_only_where_the_object_was_and_goes(scenes):
    for scene in scenes:
        changed = (scene.input != scene.truth).any(axis=2)
        footprint = scene.footprint | scene.moved_footprint
        assert not (changed & ~footprint).any(), scene.name
        assert (scene.mask <= scene.footprint).all()
        assert changed.any(), scene.name


def test_default_scenes_cover_every_factor(scenes):
    assert len(scenes) >= 24
    tags = [s.tags for s in scenes]
    assert {t["motion"] for t in tags} == {"apart", "overlap", "border"}
    assert {t["shape"] for t in tags} == {"ellipse", "polygon", "horse", "cutout"}
    assert {t["smooth"] for t in tags} == {"True", "False"}
    assert {t["size"] for t in tags} == {0.1, 0.2, 0.33}
    for scene in scenes:
        if scene.scale == 1.0:
            np.testing.assert_array_equal(scene.moved_mask, shift(scene.mask, scene.dx, scene.dy))
    assert max(s.input.shape[1] for s in scenes) == 1024
    for scene in scenes:
        moved = scene.moved_mask
        overlaps = bool((moved & scene.mask).any())
        if scene.tags["motion"] == "apart":
            assert not overlaps, scene.name
        if scene.tags["motion"] == "border":
            ys, xs = np.nonzero(scene.footprint)
            assert xs.min() == 0 or ys.max() == scene.mask.shape[0] - 1, scene.name
        # the object stays in the frame, at its new scale
        assert moved.sum() == pytest.approx(scene.scale**2 * scene.mask.sum(), rel=0.1), scene.name
    assert {s.scale for s in scenes} == {0.7, 1.0, 1.5}


def test_scores_of_known_inputs():
    truth = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    area = np.zeros((64, 64), bool)
    area[10:20, 10:20] = True
    same = score(truth, truth, {"image": np.ones((64, 64), bool), "vacated": area})
    assert same == {"psnr_image": 100.0, "ssim_image": 1.0, "psnr_vacated": 100.0, "ssim_vacated": 1.0}
    off = truth.copy()
    off[15, 15, 0] = truth[15, 15, 0] ^ 0x80  # one channel of one pixel off by 128
    changed = score(off, truth, {"image": np.ones((64, 64), bool), "vacated": area})
    assert changed["psnr_image"] == pytest.approx(10 * np.log10(255**2 / (128**2 / (64 * 64 * 3))), abs=1e-3)
    assert changed["psnr_vacated"] == pytest.approx(10 * np.log10(255**2 / (128**2 / 300)), abs=1e-3)
    assert changed["ssim_vacated"] < 1.0
    assert mask_iou(area, area) == 1.0 and mask_iou(area, ~area) == 0.0


def test_regions_are_the_vacated_place_and_a_ring_around_the_new_one():
    old = np.zeros((50, 80), bool)
    old[10:30, 10:30] = True
    new = shift(old, 10, 0)
    areas = regions(old, new)
    assert areas["vacated"].sum() == 20 * 10 and not (areas["vacated"] & new).any()
    assert not (areas["seam"] & new).any() and areas["seam"].any()


def test_the_true_mask_segmenter_is_exact(scenes, tmp_path):
    from object_displacement.io import write_image

    scene = scenes[9]
    segmenter = MaskFileSegmenter(str(write_image(tmp_path / "mask.png", scene.mask)))
    (candidate,) = segmenter.propose(scene.input, Target(box=scene.box))
    np.testing.assert_array_equal(candidate.mask, scene.mask)


@pytest.mark.slow
def test_runner_writes_one_row_per_configuration_with_means_and_worst(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "benchmark.py"),
            "logger=none",
            "scenes.count=3",
            "select=[telea,telea-true-mask]",
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    with (tmp_path / "summary.csv").open() as handle:
        summary = {r["configuration"]: r for r in csv.DictReader(handle)}
    assert set(summary) == {"telea", "telea-true-mask"}
    assert float(summary["telea-true-mask"]["mask_iou_mean"]) == 1.0
    for row in summary.values():
        assert float(row["psnr_vacated_worst"]) <= float(row["psnr_vacated_mean"])
        assert int(row["peak_mb"]) > 0 and row["failed"] == "0"
    with (tmp_path / "scenes.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 6
    assert (tmp_path / "summary.md").read_text().startswith("| configuration |")


@pytest.mark.slow
def test_diffusion_inpainters_run_in_the_benchmark_as_a_smoke_check(tiny_models, tmp_path):
    # tiny random models say nothing about quality; this checks the benchmark drives them
    sd = ",".join(
        f'"{o}"'
        for o in (
            "inpainter=sd",
            f"inpainter.model={tiny_models['sd']}",
            "inpainter.variant=null",
            "inpainter.resolution=64",
            "inpainter.steps=2",
            "fabric.accelerator=cpu",
        )
    )
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "benchmark.py"),
            "logger=none",
            "scenes.count=2",
            f"+configurations.sd-tiny=[{sd}]",
            "select=[sd-tiny]",
            f"hydra.run.dir={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    with (tmp_path / "summary.csv").open() as handle:
        (row,) = list(csv.DictReader(handle))
    assert row["configuration"] == "sd-tiny" and row["failed"] == "0"


def test_ghost_score_ranks_known_afterimages_by_strength(scenes):
    from object_displacement.benchmark.runner import ghost_calibration

    assert ghost_calibration(scenes[:8]) > 0.6
