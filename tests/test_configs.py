"""Every option of every config group composes and builds the right kind of component."""

import pytest
from hydra.utils import instantiate

from object_displacement.inpainters.base import Inpainter
from object_displacement.loggers.base import RunLogger
from object_displacement.mask_policies.base import MaskPolicy
from object_displacement.matting.base import Matting
from object_displacement.segmenters.base import Segmenter
from object_displacement.selectors.base import Selector
from object_displacement.shadows.base import ShadowMover
from tests.conftest import CONF, compose_config

KINDS = {
    "segmenter": Segmenter,
    "selector": Selector,
    "mask_policy": MaskPolicy,
    "matting": Matting,
    "shadow": ShadowMover,
    "inpainter": Inpainter,
    "logger": RunLogger,
}
OPTIONS = [(group, path.stem) for group in KINDS for path in sorted((CONF / group).glob("*.yaml"))]


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_instantiates(group, option, tmp_path):
    cfg = compose_config([f"{group}={option}", f"paths.run_dir={tmp_path}"])
    if cfg[group].get("_target_") is None:  # `shadow=none`: the stage is off, nothing to build
        assert (group, option) == ("shadow", "none")
        return
    assert isinstance(instantiate(cfg[group]), KINDS[group])


def test_every_group_has_options():
    assert {group for group, _ in OPTIONS} == set(KINDS)


def test_default_config_is_the_learned_segmenter_on_the_rocket_demo():
    cfg = compose_config()
    assert cfg.image is None and cfg.demo.image == "skimage:rocket"
    assert cfg.segmenter._target_.endswith("SalientSegmenter")
    assert cfg.segmenter.grabcut._target_.endswith("GrabCutSegmenter")  # proposed beside it
    assert cfg.inpainter._target_.endswith("PatchMatchInpainter")
    cpu = compose_config(["experiment=cpu"])  # the weight-free path, named
    assert cpu.segmenter._target_.endswith("GrabCutSegmenter")


def test_every_dataset_manifest_exists_and_reads():
    from pathlib import Path

    from object_displacement.dataset import read_manifest

    for path in sorted((CONF / "dataset").glob("*.yaml")):
        cfg = compose_config([f"dataset={path.stem}", "paths.root_dir=" + str(CONF.parent)])
        assert read_manifest(Path(cfg.dataset.manifest))
