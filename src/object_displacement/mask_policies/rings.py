"""The method's mask policy: a seam ring, the hole, and a ring around the old place."""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np

from object_displacement.errors import DisplacementError
from object_displacement.fill import smooth_fill
from object_displacement.geometry import dilate, place_object, ring, unit_length
from object_displacement.mask_policies.base import MaskPolicy
from object_displacement.settings import Seed
from object_displacement.types import Image, Mask, Matte, Move, Plan

log = logging.getLogger(__name__)


class RingMaskPolicy(MaskPolicy):
    """Build the inpainting mask the way the method does, with sizes that scale.

    The masks are (a) a ``seam`` ring just outside the placed object, which the
    compositor either blends or leaves to the inpainter, (b) the hole the object left,
    prefilled from the surrounding background, and (c) a ``hole_ring`` around the old
    place, optionally sprinkled further out with random ``speckle`` dots. (b) and (c) are
    always inpainted; the placed object never is.

    Sizes are fractions of the object's bounding-box diagonal when ``units`` is
    ``relative`` (the default: the method's fixed pixel sizes had to be retuned for every
    image), or pixels when ``units`` is ``pixels``.

    Args:
        units: ``relative`` or ``pixels``; applies to ``seam``, ``hole_ring`` and
            ``speckle_band``.
        seam: width of the ring re-synthesized around the pasted object.
        hole_ring: width of the ring masked around the original place.
        prefill: fill the hole from its surroundings before inpainting, so inpainters
            that keep some of the masked content (diffusion at strength < 1) start from
            background, not from the object.
        speckle_density: share of pixels in the speckle band that seed a masked dot
            (0 turns speckles off).
        speckle_band: width of the band, beyond ``hole_ring``, that speckles fall in.
        speckle_radius: radius of each speckle, in pixels.
        seed: seed of the speckle pattern.
    """

    def __init__(
        self,
        units: Literal["relative", "pixels"] = "relative",
        seam: float = 0.03,
        hole_ring: float = 0.04,
        prefill: bool = True,
        speckle_density: float = 0.0,
        speckle_band: float = 0.1,
        speckle_radius: int = 2,
        seed: Seed = 0,
    ) -> None:
        if units not in ("relative", "pixels"):
            raise ValueError(f"units must be 'relative' or 'pixels', got {units!r}")
        sizes = {"seam": seam, "hole_ring": hole_ring, "speckle_band": speckle_band}
        sizes |= {"speckle_density": speckle_density, "speckle_radius": speckle_radius}
        for name, value in sizes.items():
            if value < 0:
                raise ValueError(f"{name} must be 0 or more, got {value}")
        self.units = units
        self.seam = seam
        self.hole_ring = hole_ring
        self.prefill = prefill
        self.speckle_density = speckle_density
        self.speckle_band = speckle_band
        self.speckle_radius = speckle_radius
        self.seed = seed

    def plan(self, image: Image, mask: Mask, move: Move, matte: Matte | None = None) -> Plan:
        layer, alpha, full_area = place_object(
            image if matte is None else matte.foreground,
            mask,
            move.dx,
            move.dy,
            move.scale,
            move.flip,
            move.anchor,
            coverage=None if matte is None else matte.alpha,
        )
        moved = alpha >= 0.5
        kept = float(alpha.sum()) / max(full_area, 1e-6)
        if not moved.any():
            raise DisplacementError(
                f"displacement dx={move.dx} dy={move.dy} (scale {move.scale:g}) moves the object wholly "
                f"out of the {image.shape[1]}x{image.shape[0]} frame"
            )
        if kept < 0.999:
            log.warning("%.1f%% of the object leaves the frame and is dropped", 100 * (1 - kept))

        pixels = self.pixel_sizes(mask)
        # a matte's fringe reaches past the mask: the old place loses every pixel it touches,
        # and the seam ring starts past the new fringe, so the inpainter keeps the soft edge
        touched = mask if matte is None else mask | matte.support
        placed = moved if matte is None else alpha > 0
        hole = (touched | ring(mask, pixels["hole_ring"])) & ~moved
        if self.speckle_density > 0:
            hole |= self._speckles(mask, pixels["hole_ring"], pixels["speckle_band"]) & ~moved
        seam = ring(placed, pixels["seam"]) & ~hole
        background = smooth_fill(image, touched) if self.prefill else image.copy()
        return Plan(
            image, mask, background, layer, alpha, hole, seam, move, min(kept, 1.0), prefilled=self.prefill
        )

    def pixel_sizes(self, mask: Mask) -> dict[str, int]:
        """The ring widths in pixels for this object."""
        scale = unit_length(mask, self.units)
        sizes = {"seam": self.seam, "hole_ring": self.hole_ring, "speckle_band": self.speckle_band}
        return {name: max(0, round(value * scale)) for name, value in sizes.items()}

    def _speckles(self, mask: Mask, inner: int, band: int) -> Mask:
        zone = dilate(mask, inner + band) & ~dilate(mask, inner)
        rng = np.random.default_rng(self.seed)
        seeds = zone & (rng.random(mask.shape) < self.speckle_density)
        return dilate(seeds, self.speckle_radius)
