"""``compositor=colour_match``: the object relit to match its new surroundings."""

from __future__ import annotations

from typing import Literal

import cv2
import numpy as np

from object_displacement.compositors.base import Compositor, over
from object_displacement.geometry import ring, unit_length
from object_displacement.types import Image, Plan


class ColourMatchCompositor(Compositor):
    """Shift the object's colour by how the surroundings differ between its two places.

    In CIELAB, the mean and spread of a ring around the old place are compared with those
    of a ring around the new place, and the object's pixels are mapped from one to the
    other: a cup carried from shade into sunlight brightens with it. Then it is pasted.

    Args:
        strength: 0 keeps the object's colours, 1 applies the full correction.
        ring: width of the compared rings, a fraction of the object's bbox diagonal.
        units: ``relative`` or ``pixels`` for ``ring``.
    """

    def __init__(
        self, strength: float = 1.0, ring: float = 0.1, units: Literal["relative", "pixels"] = "relative"
    ) -> None:
        self.strength = strength
        self.ring = ring
        self.units = units

    def blend(self, plan: Plan) -> Image:
        width = max(2, round(self.ring * unit_length(plan.source_mask, self.units)))
        old = ring(plan.source_mask, width) & ~plan.moved_mask
        new = ring(plan.moved_mask, width) & ~plan.source_mask
        if old.sum() < 16 or new.sum() < 16:  # nothing to compare against: paste as is
            return over(plan.layer, plan.background, plan.alpha)
        before = cv2.cvtColor(plan.source, cv2.COLOR_RGB2LAB).astype(np.float32)[old]
        after = cv2.cvtColor(plan.background, cv2.COLOR_RGB2LAB).astype(np.float32)[new]
        gain = after.std(axis=0) / np.maximum(before.std(axis=0), 1.0)
        lab = cv2.cvtColor(plan.layer, cv2.COLOR_RGB2LAB).astype(np.float32)
        matched = (lab - before.mean(axis=0)) * gain + after.mean(axis=0)
        lab = lab + self.strength * (matched - lab)
        relit = cv2.cvtColor(np.clip(np.rint(lab), 0, 255).astype(np.uint8), cv2.COLOR_LAB2RGB)
        return over(relit, plan.background, plan.alpha)
