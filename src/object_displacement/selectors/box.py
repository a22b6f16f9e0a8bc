"""Pick the candidate whose bounding box best overlaps the target box."""

from __future__ import annotations

from dataclasses import replace

from object_displacement.errors import DisplacementError
from object_displacement.geometry import box_iou
from object_displacement.selectors.base import Selector
from object_displacement.types import Candidate, Image, Target


class BoxSelector(Selector):
    """Rank by bounding-box IoU with ``target.box``; among the candidates that fit the box
    about as well as the best one (within ``tolerance``), by the segmenter's own score.

    A user's box is drawn by hand: a few points of IoU do not tell a whole object from its
    part, but the segmenter may know which of its proposals it trusts (the learned mask
    of a real object over GrabCut's colour regions).

    Args:
        min_iou: below this overlap a candidate is not the boxed object.
        tolerance: candidates within this much IoU of the best are ranked by score.
    """

    def __init__(self, min_iou: float = 0.1, tolerance: float = 0.1) -> None:
        self.min_iou = min_iou
        self.tolerance = tolerance

    def select(self, image: Image, candidates: list[Candidate], target: Target) -> list[Candidate]:
        if target.box is None:
            raise DisplacementError("selector=box needs target.box=[x0,y0,x1,y1]")
        box = target.box
        fits = [box_iou(c.bbox, box) for c in candidates]
        best = max(fits, default=0.0)
        if best < self.min_iou:
            raise DisplacementError(
                f"no object matches box {list(box)} (best IoU {best:.2f} < {self.min_iou})"
            )
        close = best - self.tolerance
        order = sorted(
            range(len(candidates)),
            key=lambda i: (fits[i] < close, -candidates[i].score if fits[i] >= close else -fits[i]),
        )
        return [replace(candidates[i], score=fits[i]) for i in order if fits[i] >= self.min_iou]
