"""Is the old place really empty? A ghost score, and retries when it is not."""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from typing import Annotated, Any

import cv2
import numpy as np

from object_displacement.errors import DisplacementError
from object_displacement.inpainters.base import Inpainter, InpaintFailed
from object_displacement.settings import SEED_MAX, Range
from object_displacement.types import Image, Mask, Plan

log = logging.getLogger(__name__)

MIN_PIXELS = 16
"""A vacated place smaller than this (a 4x4 patch) has too few pixels to correlate: it scores 0."""

DETAIL_SIGMA = 3.0
"""Structure finer than this (pixels) is what an afterimage keeps of the object."""

FLAT = 0.5
"""Detail whose spreads multiply to less than this (grey levels squared) is featureless:
noise correlates with nothing, so it scores 0 rather than a chance value."""


def ghost_score(original: Image, output: Image, vacated: Mask) -> float:
    """How much the filled place still looks like the object: the zero-mean normalized
    cross-correlation of their fine detail (grey levels minus a Gaussian blur) over the
    vacated pixels, in -1..1.

    A genuine background fill is unrelated to the object's detail (near 0); an afterimage,
    a faint or smeared copy of it, keeps its edges and correlates (towards 1). Detail, not
    raw grey levels: a brightness trend shared by object and fill (a sky darkening
    upwards) is no ghost. A featureless region scores 0.
    """
    if vacated.sum() < MIN_PIXELS:
        return 0.0
    a = _detail(original)[vacated]
    b = _detail(output)[vacated]
    a, b = a - a.mean(), b - b.mean()
    spread = np.sqrt((a * a).mean() * (b * b).mean())
    return 0.0 if spread < FLAT else float((a * b).mean() / spread)


def _detail(image: Image) -> np.ndarray:
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float64)
    return grey - cv2.GaussianBlur(grey, (0, 0), DETAIL_SIGMA)


class GhostCheck:
    """Inpaint, score the old place, and try again while the object still shows.

    Attempts go: the configured inpainter, then its ``reseed`` retries (``Inpainter.retry``:
    the next seeds of a randomized backend; a diffusion inpainter's also denoise from its
    classical ``prefill``), then each of ``fallbacks``; at most ``max_attempts`` in all. The attempt
    with the lowest score is kept, and every attempt is recorded.

    Args:
        threshold: ghost score above which the place is not empty (PatchMatch's fill of
            the rocket's old place scores 0.02, the same with a 10 % afterimage 0.44).
        max_attempts: the bound on inpainting runs (1 turns retrying off); 3 is the
            configured inpainter, one reseed and one fallback.
        reseed: how many further seeds of the configured inpainter to try first (a new
            seed is the cheapest change to a randomized fill).
        fallbacks: other inpainters to try next, in order.
    """

    def __init__(
        self,
        threshold: float = 0.3,
        max_attempts: int = 3,
        reseed: Annotated[int, Range(0, SEED_MAX)] = 1,
        fallbacks: Sequence[Inpainter] | None = (),
    ) -> None:
        self.threshold = threshold
        self.max_attempts = max(1, max_attempts)
        self.reseed = reseed
        self.fallbacks = list(fallbacks or ())  # null: none

    def __call__(
        self, inpainter: Inpainter, plan: Plan, subject: str | None = None
    ) -> tuple[Image, list[dict[str, Any]]]:
        """The least ghostly output and every attempt; ``subject`` is the target's prompt.

        An attempt that gives no usable fill (:class:`InpaintFailed`: a black or NaN
        image) is recorded as failed and the next one runs."""
        assert plan.composite is not None and plan.inpaint_mask is not None
        vacated = plan.source_mask & ~plan.moved_mask
        attempts: list[dict[str, Any]] = []
        best: tuple[float, Image] | None = None
        for number, (label, candidate) in enumerate(self._candidates(inpainter)):
            if number >= self.max_attempts:
                break
            try:
                output = candidate.inpaint(
                    plan.composite, plan.inpaint_mask, plan.avoid, subject, plan.seam_mask
                )
            except InpaintFailed as failure:
                log.warning("inpainting attempt %d (%s) failed: %s", number + 1, label, failure)
                attempts.append({"attempt": number + 1, "inpainter": label, "failed": str(failure)})
                continue
            score = ghost_score(plan.source, output, vacated)
            attempts.append({"attempt": number + 1, "inpainter": label, "ghost": round(score, 4)})
            if best is None or score < best[0]:
                best = (score, output)
            if score <= self.threshold:
                break
            log.warning(
                "old place still shows the object (ghost %.2f > %.2f): retrying", score, self.threshold
            )
        if best is None:
            reasons = "; ".join(f"{a['inpainter']}: {a['failed']}" for a in attempts)
            raise DisplacementError(
                f"every inpainting attempt failed ({reasons}): raise ghost_check.max_attempts "
                "or add a ghost_check.fallbacks inpainter"
            )
        return best[1], attempts

    def _candidates(self, inpainter: Inpainter) -> Iterator[tuple[str, Inpainter]]:
        yield inpainter.label, inpainter
        for step in range(1, self.reseed + 1):
            again = inpainter.retry(step)
            if again is None:
                break
            yield again.label, again
        for fallback in self.fallbacks:
            yield fallback.label, fallback
