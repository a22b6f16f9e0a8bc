"""Shared fixtures (the composed config, patched for tests, and synthetic scenes) and the
checks that hold each test to its tier (`models`, `slow`: see the end of this file)."""

from __future__ import annotations

import importlib.abc
import multiprocessing.util
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"
SCRIPT = str(ROOT / "scripts" / "displace.py")
OFFLINE = {**os.environ, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
"""A CLI run's environment: no model hub, W&B offline (`make test` sets the same)."""


def displace(
    *args: str, env: dict[str, str] | None = None, timeout: float = 600
) -> subprocess.CompletedProcess:
    """The CLI, offline, without W&B or the shared stage cache unless ``args`` set them."""
    defaults = ["logger=none", "cache.enabled=false"]
    defaults = [d for d in defaults if not any(a.startswith(d.split("=")[0] + "=") for a in args)]
    return subprocess.run(
        [sys.executable, SCRIPT, *args, *defaults],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=OFFLINE if env is None else env,
    )


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    """The CLI's config, composed as the API composes it."""
    from object_displacement.config import compose_config as compose

    return compose(overrides or [], CONF)


@pytest.fixture
def make_cfg(tmp_path: Path):
    """Compose ``conf/displace.yaml`` with overrides, writing into ``tmp_path``."""

    def make(*overrides: str) -> DictConfig:
        cfg = compose_config(["logger=none", *overrides])
        with open_dict(cfg):
            cfg.paths.run_dir = str(tmp_path / "run")
            cfg.cache.dir = str(tmp_path / "cache")
        return cfg

    return make


@pytest.fixture
def square_scene() -> tuple[np.ndarray, np.ndarray]:
    """A textured red square on a flat grey 120x160 background, and its exact mask."""
    image = np.full((120, 160, 3), 128, dtype=np.uint8)
    mask = np.zeros((120, 160), dtype=bool)
    mask[40:70, 30:60] = True
    rng = np.random.default_rng(0)
    texture = rng.integers(0, 40, size=(30, 30, 1), dtype=np.uint8)
    image[40:70, 30:60] = np.array([200, 30, 30], dtype=np.uint8) + texture
    return image, mask


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory) -> dict[str, Path]:
    """Tiny random SAM, open_clip, SD and SDXL inpainting models, saved in real formats."""
    from tests.tiny_models import save_all

    return save_all(tmp_path_factory.mktemp("tiny_models"))


# --- the tiers (pyproject.toml registers the markers) ----------------------------------------
# `models`: the test imports a model library in this process. `slow`: it starts a process.
# `make test-fast` runs neither, so the checks below hold every other test to that: a model
# library it imports is refused (ModuleNotFoundError), a process it starts is recorded, and
# either fails the test at teardown with the marker to add. They cost an import-finder call
# per new module and an audit-hook call per audited event; nothing per test.

MODEL_LIBRARIES = frozenset(
    {
        "torch",
        "torchvision",
        "open_clip",
        "timm",
        "segment_anything",
        "diffusers",
        "transformers",
        "accelerate",
        "lightning_fabric",
        "lightning",
        "onnxruntime",  # the learned segmenter's runtime
        "onnx",
    }
)
SPAWN_EVENTS = frozenset(
    {"subprocess.Popen", "os.system", "os.posix_spawn", "os.spawn", "os.exec", "os.fork", "os.forkpty"}
)


def loaded_model_libraries() -> set[str]:
    return {name for name in MODEL_LIBRARIES if name in sys.modules}


class TierGuard(importlib.abc.MetaPathFinder):
    """Holds the running test to its tier: refuses model libraries outside `models` and
    records processes started in the fast tier (outside `slow` and `models`)."""

    def __init__(self) -> None:
        self.test: str | None = None
        self.models = self.slow = True
        self.faults: list[str] = []

    def start(self, item: pytest.Item) -> None:
        self.test, self.faults = item.nodeid, []
        self.models = item.get_closest_marker("models") is not None
        self.slow = item.get_closest_marker("slow") is not None

    def find_spec(self, fullname, path=None, target=None):
        if self.test is None or self.models or fullname.partition(".")[0] not in MODEL_LIBRARIES:
            return None
        self.faults.append(f"imports {fullname}: mark it `models`")
        raise ModuleNotFoundError(
            f"{self.test} is not marked `models`: it may not import {fullname}", name=fullname
        )

    def audit(self, event: str, args: tuple) -> None:
        # a model library may start a helper process of its own when first imported (ctypes'
        # find_library runs ldconfig): only the fast tier is held to "no process"
        if event in SPAWN_EVENTS and self.test is not None and not self.slow and not self.models:
            command = args[1] if event == "subprocess.Popen" else args[:2]
            self.faults.append(f"starts a process ({event} {command!r}): mark it `slow`")


GUARD = TierGuard()
sys.meta_path.insert(0, GUARD)
sys.addaudithook(GUARD.audit)
_spawnv_passfds = multiprocessing.util.spawnv_passfds


def _audited_spawnv_passfds(path, args, passfds):
    """multiprocessing's spawn (a ProcessPoolExecutor's workers) raises no audit event of its own."""
    sys.audit("os.posix_spawn", path, args)
    return _spawnv_passfds(path, args, passfds)


multiprocessing.util.spawnv_passfds = _audited_spawnv_passfds


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    GUARD.start(item)


@pytest.hookimpl(trylast=True)
def pytest_runtest_teardown(item: pytest.Item) -> None:
    faults, GUARD.test = GUARD.faults, None
    if faults:
        pytest.fail(f"{item.nodeid} " + "; ".join(dict.fromkeys(faults)), pytrace=False)


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):
    """A test module that imports a model library when collected makes every run pay for
    it, the fast tier too, and hides that library from the check above."""
    before = loaded_model_libraries()
    report = yield
    if isinstance(collector, pytest.Module) and (new := loaded_model_libraries() - before):
        warnings.warn(
            pytest.PytestWarning(
                f"{collector.nodeid} imports {', '.join(sorted(new))} when collected: import it "
                "in the tests that use it (marked `models`)"
            ),
            stacklevel=1,
        )
    return report
