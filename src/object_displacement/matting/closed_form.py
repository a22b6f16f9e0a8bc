"""``matting=closed_form``: pymatting's closed-form matte of a band around the mask's edge."""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import math
from typing import Any, Literal

import cv2
import numpy as np

from object_displacement.errors import DisplacementError
from object_displacement.geometry import dilate, grown_box, resize_mask, unit_length
from object_displacement.matting.base import Matting
from object_displacement.types import Candidate, Image, Mask, Matte

log = logging.getLogger(__name__)

INSTALL = "pip install 'object-displacement[matting]'"

CLAMP = 0.01
"""Alpha this close to 0 or 1 is solver noise: it is set to 0 or 1."""


class ClosedFormMatting(Matting):
    """Soft coverage over a band around the hard mask's edge, and the object's own colours there.

    A trimap marks the mask eroded by ``band`` as object, the outside of the mask grown by
    ``band`` as background, and the band between as unknown; Levin et al.'s closed-form
    matting (pymatting's ``estimate_alpha_cf``) solves for alpha there, and pymatting's
    multi-level foreground estimation takes the old background's colour out of the fringe.
    Only a crop around the mask is worked on, and an unknown band of more than
    ``work_pixels`` pixels is solved at a lower resolution, so a 12 MP photo stays fast.

    Args:
        band: half-width of the unknown band; a fraction of the object's bbox diagonal, or
            pixels. It must reach past the segmenter's error and the soft edge's width.
        units: ``relative`` or ``pixels`` for ``band``.
        min_band: the band's least half-width in pixels.
        work_pixels: most unknown pixels solved at full resolution; null: no bound.
    """

    def __init__(
        self,
        band: float = 0.03,
        units: Literal["relative", "pixels"] = "relative",
        min_band: int = 3,
        work_pixels: int | None = 60_000,
    ) -> None:
        if band <= 0 or min_band < 1:
            raise ValueError(f"band and min_band must be above 0, got {band} and {min_band}")
        if work_pixels is not None and work_pixels < 1000:
            raise ValueError(f"work_pixels must be at least 1000 or null, got {work_pixels}")
        if importlib.util.find_spec("pymatting") is None:
            raise DisplacementError(f"matting=closed_form needs pymatting: run `{INSTALL}`")
        self.band = band
        self.units = units
        self.min_band = min_band
        self.work_pixels = work_pixels

    def __call__(self, image: Image, mask: Mask) -> Matte:
        # pymatting compiles its kernels on first import (tens of seconds, once: numba caches them)
        from pymatting import estimate_foreground_ml

        radius = max(self.min_band, round(self.band * unit_length(mask, self.units)))
        box = grown_box(Candidate(mask).bbox, *mask.shape[::-1], radius + 1)
        x0, y0, x1, y1 = box
        crop, inside = image[y0:y1, x0:x1], mask[y0:y1, x0:x1]
        sure, reach = _trimap_zones(inside, radius)
        if reach.all() or not sure.any():  # no background around it (it fills the frame) or no core
            log.warning("matting: the object leaves no %s to learn from; its edge stays hard",
                        "background" if reach.all() else "inside")  # fmt: skip
            return Matte(mask.astype(np.float32), image.copy())
        alpha = self._alpha(crop, inside, radius, int((reach & ~sure).sum()))
        alpha = np.where(sure, 1.0, np.where(reach, alpha, 0.0))
        alpha[alpha < CLAMP], alpha[alpha > 1 - CLAMP] = 0.0, 1.0
        colours = estimate_foreground_ml(crop.astype(np.float64) / 255, alpha)
        fringe = (alpha > 0) & (alpha < 1)
        foreground = image.copy()
        own = np.clip(np.rint(colours * 255), 0, 255).astype(np.uint8)
        foreground[y0:y1, x0:x1][fringe] = own[fringe]
        full = np.zeros(mask.shape, np.float32)
        full[y0:y1, x0:x1] = alpha
        return Matte(full, foreground)

    def _alpha(self, crop: Image, inside: Mask, radius: int, unknown: int) -> np.ndarray:
        """Alpha over the crop, solved at a scale where the band holds ``work_pixels``."""
        from pymatting import estimate_alpha_cf

        height, width = inside.shape
        scale = 1.0
        if self.work_pixels is not None and unknown > self.work_pixels:
            scale = math.sqrt(self.work_pixels / unknown)
        if scale == 1.0:
            return estimate_alpha_cf(crop.astype(np.float64) / 255, _trimap(inside, radius), _quiet_ichol)
        size = (max(8, round(width * scale)), max(8, round(height * scale)))
        small = cv2.resize(crop, size, interpolation=cv2.INTER_AREA)
        trimap = _trimap(resize_mask(inside, *size), max(1, round(radius * scale)))
        alpha = estimate_alpha_cf(small.astype(np.float64) / 255, trimap, _quiet_ichol)
        return cv2.resize(alpha, (width, height), interpolation=cv2.INTER_LINEAR)


def _quiet_ichol(matrix: Any) -> Any:
    """pymatting's incomplete-Cholesky preconditioner, without the notice it prints on stdout
    when it must retry with a diagonal shift (a speed matter only: the solution is the same)."""
    from pymatting import ichol

    with contextlib.redirect_stdout(io.StringIO()):
        return ichol(matrix)


def _trimap_zones(inside: Mask, radius: int) -> tuple[Mask, Mask]:
    """The sure object (the mask eroded by ``radius``) and all it may reach (grown by it)."""
    return ~dilate(~inside, radius), dilate(inside, radius)


def _trimap(inside: Mask, radius: int) -> np.ndarray:
    """pymatting's trimap: 1 object, 0 background, 0.5 unknown."""
    sure, reach = _trimap_zones(inside, radius)
    return np.where(sure, 1.0, np.where(reach, 0.5, 0.0))
