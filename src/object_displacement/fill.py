"""A smooth guess of what lies under a region, from the pixels around it."""

from __future__ import annotations

import cv2
import numpy as np

from object_displacement.types import Mask

SMOOTH_FILL_SIDE = 256
"""The guess has no detail to lose, so it is computed at most this large: fast on any photo."""


def smooth_fill(image: np.ndarray, hole: Mask) -> np.ndarray:
    """``image`` (HxW or HxWxC, uint8) with ``hole`` filled by Telea diffusion from its border.

    Used to prefill the hole an object leaves and to predict the background behind a box.
    Pixels outside ``hole`` are returned unchanged.
    """
    height, width = hole.shape
    factor = min(1.0, SMOOTH_FILL_SIDE / max(height, width))
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    small_hole = cv2.resize(hole.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    # nearest-neighbour shrinking can drop thin parts of the hole; grow it back over them
    small_hole = cv2.dilate(small_hole, np.ones((3, 3), np.uint8))
    guess = cv2.resize(cv2.inpaint(small, small_hole, 5, cv2.INPAINT_TELEA), (width, height))
    out = image.copy()
    out[hole] = guess[hole]
    return out


def masked_blur(values: np.ndarray, known: Mask, sigma: float) -> tuple[np.ndarray, np.ndarray]:
    """A Gaussian blur of ``values`` (HxW or HxWxC, float) that reads only ``known`` pixels
    (normalized convolution), and each pixel's share of known weight (0..1).

    The local mean of a surface continued under what hides it: a blur that also read the
    object or a shadow would carry their colour into the estimate. Where the share is near
    0 no known pixel is near, and the estimate means nothing."""
    weight = known.astype(np.float32)
    share = cv2.GaussianBlur(weight, (0, 0), sigma)
    weighted = values.astype(np.float32) * (weight if values.ndim == 2 else weight[..., None])
    blurred = cv2.GaussianBlur(weighted, (0, 0), sigma)
    floor = np.maximum(share, 1e-6)
    return (blurred / (floor if values.ndim == 2 else floor[..., None])), share
