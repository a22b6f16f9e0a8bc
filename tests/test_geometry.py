import cv2
import numpy as np
import pytest

from object_displacement.geometry import box_iou, dilate, ring, shift


@pytest.mark.parametrize(("dx", "dy"), [(5, 0), (0, 7), (-3, -4), (10, 6), (0, 0)])
def test_shift_moves_pixel_to_x_plus_dx_y_minus_dy(dx, dy):
    array = np.zeros((30, 40), dtype=np.int32)
    array[15, 20] = 7
    moved = shift(array, dx, dy)
    assert moved[15 - dy, 20 + dx] == 7
    assert moved.sum() == 7


def test_shift_positive_dy_moves_up_and_drops_pixels_past_the_frame():
    array = np.arange(12).reshape(4, 3)
    moved = shift(array, 0, 1)
    np.testing.assert_array_equal(moved[:3], array[1:])
    np.testing.assert_array_equal(moved[3], 0)  # uncovered row is zero, not wrapped


def test_shift_beyond_the_frame_is_empty():
    assert not shift(np.ones((5, 5), dtype=bool), 5, 0).any()
    assert not shift(np.ones((5, 5), dtype=bool), 0, -9).any()


def test_shift_keeps_colour_images_whole():
    image = np.zeros((10, 10, 3), dtype=np.uint8)
    image[2, 3] = (1, 2, 3)
    np.testing.assert_array_equal(shift(image, 4, -5)[7, 7], (1, 2, 3))


def test_ring_is_outside_the_mask_and_within_radius():
    mask = np.zeros((41, 41), dtype=bool)
    mask[20, 20] = True
    band = ring(mask, 5)
    assert not (band & mask).any()
    ys, xs = np.nonzero(band)
    assert np.hypot(ys - 20, xs - 20).max() < 5.5  # a digital disk of radius 5
    assert band[20, 25] and band[15, 20] and not band[20, 26]
    assert dilate(mask, 0).sum() == 1


def test_box_iou():
    assert box_iou((0, 0, 10, 10), (0, 0, 10, 10)) == 1.0
    assert box_iou((0, 0, 10, 10), (5, 0, 15, 10)) == pytest.approx(50 / 150)
    assert box_iou((0, 0, 10, 10), (20, 20, 30, 30)) == 0.0


@pytest.mark.parametrize("radius", [1, 3, 8, 25])
def test_rings_by_distance_transform_keep_the_round_dilations_meaning(radius):
    # the old rings grew the mask with an elliptical kernel of side 2r+1: the new ones hold
    # every pixel within r of the mask, and differ from the old only on its outermost pixels
    rng = np.random.default_rng(radius)
    mask = np.zeros((160, 200), dtype=bool)
    mask[60:90, 50:120] = True
    mask[rng.integers(0, 160, 12), rng.integers(0, 200, 12)] = True  # specks, some near the edge
    side = 2 * radius + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (side, side))
    old = cv2.dilate(mask.astype(np.uint8), kernel).astype(bool) & ~mask
    new = ring(mask, radius)
    within = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    np.testing.assert_array_equal(new, (within <= radius) & ~mask)
    assert not (new & ~old).any()
    assert not (old & ~ring(mask, radius + 1)).any()
    assert (old & ~new).sum() <= 0.1 * old.sum()


def test_dilating_an_empty_mask_gives_an_empty_mask():
    assert not dilate(np.zeros((20, 30), dtype=bool), 5).any()
