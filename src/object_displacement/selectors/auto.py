"""Dispatch to the selector that fits the kind of target the user gave."""

from __future__ import annotations

from object_displacement.errors import DisplacementError
from object_displacement.selectors.base import Selector
from object_displacement.types import Candidate, Image, Target


class AutoSelector(Selector):
    """Use ``box`` for a box target, ``point`` for a point, ``prompt`` for text.

    The default config uses this so ``target.point=...`` or ``target.box=...`` works
    without also naming a selector.
    """

    def __init__(self, box: Selector, point: Selector, prompt: Selector | None = None) -> None:
        self.by_kind: dict[str, Selector | None] = {"box": box, "point": point, "prompt": prompt}

    def select(self, image: Image, candidates: list[Candidate], target: Target) -> list[Candidate]:
        selector = self.by_kind[target.kind]
        if selector is None:
            raise DisplacementError(
                f"a text target ('{target.prompt}') needs the CLIP selector: add selector=clip"
            )
        return selector.select(image, candidates, target)
