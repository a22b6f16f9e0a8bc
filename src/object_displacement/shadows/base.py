"""What every shadow mover shares: lift the found shadow at the old place, cast it at the new.

Finding differs between movers; what is done with a found shadow does not. Shadows multiply
the light a surface gets, so both steps work in linear light (:mod:`object_displacement.colour`)."""

from __future__ import annotations

import math
from abc import ABC, abstractmethod

import cv2
import numpy as np

from object_displacement.colour import luminance, to_linear, to_srgb
from object_displacement.fill import smooth_fill
from object_displacement.geometry import bbox_diagonal, place_object, ring, shift
from object_displacement.types import Box, Candidate, Image, Mask, Plan, Shadow

DETAIL_SIGMA = 2.0
"""Texture is what a blur of this many pixels takes out of the log luminance."""

NOISE_FLOOR = 0.01
"""Texture spread every 8-bit photo has (log units): its quantization and noise. Added to
each spread, so a clean flat wall does not make any slight texture look foreign."""

REFERENCE_RING = 0.05
"""The lit surface a relit region is compared with: a ring this share of the object's bbox
diagonal around the shadow."""

LEVEL_TOLERANCE = 0.15
"""A relit region is as bright as the lit surface around it within this (log units, about 15 %)."""

CONTACT_HEIGHT = 0.04
"""A contact shadow's half height, a share of the object's height: flat, as seen on a floor."""

CONTACT_BLUR = 0.02
"""A contact shadow's penumbra, a share of the object's bbox diagonal."""


def detail_spread(light: np.ndarray, area: Mask) -> float:
    """How much fine texture ``area`` holds: the spread of its log luminance around a blur.

    In log light a shadow is an offset, so a surface keeps this number in shade and in sun;
    a flat dark neighbour or a relit region that is mostly amplified noise does not."""
    if not area.any():
        return 0.0
    log_y = np.log(luminance(light) + 1e-3)
    detail = (log_y - cv2.GaussianBlur(log_y, (0, 0), DETAIL_SIGMA))[area]
    # robust (a median of deviations): a penumbra's or the object's edge is no texture
    return 1.4826 * float(np.median(np.abs(detail - np.median(detail)))) + NOISE_FLOOR


def _median_log_light(light: np.ndarray, area: Mask) -> float:
    """The median log luminance over ``area``: how bright a surface there is, texture and all."""
    return float(np.median(np.log(luminance(light[area]) + 1e-3))) if area.any() else 0.0


def _offset_x(matte: np.ndarray, mask: Mask) -> float:
    """How far right of the object's box centre the matte's weight lies (pixels)."""
    x0, _, x1, _ = Candidate(mask).bbox
    columns = matte.sum(axis=0)
    total = float(columns.sum())
    centre = float((np.arange(len(columns)) + 0.5) @ columns) / total if total > 0 else (x0 + x1) / 2
    return centre - (x0 + x1) / 2


def support_box(mask: Mask, margin: int = 0) -> Box:
    """The bounding box of ``mask`` grown by ``margin`` pixels, inside the frame."""
    height, width = mask.shape
    x0, y0, x1, y1 = Candidate(mask).bbox
    return max(0, x0 - margin), max(0, y0 - margin), min(width, x1 + margin), min(height, y1 + margin)


class ShadowMover(ABC):
    """Find the object's cast shadow; lift it at the old place; cast it at the new one.

    Lifting relights the shadowed surface by the matte where its texture is worth keeping
    (the relit texture matches the lit surface around it) and leaves the rest to the fill:
    the umbra deeper than ``max_gain`` allows, a region whose relit texture does not match,
    or, for a backend that synthesizes (diffusion), the whole shadow. Casting darkens the
    surface at the new place by the moved matte, but never twice where that surface is
    already in shadow (shadows of one light combine by their maximum, not their product).

    Args:
        max_gain: relighting multiplies the light by at most this; deeper shade is filled,
            as what is left of its texture is mostly noise.
        texture_tolerance: a relit region is kept when its fine texture is within this
            factor of the lit surface's around it (and its brightness within
            ``LEVEL_TOLERANCE``), or it is filled.
        contact: strength (0..1) of a soft contact shadow cast under the moved object's base
            when no shadow was found (for an object standing on a surface: it cannot tell,
            so it is asked for); 0 (the default) casts none.
    """

    def __init__(self, max_gain: float = 4.0, texture_tolerance: float = 1.6, contact: float = 0.0) -> None:
        if max_gain < 1:
            raise ValueError(f"max_gain must be 1 or more, got {max_gain}")
        if texture_tolerance < 1:
            raise ValueError(f"texture_tolerance must be 1 or more, got {texture_tolerance}")
        if not 0 <= contact <= 1:
            raise ValueError(f"contact must be between 0 and 1, got {contact}")
        self.max_gain = max_gain
        self.texture_tolerance = texture_tolerance
        self.contact = contact

    @abstractmethod
    def find(self, image: Image, mask: Mask) -> Shadow | None:
        """The shadow ``mask``'s object casts in ``image``, or ``None`` where it casts none
        (a darker object part, a dark texture or a dark neighbour is no shadow)."""

    def shade(self, image: Image, mask: Mask) -> np.ndarray:
        """How much light the surface around ``mask`` already lacks (HxW, 0..1), whatever
        casts the shade: what a shadow cast there must not darken twice. By default the
        shadow ``find`` gives, or none."""
        found = self.find(image, mask)
        return np.zeros(mask.shape, np.float32) if found is None else found.matte

    def lift(self, plan: Plan, shadow: Shadow | None, relight: bool = True) -> None:
        """Take ``shadow`` off the old place: relight what can be relit in
        ``plan.background``, add the rest to ``plan.hole_mask``; then move its matte with
        the object (same dx, dy, scale, flip and anchor). ``relight`` false: all of it is
        filled, as the model path does."""
        if shadow is None:
            plan.shadow = self._contact(plan) if self.contact > 0 else None
            return
        plan.shadow = shadow
        support = shadow.support & ~plan.hole_mask & ~plan.moved_mask
        fill = support.copy()
        if relight and support.any():
            relit = self._relight(plan, shadow, support)
            shadow.relit = relit
            fill &= ~relit
        shadow.filled = fill
        if fill.any():
            plan.hole_mask = plan.hole_mask | fill
            plan.seam_mask = plan.seam_mask & ~plan.hole_mask
        if plan.prefilled:  # the hole's guess again, now from surroundings in the light
            plan.background = smooth_fill(plan.background, plan.hole_mask)
        move = plan.move
        _, moved, _ = place_object(
            shadow.matte, plan.source_mask, move.dx, move.dy, move.scale, move.flip, move.anchor, shadow.matte
        )
        if move.flip:  # a mirrored object still has the light on the same side: its shadow
            # is mirrored in shape, not in direction, so it goes back across the object
            moved = shift(moved, round(2 * move.scale * _offset_x(shadow.matte, plan.source_mask)), 0)
        shadow.moved = moved

    def _relight(self, plan: Plan, shadow: Shadow, support: Mask) -> Mask:
        """Relight each region of ``support`` whose relit texture matches the lit surface
        around it, in ``plan.background``; the relit pixels."""
        tint = np.asarray(shadow.tint, np.float32)
        reach = max(2, round(REFERENCE_RING * bbox_diagonal(Candidate(plan.source_mask).bbox)))
        x0, y0, x1, y1 = support_box(support, reach + 1)
        box = np.s_[y0:y1, x0:x1]
        loss = shadow.matte[box][..., None] * tint
        relit_zone = support[box] & (loss.max(axis=2) <= 1 - 1 / self.max_gain)
        light = to_linear(plan.background[box])
        relit = light / (1 - np.minimum(loss, 1 - 1 / self.max_gain))
        lit = ring(shadow.support[box], reach) & ~plan.hole_mask[box] & ~plan.moved_mask[box]
        reference = detail_spread(light, lit)
        level = _median_log_light(light, lit)
        count, labels = cv2.connectedComponents(relit_zone.astype(np.uint8), connectivity=8)
        keep = np.zeros_like(relit_zone)
        for label in range(1, count):
            region = labels == label
            texture = detail_spread(relit, region) / reference if lit.any() else math.inf
            # relit right, the region has the lit surface's texture and brightness; a matte
            # that is off shows as a patch too bright or too dark, and is filled instead
            brightness = abs(_median_log_light(relit, region) - level) if lit.any() else math.inf
            if (
                1 / self.texture_tolerance <= texture <= self.texture_tolerance
                and brightness <= LEVEL_TOLERANCE
            ):
                keep |= region
        out = np.zeros_like(support)
        if keep.any():
            background = plan.background[box]
            background[keep] = to_srgb(relit[keep])
            out[box] = keep
        return out

    def _contact(self, plan: Plan) -> Shadow:
        """A soft, flat shadow under the moved object's base, for an object with none found."""
        moved = plan.moved_mask
        height, width = moved.shape
        x0, y0, x1, y1 = Candidate(moved).bbox
        canvas = np.zeros((height, width), np.float32)
        centre = (round((x0 + x1) / 2), y1 - 1)
        axes = (max(1, round((x1 - x0) * 0.45)), max(1, round((y1 - y0) * CONTACT_HEIGHT)))
        cv2.ellipse(canvas, centre, axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
        sigma = max(1.0, CONTACT_BLUR * bbox_diagonal((x0, y0, x1, y1)))
        matte = cv2.GaussianBlur(canvas, (0, 0), sigma) * self.contact
        return Shadow(np.zeros_like(canvas), moved=matte.astype(np.float32))

    def cast(self, image: Image, plan: Plan) -> Image:
        """``image`` (the filled output) with the moved matte darkening the surface at the
        new place; the object itself hides its shadow, and surface already in shadow is
        darkened only by what the new shadow adds."""
        shadow = plan.shadow
        if shadow is None or shadow.moved is None:
            return image
        matte = shadow.moved * (1 - np.clip(plan.alpha, 0.0, 1.0))
        if not (matte > 0).any():
            return image
        already = self.shade(image, plan.moved_mask)
        x0, y0, x1, y1 = support_box(matte > 0)
        box = np.s_[y0:y1, x0:x1]
        darker = matte[box] > already[box]
        tint = np.asarray(shadow.tint, np.float32)
        deepest = 1 - 1 / self.max_gain  # as in lifting: no channel is taken to black
        new = np.minimum(matte[box][..., None] * tint, deepest)
        old = np.minimum(already[box][..., None] * tint, deepest)
        factor = (1 - np.maximum(new, old)) / (1 - old)
        out = image.copy()
        region = out[box]
        region[darker] = to_srgb(to_linear(region[darker]) * factor[darker])
        return out
