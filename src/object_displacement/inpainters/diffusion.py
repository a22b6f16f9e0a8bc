"""Stable Diffusion (XL) inpainting through diffusers, at the model's native resolution."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from object_displacement.inpainters.base import Inpainter
from object_displacement.runtime import UsesDevice, quiet_libraries
from object_displacement.types import Image, Mask
from object_displacement.weights import is_local, load_once, missing


class DiffusionInpainter(Inpainter, UsesDevice):
    """Re-synthesize the mask with a diffusion inpainting model.

    The base class hands over a crop around the mask (``context`` of its size on each
    side); it is scaled so its longer side is ``resolution`` (the size the model was
    trained at), inpainted, scaled back, and only masked pixels are pasted, so a photo of
    any size stays sharp and untouched outside the mask.

    Args:
        model: a diffusers folder or hub id (SD or SDXL inpainting; the pipeline class is
            read from its ``model_index.json``).
        prompt, negative_prompt: what the filled region should and should not show.
        steps, guidance, strength: denoising steps, classifier-free guidance scale, and
            how much of the masked content is replaced (1.0: all of it).
        seed: seed of the noise, so a run can be repeated.
        resolution: longer side of what the model sees, in pixels.
        variant: weight files to load (``fp16`` halves downloads; weights are cast to the
            device's dtype either way); ``null`` for folders saved without variants.
        cpu_offload: keep sub-models on the CPU until used (small GPUs; slower).
        context: see :class:`Inpainter`.
    """

    def __init__(
        self,
        model: str,
        prompt: str = "",
        negative_prompt: str = "",
        steps: int = 30,
        guidance: float = 7.5,
        strength: float = 0.99,
        seed: int = 0,
        resolution: int = 1024,
        variant: str | None = "fp16",
        cpu_offload: bool = False,
        context: float | None = 0.5,
    ) -> None:
        super().__init__(context)
        self.model = model
        self.prompt = prompt
        self.negative_prompt = negative_prompt
        self.steps = steps
        self.guidance = guidance
        self.strength = strength
        self.seed = seed
        self.resolution = resolution
        self.variant = variant
        self.cpu_offload = cpu_offload

    def fetch(self) -> str:
        """Put the pipeline (``variant`` files only) in the Hugging Face cache."""
        from diffusers import DiffusionPipeline

        if is_local(self.model):
            return f"inpainting {self.model}: local, nothing to fetch"
        return f"inpainting {self.model}: {DiffusionPipeline.download(self.model, variant=self.variant)}"

    def pipeline(self) -> Any:
        """The diffusers pipeline on this component's device, loaded once per process."""
        key = ("diffusers", self.model, self.variant, str(self.device), str(self.dtype), self.cpu_offload)
        return load_once(key, self._load)

    def _load(self) -> Any:
        from diffusers import AutoPipelineForInpainting

        try:
            with quiet_libraries():
                pipe = AutoPipelineForInpainting.from_pretrained(
                    self.model, torch_dtype=self.dtype, variant=self.variant
                )
        except (OSError, ValueError) as err:
            if is_local(self.model) and "variant" in str(err):
                source = f"{self.model} (variant {self.variant})"
                raise missing("inpainting", source, "inpainter.variant=null") from err
            raise missing("inpainting", self.model, "inpainter.model=/path/to/folder") from err
        if self.cpu_offload and self.device.type != "cpu":
            pipe.enable_model_cpu_offload(device=self.device)
        else:
            pipe = pipe.to(self.device)
        pipe.set_progress_bar_config(disable=True)
        return pipe

    def fill(self, image: Image, mask: Mask, avoid: Mask | None = None) -> Image:
        import torch
        from PIL import Image as PILImage

        height, width = mask.shape
        size = _model_size(width, height, self.resolution)
        pipe = self.pipeline()
        generator = torch.Generator(device="cpu").manual_seed(self.seed)
        with torch.inference_mode():
            result = pipe(
                prompt=self.prompt,
                negative_prompt=self.negative_prompt or None,
                image=PILImage.fromarray(cv2.resize(image, size, interpolation=cv2.INTER_AREA)),
                mask_image=PILImage.fromarray(
                    cv2.resize(mask.astype(np.uint8) * 255, size, interpolation=cv2.INTER_NEAREST)
                ),
                width=size[0],
                height=size[1],
                num_inference_steps=self.steps,
                guidance_scale=self.guidance,
                strength=self.strength,
                generator=generator,
                output_type="np",
            ).images[0]
        filled = np.clip(np.rint(result * 255), 0, 255).astype(np.uint8)
        return cv2.resize(filled, (width, height), interpolation=cv2.INTER_CUBIC)


def _model_size(width: int, height: int, resolution: int) -> tuple[int, int]:
    """(w, h) with the longer side ``resolution`` and both multiples of 8 (the VAE's stride)."""
    scale = resolution / max(width, height)
    return (max(8, round(width * scale / 8) * 8), max(8, round(height * scale / 8) * 8))
