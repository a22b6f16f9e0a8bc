"""Checkpoints as users download them: saved in half precision, or missing parts.

A folder saved in bf16 or fp16 halves a download and must run as a fp32 one does; a folder
missing a part (a mask decoder, box heads, a UNet layer) must be refused with one line,
never loaded with random weights in its place.
"""

from __future__ import annotations

import pytest
from skimage import data

from object_displacement.errors import DisplacementError
from object_displacement.inpainters.diffusion import DiffusionInpainter
from object_displacement.segmenters.grounded import GroundedSegmenter
from object_displacement.segmenters.sam import SamSegmenter
from object_displacement.segmenters.sam3 import Sam3Segmenter
from object_displacement.selectors.clip_embedder import ClipEmbedder, needs_quick_gelu
from object_displacement.types import Target
from object_displacement.weights import check_complete, skipped_formats
from tests.conftest import displace
from tests.tiny_models import SAM_ENCODER, drop_weights, save_grounding_dino, save_sam3, save_sd_inpaint

COFFEE = data.coffee()


@pytest.mark.models
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_sam3_folder_saved_in_half_precision_runs(tmp_path, dtype):
    folder = save_sam3(tmp_path / "sam3", tmp_path, dtype=dtype)
    candidates = Sam3Segmenter(str(folder), threshold=0.0).propose(COFFEE, Target(prompt="cup"))
    assert candidates and all(c.mask.shape == COFFEE.shape[:2] for c in candidates)


@pytest.mark.models
@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_a_grounding_dino_folder_saved_in_half_precision_runs(tmp_path, tiny_models, dtype):
    folder = save_grounding_dino(tmp_path / "gd", tmp_path, dtype=dtype)
    sam = SamSegmenter(checkpoint=str(tiny_models["sam"]), encoder=SAM_ENCODER)
    segmenter = GroundedSegmenter(sam, str(folder), box_threshold=0.0, text_threshold=0.0)
    assert segmenter.detect(COFFEE, "cup")


@pytest.mark.models
def test_a_sam3_folder_missing_its_mask_decoder_is_refused_naming_it(tmp_path):
    folder = save_sam3(tmp_path / "sam3", tmp_path)
    assert drop_weights(folder / "model.safetensors", "mask_decoder.")
    with pytest.raises(DisplacementError, match=r"incomplete: it lacks \d+ weights \(mask_decoder\.") as err:
        Sam3Segmenter(str(folder)).load()
    assert str(folder) in str(err.value) and "make weights" in str(err.value)


@pytest.mark.models
def test_a_grounding_dino_folder_missing_its_box_heads_is_refused(tmp_path, tiny_models):
    folder = save_grounding_dino(tmp_path / "gd", tmp_path)
    assert drop_weights(folder / "model.safetensors", "model.encoder.")
    sam = SamSegmenter(checkpoint=str(tiny_models["sam"]), encoder=SAM_ENCODER)
    with pytest.raises(DisplacementError, match=r"Grounding DINO checkpoint .* incomplete"):
        GroundedSegmenter(sam, str(folder)).model()


@pytest.mark.models
def test_a_diffusers_folder_missing_unet_weights_is_refused_not_a_raw_error(tmp_path):
    folder = save_sd_inpaint(tmp_path / "sd", tmp_path)
    assert drop_weights(folder / "unet" / "diffusion_pytorch_model.safetensors", "conv_out.")
    with pytest.raises(DisplacementError, match=r"inpainting checkpoint .* lacks 2 weights \(unet\.conv_out"):
        DiffusionInpainter(str(folder), variant=None).load()


@pytest.mark.slow
def test_a_sam3_folder_missing_its_decoder_is_one_error_line_on_the_command_line(tmp_path):
    folder = save_sam3(tmp_path / "sam3", tmp_path)
    drop_weights(folder / "model.safetensors", "mask_decoder.")
    proc = displace(
        "segmenter=sam3",
        f"segmenter.model={folder}",
        "target.prompt=cup",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: SAM 3 checkpoint") and "mask_decoder" in lines[0]
    assert not (tmp_path / "run" / "output.png").exists()


@pytest.mark.slow
def test_a_bf16_sam3_folder_runs_from_the_command_line(tmp_path):
    folder = save_sam3(tmp_path / "sam3", tmp_path, dtype="bfloat16")
    run = tmp_path / "run"
    proc = displace(
        "segmenter=sam3",
        f"segmenter.model={folder}",
        "segmenter.threshold=0",
        "image=skimage:coffee",
        "target.prompt=cup",
        "dx=40",
        "dy=10",
        f"hydra.run.dir={run}",
    )
    assert proc.returncode == 0, proc.stderr
    assert (run / "output.png").exists()


def test_a_complete_checkpoint_passes_and_shapes_that_differ_are_named():
    check_complete("SAM 3", "folder", [], [])
    with pytest.raises(
        DisplacementError, match=r"holds 1 weights in other shapes \(detr_decoder\.box_head\)"
    ):
        check_complete("SAM 3", "folder", [], [("detr_decoder.box_head.weight", (4, 2), (4, 3))])


def test_many_missing_parts_are_summed_up_in_one_line():
    keys = [f"part{i}.layer.weight" for i in range(6)]
    with pytest.raises(DisplacementError) as err:
        check_complete("Grounding DINO", "folder", keys)
    assert "lacks 6 weights (part0.layer, part1.layer, part2.layer and 3 more parts)" in str(err.value)
    assert "\n" not in str(err.value)


def test_a_repo_with_safetensors_is_fetched_without_its_other_formats():
    sam3_repo = ["config.json", "model.safetensors", "sam3.pt", "processor_config.json", "tokenizer.json"]
    assert "*.pt" in skipped_formats(sam3_repo)
    assert skipped_formats(["config.json", "pytorch_model.bin"]) == []  # the only weights: keep them


@pytest.mark.models
def test_openai_clip_weights_are_built_with_quick_gelu(tmp_path, monkeypatch):
    """OpenAI's ViT-B-32 was trained with QuickGELU; open_clip's plain ``ViT-B-32`` is GELU."""
    import open_clip
    import torch
    from huggingface_hub import constants

    # the tag's file in a Hugging Face cache, as `make weights` leaves it (random values)
    repo = tmp_path / "hub" / "models--timm--vit_base_patch32_clip_224.openai"
    snapshot = repo / "snapshots" / ("0" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0" * 40)
    state = open_clip.create_model("ViT-B-32").state_dict()
    torch.save({k: v.half() for k, v in state.items()}, snapshot / "open_clip_pytorch_model.bin")
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))

    embedder = ClipEmbedder("ViT-B-32", "openai")
    embedder.check_weights()
    model, _, _ = embedder.load()
    assert isinstance(model.visual.transformer.resblocks[0].mlp.gelu, open_clip.transformer.QuickGELU)


@pytest.mark.models  # open_clip's table of tags
def test_only_tags_trained_with_quick_gelu_ask_for_it():
    assert needs_quick_gelu("ViT-B-32", "openai")
    assert not needs_quick_gelu("ViT-B-32", "laion2b_s34b_b79k")
    assert not needs_quick_gelu("ViT-B-32-quickgelu", "openai")  # has it already
    assert not needs_quick_gelu("ViT-B-32", None)


@pytest.mark.models
def test_clip_sees_what_is_outside_a_mask_as_its_own_mean_colour(tiny_models):
    import numpy as np

    from object_displacement.types import Candidate

    embedder = ClipEmbedder(f"local-dir:{tiny_models['clip']}", None)
    model, _, _ = embedder.load()
    mean = model.visual.preprocess_cfg["mean"]
    mask = np.zeros(COFFEE.shape[:2], bool)
    mask[100:200, 100:150] = True
    mask[100, 100:150] = False  # a row of the box outside the mask
    crop = embedder.cropped(COFFEE, Candidate(mask), "masked")
    assert tuple(crop[0, 0]) == tuple(int(np.rint(255 * m)) for m in mean) == embedder.neutral()


@pytest.mark.models
def test_a_sam_checkpoint_missing_its_mask_decoder_is_refused_naming_it(tmp_path, tiny_models):
    import torch

    state = torch.load(tiny_models["sam"], weights_only=True)
    pruned = tmp_path / "sam_pruned.pth"
    torch.save({k: v for k, v in state.items() if not k.startswith("mask_decoder.")}, pruned)
    with pytest.raises(
        DisplacementError, match=r"SAM vit_b checkpoint .* lacks \d+ weights \(mask_decoder\."
    ):
        SamSegmenter(checkpoint=str(pruned), encoder=SAM_ENCODER).model()
