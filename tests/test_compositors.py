import numpy as np
import pytest
from hydra.utils import instantiate

from object_displacement.mask_policies.rings import RingMaskPolicy
from object_displacement.types import Move
from tests.conftest import CONF, compose_config

COMPOSITORS = sorted(p.stem for p in (CONF / "compositor").glob("*.yaml"))


def plan_for(square_scene, **move):
    image, mask = square_scene
    rng = np.random.default_rng(2)
    image = image.copy()
    image[mask == 0] = rng.integers(90, 160, size=(int((~mask).sum()), 3), dtype=np.uint8)
    policy = RingMaskPolicy(units="pixels", seam=4, hole_ring=4, prefill=True)
    return policy.plan(image, mask, Move(**{"dx": 50, "dy": 10, **move}))


@pytest.mark.parametrize("name", COMPOSITORS)
@pytest.mark.parametrize("move", [{}, {"scale": 1.5, "flip": True}])
def test_compositors_leave_pixels_outside_the_edit_untouched(square_scene, name, move):
    plan = plan_for(square_scene, **move)
    compositor = instantiate(compose_config([f"compositor={name}"]).compositor)
    composite, inpaint = compositor(plan)
    edit = (plan.alpha > 0) | plan.seam_mask | plan.hole_mask
    np.testing.assert_array_equal(composite[~edit], plan.background[~edit])
    assert not (inpaint & plan.moved_mask).any()


@pytest.mark.parametrize("name", COMPOSITORS)
def test_the_seam_is_inpainted_or_blended_never_both(square_scene, name):
    plan = plan_for(square_scene)
    compositor = instantiate(compose_config([f"compositor={name}"]).compositor)
    composite, inpaint = compositor(plan)
    seam = plan.seam_mask
    if compositor.blends_seam:
        assert not (inpaint & seam).any()
    else:
        assert (inpaint & seam).sum() == seam.sum()
        np.testing.assert_array_equal(composite[seam], plan.background[seam])


def test_paste_keeps_the_object_exact_and_feather_softens_only_its_edge(square_scene):
    plan = plan_for(square_scene)
    paste, _ = instantiate(compose_config(["compositor=paste"]).compositor)(plan)
    np.testing.assert_array_equal(paste[plan.moved_mask], plan.layer[plan.moved_mask])
    feather, _ = instantiate(
        compose_config(["compositor=feather", "compositor.units=pixels", "compositor.width=4"]).compositor
    )(plan)
    core = plan.moved_mask.copy()
    core[:, :] = False
    ys, xs = np.nonzero(plan.moved_mask)
    core[ys.min() + 5 : ys.max() - 4, xs.min() + 5 : xs.max() - 4] = True
    np.testing.assert_array_equal(feather[core], plan.layer[core])
    edge = plan.moved_mask & ~core
    assert (feather[edge] != plan.layer[edge]).any()
