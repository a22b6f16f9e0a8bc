"""Scores of an output against the known truth, over the regions that matter."""

from __future__ import annotations

import numpy as np
from skimage.metrics import structural_similarity

from object_displacement.geometry import bbox_diagonal, ring
from object_displacement.quality import psnr
from object_displacement.types import Candidate, Image, Mask

SEAM_WIDTH = 0.05
"""The seam ring scored around the new place: this share of the object's bbox diagonal."""


def mask_iou(found: Mask, truth: Mask) -> float:
    union = int((found | truth).sum())
    return float((found & truth).sum()) / union if union else 1.0


def regions(truth_mask: Mask, moved_truth: Mask) -> dict[str, Mask]:
    """``image`` (everything), ``vacated`` (where the object was and is no more) and
    ``seam`` (a ring around the new place), from the true masks at A and at B."""
    width = max(2, round(SEAM_WIDTH * bbox_diagonal(Candidate(moved_truth).bbox)))
    return {
        "image": np.ones_like(truth_mask),
        "vacated": truth_mask & ~moved_truth,
        "seam": ring(moved_truth, width),
    }


def score(output: Image, truth: Image, areas: dict[str, Mask]) -> dict[str, float]:
    """PSNR (dB, capped at 100) and mean SSIM over each region."""
    _, ssim_map = structural_similarity(truth, output, channel_axis=2, data_range=255, full=True)
    ssim_map = ssim_map.mean(axis=2)
    scores: dict[str, float] = {}
    for name, area in areas.items():
        scores[f"psnr_{name}"] = round(psnr(output[area], truth[area]), 3)
        scores[f"ssim_{name}"] = round(float(ssim_map[area].mean()) if area.any() else 1.0, 4)
    return scores
