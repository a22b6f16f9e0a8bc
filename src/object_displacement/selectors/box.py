"""Pick the candidate whose bounding box best overlaps the target box."""

from __future__ import annotations

from dataclasses import replace

from object_displacement.errors import DisplacementError
from object_displacement.geometry import box_iou
from object_displacement.selectors.base import Selector
from object_displacement.types import Candidate, Image, Target


class BoxSelector(Selector):
    """Rank by bounding-box IoU with ``target.box``.

    Args:
        min_iou: below this overlap a candidate is not the boxed object.
    """

    def __init__(self, min_iou: float = 0.1) -> None:
        self.min_iou = min_iou

    def select(self, image: Image, candidates: list[Candidate], target: Target) -> list[Candidate]:
        if target.box is None:
            raise DisplacementError("selector=box needs target.box=[x0,y0,x1,y1]")
        scored = [replace(c, score=box_iou(c.bbox, target.box)) for c in candidates]
        scored.sort(key=lambda c: c.score, reverse=True)
        best = scored[0].score if scored else 0.0
        if best < self.min_iou:
            raise DisplacementError(
                f"no object matches box {list(target.box)} (best IoU {best:.2f} < {self.min_iou})"
            )
        return [c for c in scored if c.score >= self.min_iou]
