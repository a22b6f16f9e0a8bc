"""``compositor=paste``: the object as it is, its edge left to the inpainter."""

from __future__ import annotations

from object_displacement.compositors.base import Compositor, over
from object_displacement.types import Image, Plan


class PasteCompositor(Compositor):
    """Put the object's pixels down with their coverage (a hard edge unless scaled)."""

    def blend(self, plan: Plan) -> Image:
        return over(plan.layer, plan.background, plan.alpha)
