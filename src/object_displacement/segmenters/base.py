"""What every segmenter does: propose candidate objects for a target."""

from __future__ import annotations

from abc import ABC, abstractmethod

from object_displacement.types import Candidate, Image, Target


class Segmenter(ABC):
    """Proposes candidate object masks; a selector later decides which one is meant."""

    reads_text: bool = False
    """Whether ``propose`` reads ``target.prompt`` (SAM 3, Grounded SAM): its candidates
    already match the text, best first, and need no selector that reads it again."""

    @abstractmethod
    def propose(self, image: Image, target: Target) -> list[Candidate]:
        """Candidate objects in ``image`` for ``target``; an empty list if none."""

    def implied_target(self, image: Image) -> Target | None:
        """The target this segmenter implies when the user names none (``None``: it needs one)."""
        return None
