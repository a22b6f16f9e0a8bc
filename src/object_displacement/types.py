"""The data every stage exchanges, defined once.

Conventions, used everywhere in this package:

- An image is an ``HxWx3`` ``uint8`` NumPy array in RGB order.
- A mask is an ``HxW`` ``bool`` NumPy array; ``True`` marks the pixels it names.
- Coordinates are ``(x, y)`` in pixels, origin at the top-left corner, x to the right,
  y downwards. A box is ``(x0, y0, x1, y1)`` with ``x1``/``y1`` exclusive.
- A displacement ``(dx, dy)`` follows the method we implement: ``dx > 0`` moves right,
  ``dy > 0`` moves **up**, so a pixel at ``(x, y)`` lands at ``(x + dx, y - dy)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

Image = npt.NDArray[np.uint8]
Mask = npt.NDArray[np.bool_]
Box = tuple[int, int, int, int]
Point = tuple[int, int]


@dataclass(frozen=True)
class Target:
    """What the user wants to move: a text prompt, a point or a box, or a prompt with one
    of the two ("the backpack in this box"): the geometry localizes, the text decides."""

    prompt: str | None = None
    point: Point | None = None
    box: Box | None = None

    def __post_init__(self) -> None:
        if self.point is not None and self.box is not None:
            raise ValueError("a target holds a point or a box, not both")
        if self.prompt is None and self.point is None and self.box is None:
            raise ValueError("a target needs a prompt, a point or a box")

    @property
    def kind(self) -> str:
        """The cues it carries: ``prompt``, ``point``, ``box``, ``prompt+point``, ``prompt+box``."""
        cues = [name for name in ("prompt", "point", "box") if getattr(self, name) is not None]
        return "+".join(cues)


@dataclass
class Candidate:
    """One object proposed by a segmenter; selectors fill in ``score``."""

    mask: Mask
    score: float = 0.0
    source: str = ""

    @property
    def area(self) -> int:
        return int(self.mask.sum())

    @property
    def bbox(self) -> Box:
        """Tight box around the mask, ``x1``/``y1`` exclusive."""
        ys = np.flatnonzero(self.mask.any(axis=1))
        xs = np.flatnonzero(self.mask.any(axis=0))
        if ys.size == 0:
            return (0, 0, 0, 0)
        return (int(xs[0]), int(ys[0]), int(xs[-1]) + 1, int(ys[-1]) + 1)


@dataclass
class Plan:
    """What the mask policy decided: the image to inpaint and where to inpaint it.

    ``composite`` is the photo with the hole prefilled and the object pasted at its new
    place, before any inpainting; ``inpaint_mask`` is what the inpainter re-synthesizes;
    ``moved_mask`` is where the object now is (its visible part).
    """

    composite: Image
    inpaint_mask: Mask
    moved_mask: Mask
    dx: int
    dy: int
    kept_fraction: float = 1.0
    """Share of the object's pixels still inside the frame after the move."""


@dataclass
class Result:
    """Everything a run produced, kept so it can be written, logged and tested."""

    image: Image
    target: Target
    candidates: list[Candidate]
    """Every object the segmenter proposed."""
    ranking: list[Candidate]
    """The candidates that match the target, best first, with the selector's scores."""
    plan: Plan | None = None
    output: Image | None = None
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def selected(self) -> Candidate:
        return self.ranking[0]

    @property
    def mask(self) -> Mask:
        return self.selected.mask

    def metrics(self) -> dict[str, Any]:
        """Numbers worth comparing across runs; JSON-serialisable."""
        metrics: dict[str, Any] = {
            "timings_s": {k: round(v, 4) for k, v in self.timings.items()},
            "image_size": [int(self.image.shape[1]), int(self.image.shape[0])],
            "target": self.target.kind,
            "candidate_count": len(self.candidates),
            "selection_score": round(float(self.selected.score), 4),
            "object_area_px": self.selected.area,
            "object_bbox": list(self.selected.bbox),
            "mode": "mask" if self.plan is None else "move",
            "ranking": [
                {"score": round(float(c.score), 4), "area_px": c.area, "bbox": list(c.bbox)}
                for c in self.ranking
            ],
        }
        if self.plan is not None:
            metrics.update(
                dx=self.plan.dx,
                dy=self.plan.dy,
                kept_fraction=round(self.plan.kept_fraction, 4),
                inpaint_area_px=int(self.plan.inpaint_mask.sum()),
            )
        return metrics
