"""What every inpainter shares: crop around the mask, fill, paste back only the mask."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from object_displacement.geometry import context_box
from object_displacement.types import Box, Candidate, Image, Mask


class InpaintFailed(RuntimeError):
    """An attempt gave no usable fill (a safety checker's black image, a NaN decode).

    Not the user's mistake and not a bug: the ghost check records it and moves on to its
    next attempt (another seed, then the fallbacks)."""


class Inpainter(ABC):
    """Fill the masked pixels of an image; every other pixel comes back bit-identical.

    Subclasses implement ``fill`` on a crop around the mask. ``context`` sets how much of
    the surroundings that crop holds, as a fraction of the mask's bounding-box size
    (``None``: the whole image). Pasting back only masked pixels is what guarantees the
    rest of the photo is untouched, whatever the backend does. A backend that needs
    several crops (one per separate part of the mask) returns them from ``crops``.
    """

    def __init__(self, context: float | None = None) -> None:
        self.context = context

    def inpaint(
        self,
        image: Image,
        mask: Mask,
        avoid: Mask | None = None,
        subject: str | None = None,
        seam: Mask | None = None,
    ) -> Image:
        """``image`` with ``mask`` filled. ``avoid`` marks pixels the fill should not copy
        from (the pasted object, so it is not smeared into its own seam); backends that
        cannot honour it ignore it. ``subject`` names what was removed (the target's
        prompt), for backends that can be told not to draw it again. ``seam`` marks the
        ring around the pasted object: a backend that copies from the surroundings fills
        it from the object's new surroundings and the hole from the old place's, even
        where the two touch; others fill the whole mask alike."""
        if image.shape[:2] != mask.shape:
            raise ValueError(f"mask {mask.shape} does not match image {image.shape[:2]}")
        out = image.copy()
        for (x0, y0, x1, y1), part in self.crops(mask):
            region = (slice(y0, y1), slice(x0, x1))
            crop_mask = part[region]
            if not crop_mask.any():
                continue
            crop_avoid = None if avoid is None else avoid[region] & ~crop_mask
            original = np.ascontiguousarray(out[region])
            filled = self.fill(original, crop_mask, crop_avoid, subject)
            out[region] = self.paste(original, filled, crop_mask)
        return out

    def crops(self, mask: Mask) -> list[tuple[Box, Mask]]:
        """The crops to fill, each with the part of ``mask`` it fills; one by default."""
        return [(self.crop_box(mask), mask)] if mask.any() else []

    def crop_box(self, mask: Mask) -> Box:
        height, width = mask.shape
        if self.context is None:
            return (0, 0, width, height)
        return context_box(Candidate(mask).bbox, self.context, width, height)

    def paste(self, original: Image, filled: Image, mask: Mask) -> Image:
        """The crop with the fill's masked pixels put in; the rest stays ``original``."""
        out = original.copy()
        out[mask] = filled[mask]
        return out

    @abstractmethod
    def fill(self, image: Image, mask: Mask, avoid: Mask | None = None, subject: str | None = None) -> Image:
        """Return ``image`` (a crop) with ``mask`` filled; pixels outside are ignored."""
