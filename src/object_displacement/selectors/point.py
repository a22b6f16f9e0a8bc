"""Pick the candidates that contain the target's points."""

from __future__ import annotations

from object_displacement.errors import DisplacementError
from object_displacement.selectors.base import Selector
from object_displacement.types import Candidate, Image, Target


class PointSelector(Selector):
    """Keep candidates containing a click on the object: most such clicks, fewest clicks
    off the object, best segmenter score, then smallest.

    Among nested masks that all contain the point (a cup, the table under it), the
    smaller one is the more specific answer, so it wins ties.
    """

    def select(self, image: Image, candidates: list[Candidate], target: Target) -> list[Candidate]:
        positive, negative = target.positive, target.negative
        if not positive:
            raise DisplacementError("selector=point needs target.point=[x,y] or a click labelled 1")

        def count(c: Candidate, points: tuple[tuple[int, int], ...]) -> int:
            return sum(bool(c.mask[y, x]) for x, y in points)

        hits = [c for c in candidates if count(c, positive)]
        if not hits:
            raise DisplacementError(f"no object found at point {list(positive[0])}")
        return sorted(hits, key=lambda c: (-count(c, positive), count(c, negative), -c.score, c.area))
