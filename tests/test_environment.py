"""What a user's environment may lack: a new enough library, a network to the model hub."""

from __future__ import annotations

import os
import re

import pytest

from object_displacement.errors import DisplacementError
from object_displacement.weights import TRANSFORMERS_MIN, require, too_old
from tests.conftest import ROOT, displace


def test_the_transformers_pin_is_the_version_the_code_needs():
    (pin,) = re.findall(r'"(transformers[^"]*)"', (ROOT / "pyproject.toml").read_text())
    assert pin == f"transformers>={TRANSFORMERS_MIN}"  # Sam3Model and `threshold=` are v5's


def test_versions_before_the_minimum_are_too_old_and_its_pre_releases_are_not():
    assert too_old("4.57.1", "5.0") and too_old("4.40.0", "5.0")
    assert not too_old("5.0.0", "5.0") and not too_old("5.0.0rc1", "5.0") and not too_old("5.24.0", "5.0")


def test_a_library_that_is_missing_or_too_old_is_one_line_saying_how_to_upgrade():
    with pytest.raises(
        DisplacementError, match=r"^segmenter=x needs no-such-lib 1.0 or later and this"
    ) as err:
        require("no-such-lib", "1.0", "segmenter=x")
    assert "pip install -U 'no-such-lib>=1.0'" in str(err.value)
    with pytest.raises(DisplacementError, match=r"this environment has pytest \d"):
        require("pytest", "999.0", "segmenter=x")
    require("pytest", "1.0", "segmenter=x")  # new enough: nothing said


@pytest.mark.slow
def test_a_hub_out_of_reach_without_offline_mode_is_one_error_line_not_a_minute_of_retries(tmp_path):
    """A new user's first run on a machine without a network and without HF_HUB_OFFLINE."""
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")}
    env["HF_ENDPOINT"] = "https://hub.invalid"  # never resolves, as with no network (and retried)
    env["HF_HOME"] = str(tmp_path / "hf")  # an empty cache
    proc = displace("selector=clip", "inpainter=sdxl", f"hydra.run.dir={tmp_path / 'run'}", env=env)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error: CLIP weights") and "make weights" in lines[0]
