"""The displace task: config in, metrics and result out. Pure enough to test directly."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TypeVar

import hydra
from omegaconf import DictConfig

from object_displacement.artifacts import save_artifacts
from object_displacement.errors import DisplacementError
from object_displacement.inpainters.base import Inpainter
from object_displacement.io import SAMPLE_PREFIX, check_writable, read_image, same_file, write_image
from object_displacement.mask_policies.base import MaskPolicy
from object_displacement.pipeline import Pipeline
from object_displacement.runtime import UsesDevice, make_fabric
from object_displacement.segmenters.base import Segmenter
from object_displacement.selectors.base import Selector
from object_displacement.targets import make_target
from object_displacement.types import Result

log = logging.getLogger(__name__)
T = TypeVar("T")


def build(node: DictConfig, kind: type[T]) -> T:
    """Instantiate one component from its ``_target_`` and insist it is a ``kind``."""
    obj = hydra.utils.instantiate(node)
    if not isinstance(obj, kind):
        raise TypeError(f"{node.get('_target_')} built a {type(obj).__name__}, not a {kind.__name__}")
    log.info("built %s", node.get("_target_"))
    return obj


def build_pipeline(cfg: DictConfig) -> Pipeline:
    """The configured components; those that run a model get the Fabric of ``cfg.fabric``."""
    pipeline = Pipeline(
        segmenter=build(cfg.segmenter, Segmenter),
        selector=build(cfg.selector, Selector),
        mask_policy=build(cfg.mask_policy, MaskPolicy),
        inpainter=build(cfg.inpainter, Inpainter),
    )
    models = [c for c in pipeline.components() if isinstance(c, UsesDevice)]
    if models:
        fabric = make_fabric(**cfg.fabric)
        for component in models:
            component.setup(fabric)
    return pipeline


def job_settings(cfg: DictConfig) -> dict[str, Any]:
    """Image, target and displacement of this job; with no ``image`` the demo's apply."""
    settings = {"image": cfg.image, "target": dict(cfg.target), "dx": cfg.dx, "dy": cfg.dy}
    if cfg.image is None:
        demo = cfg.demo
        settings["image"] = demo.image
        if all(v is None for v in settings["target"].values()):
            settings["target"] = dict(demo.target)
        if cfg.dx is None and cfg.dy is None:
            settings["dx"], settings["dy"] = demo.dx, demo.dy
    settings["dx"] = _pixels(settings["dx"], "dx")
    settings["dy"] = _pixels(settings["dy"], "dy")
    return settings


def _pixels(value: Any, name: str) -> int:
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value != value:
        raise DisplacementError(f"{name} must be a number of pixels, got {value!r}")
    return round(value)


def displace(cfg: DictConfig) -> tuple[dict[str, Any], Result]:
    """Run one displacement as ``cfg`` describes and write its artifacts."""
    # 1. Check inputs before any work, so a bad output path costs nothing
    job = job_settings(cfg)
    output = check_writable(cfg.output) if cfg.output else None
    is_file = not str(job["image"]).startswith(SAMPLE_PREFIX)
    if output is not None and is_file and same_file(output, job["image"]):
        raise DisplacementError(f"output '{output}' is the input image: choose another path")

    # 2. Read the image and place the target on it
    image = read_image(job["image"])
    height, width = image.shape[:2]
    target = make_target(width, height, **job["target"])

    # 3. Run the stages
    result = build_pipeline(cfg)(image, target, job["dx"], job["dy"])

    # 4. Write everything whole
    metrics = {"image": str(job["image"]), **result.metrics()}
    run_dir = Path(cfg.paths.run_dir)
    save_artifacts(result, run_dir, metrics)
    if output is not None:
        write_image(output, result.output if result.output is not None else result.mask)
    log.info("wrote %s", run_dir)
    return metrics, result
