"""Pick the candidates that contain the target point."""

from __future__ import annotations

from object_displacement.errors import DisplacementError
from object_displacement.selectors.base import Selector
from object_displacement.types import Candidate, Image, Target


class PointSelector(Selector):
    """Keep candidates containing ``target.point``: best segmenter score, then smallest.

    Among nested masks that all contain the point (a cup, the table under it), the
    smaller one is the more specific answer, so it wins ties.
    """

    def select(self, image: Image, candidates: list[Candidate], target: Target) -> list[Candidate]:
        if target.point is None:
            raise DisplacementError("selector=point needs target.point=[x,y]")
        x, y = target.point
        hits = [c for c in candidates if c.mask[y, x]]
        if not hits:
            raise DisplacementError(f"no object found at point {[x, y]}")
        return sorted(hits, key=lambda c: (-c.score, c.area))
