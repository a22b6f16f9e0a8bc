"""What inside a user's box is background: the surroundings of the box, continued into it.

GrabCut starts by calling everything in the box "object" and learns the object's colour
model from it. When the box holds much background (between a horse's legs, around a
thin or soft-edged object), that model learns the background's colours too, and GrabCut
never lets the background go. A box is drawn around the object, so the background inside
it is usually the background outside it, carried on across the box's sides: its colours
are common around the box, it matches a smooth guess of the surroundings continued
inward, and no strong edge separates it from the box's side. Those pixels start as
probable background instead, and the object's model starts clean.
"""

from __future__ import annotations

import cv2
import numpy as np
from scipy.ndimage import uniform_filter

from object_displacement.fill import smooth_fill
from object_displacement.types import Box, Image, Mask

COLOUR_BINS = 16
"""Histogram bins per RGB channel for the colours around the box (4096 in all)."""


def box_mask(shape: tuple[int, int], box: Box) -> Mask:
    x0, y0, x1, y1 = box
    inside = np.zeros(shape, dtype=bool)
    inside[y0:y1, x0:x1] = True
    return inside


def common_outside(patch: Image, box: Box, share: float = 0.5) -> Mask:
    """Box pixels whose colour is at least ``share`` as frequent around the box as inside it.

    A colour of the background is about as frequent outside the box as inside; one of the
    object is rare outside. Histograms are smoothed over neighbouring bins, so a colour
    need not match exactly.
    """
    inside = box_mask(patch.shape[:2], box)
    if inside.all() or not inside.any():
        return np.zeros_like(inside)
    quantized = (patch.astype(np.int32) * COLOUR_BINS) // 256
    index = (quantized[..., 0] * COLOUR_BINS + quantized[..., 1]) * COLOUR_BINS + quantized[..., 2]

    def density(where: Mask) -> np.ndarray:
        counts = np.bincount(index[where], minlength=COLOUR_BINS**3).astype(np.float32)
        return uniform_filter(counts.reshape((COLOUR_BINS,) * 3), 3).ravel() / where.sum()

    outside, within = density(~inside), density(inside)
    return (outside[index] >= share * within[index]) & inside


def continued_surroundings(
    patch: Image, box: Box, contrast: float, floor: float
) -> tuple[Mask, np.ndarray, np.ndarray]:
    """Box pixels that match the surroundings continued smoothly into the box.

    Returns the mask, each pixel's CIELAB distance from that continuation and the
    distance allowed there: ``contrast`` times the surroundings' local texture (a
    textured background differs from its smooth continuation everywhere), at least
    ``floor`` (about 2.3 is just noticeable).
    """
    inside = box_mask(patch.shape[:2], box)
    lab = cv2.cvtColor(patch, cv2.COLOR_RGB2LAB).astype(np.float32)
    texture = cv2.blur(np.linalg.norm(lab - cv2.blur(lab, (5, 5)), axis=2), (9, 9))
    plate = cv2.cvtColor(smooth_fill(patch, inside), cv2.COLOR_RGB2LAB).astype(np.float32)
    # texture is scaled by 4 to keep precision in the 8-bit image cv2.inpaint needs
    texture_u8 = np.clip(texture * 4, 0, 255).astype(np.uint8)
    expected_texture = smooth_fill(texture_u8, inside).astype(np.float32) / 4
    allowed = np.maximum(floor, contrast * expected_texture)
    distance = np.linalg.norm(lab - plate, axis=2)
    return (distance <= allowed) & inside, distance, allowed


def lab_gradient(patch: Image) -> np.ndarray:
    """Each pixel's edge strength: the Sobel gradient's magnitude in CIELAB, all three
    channels together."""
    lab = cv2.cvtColor(patch, cv2.COLOR_RGB2LAB).astype(np.float32)
    gx = cv2.Sobel(lab, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(lab, cv2.CV_32F, 0, 1, ksize=3)
    return np.sqrt((gx * gx + gy * gy).sum(axis=2))


def strong_edges(patch: Image, box: Box, factor: float = 2.0, floor: float = 120.0) -> Mask:
    """Edges stronger than ``factor`` times the typical edge around the box and than
    ``floor`` (Sobel magnitude in CIELAB; 120 is about a 30-unit step): an object's
    outline, not the grain of a texture or a photo's noise."""
    magnitude = lab_gradient(patch)
    outside = ~box_mask(patch.shape[:2], box)
    typical = float(np.median(magnitude[outside])) if outside.any() else 0.0
    return magnitude > max(floor, factor * typical)


def background_in_box(patch: Image, box: Box, continued: Mask, common: Mask) -> Mask:
    """The box pixels that are the surroundings carried on into the box: ``common`` around
    it (:func:`common_outside`), matching its smooth continuation (``continued``,
    :func:`continued_surroundings`), and connected to the box's sides without crossing a
    strong edge (the object's outline)."""
    x0, y0, x1, y1 = box
    like = common & continued & ~strong_edges(patch, box)
    inner = like[y0:y1, x0:x1].astype(np.uint8)
    if inner.size == 0:
        return np.zeros_like(like)
    _, labels = cv2.connectedComponents(inner, connectivity=4)
    sides = np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])
    touching = np.unique(sides[sides > 0])
    out = np.zeros_like(like)
    out[y0:y1, x0:x1] = np.isin(labels, touching)
    return out
