"""``matting=salient``: the learned segmenter's soft coverage as the object's edge."""

from __future__ import annotations

from typing import Any

import numpy as np

from object_displacement.geometry import dilate, grown_box, unit_length
from object_displacement.matting.base import Matting
from object_displacement.segmenters.salient_net import SalientNet
from object_displacement.types import Candidate, Image, Mask, Matte
from object_displacement.weights import ModelWeights

CONTEXT = 0.25
"""The network's crop around the mask, as a fraction of its size (the segmenter's box context)."""


class SalientMatting(Matting, ModelWeights):
    """The network's coverage (IS-Net's soft map) over a band around the hard mask's edge.

    Inside the mask eroded by ``band`` the object is whole (1), outside it grown by
    ``band`` absent (0); between, the network's map decides, so a blurred or hairy edge
    travels soft. The colours stay the photo's: unlike ``matting=closed_form`` the fringe
    keeps a trace of the old background, and it costs one network run (no solver).

    Args:
        model, weights_dir, side, threads: the network, as the segmenter's
            (:class:`~object_displacement.segmenters.salient_net.SalientNet`).
        band: half-width of the soft band, a fraction of the object's bbox diagonal.
        min_band: the band's least half-width in pixels.
    """

    def __init__(
        self,
        model: str = "isnet-imgly",
        weights_dir: str = "data/weights",
        side: int = 512,
        threads: int = 0,
        band: float = 0.02,
        min_band: int = 2,
    ) -> None:
        if band <= 0 or min_band < 1:
            raise ValueError(f"band and min_band must be above 0, got {band} and {min_band}")
        self.net = SalientNet(model, weights_dir, side, threads)
        self.band = band
        self.min_band = min_band

    def check_weights(self) -> None:
        self.net.check_weights()

    def fetch_weights(self) -> list[str]:
        return self.net.fetch_weights()

    def load(self) -> Any:
        return self.net.load()

    def __call__(self, image: Image, mask: Mask) -> Matte:
        height, width = mask.shape
        x0, y0, x1, y1 = Candidate(mask).bbox
        crop = grown_box((x0, y0, x1, y1), width, height, CONTEXT * (x1 - x0), CONTEXT * (y1 - y0))
        cx0, cy0, cx1, cy1 = crop
        soft = np.zeros(mask.shape, np.float32)
        soft[cy0:cy1, cx0:cx1] = self.net.predict(np.ascontiguousarray(image[cy0:cy1, cx0:cx1]))
        radius = max(self.min_band, round(self.band * unit_length(mask, "relative")))
        sure, reach = ~dilate(~mask, radius), dilate(mask, radius)
        alpha = np.where(sure, 1.0, np.where(reach, soft, 0.0)).astype(np.float32)
        return Matte(alpha, image.copy())
