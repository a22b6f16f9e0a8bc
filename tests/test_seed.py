"""The top-level ``seed`` reaches every component that draws random numbers, in every preset
and option, and in each job of a sweep (``-m seed=0,1``); a seed set on a component wins."""

from __future__ import annotations

import inspect
import json
import os
import subprocess
import sys
from typing import Any

import pytest
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf

from tests.conftest import CONF, ROOT, compose_config

GROUPS = ("segmenter", "selector", "mask_policy", "compositor", "inpainter", "ghost_check")
OVERRIDES = [
    [f"{group}={path.stem}"] for group in GROUPS for path in sorted((CONF / group).glob("*.yaml"))
] + [[f"experiment={path.stem}"] for path in sorted((CONF / "experiment").glob("*.yaml"))]


def takes_seed(target: str) -> bool:
    return "seed" in inspect.signature(get_class(target)).parameters


def seeded(node: Any, path: str) -> dict[str, dict]:
    """Every component under ``node`` (resolved) whose class takes a ``seed``, by its dotted path."""
    found = {}
    if isinstance(node, dict):
        if "_target_" in node and takes_seed(node["_target_"]):
            found[path] = node
        for key, value in node.items():
            found |= seeded(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found |= seeded(value, f"{path}.{i}")
    return found


def seeded_components(overrides: list[str]) -> dict[str, dict]:
    cfg = compose_config(overrides)
    return {
        path: node
        for group in GROUPS
        for path, node in seeded(OmegaConf.to_container(cfg[group], resolve=True), group).items()
    }


@pytest.mark.parametrize("overrides", OVERRIDES, ids=[o[0] for o in OVERRIDES])
def test_the_top_level_seed_reaches_every_seeded_component(overrides):
    components = seeded_components([*overrides, "seed=1"])
    assert "mask_policy" in components  # the speckles: every configuration has a seeded part
    for path, node in components.items():
        assert node.get("seed") == 1, f"{path} ignores the top-level seed: add seed: ${{oc.select:seed,0}}"
        assert instantiate(node).seed == 1, path


def test_a_components_own_seed_wins_over_the_top_level_one():
    components = seeded_components(["seed=1", "inpainter.seed=3", "segmenter.seed=5"])
    assert components["inpainter"]["seed"] == 3 and components["segmenter"]["seed"] == 5
    assert components["mask_policy"]["seed"] == 1


@pytest.mark.slow
def test_a_seed_sweep_gives_each_job_its_seed(tmp_path):
    sweep = tmp_path / "sweep"
    args = ["-m", "seed=0,1", "logger=none", "cache.enabled=false", f"hydra.sweep.dir={sweep}"]
    proc = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "displace.py"), *args],
        capture_output=True,
        text=True,
        timeout=600,
        env={**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"},
    )
    assert proc.returncode == 0, proc.stderr
    jobs = []
    for job in sorted(sweep.glob("[0-9]*")):
        cfg = OmegaConf.load(job / ".hydra" / "config.yaml")  # as recorded: interpolations resolve in it
        first = json.loads((job / "metrics.json").read_text())["inpaint_attempts"][0]["inpainter"]
        jobs.append((cfg.seed, cfg.segmenter.seed, cfg.mask_policy.seed, cfg.inpainter.seed, first))
    assert jobs == [(s, s, s, s, f"PatchMatchInpainter seed {s}") for s in (0, 1)]
