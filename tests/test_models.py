"""The model components on tiny random models, loaded through the project's own code."""

import numpy as np
import pytest
from hydra.utils import instantiate
from skimage import data

from object_displacement import weights
from object_displacement.build import build_pipeline
from object_displacement.errors import DisplacementError
from object_displacement.inpainters.diffusion import DiffusionInpainter
from object_displacement.runtime import make_fabric, sweep_device
from object_displacement.segmenters.sam import SamSegmenter
from object_displacement.selectors.clip import ClipSelector, contained_first
from object_displacement.types import Candidate, Target
from tests.conftest import compose_config
from tests.tiny_models import SAM_ENCODER, overrides

COFFEE = data.coffee()


def sam(tiny_models, **kwargs) -> SamSegmenter:
    settings = {"checkpoint": str(tiny_models["sam"]), "encoder": SAM_ENCODER, "points_per_side": 4}
    settings |= {"pred_iou_thresh": 0.0, "stability_score_thresh": 0.0}
    return SamSegmenter(**(settings | kwargs))


def clip(tiny_models, **kwargs) -> ClipSelector:
    return ClipSelector(model=f"local-dir:{tiny_models['clip']}", min_score=-1.0, **kwargs)


def square(x0: int, y0: int, x1: int, y1: int, shape=(400, 600)) -> Candidate:
    mask = np.zeros(shape, dtype=bool)
    mask[y0:y1, x0:x1] = True
    return Candidate(mask=mask)


@pytest.mark.models
def test_sam_prompted_mode_gives_its_single_and_three_nested_masks_and_encodes_once(tiny_models):
    segmenter = sam(tiny_models)
    by_box = segmenter.propose(COFFEE, Target(box=(170, 20, 440, 300)))
    features = segmenter.predictor_for(COFFEE).features
    by_point = segmenter.propose(COFFEE, Target(point=(300, 150)))
    assert segmenter.predictor_for(COFFEE).features is features  # same embedding, not recomputed
    for candidates in (by_box, by_point):
        assert len(candidates) == 4  # the single best mask, then the whole / part / sub-part ones
        assert sorted(c.source for c in candidates) == ["sam", "sam", "sam", "sam-single"]
        assert all(c.mask.shape == (400, 600) and c.mask.dtype == bool for c in candidates)
        assert [c.score for c in candidates] == sorted((c.score for c in candidates), reverse=True)


@pytest.mark.models
def test_sam_automatic_mode_for_a_text_only_target(tiny_models):
    candidates = sam(tiny_models).propose(COFFEE, Target(prompt="cup"))
    assert candidates and all(c.mask.shape == (400, 600) for c in candidates)


@pytest.mark.models
def test_models_load_once_per_process(tiny_models):
    weights.clear_models()  # whatever earlier tests loaded
    segmenter = sam(tiny_models)
    segmenter.model()
    before = weights.load_count
    sam(tiny_models).model()  # a new component with the same settings, as in a sweep
    clip(tiny_models).model()
    clip(tiny_models).model()
    assert weights.load_count == before + 1  # only CLIP was new


@pytest.mark.models
def test_clip_scores_in_one_batch_match_one_forward_per_candidate(tiny_models):
    candidates = [square(10, 10, 200, 150), square(250, 50, 500, 390), square(300, 100, 400, 200)]
    batched = clip(tiny_models).embedder.similarities(COFFEE, candidates, "cup")
    single = clip(tiny_models, batch_size=1).embedder.similarities(COFFEE, candidates, "cup")
    np.testing.assert_allclose(batched, single, atol=1e-5)
    assert batched.shape == (3,) and np.all(np.abs(batched) <= 1.0 + 1e-6)


@pytest.mark.parametrize("crop", ["box", "masked", "context", "combined"])
@pytest.mark.models
def test_every_crop_strategy_ranks_all_candidates(tiny_models, crop):
    candidates = [square(10, 10, 200, 150), square(250, 50, 500, 390)]
    ranked = clip(tiny_models, crop=crop).select(COFFEE, candidates, Target(prompt="cup"))
    assert len(ranked) == 2 and ranked[0].score >= ranked[1].score


def test_containment_rule_picks_the_inner_object():
    cup, table = square(250, 100, 350, 200), square(100, 50, 550, 350)
    # the table region scores a little higher, as CLIP does for regions containing the object
    adjusted = contained_first([table, cup], np.array([0.31, 0.30]), margin=0.02)
    assert adjusted[1] > adjusted[0]
    # an inner candidate that scores much worse does not pull the outer one down
    adjusted = contained_first([table, cup], np.array([0.31, 0.20]), margin=0.02)
    np.testing.assert_array_equal(adjusted, [0.31, 0.20])
    # disjoint candidates are left alone
    np.testing.assert_array_equal(
        contained_first([cup, square(0, 0, 50, 50)], np.array([0.3, 0.29]), 0.02), [0.3, 0.29]
    )


@pytest.mark.models
def test_clip_selector_applies_the_containment_rule(tiny_models):
    cup, table = square(250, 100, 350, 200), square(100, 50, 550, 350)
    # random weights cannot tell a table from a cup: part_margin -2 makes every outer a container
    forced = {"containment_margin": 2.0, "part_margin": -2.0}
    ranked = clip(tiny_models, **forced).select(COFFEE, [table, cup], Target(prompt="cup"))
    assert ranked[0].bbox == cup.bbox


@pytest.mark.models
def test_prompt_matching_nothing_is_one_clear_error(tiny_models):
    with pytest.raises(DisplacementError, match=r"no object matching 'backpack' \(best: "):
        ClipSelector(model=f"local-dir:{tiny_models['clip']}", min_score=0.99).select(
            COFFEE, [square(10, 10, 100, 100)], Target(prompt="backpack")
        )


@pytest.mark.parametrize("kind", ["sd", "sdxl"])
@pytest.mark.models
def test_diffusion_keeps_outside_pixels_at_odd_sizes(tiny_models, kind):
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(333, 517, 3), dtype=np.uint8)
    mask = np.zeros((333, 517), dtype=bool)
    mask[100:180, 200:311] = True
    inpainter = DiffusionInpainter(str(tiny_models[kind]), variant=None, resolution=64, steps=2)
    out = inpainter.inpaint(image, mask)
    np.testing.assert_array_equal(out[~mask], image[~mask])
    assert (out[mask] != image[mask]).mean() > 0.5


@pytest.mark.models
def test_missing_weights_say_what_is_missing_and_how_to_fetch(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    checks = [
        lambda: SamSegmenter(checkpoint=str(tmp_path / "sam_vit_b.pth")).model(),
        lambda: ClipSelector(model="ViT-B-32", pretrained="laion2b_s34b_b79k").model(),
        lambda: DiffusionInpainter("diffusers/stable-diffusion-xl-1.0-inpainting-0.1").pipeline(),
    ]
    for check in checks:
        with pytest.raises(weights.WeightsMissing, match="make weights") as info:
            check()
        assert "\n" not in str(info.value)


@pytest.mark.models
def test_fabric_places_model_components_on_the_cpu_in_fp32(tiny_models):
    import torch

    cfg = compose_config(overrides(tiny_models))
    pipeline = build_pipeline(cfg)
    assert pipeline.segmenter.device.type == "cpu" and pipeline.segmenter.dtype == torch.float32
    assert pipeline.inpainter.fabric is pipeline.selector.fabric is not None
    assert make_fabric(accelerator="cpu").device.type == "cpu"


@pytest.mark.parametrize("devices", [2, -1, "auto", [0, 1]])
@pytest.mark.models
def test_fabric_refuses_several_devices_for_one_edit(devices):
    with pytest.raises(DisplacementError, match=r"one edit runs on one device.*hydra/launcher=parallel"):
        make_fabric(accelerator="cpu", devices=devices)


@pytest.mark.slow
@pytest.mark.models
def test_several_devices_are_one_line_from_the_command_line(tiny_models, tmp_path):
    from tests.test_cli_models import displace

    proc = displace(*overrides(tiny_models), "fabric.devices=2", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: fabric.devices=2: one edit runs on one device")


def test_parallel_sweep_jobs_take_the_gpus_in_turn():
    assert [sweep_device(k, 4) for k in range(6)] == [0, 1, 2, 3, 0, 1]
    assert sweep_device(5, 1) is None and sweep_device(None, 4) is None  # one GPU; not a sweep


@pytest.mark.parametrize(("launcher", "number"), [("parallel", 5), ("basic", None)])
def test_the_sweep_job_number_comes_from_hydra(launcher, number):
    from hydra import compose, initialize_config_dir
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode
    from omegaconf import open_dict

    from object_displacement.jobs import JobContext
    from tests.conftest import CONF

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        cfg = compose("displace", overrides=[f"hydra/launcher={launcher}"], return_hydra_config=True)
    with open_dict(cfg):
        cfg.paths.run_dir = "run"
    assert JobContext.of(cfg).job_number is None  # not under Hydra
    with open_dict(cfg):
        cfg.hydra.mode, cfg.hydra.job.num = RunMode.MULTIRUN, 5
        cfg.hydra.runtime.output_dir = "run"
    HydraConfig.instance().set_config(cfg)
    try:
        # the basic launcher runs the jobs one after another in one process: one device
        assert JobContext.of(cfg).job_number == number
    finally:
        HydraConfig.instance().cfg = None


def test_every_model_option_instantiates_without_loading_weights():
    for group, option in [
        ("segmenter", "sam"),
        ("selector", "clip"),
        ("inpainter", "sd"),
        ("inpainter", "sdxl"),
    ]:
        component = instantiate(compose_config([f"{group}={option}"])[group])
        assert component.fabric is None  # nothing loaded until first use
