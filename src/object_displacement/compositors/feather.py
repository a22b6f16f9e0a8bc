"""``compositor=feather``: an alpha ramp across the object's edge."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from object_displacement.compositors.base import Compositor, over
from object_displacement.geometry import unit_length
from object_displacement.types import Image, Plan


class FeatherCompositor(Compositor):
    """Fade the object's edge into the background over ``width``, inward from its edge.

    Coverage rises from almost nothing at the edge to full ``width`` inside it, so the
    edge takes on the colours behind it; the true background just outside stays, and the
    seam ring needs no inpainting.

    Args:
        width: ramp width; a fraction of the object's bbox diagonal, or pixels.
        units: ``relative`` or ``pixels``.
    """

    blends_seam = True

    def __init__(self, width: float = 0.03, units: Literal["relative", "pixels"] = "relative") -> None:
        self.width = width
        self.units = units

    def blend(self, plan: Plan) -> Image:
        width = max(1.0, self.width * unit_length(plan.moved_mask, self.units))
        inside = cv2.distanceTransform(plan.moved_mask.astype(np.uint8), cv2.DIST_L2, 5)
        ramp = np.clip(inside / width, 0.0, 1.0).astype(np.float32)
        return over(plan.layer, plan.background, ramp * plan.alpha)
