"""What every inpainter shares: crop around the mask, fill, paste back only the mask."""

from __future__ import annotations

from abc import ABC, abstractmethod

import numpy as np

from object_displacement.geometry import clip_box
from object_displacement.types import Box, Candidate, Image, Mask


class Inpainter(ABC):
    """Fill the masked pixels of an image; every other pixel comes back bit-identical.

    Subclasses implement ``fill`` on a crop around the mask. ``context`` sets how much of
    the surroundings that crop holds, as a fraction of the mask's bounding-box size
    (``None``: the whole image). Pasting back only masked pixels is what guarantees the
    rest of the photo is untouched, whatever the backend does.
    """

    def __init__(self, context: float | None = None) -> None:
        self.context = context

    def inpaint(self, image: Image, mask: Mask, avoid: Mask | None = None) -> Image:
        """``image`` with ``mask`` filled. ``avoid`` marks pixels the fill should not copy
        from (the pasted object, so it is not smeared into its own seam); backends that
        cannot honour it ignore it."""
        if image.shape[:2] != mask.shape:
            raise ValueError(f"mask {mask.shape} does not match image {image.shape[:2]}")
        out = image.copy()
        if not mask.any():
            return out
        x0, y0, x1, y1 = self.crop_box(mask)
        region = (slice(y0, y1), slice(x0, x1))
        crop_avoid = None if avoid is None else avoid[region] & ~mask[region]
        filled = self.fill(np.ascontiguousarray(image[region]), mask[region], crop_avoid)
        out[region][mask[region]] = filled[mask[region]]
        return out

    def crop_box(self, mask: Mask) -> Box:
        height, width = mask.shape
        if self.context is None:
            return (0, 0, width, height)
        x0, y0, x1, y1 = Candidate(mask).bbox
        mx = round(self.context * (x1 - x0)) + 8
        my = round(self.context * (y1 - y0)) + 8
        return clip_box((x0 - mx, y0 - my, x1 + mx, y1 + my), width, height)

    @abstractmethod
    def fill(self, image: Image, mask: Mask, avoid: Mask | None = None) -> Image:
        """Return ``image`` (a crop) with ``mask`` filled; pixels outside are ignored."""
