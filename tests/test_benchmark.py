"""Issue 5: scenes with a known answer, the scores against them, the runner."""

import csv
import os
import subprocess
import sys

import numpy as np
import pytest

from object_displacement.benchmark.scenes import (
    FACE_BOX,
    HARD,
    REAL,
    REAL_SOURCES,
    SHADOWED,
    generate,
    make_hard_scene,
    make_real_scene,
    make_scene,
    make_shadow_scene,
    real_cutout,
)
from object_displacement.benchmark.scoring import gms_map, regions, score
from object_displacement.geometry import mask_iou, shift
from object_displacement.segmenters.mask_file import MaskFileSegmenter
from object_displacement.types import Target
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def scenes():
    return generate(real=False, shadows=False)  # the synthetic and the hard ones; the others have their own


@pytest.fixture(scope="module")
def real_scenes():
    return [make_real_scene(name) for name in REAL]


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


@pytest.mark.models
def test_scores_of_known_inputs():
    truth = np.random.default_rng(0).integers(0, 256, size=(64, 64, 3), dtype=np.uint8)
    area = np.zeros((64, 64), bool)
    area[10:20, 10:20] = True
    same = score(truth, truth, {"image": np.ones((64, 64), bool), "vacated": area})
    assert same == {
        **{
            f"{kind}_{region}": best
            for kind, best in (("psnr", 100.0), ("ssim", 1.0), ("gms", 1.0))
            for region in ("image", "vacated")
        },
        "texture_vacated": 1.0,
    }
    off = truth.copy()
    off[15, 15, 0] = truth[15, 15, 0] ^ 0x80  # one channel of one pixel off by 128
    changed = score(off, truth, {"image": np.ones((64, 64), bool), "vacated": area})
    assert changed["psnr_image"] == pytest.approx(10 * np.log10(255**2 / (128**2 / (64 * 64 * 3))), abs=1e-3)
    assert changed["psnr_vacated"] == pytest.approx(10 * np.log10(255**2 / (128**2 / 300)), abs=1e-3)
    assert changed["ssim_vacated"] < 1.0 and changed["gms_vacated"] < 1.0
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
        assert float(row["gms_vacated_worst"]) <= float(row["gms_vacated_mean"]) <= 1.0
        assert float(row["texture_vacated_mean"]) > 0
        assert int(row["peak_mb"]) > 0 and row["failed"] == "0"
    with (tmp_path / "scenes.csv").open() as handle:
        assert len(list(csv.DictReader(handle))) == 2 * (3 + len(HARD) + len(REAL) + 2 * len(SHADOWED))
    head = (tmp_path / "summary.md").read_text().splitlines()[0]
    assert (
        head.startswith("| configuration |") and "| GMS vacated |" in head and "| texture vacated |" in head
    )
    with (tmp_path / "summary_real.csv").open() as handle:  # the real scenes, reported apart
        real = {r["configuration"]: r for r in csv.DictReader(handle)}
    assert set(real) == {"telea", "telea-true-mask"} and real["telea"]["scenes"] == str(len(REAL))
    assert float(real["telea-true-mask"]["mask_iou_mean"]) == 1.0
    assert "Real-object scenes only" in (tmp_path / "summary.md").read_text()
    with (tmp_path / "summary_shadow.csv").open() as handle:  # the shadow pairs, with their scores
        shadow = {r["configuration"]: r for r in csv.DictReader(handle)}
    assert shadow["telea"]["scenes"] == str(2 * len(SHADOWED))
    for row in shadow.values():
        assert float(row["shadow_removed_mean"]) > 0.3 and float(row["shadow_cast_mean"]) > 0.5
        assert 0.95 < float(row["shadowless_brightness_mean"]) < 1.05
    assert "| shadow removed | shadow cast | shadowless brightness |" in head


@pytest.mark.slow
@pytest.mark.models
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


@pytest.mark.models
def test_gms_pooled_over_the_whole_image_by_its_deviation_is_piqs_gmsd():
    import piq
    import torch

    rng = np.random.default_rng(1)
    truth = rng.integers(0, 256, size=(64, 96, 3), dtype=np.uint8)
    output = np.clip(truth + rng.normal(0, 30, truth.shape), 0, 255).astype(np.uint8)

    def tensor(image):
        return torch.from_numpy(image).permute(2, 0, 1)[None].double() / 255

    expected = piq.gmsd(tensor(output), tensor(truth), data_range=1.0).item()
    assert gms_map(output, truth).std() == pytest.approx(expected, rel=1e-9)
    assert gms_map(truth, truth).min() == 1.0


@pytest.mark.parametrize("texture", ["grass", "gravel"])
@pytest.mark.models
def test_a_sharp_true_texture_beats_a_blur_on_gms_and_texture_where_psnr_prefers_the_blur(texture):
    import cv2
    from skimage import data

    truth = np.repeat(getattr(data, texture)()[:256, :256, None], 3, axis=2)
    hole = np.zeros((256, 256), np.uint8)
    cv2.ellipse(hole, (128, 128), (40, 30), 0, 0, 360, 1, -1)
    area = hole.astype(bool)
    telea = cv2.inpaint(truth, hole, 5, cv2.INPAINT_TELEA)
    blurred = truth.copy()
    blurred[area] = cv2.GaussianBlur(truth, (0, 0), 4)[area]
    sharp = truth.copy()  # the same texture from elsewhere in the photo: right kind, wrong place
    sharp[area] = np.roll(truth, (37, -61), axis=(0, 1))[area]
    areas = {"vacated": area}
    good = score(sharp, truth, areas)
    for blur in (telea, blurred):
        bad = score(blur, truth, areas)
        assert bad["psnr_vacated"] > good["psnr_vacated"] and bad["ssim_vacated"] > good["ssim_vacated"]
        assert good["gms_vacated"] > bad["gms_vacated"] + 0.05
        assert bad["texture_vacated"] < 0.5
        assert abs(np.log(good["texture_vacated"])) < abs(np.log(bad["texture_vacated"]))


def test_texture_ratio_means_are_geometric_and_the_worst_is_the_farthest_from_one():
    from object_displacement.benchmark.runner import SCORES, summarize

    base = {"configuration": "c", "status": "ok", "seconds_total": 1.0}
    base |= {key: 1.0 for key in SCORES} | {
        f"seconds_{s}": 0.0 for s in ("segment", "select", "plan", "inpaint")
    }
    rows = [
        base | {"texture_vacated": 0.5, "gms_vacated": 0.9},
        base | {"texture_vacated": 1.5, "gms_vacated": 0.7},
    ]
    (entry,) = summarize(rows, {"c": 1})
    assert entry["texture_vacated_worst"] == 0.5
    assert entry["texture_vacated_mean"] == pytest.approx(np.sqrt(0.75), abs=1e-4)
    assert entry["gms_vacated_mean"] == pytest.approx(0.8) and entry["gms_vacated_worst"] == 0.7


def test_hard_scenes_follow_the_regular_ones_and_are_deterministic(scenes):
    hard = [s for s in scenes if "hard" in s.tags]
    assert [s.tags["hard"] for s in hard] == list(HARD) == ["face", "text", "courses", "tiles", "rim"]
    assert scenes[: len(scenes) - len(HARD)] == [s for s in scenes if "hard" not in s.tags]
    assert len(generate(count=2, hard=False, real=False, shadows=False)) == 2
    for kind in HARD:
        a, b = make_hard_scene(kind, seed=3), make_hard_scene(kind, seed=3)
        np.testing.assert_array_equal(a.input, b.input)
        np.testing.assert_array_equal(a.truth, b.truth)
        assert (a.dx, a.dy, a.box) == (b.dx, b.dy, b.box)
        assert not np.array_equal(make_hard_scene(kind, seed=4).input, a.input)


def test_hard_scenes_put_structure_across_the_hole_and_faces_or_text_outside_it(scenes):
    import cv2

    hard = {s.tags["hard"]: s for s in scenes if "hard" in s.tags}
    for kind in ("courses", "tiles", "rim"):
        scene = hard[kind]
        edges = cv2.Canny(cv2.cvtColor(scene.truth, cv2.COLOR_RGB2GRAY), 50, 150) > 0
        vacated = scene.mask & ~scene.moved_mask
        assert edges[vacated].mean() > 0.02, kind  # the true background has lines through the hole
    face, text = hard["face"], hard["text"]
    k = face.input.shape[1] / 512
    face_box = np.zeros(face.mask.shape, bool)
    x0, y0, x1, y1 = (round(v * k) for v in FACE_BOX)
    face_box[y0:y1, x0:x1] = True
    for scene, keep in (
        (face, face_box),
        (text, np.arange(text.mask.shape[0])[:, None] < text.mask.shape[0] // 2),
    ):
        keep = np.broadcast_to(keep, scene.mask.shape)
        assert not (scene.footprint & keep).any() and not (scene.moved_footprint & keep).any(), scene.name
        # the face or the print is full of edges; the plain wall behind the object has few
        edges = cv2.Canny(cv2.cvtColor(scene.truth, cv2.COLOR_RGB2GRAY), 50, 150) > 0
        assert edges[keep].mean() > 5 * edges[scene.mask & ~scene.moved_mask].mean(), scene.name


def test_real_scenes_follow_the_hard_ones_with_a_real_cutout_on_another_photo(real_scenes):
    scenes = generate(count=2, shadows=False)
    assert [s.tags.get("real") for s in scenes[-len(REAL) :]] == list(REAL)
    assert [s.tags.get("hard") for s in scenes[2 : 2 + len(HARD)]] == list(HARD)
    assert len(generate(count=2, real=False, shadows=False)) == 2 + len(HARD)
    for scene in real_scenes:
        name = scene.tags["real"]
        assert scene.tags["background"] != REAL_SOURCES[name], scene.name
        assert scene.tags["shape"] == "real" and 0.15 <= scene.tags["size"] <= 0.35
        height, width = scene.mask.shape
        ys, xs = np.nonzero(scene.footprint)
        extent = max(ys.max() - ys.min(), xs.max() - xs.min()) + 1
        assert 0.14 <= extent / min(width, height) <= 0.36, scene.name
        # the truth is the paste itself: it differs from the input only where the object was and goes
        changed = (scene.input != scene.truth).any(axis=2)
        assert changed.any() and not (changed & ~(scene.footprint | scene.moved_footprint)).any(), scene.name


def test_real_scene_masks_are_the_cutout_alpha_at_its_old_and_new_place(real_scenes):
    from object_displacement.geometry import place_object

    for scene in real_scenes:
        ys, xs = np.nonzero(scene.footprint)
        y0, x0, h, w = ys.min(), xs.min(), ys.max() - ys.min() + 1, xs.max() - xs.min() + 1
        # the cutout at the size the scene drew (trimming may take a pixel off its box)
        alpha = next(
            a
            for e in range(max(h, w), max(h, w) + 4)
            if (a := real_cutout(scene.tags["real"], e)[0]).shape == (h, w)
        )
        at_a = np.zeros(scene.mask.shape, np.float32)
        at_a[y0 : y0 + h, x0 : x0 + w] = alpha
        np.testing.assert_array_equal(scene.mask, at_a >= 0.5)
        np.testing.assert_array_equal(scene.footprint, at_a > 0)
        if scene.scale == 1.0:
            at_b = shift(at_a, scene.dx, scene.dy)
        else:
            at_b = np.clip(place_object(at_a, at_a > 0, scene.dx, scene.dy, scene.scale)[0], 0, 1)
        np.testing.assert_array_equal(scene.moved_mask, at_b >= 0.5)
        assert scene.moved_mask.sum() == pytest.approx(scene.scale**2 * scene.mask.sum(), rel=0.1)
        x0b, y0b, x1b, y1b = scene.box  # the user's box holds the whole object
        assert scene.mask[:y0b].sum() == scene.mask[y1b:].sum() == scene.mask[:, :x0b].sum() == 0
        assert scene.mask[:, x1b:].sum() == 0


def test_real_scene_cutouts_are_soft_edged_and_their_colour_carries_no_background():
    for name in REAL:
        alpha, colour = real_cutout(name, 200)
        assert max(alpha.shape) == pytest.approx(200, abs=2) and colour.shape == (*alpha.shape, 3)
        fringe = (alpha > 0) & (alpha < 1)
        assert fringe.any() and (alpha == 1).sum() > fringe.sum(), name  # a 1-2 px soft edge
        assert (colour[alpha == 0] == 0).all()
        assert alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any()


def test_real_scene_generation_is_repeatable_with_a_seed():
    for name in ("cup", "motorcycle"):
        a, b = make_real_scene(name, seed=3), make_real_scene(name, seed=3)
        np.testing.assert_array_equal(a.input, b.input)
        np.testing.assert_array_equal(a.truth, b.truth)
        np.testing.assert_array_equal(a.mask, b.mask)
        assert (a.name, a.dx, a.dy, a.box, a.tags) == (b.name, b.dx, b.dy, b.box, b.tags)
        assert not np.array_equal(make_real_scene(name, seed=4).input, a.input)


def test_family_summaries_take_only_the_tagged_scenes():
    from object_displacement.benchmark.runner import SCORES, summarize

    base = {"configuration": "c", "status": "ok", "seconds_total": 1.0} | {key: 1.0 for key in SCORES}
    rows = [base | {"mask_iou": 0.5}, base | {"mask_iou": 0.9, "real": "cup"}, base | {"hard": "face"}]
    (everything,) = summarize(rows, {"c": 1})
    (real,) = summarize(rows, {"c": 1}, "real")
    assert everything["scenes"] == 3 and real["scenes"] == 1
    assert real["mask_iou_mean"] == 0.9 and everything["mask_iou_worst"] == 0.5


# -- shadow scenes ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shadow_pairs():
    return [(make_shadow_scene(n, True), make_shadow_scene(n, False)) for n in range(len(SHADOWED))]


def test_shadow_scenes_come_last_in_pairs_with_and_without_the_shadow():
    scenes = generate(count=1, hard=False, real=False)
    assert [s.tags["shadow"] for s in scenes[1:]] == ["cast", "none"] * len(SHADOWED)
    assert len(generate(count=1, hard=False, real=False, shadows=False)) == 1


def test_a_shadow_darkens_the_surface_by_40_to_60_percent_and_moves_with_the_object(shadow_pairs):
    from object_displacement.colour import luminance, to_linear
    from object_displacement.geometry import place_object

    for cast, plain in shadow_pairs:
        # the same scene: the same object, place and move; only the shadow differs
        assert (cast.dx, cast.dy, cast.box) == (plain.dx, plain.dy, plain.box)
        np.testing.assert_array_equal(cast.mask, plain.mask)
        changed = (cast.input != plain.input).any(axis=2)
        assert not (changed & (cast.shadow == 0)).any(), cast.name
        assert plain.shadow is None and plain.lit_truth is None
        deepest = float(cast.shadow.max())
        assert 0.35 <= deepest <= 0.6, cast.name  # a penumbra may blur a thin shadow's peak
        _, moved, _ = place_object(
            cast.shadow, cast.footprint, cast.dx, cast.dy, cast.scale, coverage=cast.shadow
        )
        np.testing.assert_allclose(cast.moved_shadow, moved)
        # in linear light the shadowed surface is the lit one times (1 - attenuation)
        core = (cast.shadow > 0.3) & ~cast.footprint
        ratio = luminance(to_linear(cast.input))[core] / luminance(to_linear(plain.input))[core]
        assert np.abs(ratio - (1 - cast.shadow[core])).mean() < 0.03, cast.name
        # and some of it shows beside the object, for a fill to leave or remove
        assert core.sum() > 0.1 * cast.mask.sum(), cast.name


def test_shadow_scores_of_known_outputs(shadow_pairs):
    from object_displacement.benchmark.scoring import shadow_scores

    cast, plain = shadow_pairs[3]
    footprints = (cast.footprint, cast.moved_footprint)
    shadows = (cast.shadow, cast.moved_shadow)

    def scores(output):
        return shadow_scores(output, cast.input, cast.truth, footprints, shadows, cast.lit_truth)

    right = scores(cast.truth)
    assert right["shadow_removed"] == pytest.approx(1.0) and right["shadow_cast"] == pytest.approx(1.0)
    # the object moved, its shadow left where it was and none at the new place
    left_behind = cast.lit_truth.copy()
    old = (cast.shadow > 0) & ~cast.moved_footprint
    left_behind[old] = cast.input[old]
    stayed = scores(left_behind)
    assert stayed["shadow_removed"] == pytest.approx(0.0, abs=0.05)
    assert stayed["shadow_cast"] == pytest.approx(0.0, abs=0.05)
    none = shadow_scores(plain.truth, plain.input, plain.truth, footprints, None, None)
    assert none == {"shadowless_brightness": 1.0}
    darker = shadow_scores(cast.truth, plain.input, plain.truth, footprints, None, None)
    assert darker["shadowless_brightness"] < 0.98  # a shadow cast on a shadowless scene


def test_removing_only_the_object_scores_no_shadow_removed(shadow_pairs):
    """The object gone from its old place, its shadow left as it was: none of the darkening
    is removed, however close to the object the shadow lies (the object's own pixels are no
    light of the surface: blurred in, they scored -0.17 to 0.12 here)."""
    from object_displacement.benchmark.scoring import shadow_scores

    for cast, _ in shadow_pairs:
        left = cast.lit_truth.copy()
        old = (cast.shadow > 0) & ~cast.footprint & ~cast.moved_footprint
        left[old] = cast.input[old]  # the surface as it was beside the object, shadow and all
        footprints = (cast.footprint, cast.moved_footprint)
        scores = shadow_scores(
            left, cast.input, cast.truth, footprints, (cast.shadow, cast.moved_shadow), cast.lit_truth
        )
        assert abs(scores["shadow_removed"]) < 0.05, (cast.name, scores)
