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
