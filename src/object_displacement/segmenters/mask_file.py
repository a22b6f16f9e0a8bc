"""A mask you already have (from another tool, or the benchmark's true mask)."""

from __future__ import annotations

from object_displacement.errors import DisplacementError
from object_displacement.io import read_image
from object_displacement.segmenters.base import Segmenter
from object_displacement.types import Candidate, Image, Mask, Target


class MaskFileSegmenter(Segmenter):
    """Propose the object drawn in a mask image: any non-black pixel is the object.

    Skips segmentation altogether, so a run measures the rest of the pipeline alone (the
    benchmark's oracle), or moves an object masked by another tool.

    Args:
        path: the mask image, the size of the photo.
    """

    def __init__(self, path: str | None = None) -> None:
        self.path = path

    def propose(self, image: Image, target: Target) -> list[Candidate]:
        mask = self._mask(image)
        return [Candidate(mask=mask, score=1.0, source="mask")] if mask.any() else []

    def implied_target(self, image: Image) -> Target | None:
        """The mask names the object by itself: its bounding box is the target."""
        mask = self._mask(image)
        if not mask.any():
            raise DisplacementError(f"mask {self.path} is all black: it marks no object")
        return Target(box=Candidate(mask).bbox)

    def _mask(self, image: Image) -> Mask:
        if not self.path:
            raise DisplacementError("segmenter=mask needs segmenter.path=/path/to/mask.png")
        mask = read_image(self.path).max(axis=2) > 0
        if mask.shape != image.shape[:2]:
            size = f"{mask.shape[1]}x{mask.shape[0]}"
            raise DisplacementError(
                f"mask {self.path} is {size}, the photo {image.shape[1]}x{image.shape[0]}"
            )
        return mask
