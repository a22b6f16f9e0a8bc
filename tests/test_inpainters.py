import numpy as np
import pytest
from hydra.utils import instantiate

from object_displacement.inpainters.base import Inpainter
from tests.conftest import compose_config

INPAINTERS = ["telea", "ns", "patchmatch"]


def build(name: str) -> Inpainter:
    return instantiate(compose_config([f"inpainter={name}"]).inpainter)


def noisy_photo(height: int, width: int) -> np.ndarray:
    rng = np.random.default_rng(1)
    return rng.integers(0, 256, size=(height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize("name", INPAINTERS)
@pytest.mark.parametrize(("height", "width"), [(64, 64), (333, 517)])
def test_pixels_outside_the_mask_are_bit_identical(name, height, width):
    image = noisy_photo(height, width)
    mask = np.zeros((height, width), dtype=bool)
    mask[height // 3 : height // 2, width // 4 : width // 2] = True
    mask[5:9, -12:-3] = True  # a second hole near the border
    out = build(name).inpaint(image, mask)
    assert out.shape == image.shape and out.dtype == np.uint8
    np.testing.assert_array_equal(out[~mask], image[~mask])
    assert (out[mask] != image[mask]).any()


@pytest.mark.parametrize("name", INPAINTERS)
def test_a_hole_in_a_flat_wall_is_filled_with_the_wall(name):
    image = np.full((80, 100, 3), (40, 120, 200), dtype=np.uint8)
    mask = np.zeros((80, 100), dtype=bool)
    mask[30:50, 40:60] = True
    image[mask] = (255, 255, 0)  # what was there must not survive
    out = build(name).inpaint(image, mask)
    assert np.abs(out[mask].astype(int) - (40, 120, 200)).max() <= 4


def test_patchmatch_does_not_copy_from_avoided_pixels():
    # left half blue, right half red; the hole sits in the blue half next to the red
    image = np.zeros((60, 120, 3), dtype=np.uint8)
    image[:, :60] = (0, 0, 255)
    image[:, 60:] = (255, 0, 0)
    mask = np.zeros((60, 120), dtype=bool)
    mask[20:40, 45:60] = True
    avoid = np.zeros_like(mask)
    avoid[:, 60:] = True
    out = build("patchmatch").inpaint(image, mask, avoid=avoid)
    assert (out[mask] == (0, 0, 255)).all()


@pytest.mark.parametrize("name", INPAINTERS)
def test_an_empty_mask_returns_the_image_unchanged(name):
    image = noisy_photo(32, 48)
    out = build(name).inpaint(image, np.zeros((32, 48), dtype=bool))
    np.testing.assert_array_equal(out, image)
    assert out is not image
