"""The displace task: config in, metrics and result out. Pure enough to test directly."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TypeVar

import hydra
from omegaconf import DictConfig, OmegaConf

from object_displacement.artifacts import save_artifacts
from object_displacement.cache import StageCache
from object_displacement.compositors.base import Compositor
from object_displacement.errors import DisplacementError
from object_displacement.ghost import GhostCheck
from object_displacement.inpainters.base import Inpainter
from object_displacement.io import SAMPLE_PREFIX, check_writable, read_image, same_file, write_image
from object_displacement.loggers.base import RunLogger, logged_run
from object_displacement.loggers.none import NoLogger
from object_displacement.mask_policies.base import MaskPolicy
from object_displacement.pipeline import Pipeline
from object_displacement.quality import evaluate
from object_displacement.runtime import UsesDevice, make_fabric
from object_displacement.segmenters.base import Segmenter
from object_displacement.selectors.base import Selector
from object_displacement.selectors.clip import ClipSelector
from object_displacement.targets import make_target
from object_displacement.types import Move, Result
from object_displacement.visualize import run_images
from object_displacement.weights import check_weights

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
    cache_dir = cfg.cache.dir if cfg.cache.enabled else None
    plain = OmegaConf.to_container
    pipeline = Pipeline(
        segmenter=build(cfg.segmenter, Segmenter),
        selector=build(cfg.selector, Selector),
        mask_policy=build(cfg.mask_policy, MaskPolicy),
        compositor=build(cfg.compositor, Compositor),
        inpainter=build(cfg.inpainter, Inpainter),
        cache=StageCache(cache_dir, plain(cfg.segmenter, resolve=True), plain(cfg.selector, resolve=True)),
        ghost_check=build(cfg.ghost_check, GhostCheck),
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
    settings["move"] = make_move(settings.pop("dx"), settings.pop("dy"), cfg.scale, cfg.flip, cfg.anchor)
    return settings


def make_move(dx: Any, dy: Any, scale: Any = 1.0, flip: Any = False, anchor: Any = "center") -> Move:
    """A checked :class:`Move` from user settings."""
    try:
        factor = float(scale if scale is not None else 1.0)
    except (TypeError, ValueError):
        factor = float("nan")
    if not factor > 0 or factor > 100:
        raise DisplacementError(f"scale must be a positive factor, got {scale!r}")
    if anchor not in ("center", "bottom"):
        raise DisplacementError(f"anchor must be center or bottom, got {anchor!r}")
    if isinstance(flip, str):
        flip = flip.strip().lower() in ("1", "true", "yes")
    return Move(pixels(dx, "dx"), pixels(dy, "dy"), factor, bool(flip), str(anchor))


def pixels(value: Any, name: str) -> int:
    """A displacement in whole pixels; ``None`` is 0."""
    if value is None or value == "":
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or number != number:
        raise DisplacementError(f"{name} must be a number of pixels, got {value!r}")
    return round(number)


def run_edit(
    pipeline: Pipeline,
    image_source: str,
    target: dict[str, Any],
    move: Move,
    out_dir: Path,
    output: str | None = None,
) -> tuple[dict[str, Any], Result, dict[str, Any]]:
    """One edit: read, run the stages, score, write the artifacts into ``out_dir``.

    Returns the metrics, the result and the pictures written (``grid`` among them)."""
    # 1. Check inputs before any work, so a bad output path costs nothing
    out_path = check_writable(output) if output else None
    is_file = not str(image_source).startswith(SAMPLE_PREFIX)
    if out_path is not None and is_file and same_file(out_path, image_source):
        raise DisplacementError(f"output '{out_path}' is the input image: choose another path")

    # 2. Read the image and place the target on it
    image = read_image(image_source)
    height, width = image.shape[:2]
    checked = make_target(width, height, **target)

    # 3. Run the stages, then score what they made
    hits_before = len(pipeline.cache.hits)
    result = pipeline(image, checked, move)
    metrics = {"image": str(image_source), **result.metrics()}
    metrics["cache_hits"] = pipeline.cache.hits[hits_before:]
    metrics["quality"] = evaluate(result, scorer=text_scorer(pipeline))

    # 4. Write everything whole
    images = run_images(result)
    save_artifacts(images, metrics, out_dir)
    if out_path is not None:
        write_image(out_path, result.output if result.output is not None else result.mask)
    return metrics, result, images


def text_scorer(pipeline: Pipeline) -> ClipSelector | None:
    """The pipeline's CLIP selector, if it has one loaded: it also scores ghosts."""
    return next((c for c in pipeline.components() if isinstance(c, ClipSelector)), None)


def displace(cfg: DictConfig, logger: RunLogger | None = None) -> tuple[dict[str, Any], Result]:
    """Run one displacement as ``cfg`` describes, write its artifacts, log them."""
    logger = logger or NoLogger()
    job = job_settings(cfg)
    pipeline = build_pipeline(cfg)
    run_dir = Path(cfg.paths.run_dir)
    metrics, result, images = run_edit(
        pipeline, job["image"], job["target"], job["move"], run_dir, cfg.output
    )
    logger.log_metrics(metrics)
    logger.log_table("ranking", *ranking_table(result))
    logger.log_image("grid", images["grid"], caption=str(job["image"]))
    log.info("wrote %s", run_dir)
    return metrics, result


def ranking_table(result: Result) -> tuple[list[str], list[list[Any]]]:
    columns = ["rank", "score", "area_px", "bbox", "source"]
    rows = [[i, c.score, c.area, str(list(c.bbox)), c.source] for i, c in enumerate(result.ranking)]
    return columns, rows


MODEL_GROUPS = ("segmenter", "selector", "inpainter")
"""The config groups whose components may load weights."""


def run_job(cfg: DictConfig) -> Any:
    """The entry point's task: a dataset run or one displacement, with the logger always
    finished, also when the job fails, so no W&B run is left open."""
    from object_displacement.dataset import run_dataset

    config = OmegaConf.to_container(cfg, resolve=True)
    check_weights([hydra.utils.instantiate(cfg[group]) for group in MODEL_GROUPS])
    with logged_run(build(cfg.logger, RunLogger), config) as logger:  # type: ignore[arg-type]
        return run_dataset(cfg, logger) if cfg.get("dataset") else displace(cfg, logger)
