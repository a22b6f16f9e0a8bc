"""Vectorised mask and image geometry: shifting by a displacement and growing rings."""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from object_displacement.types import Box, Candidate, Image, Mask


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


def unit_length(mask: Mask, units: str) -> float:
    """Pixels per unit of a size setting: the object's bbox diagonal when ``units`` is
    ``relative`` (sizes that follow the object), 1 when ``pixels``."""
    if units == "pixels":
        return 1.0
    if units != "relative":
        raise ValueError(f"units must be 'relative' or 'pixels', got {units!r}")
    return bbox_diagonal(Candidate(mask).bbox)


def dilate(mask: Mask, radius: float) -> Mask:
    """``mask`` grown by every pixel within Euclidean distance ``radius`` of it.

    A distance transform costs the same for any radius, where a dilation with a round
    structuring element costs in proportion to it, which at 12 MP is seconds. Only a
    crop around the mask, ``radius`` wider, is transformed.
    """
    if radius <= 0 or not mask.any():
        return mask.copy()
    height, width = mask.shape
    x0, y0, x1, y1 = Candidate(mask).bbox
    reach = math.ceil(radius)
    x0, y0, x1, y1 = clip_box((x0 - reach, y0 - reach, x1 + reach, y1 + reach), width, height)
    distance = distance_to(mask[y0:y1, x0:x1])
    out = np.zeros_like(mask)
    out[y0:y1, x0:x1] = distance <= radius
    return out


def distance_to(mask: Mask) -> np.ndarray:
    """Exact Euclidean distance (float32, pixels) of every pixel to the nearest ``mask``
    pixel; 0 on the mask. With an empty mask, every distance is the image's diagonal."""
    if not mask.any():
        return np.full(mask.shape, math.hypot(*mask.shape), np.float32)
    return cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)


def ring(mask: Mask, radius: float) -> Mask:
    """Pixels within ``radius`` of ``mask`` but outside it."""
    return dilate(mask, radius) & ~mask


def clip_box(box: Box, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    return (max(0, x0), max(0, y0), min(width, x1), min(height, y1))


def grown_box(box: Box, width: int, height: int, mx: float, my: float | None = None) -> Box:
    """``box`` grown by ``mx`` pixels left and right and ``my`` (``mx`` if not given) up and
    down, rounded to whole pixels and clipped to a ``width`` x ``height`` image."""
    x0, y0, x1, y1 = box
    my = mx if my is None else my
    return clip_box((round(x0 - mx), round(y0 - my), round(x1 + mx), round(y1 + my)), width, height)


def context_box(box: Box, context: float, width: int, height: int) -> Box:
    """``box`` grown by ``context`` of its size plus 8 px on each side, clipped to the image:
    the surroundings an inpainter sees around what it fills."""
    x0, y0, x1, y1 = box
    return grown_box(box, width, height, round(context * (x1 - x0)) + 8, round(context * (y1 - y0)) + 8)


def boxes_mask(boxes: Sequence[Box], width: int, height: int) -> Mask:
    """A ``height`` x ``width`` mask that is true inside any of ``boxes`` (x0, y0, x1, y1)."""
    mask = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
    return mask


def mask_iou(a: Mask, b: Mask) -> float:
    """Intersection over union of two masks; two empty masks agree (1.0)."""
    union = int((a | b).sum())
    return float((a & b).sum()) / union if union else 1.0


def box_iou(a: Box, b: Box) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def place_object(
    image: np.ndarray,
    mask: Mask,
    dx: int,
    dy: int,
    scale: float = 1.0,
    flip: bool = False,
    anchor: str = "center",
    coverage: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, float]:
    """The object's pixels and coverage after the move, and its full area before clipping.

    The object (its bounding box) is mirrored if ``flip``, resized by ``scale`` (area
    averaging when shrinking, cubic when growing; the mask resized as a float gives an
    antialiased alpha), and placed so its ``anchor`` (``center`` or ``bottom`` centre) moves
    by ``(dx, dy)``, ``dy > 0`` up. Parts past the frame are dropped. With ``scale`` 1 and no
    flip this is an exact integer shift: pixels land bit-identical at ``(x + dx, y - dy)``.

    ``coverage`` (HxW, 0..1), when given, is a soft alpha matte that may reach past ``mask``:
    every pixel it covers travels, while ``mask`` alone fixes the anchor, so a matte's fringe
    does not shift a ``bottom``-anchored object.
    """
    if anchor not in ("center", "bottom"):
        raise ValueError(f"anchor must be 'center' or 'bottom', got {anchor!r}")
    height, width = mask.shape
    mx0, my0, mx1, my1 = Candidate(mask).bbox
    # anchor in edge coordinates: the mask's box centre, or the middle of its bottom edge
    ax, ay = (mx0 + mx1) / 2, ((my0 + my1) / 2 if anchor == "center" else my1)
    if coverage is None:
        x0, y0, x1, y1 = mx0, my0, mx1, my1
        coverage = mask[y0:y1, x0:x1].astype(np.float32)
    else:
        x0, y0, x1, y1 = Candidate(mask | (coverage > 0)).bbox
        coverage = coverage[y0:y1, x0:x1].astype(np.float32)
    crop = image[y0:y1, x0:x1]
    if flip:
        crop, coverage = crop[:, ::-1], coverage[:, ::-1]
    w, h = x1 - x0, y1 - y0
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    if (nw, nh) != (w, h):
        shrink = scale < 1
        crop = cv2.resize(
            np.ascontiguousarray(crop), (nw, nh), interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC
        )
        coverage = cv2.resize(
            np.ascontiguousarray(coverage),
            (nw, nh),
            interpolation=cv2.INTER_AREA if shrink else cv2.INTER_LINEAR,
        )
        coverage = np.clip(coverage, 0.0, 1.0)
    # where the anchor falls in the (mirrored, resized) crop
    local_x = ((x1 - ax) if flip else (ax - x0)) * nw / w
    local_y = (ay - y0) * nh / h
    left, top = round(ax + dx - local_x), round(ay - dy - local_y)
    layer = np.zeros_like(image)
    alpha = np.zeros((height, width), np.float32)
    sx0, sy0 = max(0, -left), max(0, -top)
    dx0, dy0 = max(0, left), max(0, top)
    dx1, dy1 = min(width, left + nw), min(height, top + nh)
    if dx1 > dx0 and dy1 > dy0:
        region = (slice(dy0, dy1), slice(dx0, dx1))
        source = (slice(sy0, sy0 + dy1 - dy0), slice(sx0, sx0 + dx1 - dx0))
        layer[region] = crop[source]
        alpha[region] = coverage[source]
    return layer, alpha, float(coverage.sum())


def resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``image`` at ``size`` (w, h): area averaging to shrink (no aliasing), cubic to enlarge
    (area interpolation enlarges like nearest neighbour, in blocks)."""
    height, width = image.shape[:2]
    if (width, height) == size:
        return image.copy()
    shrink = size[0] <= width and size[1] <= height
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA if shrink else cv2.INTER_CUBIC)


def shrink(image: Image, factor: float) -> Image:
    """``image`` resized by ``factor`` (area averaging); itself when ``factor`` is 1."""
    if factor >= 1.0:
        return image
    height, width = image.shape[:2]
    size = (max(1, round(width * factor)), max(1, round(height * factor)))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA)


def resize_mask(mask: Mask, width: int, height: int) -> Mask:
    """``mask`` at ``width`` x ``height``: bilinear coverage thresholded at one half, so an
    enlarged mask's edge follows its contour smoothly instead of in blocks. Cheap enough for
    every candidate of SAM's automatic mode; ``segmenters.edges.upsample_mask`` also snaps
    the edge to the photo, at a cost per mask."""
    if mask.shape == (height, width):
        return mask.astype(bool)
    coverage = cv2.resize(mask.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    return coverage >= 0.5
