from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from object_displacement.errors import DisplacementError
from object_displacement.io import read_image, write_image

PHOTO = np.zeros((20, 30, 3), dtype=np.uint8)
PHOTO[:10] = (250, 10, 10)  # red top half, so orientation is visible


def save(tmp_path: Path, name: str, pil: Image.Image, **kwargs) -> Path:
    path = tmp_path / name
    pil.save(path, **kwargs)
    return path


def assert_rgb(image: np.ndarray, shape: tuple[int, int]) -> None:
    assert image.dtype == np.uint8 and image.shape == (*shape, 3)


def test_grayscale_becomes_rgb(tmp_path):
    image = read_image(save(tmp_path, "g.png", Image.fromarray(np.full((20, 30), 77, np.uint8))))
    assert_rgb(image, (20, 30))
    assert (image == 77).all()


def test_rgba_is_flattened_onto_white(tmp_path):
    rgba = np.zeros((20, 30, 4), dtype=np.uint8)
    rgba[..., 0] = 200
    rgba[:, 15:, 3] = 255  # left half fully transparent
    image = read_image(save(tmp_path, "a.png", Image.fromarray(rgba)))
    assert_rgb(image, (20, 30))
    assert (image[:, :15] == 255).all() and (image[:, 15:] == (200, 0, 0)).all()


def test_sixteen_bit_grayscale_is_scaled_to_eight_bit(tmp_path):
    values = np.full((20, 30), 65535, dtype=np.uint16)
    values[:, :10] = 32896  # mid grey
    image = read_image(save(tmp_path, "16.png", Image.fromarray(values)))
    assert_rgb(image, (20, 30))
    assert (image[:, 10:] == 255).all() and (image[:, :10] == 128).all()


def test_palette_image_keeps_its_colours(tmp_path):
    pil = Image.fromarray(PHOTO).convert("P", palette=Image.Palette.ADAPTIVE, colors=4)
    image = read_image(save(tmp_path, "p.png", pil))
    assert_rgb(image, (20, 30))
    np.testing.assert_array_equal(image, PHOTO)


def test_exif_rotation_is_applied(tmp_path):
    exif = Image.Exif()
    exif[0x0112] = 6  # stored rotated: viewers turn it 90 degrees clockwise
    path = save(tmp_path, "r.jpg", Image.fromarray(PHOTO), exif=exif, quality=95)
    image = read_image(path)
    assert_rgb(image, (30, 20))
    assert image[15, 15, 0] > 200 and image[15, 2, 0] < 60  # red top half is now the right half


def test_unreadable_and_missing_files_are_user_errors(tmp_path):
    bad = tmp_path / "bad.png"
    bad.write_text("not an image")
    with pytest.raises(DisplacementError, match="cannot read"):
        read_image(bad)
    with pytest.raises(DisplacementError, match="not found"):
        read_image(tmp_path / "missing.png")
    with pytest.raises(DisplacementError, match="unknown sample"):
        read_image("skimage:no_such_photo")


def test_write_is_whole_or_nothing(tmp_path, monkeypatch):
    target = tmp_path / "out.png"
    write_image(target, PHOTO)
    before = target.read_bytes()

    def broken_save(self, *args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(Image.Image, "save", broken_save)
    with pytest.raises(OSError):
        write_image(target, np.zeros_like(PHOTO))
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["out.png"]  # no temp file left


def test_masks_are_written_as_black_and_white(tmp_path):
    mask = np.zeros((4, 5), dtype=bool)
    mask[1, 2] = True
    written = np.asarray(Image.open(write_image(tmp_path / "m.png", mask)))
    assert written[1, 2] == 255 and written.sum() == 255


def test_a_photo_above_a_small_bound_names_its_size_in_megapixels(tmp_path):
    # a 451x300 photo against max_megapixels=0.1 said "(0 MP), above max_megapixels=0.1"
    path = save(tmp_path, "small.png", Image.new("RGB", (451, 300)))
    with pytest.raises(DisplacementError, match=r"451x300 \(0\.135 MP\), above max_megapixels=0\.1"):
        read_image(path, max_megapixels=0.1)
