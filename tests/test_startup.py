"""What a command loads before it does anything: a fresh interpreter, as a user starts it.

``displace --help`` needs Hydra and the configs, not the pipeline; an edit with the
weight-free components (GrabCut or the ONNX salient segmenter, PatchMatch) needs no torch.
How fast ``--help`` is lives in ``scripts/bench.py`` (case ``help``), not here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # every test starts a fresh interpreter
SCRIPT = str(ROOT / "scripts" / "displace.py")

RUN_SCRIPT = """
import json, runpy, sys
from pathlib import Path

report, sys.argv = Path(sys.argv[1]), sys.argv[2:]  # then argv is the script's own
{before}
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
finally:
    report.write_text(json.dumps({{"modules": sorted(sys.modules), {extra}}}))
"""


def run_script(
    tmp_path: Path, *args: str, before: str = "", extra: str = ""
) -> tuple[subprocess.CompletedProcess, dict]:
    """``python scripts/displace.py ARGS`` in a fresh interpreter; what it printed, and a
    report written as it ended: the modules it had imported (and ``extra``, a dict item)."""
    report = tmp_path / "report.json"
    code = RUN_SCRIPT.format(before=before, extra=extra)
    proc = subprocess.run(
        [sys.executable, "-c", code, str(report), SCRIPT, *args], capture_output=True, text=True, timeout=300
    )
    assert report.is_file(), proc.stderr
    return proc, json.loads(report.read_text())


HELP_PROJECT_MODULES = {"object_displacement", "object_displacement.cli", "object_displacement.config"}
HELP_PROJECT_MODULES |= {"object_displacement.errors"}
HEAVY_LIBRARIES = ("numpy", "cv2", "PIL", "skimage", "torch", "onnxruntime", "wandb", "lightning_fabric")


def top_level(module: str) -> str:
    return module.split(".")[0]


@pytest.mark.parametrize("flag", ["--help", "--hydra-help"])
def test_help_imports_neither_the_pipeline_nor_its_libraries(flag, tmp_path):
    proc, report = run_script(tmp_path, flag)
    assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
    modules = set(report["modules"])
    assert {top_level(m) for m in modules} & set(HEAVY_LIBRARIES) == set()
    assert {m for m in modules if top_level(m) == "object_displacement"} <= HELP_PROJECT_MODULES


COUNT_REPOSITORY_COPIES = """
from hydra._internal.config_repository import CachingConfigRepository
copies = []
init = CachingConfigRepository.__init__
def counted(self, delegate):
    copies.append(1)
    init(self, delegate)
CachingConfigRepository.__init__ = counted
"""


def test_help_copies_hydras_config_repository_once_for_all_groups(tmp_path):
    # Hydra 1.3 deep-copies every config it knows for each group it lists on the help
    # page (about 100 copies here): one for the composed config, one for all the groups
    proc, report = run_script(
        tmp_path, "--help", before=COUNT_REPOSITORY_COPIES, extra='"copies": len(copies)'
    )
    assert proc.returncode == 0, proc.stderr
    assert report["copies"] <= 2


PLAIN_HYDRA = """
import contextlib
import object_displacement.cli
object_displacement.cli.group_listing_once = contextlib.nullcontext
"""


@pytest.mark.parametrize(
    "args", [["--help"], ["--hydra-help"], ["--help", "segmenter=grabcut", "experiment=fast"]]
)
def test_help_page_is_the_one_hydra_prints_on_its_own(args, tmp_path):
    fast, _ = run_script(tmp_path, *args)
    plain, _ = run_script(tmp_path, *args, before=PLAIN_HYDRA)
    assert fast.returncode == plain.returncode == 0, fast.stderr + plain.stderr
    assert fast.stdout == plain.stdout
    assert "== Configuration groups ==" in fast.stdout or "== Flags ==" in fast.stdout


MODEL_LIBRARIES = ("torch", "torchvision", "lightning_fabric", "diffusers", "transformers", "open_clip")
MODEL_LIBRARIES += ("segment_anything",)


@pytest.fixture
def red_square_png(tmp_path, square_scene) -> Path:
    path = tmp_path / "square.png"
    Image.fromarray(square_scene[0]).save(path)
    return path


@pytest.mark.parametrize("segmenter", ["grabcut", pytest.param("salient", marks=pytest.mark.models)])
def test_a_weight_free_edit_imports_no_torch(segmenter, red_square_png, tmp_path):
    overrides = ["segmenter=grabcut"]
    if segmenter == "salient":  # the default segmenter, on a tiny network of IS-Net's shape
        from tests.tiny_models import save_salient

        overrides = [f"segmenter.model={save_salient(tmp_path / 'tiny.onnx')}"]
    out = tmp_path / "moved.png"
    args = [f"image={red_square_png}", "target.box=[28,38,62,72]", "dx=60", "dy=0", f"output={out}"]
    args += [*overrides, "inpainter=patchmatch", "logger=none", "cache.enabled=false"]
    proc, report = run_script(tmp_path, *args, f"hydra.run.dir={tmp_path / 'run'}")
    assert proc.returncode == 0, proc.stderr
    assert np.asarray(Image.open(out)).shape == (120, 160, 3)
    modules = set(report["modules"])
    assert {top_level(m) for m in modules} & set(MODEL_LIBRARIES) == set()
    assert ("onnxruntime" in modules) == (segmenter == "salient")
