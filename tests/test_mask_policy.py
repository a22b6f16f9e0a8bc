import logging

import numpy as np
import pytest

from object_displacement.compositors.paste import PasteCompositor
from object_displacement.errors import DisplacementError
from object_displacement.geometry import dilate, shift
from object_displacement.mask_policies.rings import RingMaskPolicy
from object_displacement.types import Move


def pixel_policy(**kwargs) -> RingMaskPolicy:
    defaults = {"units": "pixels", "seam": 3, "hole_ring": 4, "prefill": False}
    return RingMaskPolicy(**{**defaults, **kwargs})


def pasted(policy, image, mask, dx, dy):
    """The plan with the paste compositor's composite and inpaint mask filled in."""
    plan = policy.plan(image, mask, Move(dx, dy))
    plan.composite, plan.inpaint_mask = PasteCompositor()(plan)
    return plan


def test_object_pixels_land_exactly_at_x_plus_dx_y_minus_dy(square_scene):
    image, mask = square_scene
    plan = pasted(pixel_policy(), image, mask, dx=50, dy=20)
    assert plan.moved_mask[20:50, 80:110].all() and plan.moved_mask.sum() == mask.sum()
    np.testing.assert_array_equal(plan.composite[20:50, 80:110], image[40:70, 30:60])


def test_inpaint_mask_is_hole_plus_rings_and_never_the_moved_object(square_scene):
    image, mask = square_scene
    plan = pasted(pixel_policy(), image, mask, dx=50, dy=20)
    moved = shift(mask, 50, 20)
    expected = (mask | (dilate(moved, 3) & ~moved) | (dilate(mask, 4) & ~mask)) & ~moved
    np.testing.assert_array_equal(plan.inpaint_mask, expected)
    assert not (plan.inpaint_mask & plan.moved_mask).any()


def test_overlapping_old_and_new_place_keep_the_object_and_mask_only_the_uncovered_part(square_scene):
    image, mask = square_scene
    plan = pasted(pixel_policy(seam=0, hole_ring=0), image, mask, dx=10, dy=0)
    np.testing.assert_array_equal(plan.inpaint_mask, mask & ~shift(mask, 10, 0))
    assert plan.inpaint_mask.sum() == 30 * 10  # the 10-pixel strip the object uncovered


def test_relative_sizes_scale_with_the_object(square_scene):
    mask = square_scene[1]
    policy = RingMaskPolicy(units="relative", seam=0.1, hole_ring=0.2)
    diagonal = np.hypot(30, 30)
    assert policy.pixel_sizes(mask) == {
        "seam": round(0.1 * diagonal),
        "hole_ring": round(0.2 * diagonal),
        "speckle_band": round(0.1 * diagonal),
    }
    big = np.zeros((240, 320), dtype=bool)
    big[80:140, 60:120] = True
    assert policy.pixel_sizes(big)["seam"] == round(0.1 * np.hypot(60, 60))


def test_speckles_fall_only_in_the_band_beyond_the_hole_ring(square_scene):
    image, mask = square_scene
    plain = pasted(pixel_policy(), image, mask, dx=60, dy=0).inpaint_mask
    speckled = pixel_policy(speckle_density=0.05, speckle_band=10, speckle_radius=1)
    extra = pasted(speckled, image, mask, dx=60, dy=0).inpaint_mask & ~plain
    assert extra.any()
    allowed = dilate(mask, 4 + 10 + 1) & ~dilate(mask, 4 - 1)
    assert not (extra & ~allowed).any()


def test_prefill_replaces_the_object_in_the_hole_with_background(square_scene):
    image, mask = square_scene
    plan = pasted(RingMaskPolicy(prefill=True), image, mask, dx=80, dy=0)
    hole = mask & ~plan.moved_mask
    assert np.abs(plan.composite[hole].astype(int) - 128).max() <= 2
    outside = ~hole & ~plan.moved_mask
    np.testing.assert_array_equal(plan.composite[outside], image[outside])


def test_object_touching_the_border_is_clipped_with_a_warning(square_scene, caplog):
    image, mask = square_scene
    with caplog.at_level(logging.WARNING):
        plan = pixel_policy().plan(image, mask, Move(115, 0))  # x 145..174 in a 160-wide frame
    assert plan.kept_fraction == pytest.approx(15 / 30)
    assert plan.moved_mask[40:70, 145:160].all() and plan.moved_mask.sum() == 30 * 15
    assert "leaves the frame" in caplog.text


def test_object_moved_wholly_out_of_the_frame_is_an_error(square_scene):
    image, mask = square_scene
    with pytest.raises(DisplacementError, match="wholly out"):
        pixel_policy().plan(image, mask, Move(0, 80))


def test_scale_two_quadruples_the_area_about_the_centre(square_scene):
    image, mask = square_scene
    plan = pixel_policy().plan(image, mask, Move(0, 0, scale=2.0))
    assert plan.moved_mask.sum() == pytest.approx(4 * mask.sum(), rel=0.03)
    ys, xs = np.nonzero(plan.moved_mask)
    assert (xs.mean(), ys.mean()) == pytest.approx((44.5, 54.5), abs=0.6)  # same centre as before
    # antialiased: the resized coverage has soft values along the edge, not only 0 and 1
    soft = (plan.alpha > 0.01) & (plan.alpha < 0.99)
    assert soft.sum() > 0 or plan.moved_mask.sum() == 4 * mask.sum()


def test_bottom_anchor_keeps_the_object_standing_on_its_line(square_scene):
    image, mask = square_scene
    plan = pixel_policy().plan(image, mask, Move(20, 0, scale=0.5, anchor="bottom"))
    ys, _ = np.nonzero(plan.moved_mask)
    assert ys.max() == 69 and ys.min() == 55  # the bottom row stays at 69; half the height


def test_flip_mirrors_the_object_exactly(square_scene):
    image, mask = square_scene
    plan = pixel_policy().plan(image, mask, Move(50, 0, flip=True))
    np.testing.assert_array_equal(plan.layer[40:70, 80:110], image[40:70, 30:60][:, ::-1])
    np.testing.assert_array_equal(plan.moved_mask, shift(mask, 50, 0))


def test_a_scaled_object_leaving_the_frame_is_clipped_like_a_moved_one(square_scene):
    image, mask = square_scene
    plan = pixel_policy().plan(image, mask, Move(100, 0, scale=2.0))  # 60 px wide, centre at x=145
    assert 0 < plan.kept_fraction < 1
    assert plan.moved_mask[:, -1].any()
