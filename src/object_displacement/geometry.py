"""Vectorised mask and image geometry: shifting by a displacement and growing rings."""

from __future__ import annotations

import math

import cv2
import numpy as np

from object_displacement.types import Box, Mask


def shift(array: np.ndarray, dx: int, dy: int) -> np.ndarray:
    """Move ``array`` so a pixel at ``(x, y)`` lands at ``(x + dx, y - dy)``.

    ``dy > 0`` moves up. Pixels pushed past the frame are dropped, never wrapped or
    smeared onto the border; uncovered pixels are zero (``False`` for masks).
    """
    height, width = array.shape[:2]
    row, col = -dy, dx  # array rows grow downwards
    out = np.zeros_like(array)
    if abs(row) >= height or abs(col) >= width:
        return out
    src_rows = slice(max(0, -row), height - max(0, row))
    dst_rows = slice(max(0, row), height - max(0, -row))
    src_cols = slice(max(0, -col), width - max(0, col))
    dst_cols = slice(max(0, col), width - max(0, -col))
    out[dst_rows, dst_cols] = array[src_rows, src_cols]
    return out


def bbox_diagonal(box: Box) -> float:
    x0, y0, x1, y1 = box
    return math.hypot(x1 - x0, y1 - y0)


def dilate(mask: Mask, radius: int) -> Mask:
    """Grow ``mask`` by ``radius`` pixels with a round structuring element."""
    if radius <= 0:
        return mask.copy()
    size = 2 * radius + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return cv2.dilate(mask.astype(np.uint8), kernel).astype(bool)


def ring(mask: Mask, radius: int) -> Mask:
    """Pixels within ``radius`` of ``mask`` but outside it."""
    return dilate(mask, radius) & ~mask


def clip_box(box: Box, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    return (max(0, x0), max(0, y0), min(width, x1), min(height, y1))


def box_iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0
