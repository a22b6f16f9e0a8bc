"""Quality numbers every run can compute without a reference image."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from object_displacement.ghost import ghost_score
from object_displacement.types import Candidate, Mask, Result

if TYPE_CHECKING:
    from object_displacement.selectors.clip_embedder import ClipEmbedder

PSNR_CAP_DB = 100.0
"""Identical pixels have infinite PSNR; capping keeps the number comparable and JSON-valid."""


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio of two uint8 pixel sets, in dB, capped at 100."""
    if a.size == 0:
        return PSNR_CAP_DB
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return PSNR_CAP_DB if mse == 0 else min(PSNR_CAP_DB, 10 * np.log10(255.0**2 / mse))


def edit_region(result: Result) -> Mask:
    """Every pixel the edit may change: the inpaint mask, the placed object and the seam."""
    plan = result.plan
    assert plan is not None and plan.inpaint_mask is not None
    return plan.inpaint_mask | plan.seam_mask | (plan.alpha > 0)


def evaluate(result: Result, scorer: ClipEmbedder | None = None) -> dict[str, float]:
    """Background preservation, moved-object fidelity and, given a CLIP ``scorer`` (the
    CLIP selector's ``embedder``, so the scores see what the selector saw) and a prompt,
    the ghost and presence scores. Empty in mask mode."""
    if result.plan is None or result.output is None:
        return {}
    before, after, plan = result.image, result.output, result.plan
    outside = ~edit_region(result)
    moved_truth = plan.layer  # the object as placed (scaled, mirrored), before compositing
    diff = np.abs(after[outside].astype(np.int16) - before[outside].astype(np.int16))
    metrics = {
        "background_psnr_db": round(psnr(after[outside], before[outside]), 3),
        "background_max_abs_diff": int(diff.max(initial=0)),
        "object_psnr_db": round(psnr(after[plan.moved_mask], moved_truth[plan.moved_mask]), 3),
        "object_mean_abs_diff": round(
            float(np.abs(after[plan.moved_mask].astype(np.float64) - moved_truth[plan.moved_mask]).mean()), 3
        ),
    }
    # the ghost check already scored the output it kept, the least ghostly of its attempts
    kept = min((a["ghost"] for a in result.attempts if "ghost" in a), default=None)
    vacated = result.mask & ~plan.moved_mask
    metrics["ghost_appearance"] = kept if kept is not None else round(ghost_score(before, after, vacated), 4)
    if scorer is not None and result.target.prompt is not None:
        metrics.update(_clip_scores(result, scorer))
    return metrics


def _clip_scores(result: Result, scorer: ClipEmbedder) -> dict[str, float]:
    """Prompt similarity at the old place before and after (the ghost should fade) and at
    the new place after (the object should still read as itself)."""
    assert result.plan is not None and result.output is not None
    prompt = result.target.prompt
    old, new = Candidate(result.mask), Candidate(result.plan.moved_mask)
    before_old = scorer.similarities(result.image, [old], prompt)[0]
    after = scorer.similarities(result.output, [old, new], prompt)
    return {
        "clip_old_place_before": round(float(before_old), 4),
        "clip_ghost": round(float(after[0]), 4),
        "clip_presence": round(float(after[1]), 4),
    }
