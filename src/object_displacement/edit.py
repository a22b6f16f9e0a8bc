"""One edit, the same for every entry point: read the photo, ``edit(pipeline, request)``,
write what it made. The command line, a manifest row, a sweep job, the API, the app and
the benchmark all take this road, so one setting gives one result whichever started it."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from object_displacement.artifacts import save_artifacts
from object_displacement.errors import DisplacementError
from object_displacement.io import (
    SAMPLE_PREFIX,
    check_can_write,
    check_writable,
    read_image,
    same_file,
    write_image,
)
from object_displacement.pipeline import Pipeline
from object_displacement.quality import evaluate
from object_displacement.selectors.clip import ClipSelector
from object_displacement.selectors.clip_embedder import ClipEmbedder
from object_displacement.targets import NO_TARGET, fit_boxes, fit_target
from object_displacement.types import EditRequest, Image, Result, Target
from object_displacement.visualize import run_images

log = logging.getLogger(__name__)


def read(request: EditRequest) -> Image:
    """The request's photo: the pixels it holds, or its source read within its size bound."""
    if request.pixels is not None:
        return request.pixels
    return read_image(request.source, max_megapixels=request.max_megapixels)


def edit(pipeline: Pipeline, request: EditRequest, warn_prompt: bool = True) -> tuple[dict[str, Any], Result]:
    """Run the stages on the request's photo and score what they made; nothing is written.

    Returns the metrics (JSON-ready) and the :class:`Result`. ``warn_prompt``: say so when a
    prompt beside a point or box goes unread by the configured selector."""
    image = read(request)
    height, width = image.shape[:2]
    target = target_for(pipeline, image, request.target)
    if warn_prompt:
        warn_unread_prompt(pipeline, target)
    hits_before = len(pipeline.cache.hits)
    result = pipeline(image, target, request.move, fit_boxes(request.keep_out, width, height))
    metrics = {"image": request.source, **result.metrics()}
    metrics["cache_hits"] = pipeline.cache.hits[hits_before:]
    metrics["quality"] = evaluate(result, scorer=text_scorer(pipeline))
    return metrics, result


def target_for(pipeline: Pipeline, image: Image, target: Target | None) -> Target:
    """``target`` checked against the photo; with none, the one the segmenter implies."""
    if target is None:
        implied = pipeline.segmenter.implied_target(image)
        if implied is None:
            raise DisplacementError(NO_TARGET)
        return implied
    return fit_target(target, image.shape[1], image.shape[0])


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


def text_scorer(pipeline: Pipeline) -> ClipEmbedder | None:
    """What scores the prompt at the old and new places: the CLIP the selector ranks with,
    if the pipeline has one (the same model, crops and templates)."""
    clip = next((c for c in pipeline.components() if isinstance(c, ClipSelector)), None)
    return None if clip is None else clip.embedder


def check_outputs(request: EditRequest, out_dir: Path, output: str | None = None) -> Path | None:
    """Before any work: the run dir and ``output`` can be written, and ``output`` is not the
    photo being read. Returns ``output`` as a path (``None`` without one)."""
    out_path = check_output(request, output)
    check_can_write(Path(out_dir) / "metrics.json")
    return out_path


def check_output(request: EditRequest, output: str | os.PathLike[str] | None) -> Path | None:
    """``output`` checked before any work: an image format, writable, and not the photo
    being read (by another name, a link or a hard link either)."""
    out_path = check_writable(output) if output else None
    if out_path is not None and reads_file(request.source) and same_file(out_path, request.source):
        raise DisplacementError(f"output '{out_path}' is the input image: choose another path")
    if out_path is not None:
        check_can_write(out_path)
    return out_path


def reads_file(source: str) -> bool:
    """Whether a request's photo names a file on disk (not a sample, nor ``<ndarray>``)."""
    return not source.startswith(SAMPLE_PREFIX) and Path(source).is_file()


def write(
    result: Result, metrics: dict[str, Any], out_dir: Path, output: Path | None = None
) -> dict[str, Any]:
    """The run's pictures, the user's ``output`` (the mask, in mask mode) and
    ``metrics.json`` (last: the mark of a complete run) into ``out_dir``; each file whole.
    Returns the pictures (``grid`` among them)."""
    images = run_images(result)
    final = result.output if result.output is not None else result.mask
    save_artifacts(images, metrics, out_dir, before_metrics=lambda: _write_output(output, final))
    return images


def _write_output(path: Path | None, array: Any) -> None:
    if path is not None:
        write_image(path, array)
