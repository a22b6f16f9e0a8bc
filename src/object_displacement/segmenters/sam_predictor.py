"""SamPredictor with the image encoder under mixed precision and the mask decoder in fp32.

segment_anything turns the decoder's outputs into NumPy with ``.numpy()``, which has no
bfloat16: under Fabric's ``bf16-mixed`` autocast (the natural choice on A100/H100, and what
``16-mixed`` becomes on a CPU) every call crashed. The encoder is almost all of SAM's
compute, so it keeps the autocast; the small decoder runs in fp32 on fp32 features, and
everything it returns is fp32, as segment_anything expects.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

import torch
from segment_anything import SamPredictor


class MixedPrecisionPredictor(SamPredictor):
    """``SamPredictor`` whose encoder runs under ``autocast`` and decoder in fp32."""

    def __init__(
        self,
        model: Any,
        autocast: Callable[[], contextlib.AbstractContextManager[Any]] = contextlib.nullcontext,
    ) -> None:
        super().__init__(model)
        self._autocast = autocast

    def set_torch_image(self, transformed_image: torch.Tensor, original_image_size: tuple[int, ...]) -> None:
        with self._autocast():
            super().set_torch_image(transformed_image, original_image_size)
        self.features = self.features.float()

    def predict_torch(self, *args: Any, **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        with torch.autocast(self.device.type, enabled=False):
            return super().predict_torch(*args, **kwargs)
