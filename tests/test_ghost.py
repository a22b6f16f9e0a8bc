import numpy as np
import pytest

from object_displacement.ghost import GhostCheck, ghost_score
from object_displacement.inpainters.opencv import OpenCVInpainter
from object_displacement.inpainters.patchmatch import PatchMatchInpainter
from object_displacement.mask_policies.rings import RingMaskPolicy
from object_displacement.types import Move


@pytest.fixture
def textured():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, size=(80, 120, 3), dtype=np.uint8)
    vacated = np.zeros((80, 120), bool)
    vacated[20:60, 20:60] = True
    return image, vacated


def test_ghost_score_of_known_cases(textured):
    image, vacated = textured
    assert ghost_score(image, image, vacated) == pytest.approx(1.0)  # nothing was removed
    other = np.random.default_rng(1).integers(0, 256, size=image.shape, dtype=np.uint8)
    assert abs(ghost_score(image, other, vacated)) < 0.1  # an unrelated fill
    faint = (0.3 * image + 0.7 * other).astype(np.uint8)
    assert 0.2 < ghost_score(image, faint, vacated) < 0.8  # an afterimage
    flat = np.full_like(image, 128)
    assert ghost_score(image, flat, vacated) == 0.0
    assert ghost_score(image, other, np.zeros_like(vacated)) == 0.0


def plan_of(textured):
    image, _ = textured
    mask = np.zeros(image.shape[:2], bool)
    mask[20:60, 20:50] = True
    plan = RingMaskPolicy(units="pixels", seam=2, hole_ring=2).plan(image, mask, Move(60, 0))
    plan.composite, plan.inpaint_mask = plan.background, plan.hole_mask | plan.seam_mask
    return plan


def test_the_retry_loop_stops_at_its_bound_and_records_every_attempt(textured):
    plan = plan_of(textured)
    never_clean = GhostCheck(threshold=-2.0, max_attempts=3, reseed=1, fallbacks=[OpenCVInpainter("telea")])
    _, attempts = never_clean(PatchMatchInpainter(seed=7), plan)
    assert [a["inpainter"] for a in attempts] == [
        "PatchMatchInpainter seed 7",
        "PatchMatchInpainter seed 8",
        "OpenCVInpainter(telea)",
    ]
    assert [a["attempt"] for a in attempts] == [1, 2, 3]
    _, once = GhostCheck(threshold=2.0, max_attempts=3)(PatchMatchInpainter(), plan)
    assert len(once) == 1  # clean at the first try: no retry


def test_the_kept_attempt_is_the_least_ghostly(textured):
    plan = plan_of(textured)
    output, attempts = GhostCheck(
        threshold=-2.0, max_attempts=2, reseed=0, fallbacks=[OpenCVInpainter("ns")]
    )(OpenCVInpainter("telea"), plan)
    best = min(attempts, key=lambda a: a["ghost"])
    vacated = plan.source_mask & ~plan.moved_mask
    assert ghost_score(plan.source, output, vacated) == pytest.approx(best["ghost"], abs=1e-4)
