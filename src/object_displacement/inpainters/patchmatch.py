"""PatchMatch (pypatchmatch): copies real texture from elsewhere in the photo."""

from __future__ import annotations

import patchmatch

from object_displacement.inpainters.base import Inpainter
from object_displacement.types import Image, Mask


class PatchMatchInpainter(Inpainter):
    """Fill the hole with patches found in the rest of the crop (Barnes et al., 2009).

    Args:
        patch_size: patch radius; larger follows larger structures but is much slower.
        seed: seed of the randomized search, so equal inputs give equal outputs.
        context: see :class:`Inpainter`; ``None`` searches the whole photo for texture.
    """

    def __init__(self, patch_size: int = 5, seed: int = 0, context: float | None = None) -> None:
        super().__init__(context)
        self.patch_size = patch_size
        self.seed = seed

    def fill(self, image: Image, mask: Mask, avoid: Mask | None = None, subject: str | None = None) -> Image:
        patchmatch.set_random_seed(self.seed)
        if avoid is None or not avoid.any():
            return patchmatch.inpaint(image, mask, patch_size=self.patch_size)
        return patchmatch.inpaint(image, mask, global_mask=avoid, patch_size=self.patch_size)
