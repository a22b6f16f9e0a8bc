"""Shared fixtures: the composed config, patched for tests, and synthetic scenes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, open_dict

ROOT = Path(__file__).resolve().parents[1]
CONF = ROOT / "conf"


def compose_config(overrides: list[str] | None = None) -> DictConfig:
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="displace", overrides=overrides or [])


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
