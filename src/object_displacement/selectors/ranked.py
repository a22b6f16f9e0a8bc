"""Keep the segmenter's ranking: for segmenters that read the prompt themselves."""

from __future__ import annotations

from object_displacement.errors import DisplacementError
from object_displacement.selectors.base import Selector
from object_displacement.types import Candidate, Image, Target


class RankedSelector(Selector):
    """Candidates best first by the segmenter's own score (SAM 3's instance score,
    Grounded SAM's detection score): the text was read when they were proposed."""

    def select(self, image: Image, candidates: list[Candidate], target: Target) -> list[Candidate]:
        if not candidates:
            raise DisplacementError(f"no object matching the {target.kind} target was found")
        return sorted(candidates, key=lambda c: c.score, reverse=True)
