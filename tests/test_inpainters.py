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


def wood_and_red_disk() -> tuple[np.ndarray, np.ndarray]:
    """Wood-like brown stripes, a textured red disk (a saucer) on them, a hole in the red."""
    rng = np.random.default_rng(3)
    ys, xs = np.mgrid[0:240, 0:320]
    grain = 0.5 + 0.5 * np.sin(xs / 3.0 + 2.0 * np.sin(ys / 17.0))
    wood = np.stack([120 + 60 * grain, 70 + 30 * grain, 30 + 10 * grain], axis=2)
    image = (wood + rng.normal(0, 4, wood.shape)).clip(0, 255).astype(np.uint8)
    disk = (xs - 160) ** 2 + (ys - 120) ** 2 < 62**2
    red = np.array([190, 30, 25]) + rng.normal(0, 6, (240, 320, 3))
    image[disk] = red[disk].clip(0, 255).astype(np.uint8)
    hole = (xs - 160) ** 2 + (ys - 120) ** 2 < 42**2
    image[hole] = (255, 255, 255)
    return image, hole


def test_patchmatch_fills_a_hole_in_red_with_red_not_with_far_away_wood():
    image, hole = wood_and_red_disk()
    out = build("patchmatch").inpaint(image, hole)
    filled = out[hole].astype(int)
    reddish = (filled[:, 0] > 140) & (filled[:, 1] < 80)
    assert reddish.mean() > 0.98


def test_patchmatch_fills_separate_parts_in_parallel_exactly_as_one_by_one():
    image = noisy_photo(200, 260)
    image[:, :130] //= 2  # two different surfaces
    mask = np.zeros((200, 260), dtype=bool)
    mask[30:70, 20:80] = True
    mask[120:170, 160:230] = True
    mask[10:14, 200:204] = True
    one = build("patchmatch")
    one.workers = 1
    many = build("patchmatch")
    many.workers = 3
    np.testing.assert_array_equal(one.inpaint(image, mask), many.inpaint(image, mask))


def test_patchmatch_copies_from_no_other_hole_and_no_avoided_pixel():
    # every part's source is its own band, less the holes and the avoided pixels
    from object_displacement.inpainters.patchmatch import PatchMatchInpainter, mask_parts

    mask = np.zeros((120, 200), dtype=bool)
    mask[40:60, 30:60] = True
    mask[40:60, 120:150] = True
    avoid = np.zeros_like(mask)
    avoid[30:70, 70:80] = True
    inpainter = PatchMatchInpainter(source_band=0.5)
    parts = mask_parts(mask, gap=7)
    assert len(parts) == 2
    for part in parts:
        (x0, y0, x1, y1), source = inpainter.source_box(part, mask | avoid)
        assert not (source & (mask | avoid)[y0:y1, x0:x1]).any()
        assert source.any()


@pytest.mark.parametrize("band", [0.06, None])
def test_patchmatch_takes_the_subject_as_every_inpainter_does(band):
    # the ghost check passes the target's prompt to every backend (issue 9); PatchMatch ignores it
    from object_displacement.inpainters.patchmatch import PatchMatchInpainter

    image = noisy_photo(80, 100)
    mask = np.zeros((80, 100), dtype=bool)
    mask[30:50, 40:60] = True
    inpainter = PatchMatchInpainter(source_band=band)
    np.testing.assert_array_equal(inpainter.inpaint(image, mask, None, "cup"), inpainter.inpaint(image, mask))


def test_patchmatch_fills_a_large_crop_at_its_working_resolution(monkeypatch):
    # a vacated region of a 12 MP photo needs no 12 MP of iterations; the fill stays right
    import patchmatch

    from object_displacement.inpainters.patchmatch import PatchMatchInpainter

    seen: list[int] = []
    real = patchmatch.inpaint

    def recording(image, *args, **kwargs):
        seen.append(image.shape[0] * image.shape[1])
        return real(image, *args, **kwargs)

    monkeypatch.setattr(patchmatch, "inpaint", recording)
    image, hole = wood_and_red_disk()
    out = PatchMatchInpainter(work_pixels=6000, min_work_scale=0.1).inpaint(image, hole)
    assert seen and max(seen) <= 6000
    filled = out[hole].astype(int)
    assert ((filled[:, 0] > 140) & (filled[:, 1] < 80)).mean() > 0.98  # red, not wood
    np.testing.assert_array_equal(out[~hole], image[~hole])


def test_patchmatch_working_resolution_is_never_coarser_than_its_floor():
    # at 0.21x a 12 MP astronaut's wall was filled with a strand of her hair; at 0.5x it was not
    from object_displacement.inpainters.patchmatch import PatchMatchInpainter

    inpainter = PatchMatchInpainter(work_pixels=200_000, min_work_scale=0.5)
    assert inpainter.work_factor(4_400_000) == 0.5
    assert inpainter.work_factor(383_000) == pytest.approx(0.7226, abs=1e-3)
    assert inpainter.work_factor(150_000) == 1.0


def test_patchmatch_continues_a_sky_gradient_through_a_tall_narrow_hole():
    # the rocket demo's conditions: a sky darkening upwards and a tall, narrow hole. With
    # a band thinner than the coarse levels' patches, only the sky above the hole held
    # whole patches there, and the old place became a darker column (12 levels on average)
    rng = np.random.default_rng(0)
    height, width = 420, 220
    sky = np.linspace(50, 130, height)[:, None, None] * np.array([0.8, 0.9, 1.2])
    image = np.clip(sky + rng.normal(0, 2.5, (height, width, 1)), 0, 255).astype(np.uint8)
    hole = np.zeros((height, width), dtype=bool)
    hole[110:400, 90:136] = True
    grey = build("patchmatch").inpaint(image, hole).astype(np.float64).mean(axis=2)
    rows = grey[140:380]
    beside = np.concatenate([rows[:, 70:88], rows[:, 138:156]], axis=1).mean(axis=1)
    assert np.abs(rows[:, 90:136].mean(axis=1) - beside).max() < 4


def test_patchmatch_reaches_beyond_its_band_only_over_the_same_surface():
    # past the band, the red saucer is reached, the wood around it is not
    from object_displacement.inpainters.patchmatch import PatchMatchInpainter

    image, hole = wood_and_red_disk()
    inpainter = PatchMatchInpainter(min_band=8, reach=40)
    _, band = inpainter.source_box(hole, hole)
    (x0, y0, x1, y1), source = inpainter.source_box(hole, hole, image)
    colours = image[y0:y1, x0:x1][source].astype(int)
    assert ((colours[:, 0] > 140) & (colours[:, 1] < 80)).mean() > 0.99
    assert source.sum() > 1.5 * band.sum()


@pytest.mark.models  # the default segmenter runs IS-Net through onnxruntime
def test_the_shuttles_old_place_gets_wall_not_the_astronauts_suit():
    # a short move joins the hole and the seam ring around the moved shuttle into one part;
    # filled as one, the hole copied the orange suit that stands beside the ring's foot
    from object_displacement.api import load_pipeline, move

    moved = move(
        "skimage:astronaut",
        box=[352, 0, 475, 290],
        dx=-100,
        pipeline=load_pipeline(["logger=none", "cache.enabled=false"]),
    )
    plan = moved.result.plan
    vacated = plan.source_mask & ~plan.moved_mask
    red, green = (moved.output[..., c].astype(int) for c in (0, 1))
    orange = (red > 150) & (red - green > 60)
    assert orange[vacated].mean() < 0.01


def two_parts_and_a_seam() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A noisy photo of two surfaces, a hole on each and a seam ring around a pasted square."""
    image = noisy_photo(200, 260)
    image[:, :130] //= 2
    mask = np.zeros((200, 260), dtype=bool)
    mask[30:70, 20:80] = True
    mask[120:170, 160:230] = True
    seam = np.zeros_like(mask)
    seam[20:60, 150:200] = True
    seam[24:56, 154:196] = False
    return image, mask | seam, seam


def test_patchmatch_fills_each_part_in_a_crop_of_its_own_through_the_base_class():
    # the base class crops, fills and pastes for every backend; PatchMatch says which crops
    from object_displacement.inpainters.patchmatch import PatchMatchInpainter

    calls: list[tuple[tuple[int, int], int]] = []

    class Spy(PatchMatchInpainter):
        def fill(self, image, mask, avoid=None, subject=None):
            calls.append((image.shape[:2], int(mask.sum())))
            return super().fill(image, mask, avoid, subject)

    image, mask, seam = two_parts_and_a_seam()
    out = Spy(workers=1).inpaint(image, mask, seam=seam)
    assert sorted(size for _, size in calls) == sorted([40 * 60, 50 * 70, int(seam.sum())])
    assert all(h * w < image.shape[0] * image.shape[1] / 2 for (h, w), _ in calls)  # crops, not the photo
    np.testing.assert_array_equal(out[~mask], image[~mask])
    np.testing.assert_array_equal(out, PatchMatchInpainter(workers=1).inpaint(image, mask, seam=seam))


def test_patchmatch_pastes_through_the_paste_step_a_subclass_may_change():
    from object_displacement.inpainters.patchmatch import PatchMatchInpainter

    class Marked(PatchMatchInpainter):
        def paste(self, original, filled, mask):
            out = original.copy()
            out[mask] = (1, 2, 3)
            return out

    image, mask, seam = two_parts_and_a_seam()
    out = Marked().inpaint(image, mask, seam=seam)
    assert (out[mask] == (1, 2, 3)).all()
    np.testing.assert_array_equal(out[~mask], image[~mask])


def test_a_crop_fills_at_its_scale_copying_only_from_its_source():
    # the base class owns the working resolution and what a crop may copy from
    from object_displacement.inpainters.base import Crop

    seen: list[tuple[tuple[int, int], np.ndarray | None]] = []

    class Recording(Inpainter):
        def plan_crops(self, image, mask, avoid=None, seam=None):
            source = np.zeros((40, 60), dtype=bool)
            source[:, :20] = True  # only the crop's left third
            return [Crop((10, 20, 70, 60), mask, source, self.scale)]

        def fill(self, image, mask, avoid=None, subject=None):
            seen.append((image.shape[:2], avoid))
            return np.full_like(image, 7)

    image = noisy_photo(80, 100)
    mask = np.zeros((80, 100), dtype=bool)
    mask[30:50, 40:60] = True
    for scale, shape in [(1.0, (40, 60)), (0.5, (20, 30))]:
        inpainter = Recording()
        inpainter.scale = scale
        out = inpainter.inpaint(image, mask)
        np.testing.assert_array_equal(out[~mask], image[~mask])
        assert (out[mask] == 7).all()
        size, avoid = seen.pop()
        assert size == shape and avoid is not None
        assert not avoid[:, : shape[1] // 3].any() and avoid[:, -1].all()  # all but the source
