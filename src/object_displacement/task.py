"""The displace task: config in, metrics and result out. Pure enough to test directly."""

from __future__ import annotations

import logging
import math
import types
import typing
from pathlib import Path
from typing import Any, Literal, TypeVar, Union, get_args, get_origin

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, ListConfig, OmegaConf, open_dict

from object_displacement.artifacts import save_artifacts
from object_displacement.cache import StageCache
from object_displacement.compositors.base import Compositor
from object_displacement.errors import DisplacementError
from object_displacement.ghost import GhostCheck
from object_displacement.inpainters.base import Inpainter
from object_displacement.io import (
    MAX_MEGAPIXELS,
    SAMPLE_PREFIX,
    atomic_open,
    check_can_write,
    check_writable,
    read_image,
    same_file,
    write_image,
)
from object_displacement.loggers.base import RunLogger, logged_run
from object_displacement.loggers.none import NoLogger
from object_displacement.mask_policies.base import MaskPolicy
from object_displacement.matting.base import Matting
from object_displacement.pipeline import Pipeline
from object_displacement.quality import evaluate
from object_displacement.runtime import UsesDevice, make_fabric
from object_displacement.segmenters.base import Segmenter
from object_displacement.selectors.base import Selector
from object_displacement.selectors.clip import ClipSelector
from object_displacement.targets import has_target, keep_out_boxes, make_target
from object_displacement.types import Image, Move, Result, Target
from object_displacement.visualize import run_images
from object_displacement.weights import check_weights

log = logging.getLogger(__name__)
T = TypeVar("T")


def build(node: DictConfig, kind: type[T]) -> T:
    """Instantiate one component from its ``_target_`` and insist it is a ``kind``.

    A setting of the wrong type, or one the component refuses, is the user's to fix: one
    line naming the setting, not the constructor's traceback."""
    key = _full_key(node)
    check_settings(node, key)
    try:
        obj = hydra.utils.instantiate(node)
    except InstantiationException as err:
        cause = err.__cause__ or err
        text = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        raise DisplacementError(f"{key}: {text}") from err
    if not isinstance(obj, kind):
        raise TypeError(f"{node.get('_target_')} built a {type(obj).__name__}, not a {kind.__name__}")
    log.info("built %s", node.get("_target_"))
    return obj


def check_settings(node: Any, key: str) -> None:
    """Check each setting of a component config against its constructor's type hints.

    Hydra passes command-line values through as they were typed, so ``patch_size=abc``
    would otherwise fail deep inside the component, after the expensive stages ran."""
    if not isinstance(node, DictConfig) or "_target_" not in node:
        return
    try:
        cls = hydra.utils.get_class(str(node._target_))
        hints = typing.get_type_hints(cls.__init__)
    except Exception:  # an unknown target or unresolvable hints: instantiate reports it
        return
    for name in node:
        name = str(name)
        if name.startswith("_"):
            continue
        value = node[name]
        setting = f"{key}.{name}"
        if isinstance(value, DictConfig):
            check_settings(value, setting)
        elif isinstance(value, ListConfig):
            for index, item in enumerate(value):
                check_settings(item, f"{setting}[{index}]")
        elif name in hints and not _fits(value, hints[name]):
            raise DisplacementError(f"{setting} must be {_describe(hints[name])}, got {value!r}")


def _fits(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return any(_fits(value, option) for option in get_args(hint))
    if origin is Literal:
        return value in get_args(hint)
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    if hint is str:
        return isinstance(value, str)
    return True  # containers, classes: their own code checks them


def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(option) for option in get_args(hint))
    if origin is Literal:
        return "one of " + ", ".join(str(v) for v in get_args(hint))
    names = {type(None): "null", bool: "true or false", int: "a whole number", float: "a finite number"}
    return names.get(hint, "text" if hint is str else getattr(hint, "__name__", str(hint)))


def _full_key(node: DictConfig) -> str:
    try:
        return str(node._get_full_key(None)) or "component"
    except Exception:
        return "component"


def build_pipeline(cfg: DictConfig) -> Pipeline:
    """The configured components; those that run a model get the Fabric of ``cfg.fabric``.
    Missing weights fail here, before any model library starts."""
    cache_dir = cfg.cache.dir if cfg.cache.enabled else None
    plain = OmegaConf.to_container
    pipeline = Pipeline(
        segmenter=build(cfg.segmenter, Segmenter),
        selector=build(cfg.selector, Selector),
        mask_policy=build(cfg.mask_policy, MaskPolicy),
        compositor=build(cfg.compositor, Compositor),
        inpainter=build(cfg.inpainter, Inpainter),
        ghost_check=build(cfg.ghost_check, GhostCheck),
        matting=build(cfg.matting, Matting) if cfg.get("matting") is not None else None,
    )
    pipeline.cache = StageCache(
        cache_dir,
        plain(cfg.segmenter, resolve=True),
        plain(cfg.selector, resolve=True),
        code=(pipeline.segmenter, pipeline.selector),
    )
    pipeline.config = cfg
    check_weights(pipeline.components())  # one line now, before Fabric brings in torch
    models = [c for c in pipeline.components() if isinstance(c, UsesDevice)]
    if models:
        fabric = make_fabric(**cfg.fabric)
        for component in models:
            component.setup(fabric)
    return pipeline


def apply_demo(cfg: DictConfig) -> DictConfig:
    """With no ``image``, put the demo's image (and its target and move, unless given) into
    ``cfg`` itself, so what ran is what the recorded config says."""
    if cfg.image is not None:
        return cfg
    demo = cfg.demo
    with open_dict(cfg):
        cfg.image = demo.image
        if not has_target(**cfg.target):
            cfg.target = OmegaConf.to_container(demo.target)
        if cfg.dx is None and cfg.dy is None:
            cfg.dx, cfg.dy = demo.dx, demo.dy
    return cfg


def job_settings(cfg: DictConfig) -> dict[str, Any]:
    """Image, target and displacement of this job; with no ``image`` the demo's apply."""
    cfg = apply_demo(cfg)
    settings = {"image": cfg.image, "target": dict(cfg.target)}
    settings["move"] = make_move(cfg.dx, cfg.dy, cfg.scale, cfg.flip, cfg.anchor)
    keep_out = cfg.get("keep_out")
    settings["keep_out"] = OmegaConf.to_container(keep_out) if isinstance(keep_out, ListConfig) else keep_out
    return settings


MAX_SCALE = 100.0
TRUE_WORDS = {"true", "yes", "on", "1"}
FALSE_WORDS = {"false", "no", "off", "0"}


def make_move(dx: Any, dy: Any, scale: Any = 1.0, flip: Any = False, anchor: Any = "center") -> Move:
    """A checked :class:`Move` from user settings."""
    try:
        factor = float(scale if scale is not None else 1.0)
    except (TypeError, ValueError):
        factor = float("nan")
    if isinstance(scale, bool) or not 0 < factor <= MAX_SCALE:
        raise DisplacementError(f"scale must be a factor above 0 and at most {MAX_SCALE:g}, got {scale!r}")
    if anchor not in ("center", "bottom"):
        raise DisplacementError(f"anchor must be center or bottom, got {anchor!r}")
    move = Move(pixels(dx, "dx"), pixels(dy, "dy"), factor, boolean(flip, "flip"), str(anchor))
    asked = {name: v for name, v in (("dx", dx), ("dy", dy)) if v not in (None, "") and float(v) != 0}
    if asked and move.is_identity:
        given = " ".join(f"{name}={v}" for name, v in asked.items())
        raise DisplacementError(
            f"{given} rounds to a move of 0 pixels: move by at least 1 pixel, or leave "
            "dx and dy unset to write the mask"
        )
    return move


def boolean(value: Any, name: str) -> bool:
    """``true``/``false`` (or yes/no, on/off, 1/0); anything else is refused, not guessed."""
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    word = str(value).strip().lower()
    if word in TRUE_WORDS | FALSE_WORDS:
        return word in TRUE_WORDS
    raise DisplacementError(f"{name} must be true or false, got {value!r}")


def pixels(value: Any, name: str) -> int:
    """A displacement in whole pixels; ``None`` is 0."""
    if value is None or value == "":
        return 0
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if isinstance(value, bool) or not math.isfinite(number):
        raise DisplacementError(f"{name} must be a number of pixels, got {value!r}")
    return round(number)


def run_edit(
    pipeline: Pipeline,
    image_source: str,
    target: dict[str, Any],
    move: Move,
    out_dir: Path,
    output: str | None = None,
    max_megapixels: float | None = MAX_MEGAPIXELS,
    warn_prompt: bool = True,
    keep_out: Any = None,
) -> tuple[dict[str, Any], Result, dict[str, Any]]:
    """One edit: read, run the stages, score, write the artifacts into ``out_dir``.

    Returns the metrics, the result and the pictures written (``grid`` among them)."""
    # 1. Check inputs and outputs before any work, so a bad path costs nothing
    out_path = check_writable(output) if output else None
    is_file = not str(image_source).startswith(SAMPLE_PREFIX)
    if out_path is not None and is_file and same_file(out_path, image_source):
        raise DisplacementError(f"output '{out_path}' is the input image: choose another path")
    if out_path is not None:
        check_can_write(out_path)
    check_can_write(Path(out_dir) / "metrics.json")

    # 2. Read the image, then edit it as every entry point does
    image = read_image(image_source, max_megapixels=max_megapixels)
    metrics, result = edit(pipeline, image, str(image_source), target, move, warn_prompt, keep_out)

    # 3. Write everything whole; metrics.json last, as the mark of a complete run
    images = run_images(result)
    final = result.output if result.output is not None else result.mask
    save_artifacts(images, metrics, out_dir, before_metrics=lambda: _write_output(out_path, final))
    return metrics, result, images


def edit(
    pipeline: Pipeline,
    image: Image,
    source: str,
    target: dict[str, Any],
    move: Move,
    warn_prompt: bool = True,
    keep_out: Any = None,
) -> tuple[dict[str, Any], Result]:
    """One edit of an image in memory: place the target on it, run the stages, score what
    they made. The CLI, the API and the app all call this, so one setting gives one result
    whichever entry point started it; nothing is written. ``keep_out``: boxes
    ``[[x0, y0, x1, y1], ...]`` no fill may copy from."""
    checked = target_for(pipeline, image, target)
    boxes = keep_out_boxes(keep_out, image.shape[1], image.shape[0])
    if warn_prompt:
        warn_unread_prompt(pipeline, checked)
    hits_before = len(pipeline.cache.hits)
    result = pipeline(image, checked, move, boxes)
    metrics = {"image": source, **result.metrics()}
    metrics["cache_hits"] = pipeline.cache.hits[hits_before:]
    metrics["quality"] = evaluate(result, scorer=text_scorer(pipeline))
    return metrics, result


def _write_output(path: Path | None, array: Any) -> None:
    if path is not None:
        write_image(path, array)


def target_for(pipeline: Pipeline, image: Any, target: dict[str, Any]) -> Target:
    """The checked target; with none given, the one the segmenter implies (a mask file)."""
    height, width = image.shape[:2]
    if not has_target(**target):
        implied = pipeline.segmenter.implied_target(image)
        if implied is not None:
            return implied
    return make_target(width, height, **target)


def warn_unread_prompt(pipeline: Pipeline, target: Target) -> None:
    """A prompt beside a point or box that the selector cannot read would be ignored
    without a word: say so. (A prompt alone fails with its own message.)"""
    located = target.point is not None or target.box is not None
    reads = pipeline.selector.reads_text or pipeline.segmenter.reads_text
    if target.prompt is not None and located and not reads:
        log.warning(
            "target.prompt='%s' is ignored: the %s selector does not read text (use selector=clip)",
            target.prompt,
            type(pipeline.selector).__name__,
        )


def text_scorer(pipeline: Pipeline) -> ClipSelector | None:
    """The pipeline's CLIP selector, if it has one loaded: it also scores ghosts."""
    return next((c for c in pipeline.components() if isinstance(c, ClipSelector)), None)


MOVE_SETTINGS = ("dx", "dy", "scale", "flip", "anchor")
"""Settings of the move: recorded in the config, not charted as metrics."""


def displace(cfg: DictConfig, logger: RunLogger | None = None) -> tuple[dict[str, Any], Result]:
    """Run one displacement as ``cfg`` describes, write its artifacts, log them."""
    logger = logger or NoLogger()
    job = job_settings(cfg)
    run_dir = Path(cfg.paths.run_dir)
    check_outputs(cfg)
    pipeline = build_pipeline(cfg)
    metrics, result, images = run_edit(
        pipeline,
        job["image"],
        job["target"],
        job["move"],
        run_dir,
        cfg.output,
        max_megapixels=cfg.get("max_megapixels", MAX_MEGAPIXELS),
        # the demo's own prompt is there for selector=clip; with other selectors it is quiet
        warn_prompt=not (job["image"] == cfg.demo.image and job["target"] == dict(cfg.demo.target)),
        keep_out=job["keep_out"],
    )
    logger.log_metrics({k: v for k, v in metrics.items() if k not in MOVE_SETTINGS})
    logger.log_table("ranking", *ranking_table(result))
    logger.log_image("grid", images["grid"], caption=str(job["image"]))
    for name in ("output.png", "metrics.json"):
        if (run_dir / name).is_file():
            logger.save_file(run_dir / name)
    log.info("wrote %s", run_dir)
    return metrics, result


def check_outputs(cfg: DictConfig) -> None:
    """Before the components load: a bad output path or run dir costs nothing."""
    if cfg.output:
        check_can_write(check_writable(cfg.output))
    check_can_write(Path(cfg.paths.run_dir) / "metrics.json")


def ranking_table(result: Result) -> tuple[list[str], list[list[Any]]]:
    columns = ["rank", "score", "area_px", "bbox", "source"]
    rows = [[i, c.score, c.area, str(list(c.bbox)), c.source] for i, c in enumerate(result.ranking)]
    return columns, rows


MODEL_GROUPS = ("segmenter", "selector", "inpainter")
"""The config groups whose components may load weights."""


def check_model_weights(cfg: DictConfig) -> None:
    """Missing weights of the configured models: one line now, before anything starts."""
    check_weights([build(cfg[group], object) for group in MODEL_GROUPS])


def run_job(cfg: DictConfig) -> Any:
    """The entry point's task: a dataset run or one displacement, with the logger always
    finished, also when the job fails, so no W&B run is left open."""
    from object_displacement.dataset import run_dataset

    if not cfg.get("dataset"):
        apply_demo(cfg)
        record_config(cfg)
        check_outputs(cfg)
    config = OmegaConf.to_container(cfg, resolve=True)
    check_model_weights(cfg)  # in seconds, before W&B
    with logged_run(build(cfg.logger, RunLogger), config) as logger:  # type: ignore[arg-type]
        return run_dataset(cfg, logger) if cfg.get("dataset") else displace(cfg, logger)


def record_config(cfg: DictConfig) -> None:
    """Rewrite Hydra's ``.hydra/config.yaml`` with what runs (the demo's image, target and
    move filled in): Hydra saved it before the task could fill them."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return
    hc = HydraConfig.get()
    if hc.output_subdir is None:
        return
    path = Path(hc.runtime.output_dir) / str(hc.output_subdir) / "config.yaml"
    if path.is_file():
        with atomic_open(path, "w") as handle:
            handle.write(OmegaConf.to_yaml(cfg))
