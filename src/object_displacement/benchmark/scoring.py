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

from object_displacement.colour import luminance, to_linear
from object_displacement.fill import masked_blur
from object_displacement.geometry import bbox_diagonal, dilate, ring
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


DARKENING_SIGMA = 0.02
"""Darkening is judged after a blur of this share of the object's bbox diagonal: the scale
of a soft shadow's penumbra, where a surface's texture averages out."""

SHADOW_TRACE = 0.05
"""A true shadow darker than this (5 % of the light) is scored; fainter tails are not."""

SHADOWLESS_BAND = (0.08, 0.3)
"""Around each place, from this share of the object's diagonal (past the rings the fill
re-synthesizes) to this one (where a shadow beside the object lies): where a shadowless
scene must keep its light."""


def _light(image: Image, sigma: float, surface: Mask) -> np.ndarray:
    """Blurred linear luminance of the ``surface`` pixels: how much light each place of the
    surface sends, texture averaged out, and nothing of the objects on it."""
    return masked_blur(luminance(to_linear(image)), surface, sigma)[0]


def shadow_scores(
    output: Image,
    scene_input: Image,
    truth: Image,
    footprints: tuple[Mask, Mask],
    shadows: tuple[np.ndarray, np.ndarray] | None,
    lit_truth: Image | None,
) -> dict[str, float]:
    """How the output treats the object's shadow, in linear light.

    With a shadow (``shadows``: the true attenuation at A and at B): ``shadow_removed``, the
    share of the old shadow's darkening gone where the truth is lit again (1 - the mean
    darkening left over the mean darkening the input had), and ``shadow_cast``, the share
    of the right darkening the new place got (its mean darkening over the truth's). Both are
    1 when right; above 1 is too much (a place brightened past the surface, a shadow too
    dark). Without one: ``shadowless_brightness``, the light around each place in the
    output over the truth's, the place farther from 1 (1: none gained or lost; a false
    shadow cast makes it lower, a false one lifted higher).
    """
    at_a, at_b = footprints
    sigma = max(1.0, DARKENING_SIGMA * bbox_diagonal(Candidate(at_a).bbox))
    surface = ~at_a & ~at_b  # an object's own pixels are no light of the surface
    out, true = _light(output, sigma, surface), _light(truth, sigma, surface)
    if shadows is None:
        near, far = (share * bbox_diagonal(Candidate(at_a).bbox) for share in SHADOWLESS_BAND)
        ratios = []
        for place in (at_a, at_b):  # each place on its own: the larger band would dilute either
            band = dilate(place, far) & ~dilate(at_a, near) & ~dilate(at_b, near)
            if band.any():
                ratios.append(float(out[band].mean() / max(true[band].mean(), 1e-6)))
        worst = max(ratios, key=lambda r: abs(r - 1), default=1.0)
        return {"shadowless_brightness": round(worst, 4)}
    old, new = shadows
    scores: dict[str, float] = {}
    old_place = (old > SHADOW_TRACE) & (new <= SHADOW_TRACE / 2) & ~at_a & ~at_b
    if old_place.any():
        darkening = float((true - _light(scene_input, sigma, surface))[old_place].mean())
        left = float((true - out)[old_place].mean())
        scores["shadow_removed"] = round(1 - left / max(darkening, 1e-6), 4)
    new_place = (new > SHADOW_TRACE) & ~at_b
    if new_place.any() and lit_truth is not None:
        lit = _light(lit_truth, sigma, surface)
        wanted = float((lit - true)[new_place].mean())
        got = float((lit - out)[new_place].mean())
        scores["shadow_cast"] = round(got / max(wanted, 1e-6), 4)
    return scores
