"""PatchMatch (pypatchmatch): copies real texture from the hole's surroundings."""

from __future__ import annotations

from typing import Annotated

import cv2
import numpy as np
import patchmatch

from object_displacement.geometry import bbox_diagonal, dilate, grown_box
from object_displacement.inpainters.base import Crop, Inpainter
from object_displacement.settings import MAX_PATCH, MAX_WORKERS, Range, Seed
from object_displacement.types import Box, Candidate, Image, Mask

MIN_PATCHES = 4
"""A source holding fewer patches than this (by area, or whole ones) is too little to copy
from, and the crop looks further."""

COARSE_PATCHES = 3
"""The coarser levels PatchMatch fills a hole through see it up to this many patches across."""

FURTHER_PATCHES = 2
"""A crop whose source holds no whole coarse patch grows by this many more of them."""

COLOURS = 3
"""Channels of a colour: a covariance of fewer than ``COLOURS + 1`` samples is singular."""

COLOUR_FLOOR = 4.0
"""The least spread (grey levels) of a surface's colours: a flat sample would otherwise
refuse its own noise."""


class PatchMatchInpainter(Inpainter):
    """Fill the hole with patches found around it (Barnes et al., 2009).

    Content-aware fill samples near the hole, not from the whole photo: a photo holds
    other surfaces that match a hole's blurry prefill just as well (wood grain for a red
    saucer, a face for a grey wall), and searching them all is most of the cost. So each
    separate part of the mask is filled from a band ``source_band`` wide around it
    (relative to the part's size), never from the pixels to ``avoid`` (the moved object
    and the user's ``keep_out`` boxes) nor from any other hole. The parts are independent
    and filled in parallel threads (the native library releases the GIL); the result
    equals a sequential fill.

    Args:
        patch_size: patch radius; larger follows larger structures but is much slower
            (3 is as good as 5 on the ground-truth benchmark, at a fraction of the cost).
        seed: seed of the randomized search, so equal inputs give equal outputs.
        context: see :class:`Inpainter`; used only when ``source_band`` is ``None``
            (``None``: search the whole photo, the old behaviour).
        source_band: width of the source band around each part of the mask, as a
            fraction of that part's bounding-box diagonal; ``None`` turns the band off.
        min_band: the band is at least this many pixels wide, so thin seams find texture.
        reach: beyond the band, out to this many pixels, the pixels of the same surface
            (colours the band holds, ``reach_tolerance`` standard deviations at most) are
            copied from too. PatchMatch decides what goes where at its coarse levels, where
            a 16 px band beside a tall, narrow hole holds no whole patch: only its ends
            above and below do, and the rocket demo's old place became a column of the
            darker sky from above. Reaching 40 px over the same sky keeps whole patches
            beside the hole, and lets tile grout, a rim or brick courses be seen and
            continued; stopping at another colour keeps the table's wood out of a hole in
            a red saucer, which a plain 40 px band lets in. A part that would then be
            filled at a working resolution does not reach: its band is wide already.
            0: the band alone.
        reach_tolerance: how far (Mahalanobis distance, in standard deviations of the
            band's colours) a pixel's colour may lie from the band's to be reached; 3
            holds 97 % of a surface whose colours are normally distributed.
        workers: threads filling parts at once; 0: one per CPU core.
        work_pixels: crops holding more pixels (all parts' crops together) are filled
            at a working resolution with at most this many, and the fill brought back to
            full size (bicubic). PatchMatch's cost grows with the crop's area, while what
            fills a vacated region is decided at a coarse scale: a 12 MP photo's hole needs
            no 12 MP of iterations (200 000 took the 4000x3000 edit from 27.6 to 8.9 CPU
            s). The price is fine detail inside a large hole (about the working scale's);
            ``None``: always full resolution.
        min_work_scale: the working resolution is never below this fraction of full
            size: at 0.21x a 12 MP photo's wall was filled with a strand of hair from
            the band, at 0.5x and at full size it was not (coarse patches cover more
            of the photo and match the wrong surface).
    """

    def __init__(
        self,
        patch_size: Annotated[int, Range(1, MAX_PATCH)] = 3,
        seed: Seed = 0,
        context: float | None = None,
        source_band: float | None = 0.06,
        min_band: int = 16,
        reach: int = 40,
        reach_tolerance: float = 3.0,
        workers: Annotated[int, Range(0, MAX_WORKERS)] = 0,
        work_pixels: int | None = 200_000,
        min_work_scale: float = 0.5,
    ) -> None:
        super().__init__(context, workers)
        self.patch_size = patch_size
        self.seed = seed
        self.source_band = source_band
        self.min_band = min_band
        self.reach = reach
        self.reach_tolerance = reach_tolerance
        self.work_pixels = work_pixels
        self.min_work_scale = min_work_scale

    def plan_crops(
        self, image: Image, mask: Mask, avoid: Mask | None = None, seam: Mask | None = None
    ) -> list[Crop]:
        """One crop per separate part of the mask, each copying from its band (see
        :meth:`source_box`); without a band, the single crop of :class:`Inpainter`."""
        if self.source_band is None:
            return super().plan_crops(image, mask, avoid, seam)
        # the seam ring and the hole are filled apart, each from its own surroundings: one
        # band around both let the hole copy whatever stands next to the moved object (the
        # astronaut's suit into the shuttle's old place)
        seam = np.zeros_like(mask) if seam is None else seam & mask
        parts = mask_parts(mask & ~seam, self.patch_side) + mask_parts(seam, self.patch_side)
        blocked = mask if avoid is None else mask | avoid
        sources = [self.source_box(part, blocked, image) for part in parts]
        # one budget for all crops: a seam ring filled apart from its hole must not double
        # the work of filling the two as one
        scale = self.work_factor(sum((x1 - x0) * (y1 - y0) for (x0, y0, x1, y1), _ in sources))
        return [Crop(box, part, source, scale) for part, (box, source) in zip(parts, sources, strict=True)]

    @property
    def patch_side(self) -> int:
        """The side of a patch: pieces of the mask closer than that are filled together."""
        return 2 * self.patch_size + 1

    def source_box(self, part: Mask, blocked: Mask, image: Image | None = None) -> tuple[Box, Mask]:
        """The crop around ``part`` and, within it, the pixels it may copy from: the band
        around it and, given the ``image``, the same surface out to ``reach``, less every
        hole and avoided pixel (if that is too little, the whole crop less those, and if
        that holds no patch big enough for PatchMatch's coarse levels, a wider crop)."""
        bbox = Candidate(part).bbox
        band = self.band_width(bbox)
        reach = max(band, self.reach) if image is not None else band
        box = self._grown(bbox, reach, part.shape)
        if reach > band and self.work_factor((box[2] - box[0]) * (box[3] - box[1])) < 1.0:
            # a part this large has a wide band already: reaching further would only
            # coarsen the working resolution it is filled at
            reach, box = band, self._grown(bbox, band, part.shape)
        region = (slice(box[1], box[3]), slice(box[0], box[2]))
        source = dilate(part[region], band) & ~blocked[region]
        if reach > band and source.sum() > COLOURS:  # enough to estimate the band's colours
            beyond = dilate(part[region], reach) & ~source & ~blocked[region]
            source |= beyond & same_surface(image[region], source, self.reach_tolerance)  # type: ignore[index]
        side = self.patch_side
        if source.sum() < MIN_PATCHES * side * side:  # too little to copy from: the crop, less the blocked
            source = ~blocked[region]
            side = self.coarse_patch(bbox)
            # still none (keep_out all around): look further
            if self.whole_patches(source, side) < MIN_PATCHES:
                box = self._grown(bbox, reach + FURTHER_PATCHES * side, part.shape)
                source = ~blocked[box[1] : box[3], box[0] : box[2]]
        return box, source

    def coarse_patch(self, bbox: Box) -> int:
        """The side, in full-size pixels, of a patch at the coarser levels PatchMatch fills
        a hole with bounding box ``bbox`` through (up to ``COARSE_PATCHES``): a source strip
        narrower than that is gone by then, and a hole in a keep_out box came out black."""
        patch = self.patch_side
        return int(np.clip(min(bbox[2] - bbox[0], bbox[3] - bbox[1]), patch, COARSE_PATCHES * patch))

    @staticmethod
    def whole_patches(source: Mask, side: int) -> int:
        """How many ``side`` x ``side`` patches lie wholly in ``source``."""
        kernel = np.ones((side, side), np.uint8)
        inside = cv2.erode(source.astype(np.uint8), kernel, borderType=cv2.BORDER_CONSTANT, borderValue=0)
        return int(inside.sum())

    def band_width(self, bbox: Box) -> int:
        """The band's width around a part with bounding box ``bbox``, in pixels."""
        return max(self.min_band, round(self.source_band * bbox_diagonal(bbox)))  # type: ignore[operator]

    def _grown(self, bbox: Box, width: int, shape: tuple[int, ...]) -> Box:
        return grown_box(bbox, shape[1], shape[0], width + self.patch_size)

    def work_factor(self, pixels: int) -> float:
        """The scale a crop of ``pixels`` pixels is filled at (1: full resolution)."""
        if self.work_pixels is None or pixels <= self.work_pixels:
            return 1.0
        return max(self.min_work_scale, float(np.sqrt(self.work_pixels / pixels)))

    def fill(self, image: Image, mask: Mask, avoid: Mask | None = None, subject: str | None = None) -> Image:
        # every inpainting starts from the seed, so setting it from each thread is safe
        patchmatch.set_random_seed(self.seed)
        if avoid is None or not avoid.any():
            return patchmatch.inpaint(image, mask, patch_size=self.patch_size)
        return patchmatch.inpaint(image, mask, global_mask=avoid, patch_size=self.patch_size)


def same_surface(image: Image, sample: Mask, tolerance: float) -> Mask:
    """Pixels whose colour lies within ``tolerance`` standard deviations (Mahalanobis) of
    the colours under ``sample``: the surface the sample is of, not the next one."""
    colours = image[sample].astype(np.float64)
    mean = colours.mean(axis=0)
    # a floor on the spread: a flat sample would otherwise refuse its own noise
    covariance = np.cov(colours, rowvar=False) + np.eye(COLOURS) * COLOUR_FLOOR**2
    offset = image.reshape(-1, 3).astype(np.float64) - mean
    distance = np.einsum("ij,jk,ik->i", offset, np.linalg.inv(covariance), offset)
    return (distance <= tolerance**2).reshape(image.shape[:2])


def mask_parts(mask: Mask, gap: int) -> list[Mask]:
    """The separate parts of ``mask``: pieces closer than ``gap`` pixels stay together, so
    speckles around a hole are filled with it rather than one by one."""
    if not mask.any():
        return []
    joined = dilate(mask, gap / 2)
    count, labels = cv2.connectedComponents(joined.astype(np.uint8), connectivity=8)
    return [mask & (labels == label) for label in range(1, count)]
