"""Where a diffusion model looks: one crop per separate part of the mask, sized for the model.

SDXL was trained on about one-megapixel buckets. A thin strip squeezed into them (a
1500x120 region becoming 1024x80) or one crop spanning both the hole and the moved object
far away (shrunk several times, blurry, the object beside the hole inviting a copy) give
poor fills. Each part gets its own crop, grown from the photo's context to a workable
aspect, and a model size whose area is about ``resolution`` squared.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

from object_displacement.geometry import context_box
from object_displacement.types import Box, Mask

MULTIPLE = 64
"""Model sizes are multiples of this: the VAE's stride (8) times the UNet's downsampling."""
LATENT_CELL = 8
"""Pixels per latent cell: the mask reaches the model on this grid."""


def model_size(width: int, height: int, resolution: int, max_upscale: float) -> tuple[int, int]:
    """(w, h) the model sees for a ``width`` x ``height`` crop: area about ``resolution``
    squared, never enlarged more than ``max_upscale``, both sides multiples of 64."""
    scale = min(resolution / math.sqrt(width * height), max_upscale)
    return (
        max(MULTIPLE, round(width * scale / MULTIPLE) * MULTIPLE),
        max(MULTIPLE, round(height * scale / MULTIPLE) * MULTIPLE),
    )


def model_crops(
    mask: Mask, resolution: int, context: float, max_aspect: float = 2.0, max_upscale: float = 2.0
) -> list[tuple[Box, Mask]]:
    """The crops to inpaint, each with the part of ``mask`` it fills.

    Parts whose context boxes (bbox grown by ``context`` of its size) overlap share a
    crop. Each crop is then grown from the photo to an aspect of at most ``max_aspect``
    and to a side that needs no more than ``max_upscale`` enlargement, as far as the photo
    allows.
    """
    height, width = mask.shape
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    if count <= 1:
        return []
    parts = [[label] for label in range(1, count)]
    boxes = [context_box(_stat_box(stats[label]), context, width, height) for label in range(1, count)]
    boxes, parts = _merge_overlapping(boxes, parts, stats, context, width, height)
    crops = []
    for box, members in zip(boxes, parts, strict=True):
        box = _widen(box, max_aspect, width, height)
        box = _grow_to_side(box, resolution / max_upscale, width, height)
        crops.append((box, np.isin(labels, members)))
    return crops


def latent_mask(mask: Mask, size: tuple[int, int]) -> Mask:
    """``mask`` at model ``size`` (w, h) such that it survives the latent grid.

    Nearest-neighbour resizing, then the pipeline's own nearest shrink to 1/8, keep only
    68 % of a 9 px ring and 42 % of a 4 px one, so thin seams were never re-synthesized.
    Here any pixel with some coverage counts, and every latent cell it touches is masked
    whole. The true mask, not this one, decides what is pasted back.
    """
    cover = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_AREA) > 0
    h, w = cover.shape
    cells = cover.reshape(h // LATENT_CELL, LATENT_CELL, w // LATENT_CELL, LATENT_CELL).any(axis=(1, 3))
    return np.repeat(np.repeat(cells, LATENT_CELL, axis=0), LATENT_CELL, axis=1)


def _stat_box(stat: np.ndarray) -> Box:
    x, y, w, h = (int(v) for v in stat[:4])
    return (x, y, x + w, y + h)


def _merge_overlapping(
    boxes: list[Box], parts: list[list[int]], stats: np.ndarray, context: float, width: int, height: int
) -> tuple[list[Box], list[list[int]]]:
    """Union parts whose context boxes overlap, until none do (a merged box is larger and
    may reach further parts). Vectorized: speckles can make hundreds of parts."""
    from scipy.sparse.csgraph import connected_components

    while True:
        b = np.array(boxes)
        overlap = (
            (b[:, None, 0] < b[None, :, 2])
            & (b[None, :, 0] < b[:, None, 2])
            & (b[:, None, 1] < b[None, :, 3])
            & (b[None, :, 1] < b[:, None, 3])
        )
        count, group = connected_components(overlap, directed=False)
        if count == len(boxes):
            return boxes, parts
        parts = [[label for i in np.flatnonzero(group == g) for label in parts[i]] for g in range(count)]
        boxes = []
        for members in parts:
            tight = np.array([_stat_box(stats[label]) for label in members])
            union = (*tight[:, :2].min(axis=0).tolist(), *tight[:, 2:].max(axis=0).tolist())
            boxes.append(context_box(union, context, width, height))


def _span(lo: int, hi: int, length: int, limit: int) -> tuple[int, int]:
    """[lo, hi) grown about its centre to ``length`` (at most ``limit``), kept inside [0, limit)."""
    length = min(max(length, hi - lo), limit)
    start = round((lo + hi - length) / 2)
    start = min(max(0, start), limit - length)
    return start, start + length


def _widen(box: Box, max_aspect: float, width: int, height: int) -> Box:
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    if w > max_aspect * h:
        y0, y1 = _span(y0, y1, math.ceil(w / max_aspect), height)
    elif h > max_aspect * w:
        x0, x1 = _span(x0, x1, math.ceil(h / max_aspect), width)
    return (x0, y0, x1, y1)


def _grow_to_side(box: Box, side: float, width: int, height: int) -> Box:
    """Grow both sides in proportion until the crop's geometric-mean side reaches ``side``."""
    x0, y0, x1, y1 = box
    w, h = x1 - x0, y1 - y0
    factor = side / math.sqrt(w * h)
    if factor <= 1:
        return box
    x0, x1 = _span(x0, x1, math.ceil(w * factor), width)
    y0, y1 = _span(y0, y1, math.ceil(h * factor), height)
    return (x0, y0, x1, y1)
