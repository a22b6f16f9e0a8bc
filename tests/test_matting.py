"""Issue 11, soft edges: ``matting=closed_form`` moves a soft-edged object without a halo of
its old background, and its old place loses every pixel the object touched."""

from __future__ import annotations

import subprocess
import sys

import cv2
import numpy as np
import pytest

from object_displacement.compositors.paste import PasteCompositor
from object_displacement.errors import DisplacementError
from object_displacement.geometry import dilate, place_object, shift
from object_displacement.inpainters.opencv import OpenCVInpainter
from object_displacement.mask_policies.rings import RingMaskPolicy
from object_displacement.matting.closed_form import ClosedFormMatting
from object_displacement.types import Move, Plan
from tests.conftest import ROOT

OLD_BACKGROUND = (250, 0, 250)  # magenta: no red in the object or the new background
NEW_BACKGROUND = (0, 60, 200)
OBJECT = (20, 200, 40)
DX = 90


def soft_disc() -> tuple[np.ndarray, np.ndarray]:
    """A green disc with a blurred edge over magenta, with blue where it will go; its alpha."""
    height, width = 120, 200
    canvas = np.zeros((height, width), np.uint8)
    cv2.circle(canvas, (50, 60), 28, 255, -1)
    alpha = cv2.GaussianBlur(canvas, (0, 0), sigmaX=3).astype(np.float32) / 255
    background = np.empty((height, width, 3), np.float32)
    background[:, : width // 2] = OLD_BACKGROUND
    background[:, width // 2 :] = NEW_BACKGROUND
    a = alpha[..., None]
    image = np.rint(np.float32(OBJECT) * a + background * (1 - a)).astype(np.uint8)
    return image, alpha


def edit(matting: ClosedFormMatting | None) -> tuple[np.ndarray, Plan, np.ndarray]:
    """The disc moved DX right (matte or hard mask), filled with Telea; output, plan, alpha."""
    image, alpha = soft_disc()
    mask = alpha >= 0.5
    matte = None if matting is None else matting(image, mask)
    policy = RingMaskPolicy(units="pixels", seam=3, hole_ring=3)
    plan = policy.plan(image, mask, Move(DX, 0), matte)
    plan.composite, plan.inpaint_mask = PasteCompositor()(plan)
    output = OpenCVInpainter(method="telea").inpaint(plan.composite, plan.inpaint_mask, avoid=plan.moved_mask)
    return output, plan, alpha


def test_a_matted_object_carries_no_old_background_to_its_new_place():
    output, _, alpha = edit(ClosedFormMatting(band=6, units="pixels"))  # the blur reaches ~8 px
    near = dilate(shift(alpha > 0, DX, 0), 2)  # the new place and its fringe
    red = output[..., 0][near].astype(int)
    # magenta is the only red there but the object's own 20: more is the old halo
    assert red.max() <= 35, red.max()


def test_the_hard_mask_does_carry_the_halo_the_matte_removes():
    output, _, alpha = edit(None)
    near = dilate(shift(alpha > 0, DX, 0), 2)
    assert output[..., 0][near].max() > 80  # what the test above guards against


def test_the_hole_covers_every_pixel_the_matte_touches():
    image, alpha = soft_disc()
    mask = alpha >= 0.5
    matte = ClosedFormMatting(band=4, units="pixels")(image, mask)
    assert (matte.support & ~mask).sum() > 100  # the fringe reaches past the hard mask
    plan = RingMaskPolicy(units="pixels", seam=3, hole_ring=0).plan(image, mask, Move(DX, 0), matte)
    assert not (matte.support & ~(plan.hole_mask | plan.moved_mask)).any()
    assert not (plan.seam_mask & (plan.alpha > 0)).any()  # the new fringe is kept, not inpainted


def test_the_matte_is_closer_to_the_true_alpha_than_the_hard_mask():
    image, alpha = soft_disc()
    mask = alpha >= 0.5
    matte = ClosedFormMatting(band=6, units="pixels")(image, mask)
    hard_error = np.abs(mask - alpha).sum()
    assert np.abs(matte.alpha - alpha).sum() < 0.5 * hard_error


def test_a_bounded_band_is_solved_smaller_and_stays_close():
    image, alpha = soft_disc()
    mask = alpha >= 0.5
    full = ClosedFormMatting(band=6, units="pixels", work_pixels=None)(image, mask)
    small = ClosedFormMatting(band=6, units="pixels", work_pixels=1000)(image, mask)
    assert np.abs(small.alpha - full.alpha).mean() < 0.02
    assert np.abs(small.alpha - alpha).sum() < 0.6 * np.abs(mask - alpha).sum()


def test_a_matte_does_not_move_the_anchor():
    image, alpha = soft_disc()
    mask = alpha >= 0.5
    wide = dilate(mask, 5).astype(np.float32) * 0.3
    wide[mask] = 1.0
    for anchor in ("center", "bottom"):
        _, hard, _ = place_object(image, mask, 30, 10, 1.0, True, anchor)
        _, soft, _ = place_object(image, mask, 30, 10, 1.0, True, anchor, coverage=wide)
        np.testing.assert_array_equal(hard >= 0.5, soft >= 0.5)


@pytest.mark.slow
def test_without_pymatting_matting_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "pymatting", None)  # how Python marks a module absent
    with pytest.raises(DisplacementError, match=r"pip install"):
        ClosedFormMatting()
    script = (
        "import runpy, sys; sys.modules['pymatting'] = None; "
        f"sys.argv = ['displace', 'matting=closed_form', 'logger=none', 'paths.run_dir={tmp_path}']; "
        f"runpy.run_path({str(ROOT / 'scripts' / 'displace.py')!r}, run_name='__main__')"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and "pip install" in lines[0], proc.stderr


@pytest.mark.parametrize("margin", [0, 2])
def test_an_object_that_fills_the_frame_keeps_its_hard_edge_instead_of_failing(margin, caplog):
    """pymatting needs background around the object; with none (the object nearly fills the
    photo) the matte is the hard mask, said in a warning, never pymatting's traceback."""
    image = np.full((60, 80, 3), 120, np.uint8)
    mask = np.zeros((60, 80), bool)
    mask[margin : 60 - margin, margin : 80 - margin] = True
    matte = ClosedFormMatting()(image, mask)
    np.testing.assert_array_equal(matte.alpha, mask.astype(np.float32))
    assert "its edge stays hard" in caplog.text
