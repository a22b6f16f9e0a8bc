"""Components from config: the one place below the jobs that reads a :class:`DictConfig`.

Each component is built from its ``_target_``; a setting of the wrong type is one line that
names it, before anything expensive starts."""

from __future__ import annotations

import logging
import math
import types
import typing
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

import hydra
from hydra.errors import InstantiationException
from omegaconf import DictConfig, ListConfig, OmegaConf

from object_displacement.cache import StageCache
from object_displacement.compositors.base import Compositor
from object_displacement.errors import DisplacementError
from object_displacement.ghost import GhostCheck
from object_displacement.inpainters.base import Inpainter
from object_displacement.mask_policies.base import MaskPolicy
from object_displacement.matting.base import Matting
from object_displacement.pipeline import Pipeline
from object_displacement.request import make_defaults
from object_displacement.runtime import UsesDevice, make_fabric
from object_displacement.segmenters.base import Segmenter
from object_displacement.selectors.base import Selector
from object_displacement.settings import Range
from object_displacement.shadows.base import ShadowMover
from object_displacement.types import MAX_MEGAPIXELS, EditDefaults
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
        hints = typing.get_type_hints(cls.__init__, include_extras=True)
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
        elif name in hints:
            for bound in _bounds(hints[name]):
                if not bound.allows(value):
                    raise DisplacementError(f"{setting} must be {bound}, got {value!r}")


def _bounds(hint: Any) -> list[Range]:
    """The :class:`Range` declared with a setting's type (``Annotated[int, Range(1, 31)]``)."""
    if get_origin(hint) is Annotated:
        return [m for m in hint.__metadata__ if isinstance(m, Range)]
    if get_origin(hint) in (Union, types.UnionType):
        return [b for option in get_args(hint) for b in _bounds(option)]
    return []


def _fits(value: Any, hint: Any) -> bool:
    if get_origin(hint) is Annotated:
        return _fits(value, get_args(hint)[0])
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
    if get_origin(hint) is Annotated:
        return _describe(get_args(hint)[0])
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


def build_pipeline(cfg: DictConfig, job_number: int | None = None) -> Pipeline:
    """The configured components; those that run a model get the Fabric of ``cfg.fabric``
    (``job_number``: a parallel sweep job's, which picks its GPU). Missing weights fail
    here, in one line, before any model library starts."""
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
        shadow=build(cfg.shadow, ShadowMover) if _chosen(cfg.get("shadow")) else None,
        defaults=edit_defaults(cfg),
    )
    check_weights(pipeline.components())  # one line now, before Fabric brings in torch
    models = [c for c in pipeline.components() if isinstance(c, UsesDevice)]
    runtime = ""
    if models:
        fabric = make_fabric(**cfg.fabric, job_number=job_number)
        for component in models:
            component.setup(fabric)
        runtime = models[0].runtime
    pipeline.cache = StageCache(
        cache_dir,
        plain(cfg.segmenter, resolve=True),
        plain(cfg.selector, resolve=True),
        code=(pipeline.segmenter, pipeline.selector),
        runtime=runtime,
    )
    return pipeline


def _chosen(node: Any) -> bool:
    """An optional group is on when it names a component (``shadow: none`` names none)."""
    return isinstance(node, DictConfig) and node.get("_target_") is not None


def edit_defaults(cfg: DictConfig) -> EditDefaults:
    """The run's settings that an edit takes where its request leaves them out."""
    keep_out = cfg.get("keep_out")
    return make_defaults(
        scale=cfg.get("scale", 1.0),
        flip=cfg.get("flip", False),
        anchor=cfg.get("anchor", "center"),
        keep_out=OmegaConf.to_container(keep_out) if isinstance(keep_out, ListConfig) else keep_out,
        max_megapixels=cfg.get("max_megapixels", MAX_MEGAPIXELS),
    )
