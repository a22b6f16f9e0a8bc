"""Dispatch to the selector that fits the kind of target the user gave."""

from __future__ import annotations

from object_displacement.errors import DisplacementError
from object_displacement.selectors.base import Selector
from object_displacement.selectors.ranked import RankedSelector
from object_displacement.types import Candidate, Image, Target


class AutoSelector(Selector):
    """Use ``prompt`` for a target with text (when configured), else ``point`` or ``box``.

    The default config uses this so ``target.point=...`` or ``target.box=...`` works
    without also naming a selector; a prompt next to a box or point is then ignored.
    Behind a segmenter that reads the prompt itself (``segmenter=sam3``, ``grounded``) a
    text target with no ``prompt`` selector keeps the segmenter's ranking: the pipeline
    tells it so with :meth:`follow_segmenter`.
    """

    def __init__(self, box: Selector, point: Selector, prompt: Selector | None = None) -> None:
        self.by_kind: dict[str, Selector | None] = {"box": box, "point": point, "prompt": prompt}

    def follow_segmenter(self) -> None:
        """Rank text targets as the (text-reading) segmenter did, unless a prompt selector is set."""
        if self.by_kind["prompt"] is None:
            self.by_kind["prompt"] = RankedSelector()

    @property
    def reads_text(self) -> bool:  # type: ignore[override]
        return self.by_kind["prompt"] is not None and self.by_kind["prompt"].reads_text

    def select(self, image: Image, candidates: list[Candidate], target: Target) -> list[Candidate]:
        if target.prompt is not None and self.by_kind["prompt"] is not None:
            kind = "prompt"
        elif target.box is not None:
            kind = "box"
        elif target.positive:
            kind = "point"
        else:
            raise DisplacementError(
                f"a text target ('{target.prompt}') needs the CLIP selector: add selector=clip"
            )
        selector = self.by_kind[kind]
        assert selector is not None
        return selector.select(image, candidates, target)
