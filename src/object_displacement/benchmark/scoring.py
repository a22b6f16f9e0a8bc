"""Scores of an output against the known truth, over the regions that matter.

PSNR and SSIM compare pixels in place, so on a hole whose true content cannot be
known they rank the blurriest fill first: the mean of all plausible fills is the
pixel-wise optimum. Two scores here do not reward that blur:

- ``gms``: the gradient-magnitude similarity of GMSD (Xue et al., 2013) as `piq`
  computes it, pooled by its mean (GMSM) over each region. It compares how strong the
  edges are at each place, not their sign or phase, so a sharp texture of the right
  kind scores near the truth and a smear, whose gradients vanish, scores low. Weight-free.
- ``texture``: the vacated region's high-frequency energy against the truth's there.
"""

from __future__ import annotations

import cv2
import numpy as np
from skimage.metrics import structural_similarity

from object_displacement.geometry import bbox_diagonal, ring
from object_displacement.quality import psnr
from object_displacement.types import Candidate, Image, Mask

SEAM_WIDTH = 0.05
"""The seam ring scored around the new place: this share of the object's bbox diagonal."""

GMS_CONSTANT = 170 / 255**2
"""GMSD's stabilizing constant for images in [0, 1] (Xue et al., and piq's default)."""

TEXTURE_FLOOR = 1.0
"""Grey levels added to both Laplacian spreads, so a flat truth does not divide by ~0."""


def regions(truth_mask: Mask, moved_truth: Mask) -> dict[str, Mask]:
    """``image`` (everything), ``vacated`` (where the object was and is no more) and
    ``seam`` (a ring around the new place), from the true masks at A and at B."""
    width = max(2, round(SEAM_WIDTH * bbox_diagonal(Candidate(moved_truth).bbox)))
    return {
        "image": np.ones_like(truth_mask),
        "vacated": truth_mask & ~moved_truth,
        "seam": ring(moved_truth, width),
    }


def gms_map(output: Image, truth: Image) -> np.ndarray:
    """GMSD's per-pixel gradient-magnitude similarity (1 = same edge strength), at full size.

    Built from piq's own pieces (luma of YIQ, 2x average pooling, Prewitt gradients,
    the similarity map), so pooling it with the standard deviation over the whole image
    gives ``piq.gmsd`` exactly; a map lets each region be pooled on its own.
    """
    import torch
    import torch.nn.functional as F
    from piq.functional import gradient_map, prewitt_filter, rgb2yiq, similarity_map

    def luma(image: Image) -> torch.Tensor:
        x = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)[None].double() / 255
        x = rgb2yiq(x)[:, :1]
        pad = max(x.shape[2] % 2, x.shape[3] % 2)
        return F.avg_pool2d(F.pad(x, [0, pad, 0, pad]), kernel_size=2, stride=2)

    prewitt = prewitt_filter(dtype=torch.float64)
    kernels = torch.stack([prewitt, prewitt.transpose(-1, -2)])
    with torch.no_grad():
        gms = similarity_map(
            gradient_map(luma(output), kernels), gradient_map(luma(truth), kernels), GMS_CONSTANT
        )
    half = gms[0, 0].numpy()
    height, width = truth.shape[:2]
    return np.repeat(np.repeat(half, 2, axis=0), 2, axis=1)[:height, :width]


def texture_ratio(output: Image, truth: Image, area: Mask) -> float:
    """How much fine detail the fill has against the truth there: the spread (std) of the
    grey Laplacian over ``area`` in ``output`` over that in ``truth``.

    1 is the truth's texture; a blur or a smear is below 1, noise or a busier texture above.
    It compares amounts, not places, so a sharp fill of the right texture scores 1 wherever
    its details fall, which is what PSNR and SSIM cannot tell from a wrong one.
    """
    if not area.any():
        return 1.0

    def spread(image: Image) -> float:
        grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
        return float(cv2.Laplacian(grey, cv2.CV_32F, ksize=3)[area].std())

    return (spread(output) + TEXTURE_FLOOR) / (spread(truth) + TEXTURE_FLOOR)


def score(output: Image, truth: Image, areas: dict[str, Mask]) -> dict[str, float]:
    """PSNR (dB, capped at 100), mean SSIM and mean gradient-magnitude similarity (GMS)
    over each region, and the texture ratio of the vacated one where it is given."""
    _, ssim_map = structural_similarity(truth, output, channel_axis=2, data_range=255, full=True)
    ssim_map = ssim_map.mean(axis=2)
    gms = gms_map(output, truth)
    scores: dict[str, float] = {}
    for name, area in areas.items():
        scores[f"psnr_{name}"] = round(psnr(output[area], truth[area]), 3)
        scores[f"ssim_{name}"] = round(float(ssim_map[area].mean()) if area.any() else 1.0, 4)
        scores[f"gms_{name}"] = round(float(gms[area].mean()) if area.any() else 1.0, 4)
    if "vacated" in areas:
        scores["texture_vacated"] = round(texture_ratio(output, truth, areas["vacated"]), 4)
    return scores
