"""PatchMatch (pypatchmatch): copies real texture from the hole's surroundings."""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import patchmatch

from object_displacement.geometry import bbox_diagonal, clip_box, dilate
from object_displacement.inpainters.base import Inpainter
from object_displacement.types import Box, Candidate, Image, Mask


class PatchMatchInpainter(Inpainter):
    """Fill the hole with patches found around it (Barnes et al., 2009).

    Content-aware fill samples near the hole, not from the whole photo: a photo holds
    other surfaces that match a hole's blurry prefill just as well (wood grain for a red
    saucer, a face for a grey wall), and searching them all is most of the cost. So each
    separate part of the mask is filled from a band ``source_band`` wide around it
    (relative to the part's size), never from the pixels to ``avoid`` (the moved object)
    nor from any other hole. The parts are independent and filled in parallel threads
    (the native library releases the GIL); the result equals a sequential fill.

    Args:
        patch_size: patch radius; larger follows larger structures but is much slower
            (3 is as good on the benchmark and twice as fast as 5).
        seed: seed of the randomized search, so equal inputs give equal outputs.
        context: see :class:`Inpainter`; used only when ``source_band`` is ``None``
            (``None``: search the whole photo, the old behaviour).
        source_band: width of the source band around each part of the mask, as a
            fraction of that part's bounding-box diagonal; ``None`` turns the band off.
        min_band: the band is at least this many pixels wide, so thin seams find texture.
        workers: threads filling parts at once; 0: one per CPU core.
    """

    def __init__(
        self,
        patch_size: int = 3,
        seed: int = 0,
        context: float | None = None,
        source_band: float | None = 0.06,
        min_band: int = 16,
        workers: int = 0,
    ) -> None:
        super().__init__(context)
        self.patch_size = patch_size
        self.seed = seed
        self.source_band = source_band
        self.min_band = min_band
        self.workers = workers

    def inpaint(
        self, image: Image, mask: Mask, avoid: Mask | None = None, subject: str | None = None
    ) -> Image:
        if self.source_band is None:
            return super().inpaint(image, mask, avoid, subject)
        if image.shape[:2] != mask.shape:
            raise ValueError(f"mask {mask.shape} does not match image {image.shape[:2]}")
        out = image.copy()
        parts = mask_parts(mask, gap=2 * self.patch_size + 1)
        if not parts:
            return out
        blocked = mask if avoid is None else mask | avoid
        patchmatch.set_random_seed(self.seed)
        jobs = [(part, self.source_box(part, blocked)) for part in parts]
        workers = min(len(jobs), self.workers or os.cpu_count() or 1)
        with ThreadPoolExecutor(max_workers=workers) as pool:
            filled = list(pool.map(lambda job: self._fill_part(image, blocked, *job), jobs))
        for (part, (box, _)), patch in zip(jobs, filled, strict=True):
            x0, y0, x1, y1 = box
            region = (slice(y0, y1), slice(x0, x1))
            inside = part[region]
            out[region][inside] = patch[inside]
        return out

    def source_box(self, part: Mask, blocked: Mask) -> tuple[Box, Mask]:
        """The crop around ``part`` and, within it, the pixels it may copy from: the band
        around it, less every hole and avoided pixel (the whole crop if that is empty)."""
        height, width = part.shape
        bbox = Candidate(part).bbox
        band = max(self.min_band, round(self.source_band * bbox_diagonal(bbox)))  # type: ignore[operator]
        margin = band + self.patch_size
        grown = (bbox[0] - margin, bbox[1] - margin, bbox[2] + margin, bbox[3] + margin)
        box = clip_box(grown, width, height)
        region = (slice(box[1], box[3]), slice(box[0], box[2]))
        source = dilate(part[region], band) & ~blocked[region]
        side = 2 * self.patch_size + 1
        if source.sum() < 4 * side * side:  # too little to copy from: the crop, less the blocked
            source = ~blocked[region]
        return box, source

    def _fill_part(self, image: Image, blocked: Mask, part: Mask, job: tuple[Box, Mask]) -> Image:
        box, source = job
        x0, y0, x1, y1 = box
        region = (slice(y0, y1), slice(x0, x1))
        hole = part[region]
        # neither filled nor copied from: everything but this hole and its source band
        excluded = ~source & ~hole
        return patchmatch.inpaint(
            np.ascontiguousarray(image[region]), hole, global_mask=excluded, patch_size=self.patch_size
        )

    def fill(self, image: Image, mask: Mask, avoid: Mask | None = None, subject: str | None = None) -> Image:
        patchmatch.set_random_seed(self.seed)
        if avoid is None or not avoid.any():
            return patchmatch.inpaint(image, mask, patch_size=self.patch_size)
        return patchmatch.inpaint(image, mask, global_mask=avoid, patch_size=self.patch_size)


def mask_parts(mask: Mask, gap: int) -> list[Mask]:
    """The separate parts of ``mask``: pieces closer than ``gap`` pixels stay together, so
    speckles around a hole are filled with it rather than one by one."""
    if not mask.any():
        return []
    joined = dilate(mask, gap / 2)
    count, labels = cv2.connectedComponents(joined.astype(np.uint8), connectivity=8)
    return [mask & (labels == label) for label in range(1, count)]
