"""The weights lifecycle (check, fetch, load), declared once in ``ModelWeights``: every
component that runs a model has all three steps, and only those components are asked."""

import json
import subprocess
import sys

import pytest
from hydra.utils import instantiate

from object_displacement.segmenters.base import Segmenter
from object_displacement.segmenters.grabcut import GrabCutSegmenter
from object_displacement.segmenters.sam import SamSegmenter
from object_displacement.weights import ModelWeights, WeightsMissing, check_weights
from tests.conftest import CONF, compose_config

MODEL_OPTIONS = {
    ("segmenter", "salient"),
    ("segmenter", "sam"),
    ("segmenter", "sam3"),
    ("segmenter", "grounded"),
    ("selector", "clip"),
    ("matting", "salient"),
    ("inpainter", "sd"),
    ("inpainter", "sdxl"),
}
"""The options whose components load weights; every other option needs none."""
OPTIONS = [
    (group, path.stem)
    for group in ("segmenter", "selector", "matting", "inpainter")
    for path in sorted((CONF / group).glob("*.yaml"))
]


@pytest.mark.parametrize(("group", "option"), OPTIONS, ids=[f"{g}={o}" for g, o in OPTIONS])
def test_every_option_that_loads_weights_has_the_whole_lifecycle(group, option, tmp_path):
    component = instantiate(compose_config([f"{group}={option}", f"paths.run_dir={tmp_path}"])[group])
    assert isinstance(component, ModelWeights) == ((group, option) in MODEL_OPTIONS)


def test_every_model_option_is_a_config_file():
    assert set(OPTIONS) >= MODEL_OPTIONS


def test_a_model_component_missing_a_step_cannot_be_built():
    class Forgetful(Segmenter, ModelWeights):
        def propose(self, image, target):
            return []

        def check_weights(self):
            pass

        def load(self):
            return None

    with pytest.raises(TypeError, match="fetch_weights"):
        Forgetful()


def test_the_check_asks_the_model_components_and_skips_the_others(tmp_path):
    check_weights([GrabCutSegmenter()])
    with pytest.raises(WeightsMissing, match="make weights"):
        check_weights([GrabCutSegmenter(), SamSegmenter(checkpoint=str(tmp_path / "sam.pth"))])


@pytest.mark.models  # the tiny models are built here
@pytest.mark.slow  # the check runs in a fresh process, to see what it imports
def test_checking_weights_that_are_there_imports_no_model_library(tiny_models):
    # a run with missing weights fails in seconds: the check must not pull in torch
    code = f"""
import json, sys
from object_displacement.inpainters.diffusion import DiffusionInpainter
from object_displacement.segmenters.sam import SamSegmenter
from object_displacement.selectors.clip import ClipSelector
from object_displacement.weights import check_weights
check_weights([
    SamSegmenter(checkpoint={str(tiny_models["sam"])!r}),
    ClipSelector(model={"local-dir:" + str(tiny_models["clip"])!r}),
    DiffusionInpainter({str(tiny_models["sdxl"])!r}),
])
libraries = ("torch", "open_clip", "diffusers", "transformers", "segment_anything", "onnxruntime")
print(json.dumps([name for name in libraries if name in sys.modules]))
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
