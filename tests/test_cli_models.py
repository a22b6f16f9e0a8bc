"""The model pipeline from the command line, on tiny random models, offline."""

import json
import re

import pytest

from tests.conftest import displace
from tests.tiny_models import overrides

pytestmark = [pytest.mark.slow, pytest.mark.models]  # the tiny models are built here


@pytest.mark.parametrize(
    ("inpainter", "target"),
    [
        ("sdxl", ["image=skimage:coffee", "target.prompt=cup"]),  # automatic mode: text only
        ("sdxl", ["image=skimage:coffee", "target.prompt=cup", "target.box=[170,20,440,300]"]),  # prompted
        ("sd", ["image=skimage:coffee", "target.prompt=cup", "target.point=[300,150]"]),  # prompted: point
    ],
    ids=["sdxl-automatic", "sdxl-box", "sd-point"],
)
def test_model_pipeline_runs_end_to_end(tiny_models, tmp_path, inpainter, target):
    run = tmp_path / "run"
    proc = displace(*overrides(tiny_models, inpainter), *target, "dx=40", "dy=10", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["mode"] == "move" and metrics["candidate_count"] >= 1
    assert (run / "output.png").exists() and (run / "grid.png").exists()
    if "target.prompt=cup" in target and len(target) == 2:
        assert metrics["target"] == "prompt"


def test_headline_command_runs_the_demo_with_clip_and_sdxl(tiny_models, tmp_path):
    # `selector=clip inpainter=sdxl` on the demo: GrabCut finds the rocket in its box, CLIP checks it
    clip_and_sdxl = [o for o in overrides(tiny_models) if not o.startswith("segmenter")]
    proc = displace(*clip_and_sdxl, f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["target"] == "prompt+box"


def test_a_prompt_matching_nothing_is_one_line(tiny_models, tmp_path):
    proc = displace(
        *overrides(tiny_models),
        "selector.min_score=0.99",
        "image=skimage:coffee",
        "target.prompt=backpack",
        "dx=10",
        f"hydra.run.dir={tmp_path}",
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().startswith("error: no object matching 'backpack' (best: ")
    assert len(proc.stderr.strip().splitlines()) == 1


def test_missing_weights_are_one_line_naming_the_fetch_command(tmp_path):
    proc = displace("segmenter=sam", f"segmenter.weights_dir={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "sam_vit_b_01ec64.pth" in lines[0] and "make weights" in lines[0]


def test_a_multirun_loads_each_model_once(tiny_models, tmp_path):
    proc = displace(
        "-m",
        *overrides(tiny_models),
        "image=skimage:coffee",
        "target.prompt=cup",
        "target.box=[170,20,440,300]",
        "dx=30",
        "mask_policy.seam=0.02,0.05",
        f"hydra.sweep.dir={tmp_path}",
    )
    assert proc.returncode == 0, proc.stderr
    logs = "".join((tmp_path / job / "displace.log").read_text() for job in ("0", "1"))
    loads = re.findall(r"loading \('(\w+)'", logs)
    assert sorted(loads) == ["diffusers", "open_clip", "sam"]
