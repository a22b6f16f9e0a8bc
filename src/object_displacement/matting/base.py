"""What every matting component does: a hard mask in, a soft matte of the object out."""

from __future__ import annotations

from abc import ABC, abstractmethod

from object_displacement.types import Image, Mask, Matte


class Matting(ABC):
    """Turns the segmenter's hard mask into the object's soft coverage and own colours."""

    @abstractmethod
    def __call__(self, image: Image, mask: Mask) -> Matte:
        """The matte of the object ``mask`` names in ``image``."""
