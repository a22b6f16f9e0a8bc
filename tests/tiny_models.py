"""Random models, saved in the formats real weights come in: tiny for offline tests, full size
(the released architectures) for ``scripts/bench.py``.

Random weights exercise every line of the loading and inference code, the tiny ones at a
fraction of the cost, the full-size ones at the released models' cost; they say nothing about
quality. Each builder seeds torch, so runs repeat.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Literal

Size = Literal["tiny", "full"]
"""``tiny``: a few blocks of width 32, for tests; ``full``: the released architecture."""

SAM_ENCODER = {"embed_dim": 32, "depth": 2, "num_heads": 2, "global_attn_indexes": [1]}
CLIP_CONFIG = {
    "embed_dim": 16,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "head_width": 16, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}
SIGLIP_CONFIG = {
    "embed_dim": 64,  # test_vit's width: SigLIP's image tower has no projection
    "init_logit_bias": -10,
    "custom_text": True,
    # a timm vision tower, as SigLIP's: no ``visual.conv1``; test_vit is timm's 0.4M-parameter ViT
    "vision_cfg": {
        "image_size": 160,
        "timm_model_name": "test_vit",
        "timm_model_pretrained": False,
        "timm_pool": "map",
        "timm_proj": "none",
    },
    "text_cfg": CLIP_CONFIG["text_cfg"] | {"no_causal_mask": True, "proj_bias": True, "pool_type": "last"},
}
FULL_CLIP = "ViT-B-32"
"""The open_clip architecture ``save_clip(size="full")`` builds: the CLIP selector's default."""
BERT_BASE_WORDS = 30522
"""bert-base-uncased's vocabulary size: Grounding DINO's text encoder, full size."""


def is_full(size: Size) -> bool:
    if size not in ("tiny", "full"):
        raise ValueError(f"size is 'tiny' or 'full', not {size!r}")
    return size == "full"


def sam_encoder(size: Size = "tiny") -> dict:
    """SAM's image encoder settings: ``SAM_ENCODER``, or the released vit_b's."""
    from object_displacement.segmenters.sam import ENCODERS

    return ENCODERS["vit_b"] if is_full(size) else SAM_ENCODER


def save_sam(path: Path, size: Size = "tiny") -> Path:
    """A SAM state dict (``.pth``): a small image encoder, or vit_b's."""
    import torch
    from segment_anything.build_sam import _build_sam

    encoder = sam_encoder(size)
    torch.manual_seed(0)
    sam = _build_sam(
        encoder_embed_dim=encoder["embed_dim"],
        encoder_depth=encoder["depth"],
        encoder_num_heads=encoder["num_heads"],
        encoder_global_attn_indexes=encoder["global_attn_indexes"],
    )
    torch.save(sam.state_dict(), path)
    return path


def save_clip(folder: Path, model_cfg: dict | None = None, size: Size = "tiny") -> Path:
    """An open_clip model folder (``open_clip_config.json`` + safetensors), as on the hub.

    ``model_cfg`` is an open_clip model config (``SIGLIP_CONFIG``, or a released one from
    ``open_clip.get_model_config``); without one, ``CLIP_CONFIG`` or, full size, ``FULL_CLIP``'s."""
    import open_clip
    import torch
    from open_clip.model import CLIP, CustomTextCLIP
    from safetensors.torch import save_file

    model_cfg = model_cfg or (open_clip.get_model_config(FULL_CLIP) if is_full(size) else CLIP_CONFIG)
    torch.manual_seed(0)
    settings = {k: v for k, v in model_cfg.items() if k != "custom_text"}
    model = (CustomTextCLIP if model_cfg.get("custom_text") else CLIP)(**settings)
    folder.mkdir(parents=True, exist_ok=True)
    config = {
        "model_cfg": model_cfg,
        "preprocess_cfg": {
            "mean": [0.48145466, 0.4578275, 0.40821073],
            "std": [0.26862954, 0.26130258, 0.27577711],
        },
    }
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors"
    )
    return folder


def clip_tokenizer(folder: Path):
    """A ``CLIPTokenizer`` from the BPE merges open_clip ships, the same vocabulary as CLIP's."""
    import open_clip
    from open_clip.tokenizer import bytes_to_unicode
    from transformers import CLIPTokenizer

    bpe = Path(open_clip.__file__).parent / "bpe_simple_vocab_16e6.txt.gz"
    with gzip.open(bpe, "rt", encoding="utf-8") as handle:
        merges = handle.read().split("\n")[1 : 49152 - 256 - 2 + 1]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m.split()) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps({token: i for i, token in enumerate(vocab)}))
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n")
    return CLIPTokenizer(str(folder / "vocab.json"), str(folder / "merges.txt"), model_max_length=77)


def _text_config(**extra):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        hidden_size=32,
        intermediate_size=37,
        num_attention_heads=4,
        num_hidden_layers=2,
        vocab_size=49408,
        bos_token_id=49406,
        eos_token_id=49407,
        pad_token_id=49407,
        **extra,
    )


def _vae():
    from diffusers import AutoencoderKL

    return AutoencoderKL(
        block_out_channels=[32, 64],
        in_channels=3,
        out_channels=3,
        latent_channels=4,
        down_block_types=["DownEncoderBlock2D"] * 2,
        up_block_types=["UpDecoderBlock2D"] * 2,
    )


def _inpainting_unet(**extra):
    """A 9-channel UNet (latents + mask + masked-image latents), as inpainting models have."""
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(32, 64),
        layers_per_block=1,
        sample_size=32,
        in_channels=9,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4),
        **extra,
    )


def save_sd_inpaint(folder: Path, work: Path, safety_checker: bool = False) -> Path:
    """A Stable Diffusion inpainting pipeline folder (9-channel UNet), via ``save_pretrained``.

    With ``safety_checker`` it ships one, as the SD 1.5 inpainting repo does, that flags
    every image: the false positive that blacks out a fill of a harmless photo."""
    import torch
    from diffusers import DDIMScheduler, StableDiffusionInpaintPipeline
    from transformers import CLIPTextModel

    torch.manual_seed(0)
    unet = _inpainting_unet(cross_attention_dim=32)
    checker, features = _firing_safety_checker() if safety_checker else (None, None)
    pipe = StableDiffusionInpaintPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_text_config()),
        tokenizer=clip_tokenizer(work / "tok"),
        unet=unet,
        scheduler=DDIMScheduler(steps_offset=1),
        safety_checker=checker,
        feature_extractor=features,
        requires_safety_checker=safety_checker,
    )
    pipe.save_pretrained(folder)
    return folder


def _firing_safety_checker():
    """diffusers' ``StableDiffusionSafetyChecker``, tiny, with concept thresholds below any
    cosine: it flags whatever it sees."""
    import torch
    from diffusers.pipelines.stable_diffusion.safety_checker import StableDiffusionSafetyChecker
    from transformers import CLIPConfig, CLIPImageProcessor

    vision = {"hidden_size": 32, "intermediate_size": 37, "num_attention_heads": 4, "num_hidden_layers": 1}
    config = CLIPConfig(
        text_config={**vision, "vocab_size": 99},
        vision_config={**vision, "image_size": 32, "patch_size": 8},
        projection_dim=16,
    )
    checker = StableDiffusionSafetyChecker(config)
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(-2.0)
    features = CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32})
    return checker.eval(), features


def overflow_in_fp16(folder: Path) -> Path:
    """Scale the VAE decoder's first layer of a saved pipeline so fp16 overflows (inf, then
    NaN) while fp32 decodes fine: the known fault of SD VAEs run in half precision."""
    import torch
    from diffusers import AutoencoderKL

    vae = AutoencoderKL.from_pretrained(folder / "vae")
    with torch.no_grad():
        vae.decoder.conv_in.weight.mul_(1e5)
        vae.decoder.conv_in.bias.mul_(1e5)
    vae.save_pretrained(folder / "vae")
    return folder


def save_sdxl_inpaint(folder: Path, work: Path) -> Path:
    """A Stable Diffusion XL inpainting pipeline folder: two text encoders, text_time embedding."""
    import torch
    from diffusers import EulerDiscreteScheduler, StableDiffusionXLInpaintPipeline
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    torch.manual_seed(0)
    unet = _inpainting_unet(
        cross_attention_dim=64,  # both text encoders' hidden states, concatenated
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=8,
        transformer_layers_per_block=(1, 2),
        projection_class_embeddings_input_dim=6 * 8 + 32,  # 6 time ids + the pooled text
    )
    tokenizer = clip_tokenizer(work / "tok")
    pipe = StableDiffusionXLInpaintPipeline(
        vae=_vae(),
        text_encoder=CLIPTextModel(_text_config()),
        text_encoder_2=CLIPTextModelWithProjection(_text_config(projection_dim=32)),
        tokenizer=tokenizer,
        tokenizer_2=tokenizer,
        unet=unet,
        scheduler=EulerDiscreteScheduler(timestep_spacing="leading", steps_offset=1),
        requires_aesthetics_score=False,
    )
    pipe.save_pretrained(folder)
    return folder


def save_all(folder: Path) -> dict[str, Path]:
    """Every tiny model under ``folder``; returns their paths by name."""
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "sam": save_sam(folder / "sam_tiny.pth"),
        "clip": save_clip(folder / "clip"),
        "sd": save_sd_inpaint(folder / "sd", folder),
        "sdxl": save_sdxl_inpaint(folder / "sdxl", folder),
    }


def overrides(paths: dict[str, Path], inpainter: str = "sdxl") -> list[str]:
    """Command-line overrides that run the model components on the tiny models."""
    encoder = ",".join(f"{k}:{v}" for k, v in SAM_ENCODER.items()).replace(" ", "")
    return [
        "segmenter=sam",
        f"segmenter.checkpoint={paths['sam']}",
        f"segmenter.encoder={{{encoder}}}",
        "segmenter.points_per_side=4",
        "segmenter.pred_iou_thresh=0",
        "segmenter.stability_score_thresh=0",
        "selector=clip",
        f"selector.model=local-dir:{paths['clip']}",
        "selector.min_score=-1",
        f"inpainter={inpainter}",
        f"inpainter.model={paths[inpainter]}",
        "inpainter.variant=null",
        "inpainter.resolution=64",
        "inpainter.steps=2",
        "fabric.accelerator=cpu",
    ]


SAM3_SIDE = 112
"""Input side of the tiny SAM 3: 8x8 patches of 14 px, windows of 4 patches."""


def save_sam3(folder: Path, work: Path, size: Size = "tiny", dtype: str = "float32") -> Path:
    """A SAM 3 folder (model, image processor, CLIP tokenizer), via ``save_pretrained``: tiny
    (``SAM3_SIDE`` px inputs) or the released architecture (1008 px), its weights saved in
    ``dtype`` (``bfloat16`` or ``float16`` halve a real download)."""
    import torch
    from transformers import Sam3Config, Sam3ImageProcessor, Sam3Model, Sam3Processor

    torch.manual_seed(0)
    if is_full(size):
        Sam3Model(Sam3Config()).to(getattr(torch, dtype)).save_pretrained(folder)
        Sam3Processor(Sam3ImageProcessor(), clip_tokenizer(work / "sam3_tokenizer")).save_pretrained(folder)
        return folder
    small = {"hidden_size": 32, "num_attention_heads": 2, "intermediate_size": 64}
    grid = SAM3_SIDE // 14
    config = Sam3Config(
        vision_config={
            "backbone_config": {
                "model_type": "sam3_vit_model",
                **small,
                "num_hidden_layers": 2,
                "image_size": SAM3_SIDE,
                "patch_size": 14,
                "window_size": 4,
                "global_attn_indexes": [1],
                "pretrain_image_size": 56,
            },
            "fpn_hidden_size": 32,
            "backbone_feature_sizes": [[grid * 4] * 2, [grid * 2] * 2, [grid] * 2],
        },
        text_config={**small, "num_hidden_layers": 1, "projection_dim": 32},
        geometry_encoder_config={**small, "num_layers": 1},
        detr_encoder_config={**small, "num_layers": 1},
        detr_decoder_config={**small, "num_layers": 1, "num_queries": 10},
        mask_decoder_config={"hidden_size": 32, "num_attention_heads": 2},
    )
    processor = Sam3Processor(
        Sam3ImageProcessor(
            size={"height": SAM3_SIDE, "width": SAM3_SIDE}, mask_size={"height": grid * 4, "width": grid * 4}
        ),
        clip_tokenizer(work / "sam3_tokenizer"),
    )
    Sam3Model(config).to(getattr(torch, dtype)).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def bert_tokenizer(folder: Path, words: int = 1100):
    """A ``BertTokenizerFast`` over a made-up word list of ``words`` entries: Grounding DINO
    reads BERT word pieces, and its token ids must reach past 1029 (its special tokens)."""
    from transformers import BertTokenizerFast

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", ".", ",", "a", "the", "cup", "mug", "table"]
    vocab += [f"word{i}" for i in range(words - len(vocab))]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    return BertTokenizerFast(str(folder / "vocab.txt"))


def save_grounding_dino(folder: Path, work: Path, size: Size = "tiny", dtype: str = "float32") -> Path:
    """A Grounding DINO folder: tiny (Swin + BERT, 2 decoder layers, 128 px inputs) or the
    released Grounding DINO tiny (Swin-T + BERT base), its weights saved in ``dtype``."""
    import torch
    from transformers import (
        GroundingDinoConfig,
        GroundingDinoForObjectDetection,
        GroundingDinoImageProcessor,
        GroundingDinoProcessor,
    )

    torch.manual_seed(0)
    if is_full(size):
        tokenizer = bert_tokenizer(work / "bert_tokenizer", words=BERT_BASE_WORDS)
        GroundingDinoForObjectDetection(GroundingDinoConfig()).to(getattr(torch, dtype)).save_pretrained(
            folder
        )
        GroundingDinoProcessor(GroundingDinoImageProcessor(), tokenizer).save_pretrained(folder)
        return folder
    tokenizer = bert_tokenizer(work / "bert_tokenizer")
    config = GroundingDinoConfig(
        backbone_config={
            "model_type": "swin",
            "embed_dim": 8,
            "depths": [1, 1, 1, 1],
            "num_heads": [1, 1, 1, 1],
            "window_size": 4,
            "image_size": 128,
            "out_features": ["stage2", "stage3", "stage4"],
        },
        text_config={
            "model_type": "bert",
            "vocab_size": tokenizer.vocab_size,
            "hidden_size": 16,
            "num_hidden_layers": 1,
            "num_attention_heads": 2,
            "intermediate_size": 32,
        },
        d_model=32,  # GroupNorm(32, d_model) needs a multiple of 32
        encoder_layers=1,
        decoder_layers=2,
        encoder_ffn_dim=32,
        decoder_ffn_dim=32,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        num_queries=20,
    )
    processor = GroundingDinoProcessor(
        GroundingDinoImageProcessor(size={"shortest_edge": 128, "longest_edge": 256}), tokenizer
    )
    GroundingDinoForObjectDetection(config).to(getattr(torch, dtype)).save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


def drop_weights(model_file: Path, prefix: str) -> list[str]:
    """Remove the tensors whose names start with ``prefix`` from a safetensors file, as an
    incomplete download or a hand-pruned checkpoint would; the names removed."""
    from safetensors.torch import load_file, save_file

    tensors = load_file(model_file)
    dropped = [name for name in tensors if name.startswith(prefix)]
    save_file({k: v for k, v in tensors.items() if k not in dropped}, model_file, metadata={"format": "pt"})
    return dropped


def save_salient(path: Path, side: int = 64) -> Path:
    """A salient-object network in the shape the released IS-Net comes in: ONNX, one
    ``1x3xSxS`` input ``input``, and upsampling to a size fixed when it was traced (what
    :func:`~object_displacement.segmenters.salient_net.resizable` rewrites). It calls red
    things objects: ``sigmoid(10 (r - (g + b) / 2) - 1)`` of the normalised input, at half
    resolution and upsampled back."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    weight = numpy_helper.from_array(np.array([10.0, -5.0, -5.0], np.float32).reshape(1, 3, 1, 1), "w")
    bias = numpy_helper.from_array(np.array([-1.0], np.float32), "b")
    size = numpy_helper.from_array(np.array([side, side], np.int64), "hw")
    nodes = [
        helper.make_node("MaxPool", ["input"], ["half"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Conv", ["half", "w", "b"], ["logit"]),
        helper.make_node("Shape", ["logit"], ["shape"]),
        helper.make_node("Slice", ["shape", "zero", "two"], ["nc"]),
        helper.make_node("Concat", ["nc", "hw"], ["sizes"], axis=0),
        helper.make_node("Resize", ["logit", "", "", "sizes"], ["up"], mode="linear"),
        helper.make_node("Sigmoid", ["up"], ["output"]),
    ]
    consts = [
        numpy_helper.from_array(np.array([0], np.int64), "zero"),
        numpy_helper.from_array(np.array([2], np.int64), "two"),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny_salient",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 3, side, side])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 1, side, side])],
        initializer=[weight, bias, size, *consts],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path
