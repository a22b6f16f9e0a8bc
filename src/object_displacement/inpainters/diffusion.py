"""Stable Diffusion (XL) inpainting through diffusers, at the model's native resolution."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import numpy as np

from object_displacement.geometry import resize
from object_displacement.inpainters.base import Inpainter, InpaintFailed
from object_displacement.inpainters.harmonize import harmonized_paste
from object_displacement.inpainters.model_crops import latent_mask, model_crops, model_size
from object_displacement.runtime import UsesDevice, module_bytes, quiet_libraries
from object_displacement.settings import Range, Seed
from object_displacement.types import Box, Image, Mask
from object_displacement.weights import (
    ModelWeights,
    WeightsMissing,
    check_complete,
    is_local,
    load_once,
    missing,
    pretrained_available,
)

log = logging.getLogger(__name__)

DTYPES = ("fp32", "fp16", "bf16")
PREFILL_ON = ("retries", "always", "never")
BLACK_LEVEL = 2
"""A fill whose every value is at most this is a safety checker's black image, not a fill."""
WORKING_BYTES_AT_1024 = 4 * 2**30
"""Device memory a denoising run at 1024x1024 needs beside its weights (activations, the
VAE's decode at full size), by arithmetic from diffusers' SDXL memory notes, not measured
here (no GPU); it scales with the crop's area."""


class DiffusionInpainter(Inpainter, UsesDevice, ModelWeights):
    """Re-synthesize the mask with a diffusion inpainting model.

    Each separate part of the mask gets its own crop (see :mod:`model_crops`), sized so
    its area is about ``resolution`` squared (the model's training size), inpainted, and
    scaled back (area to shrink, cubic to enlarge). The model gets a mask that survives its
    1/8 latent grid; only the true mask is pasted back, colour-matched to the photo just
    outside it and faded in over ``feather`` pixels, so a photo of any size stays sharp and
    bit-identical outside the mask.

    Args:
        model: a diffusers folder or hub id (SD or SDXL inpainting; the pipeline class is
            read from its ``model_index.json``).
        prompt, negative_prompt: what the filled region should and should not show.
        negative_target: also put the target's prompt in the negative prompt, so the model
            does not redraw the object it was asked to remove.
        steps, guidance, strength: denoising steps, classifier-free guidance scale, and
            how much of the masked content is replaced (1.0: all of it).
        seed: seed of the noise, so a run can be repeated.
        resolution: side of the square the model was trained on; crops get about its area.
        max_aspect: crops are grown from the photo to at most this aspect ratio.
        max_upscale: small crops are grown from the photo rather than enlarged more than this.
        variant: weight files to load (``fp16`` halves downloads; weights are cast to the
            device's dtype either way); ``null`` for folders saved without variants.
        dtype: ``null`` follows Fabric's precision; ``fp32``, ``fp16`` or ``bf16`` force one.
        cpu_offload: keep sub-models on the CPU until used (small GPUs; slower; needs a GPU).
        safety_checker: keep the checker SD 1.5 ships; a false flag blacks out the fill,
            which then counts as a failed attempt. Off by default.
        prefill: a classical inpainter whose fill the denoising starts from, at
            ``prefill_strength``, instead of from noise: the known remedy for a fill that
            invents a new object where background belongs (diffusers #4943, #4836). It
            costs the classical fill's time and, below strength 1, saves that share of
            the steps; the fill keeps the prefill's layout, so it can keep its smears too.
        prefill_on: ``retries`` (the ghost check's retries start from the prefill, the
            first attempt from noise), ``always`` or ``never``.
        prefill_strength: how much of the prefill is re-noised (1: none of it survives).
        feather: pixels over which the fill fades in inside the mask (0: hard paste).
        colour_match: match the fill's colours to a ``band``-pixel ring outside the mask.
        band: see ``colour_match``.
        context: see :class:`Inpainter`.
    """

    synthesizes = True

    def __init__(
        self,
        model: str,
        prompt: str = "",
        negative_prompt: str = "",
        negative_target: bool = True,
        steps: int = 30,
        guidance: float = 7.5,
        strength: float = 0.99,
        seed: Seed = 0,
        resolution: int = 1024,
        max_aspect: float = 2.0,
        max_upscale: float = 2.0,
        variant: str | None = "fp16",
        dtype: str | None = None,
        cpu_offload: bool = False,
        safety_checker: bool = False,
        prefill: Inpainter | None = None,
        prefill_on: str = "retries",
        prefill_strength: Annotated[float, Range(0.0, 1.0)] = 0.75,
        feather: float = 6.0,
        colour_match: bool = True,
        band: int = 4,
        context: float | None = 0.5,
    ) -> None:
        super().__init__(context)
        if dtype is not None and dtype not in DTYPES:
            raise ValueError(f"dtype must be null or one of {', '.join(DTYPES)}, got {dtype!r}")
        if prefill_on not in PREFILL_ON:
            raise ValueError(f"prefill_on must be one of {', '.join(PREFILL_ON)}, got {prefill_on!r}")
        if max_aspect < 1 or max_upscale < 1:
            raise ValueError("max_aspect and max_upscale must be at least 1")
        self.model = model
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.negative_target = negative_target
        self.steps = steps
        self.guidance = guidance
        self.strength = strength
        self.seed = seed
        self.resolution = resolution
        self.max_aspect = max_aspect
        self.max_upscale = max_upscale
        self.variant = variant
        self.weights_dtype = dtype
        self.cpu_offload = cpu_offload
        self.safety_checker = safety_checker
        self.prefill = prefill
        self.prefill_on = prefill_on
        self.prefill_strength = prefill_strength
        self.prefilling = prefill is not None and prefill_on == "always"
        """Whether this attempt denoises from the prefill (a retry may turn it on)."""
        self.feather = feather
        self.colour_match = colour_match
        self.band = band

    @property
    def dtype(self) -> Any:
        import torch

        if self.weights_dtype is None:
            return super().dtype
        return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[self.weights_dtype]

    # -- weights -------------------------------------------------------------------------

    def fetch_weights(self) -> list[str]:
        """Put the pipeline (``variant`` files only) in the Hugging Face cache."""
        from diffusers import DiffusionPipeline

        if is_local(self.model):
            return [f"inpainting {self.model}: local, nothing to fetch"]
        return [f"inpainting {self.model}: {DiffusionPipeline.download(self.model, variant=self.variant)}"]

    def check_weights(self) -> None:
        """Fail in a second, before any start-up, when the pipeline is not on this machine."""
        if not pretrained_available(self.model, "model_index.json"):
            raise missing("inpainting", self.model, "inpainter.model=/path/to/folder")

    def load(self) -> Any:
        """The diffusers pipeline (see :meth:`pipeline`)."""
        return self.pipeline()

    def pipeline(self) -> Any:
        """The diffusers pipeline on this component's device, loaded once per process."""
        key = (
            "diffusers",
            self.model,
            self.variant,
            str(self.device),
            str(self.dtype),
            self.cpu_offload,
            self.safety_checker,
        )
        return load_once(key, self._load)

    def _load(self) -> Any:
        from diffusers import AutoPipelineForInpainting

        # SD 1.5 inpainting ships a safety checker; SDXL has none and ignores the argument
        extra = {} if self.safety_checker else {"safety_checker": None, "requires_safety_checker": False}
        try:
            with quiet_libraries():
                pipe = AutoPipelineForInpainting.from_pretrained(
                    self.model, torch_dtype=self.dtype, variant=self.variant, low_cpu_mem_usage=True, **extra
                )
        except (OSError, ValueError) as err:
            if self.variant is not None and "variant" in str(err):
                raise WeightsMissing(
                    f"inpainting model '{self.model}' has no {self.variant} weight files: set "
                    "inpainter.variant=null to load the files it has"
                ) from err
            raise missing("inpainting", self.model, "inpainter.model=/path/to/folder") from err
        check_complete("inpainting", self.model, unloaded_weights(pipe))
        if self.cpu_offload and self.device.type == "cpu":
            log.warning("inpainter.cpu_offload=true needs a GPU; running on the CPU without offload")
        if self.cpu_offload and self.device.type != "cpu":
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            pipe = pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)  # steps are logged instead (see _progress)
        return pipe

    def working_bytes(self) -> int:
        """Weights on the device while it runs (with ``cpu_offload`` the largest sub-model
        only) and the working memory of a crop at ``resolution``."""
        import torch

        pipe = self.pipeline()
        sizes = [module_bytes(c) for c in pipe.components.values() if isinstance(c, torch.nn.Module)]
        weights = max(sizes, default=0) if self.cpu_offload else sum(sizes)
        return weights + round(WORKING_BYTES_AT_1024 * (self.resolution / 1024) ** 2)

    # -- inpainting ------------------------------------------------------------------------

    def retry(self, step: int) -> DiffusionInpainter:
        """The next seed, denoising from the prefill unless ``prefill_on: never``: a retry
        follows a fill that showed the object again or failed, and noise gave that."""
        again = super().retry(step)
        assert isinstance(again, DiffusionInpainter)
        again.prefilling = self.prefill is not None and self.prefill_on != "never"
        return again

    @property
    def label(self) -> str:
        return super().label + (f" prefilled at {self.prefill_strength:g}" if self.prefilling else "")

    def crops(self, mask: Mask) -> list[tuple[Box, Mask]]:
        context = 0.0 if self.context is None else self.context
        return model_crops(mask, self.resolution, context, self.max_aspect, self.max_upscale)

    def paste(self, original: Image, filled: Image, mask: Mask) -> Image:
        return harmonized_paste(original, filled, mask, self.feather, self.band, self.colour_match)

    def fill(self, image: Image, mask: Mask, avoid: Mask | None = None, subject: str | None = None) -> Image:
        height, width = mask.shape
        size = model_size(width, height, self.resolution, self.max_upscale)
        negative = ", ".join(
            p for p in (self.negative_prompt, subject if self.negative_target else None) if p
        )
        start, strength = image, self.strength
        if self.prefilling and self.prefill is not None:
            start, strength = self.prefill.inpaint(image, mask, avoid), self.prefill_strength
        result = self.generate(resize(start, size), latent_mask(mask, size), negative, strength)
        if not np.isfinite(result).all():
            raise InpaintFailed("the model's output is not finite (NaN), even decoded in fp32")
        filled = np.clip(np.rint(result * 255), 0, 255).astype(np.uint8)
        if filled.max() <= BLACK_LEVEL and image.max() > BLACK_LEVEL:
            raise InpaintFailed("the model returned a black image (a safety checker's answer)")
        return resize(filled, (width, height))

    def generate(
        self, image: Image, mask: Mask, negative_prompt: str, strength: float | None = None
    ) -> np.ndarray:
        """The model's output for ``image`` (at model size) as floats in 0..1, HxWx3,
        denoised at ``strength`` (the setting's when ``None``).

        A decode that is not finite (the fp16 VAE overflowing) is decoded once more from the
        same latents with the VAE in fp32."""
        import torch
        from PIL import Image as PILImage

        pipe = self.pipeline()
        final: dict[str, Any] = {}

        def keep_latents(pipe: Any, step: int, timestep: Any, tensors: dict[str, Any]) -> dict[str, Any]:
            final["latents"] = tensors["latents"]
            _progress(step, pipe.num_timesteps)  # strength < 1 runs fewer steps than asked
            return tensors

        with torch.inference_mode():
            result = pipe(
                prompt=self.prompt,
                negative_prompt=negative_prompt or None,
                image=PILImage.fromarray(image),
                mask_image=PILImage.fromarray(mask.astype(np.uint8) * 255),
                width=image.shape[1],
                height=image.shape[0],
                num_inference_steps=self.steps,
                guidance_scale=self.guidance,
                strength=self.strength if strength is None else strength,
                generator=torch.Generator(device="cpu").manual_seed(self.seed),
                output_type="np",
                callback_on_step_end=keep_latents,
                callback_on_step_end_tensor_inputs=["latents"],
            ).images[0]
            if not np.isfinite(result).all() and "latents" in final:
                log.warning("the VAE decoded NaN in %s: decoding again in fp32", self.dtype)
                result = decode_fp32(pipe, final["latents"])
        return np.asarray(result, dtype=np.float32)


def unloaded_weights(pipe: Any) -> list[str]:
    """The weights of ``pipe``'s models that its folder did not hold, as ``model.name``.

    diffusers leaves them on the meta device (shapes, no values) and says so only in a log
    line; the first ``pipe.to`` would then fail with a raw ``NotImplementedError``."""
    import torch

    return [
        f"{name}.{key}"
        for name, component in pipe.components.items()
        if isinstance(component, torch.nn.Module)
        for key, tensor in [*component.named_parameters(), *component.named_buffers()]
        if tensor.is_meta
    ]


def decode_fp32(pipe: Any, latents: Any) -> np.ndarray:
    """Decode ``latents`` with an fp32 VAE (as the pipeline would: unscaled, de-normalised
    when the VAE has latent statistics), to floats in 0..1; the pipeline's safety checker,
    when it has one, judges the new decode as it judged the first (a flag blacks it out)."""
    import torch

    with torch.inference_mode():
        return _decode_fp32(pipe, latents)


def _decode_fp32(pipe: Any, latents: Any) -> np.ndarray:
    import torch

    vae = fp32_vae(pipe.vae).to(latents.device)
    config = vae.config
    latents = latents.to(torch.float32)
    if getattr(config, "latents_mean", None) is not None and getattr(config, "latents_std", None) is not None:
        mean = torch.tensor(config.latents_mean).view(1, -1, 1, 1).to(latents)
        std = torch.tensor(config.latents_std).view(1, -1, 1, 1).to(latents)
        latents = latents * std / config.scaling_factor + mean
    else:
        latents = latents / config.scaling_factor
    decoded = vae.decode(latents, return_dict=False)[0]
    flagged = [False]
    checker = getattr(pipe, "safety_checker", None)
    if checker is not None:
        decoded, nsfw = pipe.run_safety_checker(decoded, latents.device, next(checker.parameters()).dtype)
        flagged = list(nsfw) if nsfw is not None else flagged
    return pipe.image_processor.postprocess(
        decoded, output_type="np", do_denormalize=[not f for f in flagged]
    )[0]


def fp32_vae(vae: Any) -> Any:
    """A fp32 copy of ``vae`` built from its config and weights alone. ``copy.deepcopy``
    would follow accelerate's offload hook (``cpu_offload=true``) to the models offloaded
    before it, the UNet and both text encoders: 6 to 7 GB more host memory for SDXL."""
    import torch

    copy = type(vae).from_config(vae.config)
    copy.load_state_dict({k: v.to(torch.float32) for k, v in vae.state_dict().items()})
    return copy.to(torch.float32).eval()


def _progress(step: int, steps: int) -> None:
    """Log every fifth of the denoising: CPU runs take minutes, and the user should see them move."""
    every = max(1, steps // 5)
    if (step + 1) % every == 0 or step + 1 == steps:
        log.info("inpainting: step %d/%d", step + 1, steps)
