"""Paste a generated fill so its border does not show.

Diffusion inpainting shifts colours, even outside the mask (diffusers issues 8450 and
5808): a hard paste leaves a visible step along the mask's border. The fill is first
matched to the photo on a thin band just outside the mask, where both should agree, then
faded in over a few pixels inside the mask. Pixels outside the mask stay the photo's.
"""

from __future__ import annotations

import cv2
import numpy as np

from object_displacement.geometry import ring
from object_displacement.types import Image, Mask

MIN_BAND_PIXELS = 16


def match_colour(original: Image, filled: Image, band: Mask) -> np.ndarray:
    """``filled`` (float) with its per-channel mean and spread on ``band`` mapped to the
    ``original``'s there: the model's colour shift, measured where the truth is known."""
    out = filled.astype(np.float32)
    if band.sum() < MIN_BAND_PIXELS:
        return out
    have = out[band]
    want = original[band].astype(np.float32)
    gain = np.clip(want.std(axis=0) / np.maximum(have.std(axis=0), 1.0), 0.5, 2.0)
    return (out - have.mean(axis=0)) * gain + want.mean(axis=0)


def fade_in(mask: Mask, width: float) -> np.ndarray:
    """Opacity of the fill: 0 outside ``mask``, rising to 1 over ``width`` pixels inside
    it. In thin parts (a seam ring narrower than ``2 * width``) the ramp shortens to half
    the part's thickness, so they are still fully re-synthesized at their middle."""
    inside = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, 3)
    if width <= 0:
        return mask.astype(np.float32)
    count, labels = cv2.connectedComponents(mask.astype(np.uint8), connectivity=8)
    thickness = np.zeros(count, np.float32)
    np.maximum.at(thickness, labels.ravel(), inside.ravel())
    ramp = np.clip(np.minimum(width, thickness / 2), 1.0, None)[labels]
    return np.where(mask, np.clip(inside / ramp, 0.0, 1.0), 0.0).astype(np.float32)


def harmonized_paste(
    original: Image, filled: Image, mask: Mask, feather: float, band: int, colour: bool = True
) -> Image:
    """``original`` with ``filled`` blended into ``mask``: colour-matched on a ``band``-pixel
    ring outside the mask (if ``colour``), faded in over ``feather`` pixels inside it."""
    fill = match_colour(original, filled, ring(mask, band)) if colour else filled.astype(np.float32)
    alpha = fade_in(mask, feather)[..., None]
    blended = original.astype(np.float32) * (1 - alpha) + fill * alpha
    out = original.copy()
    out[mask] = np.clip(np.rint(blended[mask]), 0, 255).astype(np.uint8)
    return out
