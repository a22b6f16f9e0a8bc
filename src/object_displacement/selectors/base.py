"""What every selector does: rank candidates by how well they match the target."""

from __future__ import annotations

from abc import ABC, abstractmethod

from object_displacement.types import Candidate, Image, Target


class Selector(ABC):
    """Scores candidates against the target and returns them best first."""

    reads_text: bool = False
    """Whether ``target.prompt`` changes what it picks (else a prompt is ignored, with a warning)."""

    @abstractmethod
    def select(self, image: Image, candidates: list[Candidate], target: Target) -> list[Candidate]:
        """Candidates ranked best first, with ``score`` set; raises if none matches."""
