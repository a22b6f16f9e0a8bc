"""The model path under the conditions of real use, reproduced on the CPU.

bf16 autocast, 12-megapixel photos, a safety checker that fires, a VAE that overflows in
fp16, and a backend that shifts colours as SDXL does: each of these broke or degraded the
model path before it was fixed here.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys

import cv2
import numpy as np
import pytest
from skimage import data

from object_displacement.compositors.paste import PasteCompositor
from object_displacement.ghost import GhostCheck
from object_displacement.inpainters.base import InpaintFailed
from object_displacement.inpainters.diffusion import DiffusionInpainter
from object_displacement.inpainters.model_crops import model_crops
from object_displacement.inpainters.opencv import OpenCVInpainter
from object_displacement.mask_policies.rings import RingMaskPolicy
from object_displacement.pipeline import Pipeline
from object_displacement.runtime import make_fabric
from object_displacement.segmenters.mask_file import MaskFileSegmenter
from object_displacement.segmenters.sam import SamSegmenter
from object_displacement.selectors.box import BoxSelector
from object_displacement.selectors.clip import ClipSelector
from object_displacement.types import Move, Target
from tests.conftest import ROOT
from tests.tiny_models import SAM_ENCODER, overflow_in_fp16, save_sd_inpaint

COFFEE = data.coffee()


def tiny_sam(tiny_models, **kwargs) -> SamSegmenter:
    settings = {"checkpoint": str(tiny_models["sam"]), "encoder": SAM_ENCODER, "points_per_side": 4}
    return SamSegmenter(**settings, pred_iou_thresh=0.0, stability_score_thresh=0.0, **kwargs)


class FakeBackend(DiffusionInpainter):
    """The diffusion inpainter with the model call replaced by a known answer: it returns
    what it was given, plus the fault under test. Records every call."""

    def __init__(self, fault=lambda image: image, **kwargs) -> None:
        super().__init__("fake/model", **{"resolution": 256, **kwargs})
        self.fault = fault
        self.calls: list[dict] = []

    def generate(self, image, mask, negative_prompt, strength=None):
        self.calls.append({"image": image, "mask": mask, "negative": negative_prompt, "strength": strength})
        return self.fault(image.astype(np.float32) / 255)


# -- 1. bf16 autocast ------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["bf16-mixed", "16-mixed"])  # on a CPU Fabric makes 16 bf16
@pytest.mark.models
def test_sam_runs_under_bf16_autocast(tiny_models, precision):
    segmenter = tiny_sam(tiny_models)
    segmenter.setup(make_fabric(accelerator="cpu", precision=precision))
    for target in (Target(box=(170, 20, 440, 300)), Target(point=(300, 150)), Target(prompt="cup")):
        candidates = segmenter.propose(COFFEE, target)
        assert candidates and all(c.mask.dtype == bool and c.mask.shape == (400, 600) for c in candidates)
    assert segmenter.predictor_for(COFFEE).features.dtype.is_floating_point  # embedded already


# -- 2. accelerate ----------------------------------------------------------------------------


@pytest.mark.models
def test_diffusers_finds_accelerate_for_offload_and_low_memory_loading():
    from diffusers.utils import is_accelerate_available

    assert is_accelerate_available()  # enable_model_cpu_offload raised ImportError without it


@pytest.mark.models
def test_cpu_offload_without_a_gpu_is_one_warning(tiny_models, caplog):
    inpainter = DiffusionInpainter(str(tiny_models["sd"]), variant=None, cpu_offload=True)
    with caplog.at_level(logging.WARNING):
        inpainter.pipeline()
    lines = [r.getMessage() for r in caplog.records if "cpu_offload" in r.getMessage()]
    assert lines == ["inpainter.cpu_offload=true needs a GPU; running on the CPU without offload"]


# -- 3. the safety checker ----------------------------------------------------------------------


def hole_scene():
    image = cv2.resize(COFFEE, (192, 128), interpolation=cv2.INTER_AREA)
    mask = np.zeros((128, 192), dtype=bool)
    mask[40:90, 60:130] = True
    return image, mask


@pytest.mark.models
def test_sd_loads_without_its_safety_checker_by_default(tmp_path):
    folder = save_sd_inpaint(tmp_path / "sd", tmp_path, safety_checker=True)
    image, mask = hole_scene()
    out = DiffusionInpainter(str(folder), variant=None, resolution=64, steps=2).inpaint(image, mask)
    assert out[mask].max() > 20  # a fill, not the checker's black image


@pytest.mark.models
def test_a_firing_safety_checker_is_a_failed_attempt_and_the_fallback_fills(tmp_path):
    folder = save_sd_inpaint(tmp_path / "sd", tmp_path, safety_checker=True)
    image, mask = hole_scene()
    checked = DiffusionInpainter(str(folder), variant=None, resolution=64, steps=2, safety_checker=True)
    with pytest.raises(InpaintFailed, match="black"):
        checked.inpaint(image, mask)
    plan = RingMaskPolicy(seam=0.02).plan(image, mask, Move(dx=-50))
    plan.composite, plan.inpaint_mask = PasteCompositor()(plan)
    output, attempts = GhostCheck(max_attempts=3, reseed=1, fallbacks=[OpenCVInpainter()])(checked, plan)
    assert [("failed" in a) for a in attempts] == [True, True, False]
    assert output[plan.hole_mask].max() > 20  # never a black hole pasted into the photo


# -- 4. SAM automatic mode on a phone photo ---------------------------------------------------


PEAK_SCRIPT = """
import json, sys
import cv2
from skimage import data
from object_displacement.benchmark.memory import peak_rss_mb
from object_displacement.segmenters.sam import SamSegmenter
from object_displacement.selectors.clip import ClipSelector
from object_displacement.types import Target
photo = cv2.resize(data.coffee(), (4000, 3000), interpolation=cv2.INTER_CUBIC)
seg = SamSegmenter(checkpoint=sys.argv[1], encoder=json.loads(sys.argv[2]), points_per_side=4,
                   pred_iou_thresh=0.0, stability_score_thresh=0.0)
seg.model()
base = peak_rss_mb()
masks = seg.propose(photo, Target(prompt="cup"))
print(json.dumps({"shape": list(masks[0].mask.shape), "base": base, "peak": peak_rss_mb()}))
"""


@pytest.mark.models
@pytest.mark.slow
def test_sam_automatic_on_a_12_megapixel_photo_stays_within_its_memory_bound(tiny_models):
    proc = subprocess.run(
        [sys.executable, "-c", PEAK_SCRIPT, str(tiny_models["sam"]), json.dumps(SAM_ENCODER)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr
    run = json.loads(proc.stdout.strip().splitlines()[-1])
    assert run["shape"] == [3000, 4000]  # masks come back at full resolution
    # at full resolution the 16 prompts' logits alone took 3.9 GB above the loaded model
    assert run["peak"] - run["base"] < 1500


# -- 5. colour shift at the paste-back ----------------------------------------------------------


def border_step(image, mask):
    """Mean absolute colour step across the mask's border (just inside vs just outside)."""
    kernel = np.ones((3, 3), np.uint8)
    inner = mask & ~cv2.erode(mask.astype(np.uint8), kernel).astype(bool)
    outer = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) & ~mask
    return float(np.abs(image[inner].mean(axis=0) - image[outer].mean(axis=0).astype(np.float64)).max())


def test_a_colour_shifting_backend_leaves_no_step_at_the_mask_border():
    image = np.full((300, 400, 3), (90, 140, 200), np.uint8)
    image = cv2.add(image, np.random.default_rng(0).integers(0, 12, image.shape, dtype=np.uint8))
    mask = np.zeros((300, 400), dtype=bool)
    cv2.circle(mask.view(np.uint8), (200, 150), 60, 1, -1)
    shifted = FakeBackend(fault=lambda crop: np.clip(crop * 0.8 + [0.12, 0.0, -0.05], 0, 1))
    out = shifted.inpaint(image, mask)
    np.testing.assert_array_equal(out[~mask], image[~mask])  # outside stays bit-identical
    assert border_step(out, mask) < 3  # a hard paste left a step of about 25 levels here
    hard = FakeBackend(fault=shifted.fault, colour_match=False, feather=0).inpaint(image, mask)
    assert border_step(hard, mask) > 15


# -- 6. thin rings reach the model ----------------------------------------------------------------


def latent_survival(ring, model_mask, size):
    """Share of the ring's pixels whose latent cell the pipeline masks (diffusers' own
    mask preprocessing and nearest shrink to the 1/8 latent grid)."""
    import torch
    from diffusers.image_processor import VaeImageProcessor
    from PIL import Image as PILImage

    processor = VaeImageProcessor(
        vae_scale_factor=8, do_normalize=False, do_binarize=True, do_convert_grayscale=True
    )
    tensor = processor.preprocess(PILImage.fromarray(model_mask.astype(np.uint8) * 255), *size[::-1])
    latent = torch.nn.functional.interpolate(tensor, size=(size[1] // 8, size[0] // 8))[0, 0].numpy() > 0.5
    height, width = ring.shape
    ys, xs = np.nonzero(ring)
    cells = latent[(ys * size[1] // height) // 8, (xs * size[0] // width) // 8]
    return cells.mean()


@pytest.mark.parametrize("thickness", [4, 9])
@pytest.mark.models
def test_thin_seam_rings_survive_the_latent_grid(thickness):
    image = np.full((1500, 2000, 3), 120, np.uint8)
    outer = np.zeros((1500, 2000), np.uint8)
    cv2.circle(outer, (1000, 750), 600, 1, -1)
    inner = np.zeros_like(outer)
    cv2.circle(inner, (1000, 750), 600 - thickness, 1, -1)
    ring = outer.astype(bool) & ~inner.astype(bool)
    backend = FakeBackend(resolution=1024)
    backend.inpaint(image, ring)
    (call,) = backend.calls
    size = call["mask"].shape[1], call["mask"].shape[0]
    assert latent_survival(ring, call["mask"], size) == 1.0  # was 0.68 (9 px) and 0.42 (4 px)


# -- 7. resize filters --------------------------------------------------------------------------


def test_small_crops_reach_the_model_smooth_and_come_back_without_aliasing():
    ramp = np.tile(np.linspace(0, 255, 120, dtype=np.float32), (80, 1))
    image = np.dstack([ramp, ramp[::-1], np.full_like(ramp, 128)]).astype(np.uint8)
    mask = np.zeros((80, 120), dtype=bool)
    mask[30:50, 40:80] = True
    backend = FakeBackend(resolution=512, max_upscale=2.0)
    backend.inpaint(image, mask)
    seen = backend.calls[0]["image"].astype(int)
    repeats = (np.diff(seen[..., 0], axis=1) == 0).mean()
    assert repeats < 0.2  # area interpolation enlarged in 2x2 blocks: half the neighbours equal

    stripes = np.broadcast_to((np.arange(1280) % 2)[None, :, None], (832, 1280, 3)) * 1.0
    big = np.full((600, 900, 3), 128, np.uint8)
    hole = np.zeros((600, 900), dtype=bool)
    hole[100:500, 100:800] = True
    backend = FakeBackend(fault=lambda crop: stripes[: crop.shape[0], : crop.shape[1]], resolution=1024)
    backend.feather, backend.colour_match = 0, False
    out = backend.inpaint(big, hole)
    assert backend.calls[0]["image"].shape == (832, 1280, 3)  # the whole photo, enlarged about 1.4x
    cubic = cv2.resize(np.uint8(stripes * 255), (900, 600), interpolation=cv2.INTER_CUBIC)
    assert out[hole].std() < 0.5 * cubic[hole].std()  # shrinking by cubic aliases into moire


# -- 8. crop policy -----------------------------------------------------------------------------


def test_a_long_thin_region_gets_a_square_enough_crop_of_the_models_area():
    mask = np.zeros((1500, 2000), dtype=bool)
    mask[700:820, 250:1750] = True  # 1500 x 120
    ((box, part),) = model_crops(mask, resolution=1024, context=0.1)
    backend = FakeBackend(resolution=1024)
    backend.inpaint(np.full((1500, 2000, 3), 90, np.uint8), mask)
    x0, y0, x1, y1 = box
    assert max(x1 - x0, y1 - y0) <= 2 * min(x1 - x0, y1 - y0) + 1
    h, w = backend.calls[0]["image"].shape[:2]
    assert w % 64 == 0 and h % 64 == 0 and w <= 2 * h + 64  # 2:1, then rounded to 64
    assert 0.75 < w * h / 1024**2 < 1.3
    assert np.array_equal(part, mask)


def test_a_long_move_gets_one_crop_per_place():
    mask = np.zeros((1500, 4000), dtype=bool)
    mask[500:900, 300:600] = True  # the hole
    seam = np.zeros_like(mask)
    cv2.rectangle(seam.view(np.uint8), (3300, 495), (3605, 905), 1, 6)  # the seam, 3000 px away
    crops = model_crops(mask | seam, resolution=1024, context=0.5)
    assert len(crops) == 2
    for (x0, _, x1, _), part in crops:
        assert x1 - x0 < 2000 and (part[:, :2000].any() != part[:, 2000:].any())


# -- 9. the negative prompt names the target -------------------------------------------------------


def test_the_targets_prompt_joins_the_negative_prompt(tmp_path):
    image = cv2.resize(COFFEE, (300, 200), interpolation=cv2.INTER_AREA)
    mask = np.zeros((200, 300), dtype=bool)
    mask[60:140, 90:170] = True
    path = tmp_path / "mask.png"
    cv2.imwrite(str(path), mask.astype(np.uint8) * 255)
    backend = FakeBackend(negative_prompt="blurry")
    pipeline = Pipeline(MaskFileSegmenter(str(path)), BoxSelector(), RingMaskPolicy(), backend)
    pipeline(image, Target(prompt="cup", box=(90, 60, 170, 140)), Move(dx=80))
    assert {c["negative"] for c in backend.calls} == {"blurry, cup"}
    backend.negative_target = False
    backend.calls.clear()
    pipeline(image, Target(prompt="cup", box=(90, 60, 170, 140)), Move(dx=80))
    assert {c["negative"] for c in backend.calls} == {"blurry"}


# -- 10. SAM's single-mask answer to a box -----------------------------------------------------


@pytest.mark.models
def test_a_box_prompt_also_proposes_sams_single_mask(tiny_models):
    segmenter = tiny_sam(tiny_models)
    candidates = segmenter.propose(COFFEE, Target(box=(170, 20, 440, 300)))
    single, _, _ = segmenter.predictor_for(COFFEE).predict(
        box=np.array([170, 20, 440, 300], dtype=np.float32), multimask_output=False
    )
    assert any(c.source == "sam-single" and np.array_equal(c.mask, single[0]) for c in candidates)


# -- 11. NaN guard --------------------------------------------------------------------------------


@pytest.mark.models
def test_a_nan_decode_in_fp16_is_decoded_again_in_fp32(tmp_path, caplog):
    folder = overflow_in_fp16(save_sd_inpaint(tmp_path / "sd", tmp_path))
    image, mask = hole_scene()
    inpainter = DiffusionInpainter(str(folder), variant=None, resolution=64, steps=2, dtype="fp16")
    with caplog.at_level(logging.WARNING):
        out = inpainter.inpaint(image, mask)
    assert any("decoding again in fp32" in r.getMessage() for r in caplog.records)
    np.testing.assert_array_equal(out[~mask], image[~mask])
    assert out[mask].std() > 1  # a real decode, pasted


@pytest.mark.models
@pytest.mark.parametrize("checker", [True, False])
def test_the_fp32_decode_is_judged_by_the_safety_checker_too(tmp_path, checker):
    """The re-decode of a NaN fill goes through the checker as the first decode did: a
    flag blacks it out (a failed attempt), where it used to pass unchecked."""
    import torch

    from object_displacement.inpainters.diffusion import decode_fp32

    folder = save_sd_inpaint(tmp_path / "sd", tmp_path, safety_checker=True)
    pipe = DiffusionInpainter(str(folder), variant=None, safety_checker=checker).pipeline()
    latents = torch.randn(1, 4, 8, 8, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():  # as the pipeline's call runs it
        decoded = decode_fp32(pipe, latents)
    assert decoded.ndim == 3 and decoded.shape[2] == 3
    assert (decoded.max() == 0) == checker  # this checker flags whatever it sees


@pytest.mark.models
def test_the_fp32_vae_copies_the_vae_alone_not_the_models_its_offload_hook_reaches(tmp_path):
    """With ``cpu_offload`` each model's accelerate hook holds the one offloaded before it;
    a deep copy of the VAE copied the UNet and the text encoders along."""
    import torch
    from accelerate import cpu_offload_with_hook
    from diffusers import AutoPipelineForInpainting

    from object_displacement.inpainters.diffusion import fp32_vae

    pipe = AutoPipelineForInpainting.from_pretrained(save_sd_inpaint(tmp_path / "sd", tmp_path))
    hook = None
    for model in (pipe.text_encoder, pipe.unet, pipe.vae):  # the pipeline's offload order
        _, hook = cpu_offload_with_hook(model, execution_device="cpu", prev_module_hook=hook)
    vae = fp32_vae(pipe.vae)
    assert not any(hasattr(module, "_hf_hook") for module in vae.modules())
    assert all(p.dtype == torch.float32 for p in vae.parameters())
    state = {k: v.float() for k, v in pipe.vae.state_dict().items()}
    assert all(torch.equal(v, state[k]) for k, v in vae.state_dict().items())


def test_a_fill_that_stays_nan_is_a_failed_attempt():
    image, mask = hole_scene()
    with pytest.raises(InpaintFailed, match="not finite"):
        FakeBackend(fault=lambda crop: crop * np.nan).inpaint(image, mask)


# -- 14. progress -----------------------------------------------------------------------------------


@pytest.mark.models
def test_diffusion_steps_are_logged(tiny_models, caplog):
    image, mask = hole_scene()
    inpainter = DiffusionInpainter(str(tiny_models["sdxl"]), variant=None, resolution=64, steps=2)
    with caplog.at_level(logging.INFO):
        inpainter.inpaint(image, mask)
    steps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("inpainting: step")]
    assert steps and steps[-1] == "inpainting: step 1/1"  # strength 0.99 of 2 steps runs one


@pytest.mark.models
def test_a_model_without_fp16_files_suggests_variant_null_not_a_download(tiny_models):
    from object_displacement.weights import WeightsMissing

    with pytest.raises(WeightsMissing) as info:
        DiffusionInpainter(str(tiny_models["sdxl"]), variant="fp16").pipeline()
    assert "inpainter.variant=null" in str(info.value) and "make weights" not in str(info.value)


@pytest.mark.slow
def test_missing_weights_fail_before_the_run_starts(tmp_path):
    run = tmp_path / "run"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "displace.py"),
            "inpainter=sdxl",
            "logger=wandb",
            f"hydra.run.dir={run}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"},
    )
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert (
        len(lines) == 1
        and "stable-diffusion-xl-1.0-inpainting-0.1" in lines[0]
        and "make weights" in lines[0]
    )
    assert not (run / "wandb").exists()  # checked before W&B started


@pytest.mark.models
def test_sam_takes_positive_and_negative_clicks_with_a_box(tiny_models):
    segmenter = tiny_sam(tiny_models)
    box_only = segmenter.propose(COFFEE, Target(box=(170, 20, 440, 300)))
    clicked = segmenter.propose(
        COFFEE, Target(box=(170, 20, 440, 300), points=((300, 150), (200, 280)), labels=(1, 0))
    )
    single, _, _ = segmenter.predictor_for(COFFEE).predict(
        point_coords=np.array([[300, 150], [200, 280]], dtype=np.float32),
        point_labels=np.array([1, 0]),
        box=np.array([170, 20, 440, 300], dtype=np.float32),
        multimask_output=False,
    )
    assert any(c.source == "sam-single" and np.array_equal(c.mask, single[0]) for c in clicked)
    assert not all(np.array_equal(a.mask, b.mask) for a, b in zip(box_only, clicked, strict=True))
    # a negative click alone names no object: it is not a prompt for SAM's predictor
    assert segmenter.propose(COFFEE, Target(prompt="cup", points=((10, 10),), labels=(0,)))


@pytest.mark.parametrize(
    "component",
    [
        lambda tmp: SamSegmenter(checkpoint=str(tmp / "sam_vit_b.pth")),
        pytest.param(  # open_clip's table says which hub repo holds the tag
            lambda tmp: ClipSelector(model="ViT-B-32", pretrained="laion2b_s34b_b79k"),
            marks=pytest.mark.models,
        ),
        lambda tmp: ClipSelector(model=f"local-dir:{tmp}"),
        lambda tmp: DiffusionInpainter("diffusers/stable-diffusion-xl-1.0-inpainting-0.1"),
        lambda tmp: DiffusionInpainter(str(tmp / "sdxl")),
    ],
    ids=["sam", "clip-hub", "clip-folder", "sdxl-hub", "sdxl-folder"],
)
def test_every_model_component_checks_its_weights_without_loading(component, tmp_path, monkeypatch):
    from huggingface_hub import constants

    from object_displacement.weights import WeightsMissing

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(WeightsMissing, match="make weights"):
        component(tmp_path).check_weights()


@pytest.mark.models
def test_weights_that_are_there_pass_the_check(tiny_models):
    SamSegmenter(checkpoint=str(tiny_models["sam"])).check_weights()
    ClipSelector(model=f"local-dir:{tiny_models['clip']}").check_weights()
    DiffusionInpainter(str(tiny_models["sdxl"])).check_weights()


# -- 11. shadows on the model path -----------------------------------------------------------------


def test_the_model_path_fills_the_old_shadow_and_casts_the_moved_one_after_the_fill():
    """A backend that synthesizes gets the object's whole old shadow in its mask (no
    relighting), and the moved shadow darkens its output afterwards."""
    from object_displacement.shadows.ratio import RatioShadowMover
    from tests.test_shadows import GivenMask, scene, visible

    image, mask, truth = scene(0.5)
    backend = FakeBackend()
    pipeline = Pipeline(GivenMask(mask), BoxSelector(), RingMaskPolicy(), backend, shadow=RatioShadowMover())
    result = pipeline(image, Target(box=(150, 90, 230, 190)), Move(dx=-150, dy=60))
    shadow, plan = result.plan.shadow, result.plan
    assert shadow is not None and shadow.relit is None and backend.calls
    assert (plan.inpaint_mask >= (shadow.support & ~plan.moved_mask)).all()
    # the fake hands back what it is given (the prefilled surface): the old shade is gone
    old = visible(truth, mask) & ~plan.moved_mask & (shadow.moved < 0.02)
    assert result.output[old].mean() > image[old].mean() + 25
    # outside what was filled, the cast shadow is the only change, and it darkens
    cast = (shadow.moved > 0.3) & ~plan.inpaint_mask & ~plan.moved_mask
    assert cast.sum() > 200
    assert (result.output[cast].astype(int).sum(axis=1) < image[cast].astype(int).sum(axis=1)).all()


# -- stage cache and precision --------------------------------------------------------------------


@pytest.mark.models
def test_the_stage_cache_never_serves_masks_made_in_another_precision(make_cfg, tiny_models):
    from object_displacement.build import build_pipeline
    from tests.tiny_models import overrides

    model_args = [o for o in overrides(tiny_models) if not o.startswith("inpainter")]
    keys = {
        precision: build_pipeline(make_cfg(*model_args, f"fabric.precision={precision}")).cache
        for precision in ("32-true", "bf16-mixed")
    }
    assert keys["32-true"].segmenter_key != keys["bf16-mixed"].segmenter_key
    assert keys["32-true"].selector_key != keys["bf16-mixed"].selector_key
    again = build_pipeline(make_cfg(*model_args, "fabric.precision=32-true")).cache
    assert again.segmenter_key == keys["32-true"].segmenter_key  # the same run still hits


@pytest.mark.models
def test_model_components_report_the_models_they_hold_and_a_cpu_run_parks_none(tiny_models):
    from object_displacement.runtime import make_room

    sam = tiny_sam(tiny_models)
    assert sam.resident_bytes() == 0  # nothing loaded yet
    model = sam.model()
    weights = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    assert sam.resident_bytes() == weights
    inpainter = DiffusionInpainter(str(tiny_models["sd"]), variant=None, resolution=64)
    assert inpainter.working_bytes() > 0
    assert make_room(inpainter, [sam, inpainter]) == []  # a CPU shares the host's memory
    assert sam.resident_bytes() == weights


# -- prefill: denoising from a classical fill -------------------------------------------------------


class CountingTelea(OpenCVInpainter):
    """OpenCV's Telea fill that counts the crops it fills (to see which attempts prefill)."""

    def __init__(self) -> None:
        super().__init__(method="telea")
        self.filled = 0

    def fill(self, image, mask, avoid=None, subject=None):
        self.filled += 1
        return super().fill(image, mask, avoid, subject)


def run_ghost_check(inpainter, caplog, attempts: int = 2):
    """Attempts on the hole scene with a threshold nothing meets: every retry runs."""
    image, mask = hole_scene()
    plan = RingMaskPolicy().plan(image, mask, Move(dx=50, dy=0))
    plan.composite, plan.inpaint_mask = PasteCompositor()(plan)
    with caplog.at_level(logging.INFO):
        _, records = GhostCheck(threshold=-2.0, max_attempts=attempts, reseed=attempts - 1)(inpainter, plan)
    steps = [r.getMessage() for r in caplog.records if r.getMessage().startswith("inpainting: step")]
    return records, steps


@pytest.mark.models
def test_the_ghost_checks_retry_denoises_from_the_classical_prefill(tiny_models, caplog):
    prefill = CountingTelea()
    inpainter = DiffusionInpainter(
        str(tiny_models["sd"]),
        variant=None,
        resolution=64,
        steps=8,
        strength=1.0,
        prefill=prefill,
        prefill_strength=0.5,
    )
    records, steps = run_ghost_check(inpainter, caplog)
    assert [r["inpainter"] for r in records] == [
        "DiffusionInpainter seed 0",
        "DiffusionInpainter seed 1 prefilled at 0.5",
    ]
    assert prefill.filled >= 1  # the retry's crops, and only its
    first_run = steps.index("inpainting: step 8/8") + 1
    assert steps[first_run:][-1] == "inpainting: step 4/4"  # strength 0.5 of 8 steps
    assert inpainter.prefilling is False  # the configured inpainter is left as it was


@pytest.mark.models
@pytest.mark.parametrize("prefill_on", ["always", "never"])
def test_prefill_on_always_prefills_every_attempt_and_never_none(tiny_models, caplog, prefill_on):
    prefill = CountingTelea()
    inpainter = DiffusionInpainter(
        str(tiny_models["sd"]), variant=None, resolution=64, steps=4, prefill=prefill, prefill_on=prefill_on
    )
    records, _ = run_ghost_check(inpainter, caplog)
    prefilled = ["prefilled" in r["inpainter"] for r in records]
    assert prefilled == ([True, True] if prefill_on == "always" else [False, False])
    assert (prefill.filled > 0) == (prefill_on == "always")


def test_prefill_settings_out_of_range_are_refused():
    with pytest.raises(ValueError, match="prefill_on must be one of retries, always, never"):
        DiffusionInpainter("folder", prefill_on="sometimes")


def test_a_fill_that_redraws_the_object_is_retried_from_the_prefill_and_comes_out_empty():
    """The trackers' complaint, as a backend: it gives back what it was given, so the old
    place keeps showing the object (an afterimage the ghost check sees). A reseed alone
    would redraw it again; the retry denoises from Telea's fill and the place is empty."""
    image = cv2.resize(data.rocket(), (300, 200), interpolation=cv2.INTER_AREA)
    mask = np.zeros(image.shape[:2], bool)
    mask[40:160, 130:165] = True  # the rocket
    plan = RingMaskPolicy().plan(image, mask, Move(dx=90, dy=0))
    plan.composite, plan.inpaint_mask = PasteCompositor()(plan)
    plan.composite[plan.inpaint_mask] = image[plan.inpaint_mask]  # a fill that redraws the object
    redraws = FakeBackend(strength=1.0, prefill=OpenCVInpainter(method="telea"), resolution=64)
    output, attempts = GhostCheck(threshold=0.3, max_attempts=2, reseed=1)(redraws, plan)
    assert attempts[0]["ghost"] > 0.3 and "prefilled" not in attempts[0]["inpainter"]
    assert attempts[1]["ghost"] <= 0.3 and "prefilled at 0.75" in attempts[1]["inpainter"]
    assert [call["strength"] for call in redraws.calls[-1:]] == [0.75]
    vacated = plan.source_mask & ~plan.moved_mask
    assert np.abs(output[vacated].astype(int) - image[vacated]).mean() > 10  # the kept fill is not the rocket
    no_prefill = FakeBackend(strength=1.0, resolution=64)
    _, again = GhostCheck(threshold=0.3, max_attempts=2, reseed=1)(no_prefill, plan)
    assert all(a["ghost"] > 0.3 for a in again)  # another seed redraws it all the same
