"""OpenCV's classical inpainting: Telea's fast marching or Navier-Stokes."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from object_displacement.inpainters.base import Inpainter
from object_displacement.types import Image, Mask

METHODS = {"telea": cv2.INPAINT_TELEA, "ns": cv2.INPAINT_NS}


class OpenCVInpainter(Inpainter):
    """Diffuse the surrounding colours into the hole; fast, smooth, no texture.

    Args:
        method: ``telea`` or ``ns``.
        radius: neighbourhood, in pixels, each filled pixel draws from.
        context: see :class:`Inpainter`; a small crop suffices because only pixels
            within ``radius`` of the hole matter.
    """

    def __init__(
        self, method: Literal["telea", "ns"] = "telea", radius: int = 5, context: float | None = 0.1
    ) -> None:
        super().__init__(context)
        if method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, got {method!r}")
        self.method = method
        self.radius = radius

    def fill(self, image: Image, mask: Mask, avoid: Mask | None = None, subject: str | None = None) -> Image:
        # diffusion only reads the hole's border, so there is nothing to avoid
        return cv2.inpaint(image, mask.astype(np.uint8), self.radius, METHODS[self.method])
