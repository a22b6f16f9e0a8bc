"""What every compositor does: put the moved object onto the background."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from object_displacement.types import Image, Mask, Plan


class Compositor(ABC):
    """Blends ``plan.layer`` onto ``plan.background`` and decides who owns the seam ring.

    A compositor that ``blends_seam`` re-synthesizes the seam itself, so it is left out of
    the inpaint mask; otherwise the inpainter gets it. Either way it is done once. Pixels
    outside the object's coverage and (when blending) the seam ring come back unchanged.
    """

    blends_seam: bool = False

    def __call__(self, plan: Plan) -> tuple[Image, Mask]:
        """The composite, and the mask the inpainter must fill."""
        region = plan.alpha > 0
        if self.blends_seam:
            region = region | plan.seam_mask
        blended = self.blend(plan)
        composite = np.where(region[..., None], blended, plan.background)
        inpaint = plan.hole_mask if self.blends_seam else plan.hole_mask | plan.seam_mask
        return composite, inpaint & ~plan.moved_mask

    @abstractmethod
    def blend(self, plan: Plan) -> Image:
        """The object blended onto the background (only the compositor's region is kept)."""


def over(layer: Image, background: Image, alpha: np.ndarray) -> Image:
    """``layer`` over ``background`` with coverage ``alpha``; exact where alpha is 0 or 1."""
    a = alpha[..., None].astype(np.float32)
    mixed = np.rint(layer.astype(np.float32) * a + background.astype(np.float32) * (1 - a))
    return np.where(a >= 1, layer, np.where(a <= 0, background, mixed.astype(np.uint8)))
