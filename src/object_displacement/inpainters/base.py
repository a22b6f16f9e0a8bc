"""What every inpainter shares: crop around the mask, fill, paste back only the mask."""

from __future__ import annotations

import copy
import os
from abc import ABC, abstractmethod
from concurrent.futures import ThreadPoolExecutor
from typing import Annotated, NamedTuple

import cv2
import numpy as np

from object_displacement.geometry import context_box, resize
from object_displacement.settings import MAX_WORKERS, Range
from object_displacement.types import Box, Candidate, Image, Mask

WHOLE = 0.999
"""Coverage from which a pixel of a shrunk crop counts as wholly made of the pixels it
shrinks (float area averaging of ones lands a hair under 1)."""


class InpaintFailed(RuntimeError):
    """An attempt gave no usable fill (a safety checker's black image, a NaN decode).

    Not the user's mistake and not a bug: the ghost check records it and moves on to its
    next attempt (another seed, then the fallbacks)."""


class Crop(NamedTuple):
    """One crop to fill: where it lies, what it fills, what it may copy from, at what size.

    ``mask`` is full size: the part of the inpainting mask this crop fills. ``source``, crop
    size, marks the pixels the fill may copy from (``None``: every pixel outside the mask and
    the pixels to avoid). ``scale`` is the fraction of full resolution the crop is filled at;
    the fill is brought back to full size before it is pasted."""

    box: Box
    mask: Mask
    source: Mask | None = None
    scale: float = 1.0

    @property
    def region(self) -> tuple[slice, slice]:
        x0, y0, x1, y1 = self.box
        return (slice(y0, y1), slice(x0, x1))


class Inpainter(ABC):
    """Fill the masked pixels of an image; every other pixel comes back bit-identical.

    Subclasses implement ``fill`` on a crop around the mask. ``context`` sets how much of
    the surroundings that crop holds, as a fraction of the mask's bounding-box size
    (``None``: the whole image). Pasting back only masked pixels is what guarantees the
    rest of the photo is untouched, whatever the backend does. A backend that needs
    several crops (one per separate part of the mask) returns them from ``crops``; one
    whose crops depend on the photo, the pixels to avoid or the seam, or that chooses what
    each crop copies from or its working resolution, returns them from ``plan_crops``.

    ``workers`` threads fill crops at once (0: one per CPU core). With one, each crop is
    filled from the photo with the earlier crops' fills pasted in; with more, every crop
    from the photo as given: only for a backend whose fills never read another crop's
    hole, which then gives the same result either way.
    """

    synthesizes: bool = False
    """True for a backend that makes new content (diffusion) rather than copying or
    diffusing the photo's: it fills a lifted shadow with the hole instead of relighting it."""

    def __init__(
        self, context: float | None = None, workers: Annotated[int, Range(0, MAX_WORKERS)] = 1
    ) -> None:
        self.context = context
        self.workers = workers

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
        # 1. check inputs
        if image.shape[:2] != mask.shape:
            raise ValueError(f"mask {mask.shape} does not match image {image.shape[:2]}")
        # 2. the crops, each with the part of the mask it fills
        crops = [crop for crop in self.plan_crops(image, mask, avoid, seam) if crop.mask[crop.region].any()]
        out = image.copy()
        # 3. fill them, all at once when the backend's fills are independent
        workers = min(len(crops), self.workers or os.cpu_count() or 1)
        fills: list[Image] | None = None
        if workers > 1:  # the native libraries release the GIL
            with ThreadPoolExecutor(max_workers=workers) as pool:
                fills = list(pool.map(lambda crop: self.fill_crop(image, crop, avoid, subject), crops))
        # 4. paste back only each crop's masked pixels
        for number, crop in enumerate(crops):
            original = np.ascontiguousarray(out[crop.region])
            filled = self.fill_crop(out, crop, avoid, subject) if fills is None else fills[number]
            out[crop.region] = self.paste(original, filled, crop.mask[crop.region])
        return out

    def retry(self, step: int) -> Inpainter | None:
        """This inpainter for the ghost check's ``step``-th retry (1, 2...): the next seed
        of a randomized backend; ``None`` for one whose fill would not change."""
        seed = getattr(self, "seed", None)
        if seed is None:
            return None
        again = copy.copy(self)
        again.seed = seed + step  # type: ignore[attr-defined]
        return again

    @property
    def label(self) -> str:
        """How an attempt by this inpainter is recorded: its class, method and seed."""
        method = getattr(self, "method", None)
        seed = getattr(self, "seed", None)
        return (
            type(self).__name__
            + (f"({method})" if method else "")
            + (f" seed {seed}" if seed is not None else "")
        )

    def plan_crops(
        self, image: Image, mask: Mask, avoid: Mask | None = None, seam: Mask | None = None
    ) -> list[Crop]:
        """The crops to fill; by default those of ``crops``, copying from all but ``avoid``."""
        return [Crop(box, part) for box, part in self.crops(mask)]

    def fill_crop(self, image: Image, crop: Crop, avoid: Mask | None, subject: str | None) -> Image:
        """``fill`` on ``crop`` of ``image``, at its working resolution, back at full size."""
        original = np.ascontiguousarray(image[crop.region])
        hole = crop.mask[crop.region]
        if crop.source is not None:
            avoid = ~crop.source & ~hole
        elif avoid is not None:
            avoid = avoid[crop.region] & ~hole
        if crop.scale >= 1.0:
            return self.fill(original, hole, avoid, subject)
        height, width = hole.shape
        size = (max(1, round(width * crop.scale)), max(1, round(height * crop.scale)))
        # a pixel the hole touches is filled; only pixels wholly free are copied from
        small_hole = _coverage(hole, size) > 0
        small_avoid = None if avoid is None else ~(_coverage(~hole & ~avoid, size) >= WHOLE) & ~small_hole
        filled = self.fill(resize(original, size), small_hole, small_avoid, subject)
        return resize(filled, (width, height))

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


def _coverage(mask: Mask, size: tuple[int, int]) -> np.ndarray:
    """The fraction of each pixel of ``mask`` shrunk to ``size`` (w, h) that it covers."""
    return cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA)
