"""``compositor=poisson``: OpenCV seamless cloning (Pérez et al., 2003)."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from object_displacement.compositors.base import Compositor
from object_displacement.geometry import dilate
from object_displacement.types import Image, Plan

MODES = {"normal": cv2.NORMAL_CLONE, "mixed": cv2.MIXED_CLONE}


class PoissonCompositor(Compositor):
    """Solve for the object's pixels so its gradients are kept and its border matches
    the new surroundings: colour and light adapt across the seam.

    Args:
        mode: ``normal`` (the object's gradients) or ``mixed`` (the stronger of the
            object's and the background's, for objects with holes or transparency).
    """

    blends_seam = True

    def __init__(self, mode: Literal["normal", "mixed"] = "normal") -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be normal or mixed, got {mode!r}")
        self.mode = mode

    def blend(self, plan: Plan) -> Image:
        region = dilate(plan.moved_mask, 1)
        # outside its coverage the layer holds nothing: show the new background there, so
        # the gradients at the edge are the object's against its new surroundings
        source = np.where((plan.alpha > 0)[..., None], plan.layer, plan.background)
        # seamlessClone fails on masks that touch the frame: work on a padded copy
        pad = 4
        src = cv2.copyMakeBorder(source, pad, pad, pad, pad, cv2.BORDER_REFLECT)
        dst = cv2.copyMakeBorder(plan.background, pad, pad, pad, pad, cv2.BORDER_REFLECT)
        mask = np.pad(region, pad).astype(np.uint8) * 255
        x, y, w, h = cv2.boundingRect(mask)
        center = (x + w // 2, y + h // 2)
        cloned = cv2.seamlessClone(src, dst, mask, center, MODES[self.mode])
        return cloned[pad:-pad, pad:-pad]
