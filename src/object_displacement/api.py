"""The Python API: load the pipeline once, then move objects in as many photos as you like.

    from object_displacement import load_pipeline, move

    pipe = load_pipeline(["inpainter=telea"])          # the CLI's overrides
    moved = move("photo.jpg", box=(300, 120, 345, 408), dx=100, pipeline=pipe)
    moved.output, moved.mask, moved.metrics

It composes the CLI's config and runs the same edit (:func:`object_displacement.edit.edit`),
in memory: no Hydra run dir, no stage cache on disk and no file unless ``output`` asks for
one. Mistakes raise :class:`DisplacementError` with the CLI's message.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from object_displacement.artifacts import save_artifacts
from object_displacement.build import build_pipeline
from object_displacement.config import compose_config
from object_displacement.edit import check_output, edit, reads_file
from object_displacement.errors import DisplacementError
from object_displacement.io import as_image, check_can_write, same_file, too_large
from object_displacement.io import write_image as _write_image
from object_displacement.pipeline import Pipeline
from object_displacement.request import make_request
from object_displacement.types import Image, Mask, Result
from object_displacement.visualize import run_images

API_DEFAULTS = ("logger=none", "cache.enabled=false")
"""No W&B run and no cache on disk, unless the caller's overrides ask for them."""


def load_pipeline(overrides: Sequence[str] = ()) -> Pipeline:
    """The configured pipeline, models loaded once; reuse it for every :func:`move`.

    ``overrides`` are the CLI's (``["segmenter=sam", "inpainter=sdxl"]``); missing weights
    fail here, in seconds, with the command that fetches them."""
    return build_pipeline(compose_config([*API_DEFAULTS, *overrides]))


@dataclass
class Moved:
    """What :func:`move` made: the output image (``None`` when nothing moved: mask mode),
    the object's mask in the input, the run's metrics and the full :class:`Result`."""

    output: Image | None
    mask: Mask
    metrics: dict[str, Any]
    result: Result

    def save(self, directory: str | os.PathLike[str]) -> Path:
        """Write the CLI's run files (input, mask, overlay, output, grid PNGs, metrics.json)
        into ``directory``; checked first: a folder that can be written, and none of the
        files is the photo itself (``input.png`` in the photo's own folder)."""
        directory = Path(directory)
        if directory.exists() and not directory.is_dir():
            raise DisplacementError(f"cannot save into {directory}: it is a file, not a folder")
        images = run_images(self.result)
        source = str(self.metrics.get("image", ""))
        for name in [*(f"{n}.png" for n in images), "metrics.json"]:
            if reads_file(source) and same_file(directory / name, source):
                raise DisplacementError(
                    f"saving into {directory} would overwrite the photo {source} ({name}): "
                    "choose another folder"
                )
        check_can_write(directory / "metrics.json")
        save_artifacts(images, self.metrics, directory)
        return directory


def move(
    image: str | os.PathLike[str] | Any,
    *,
    prompt: str | None = None,
    point: Sequence[float] | None = None,
    box: Sequence[float] | None = None,
    points: Sequence[Sequence[float]] | None = None,
    labels: Sequence[int] | None = None,
    dx: float = 0,
    dy: float = 0,
    scale: float | None = None,
    flip: bool | None = None,
    anchor: str | None = None,
    keep_out: Sequence[Sequence[float]] | None = None,
    pipeline: Pipeline | None = None,
    output: str | os.PathLike[str] | None = None,
) -> Moved:
    """Move the object named by ``prompt``/``point``/``box``/``points`` by ``(dx, dy)``
    (``dy > 0`` is up), as ``displace`` would with the same settings.

    ``image`` is a path (or ``skimage:NAME``), a Pillow image or an RGB uint8 array. With no
    ``pipeline`` the default one is loaded (slow for models: load once, pass it in).
    ``scale``, ``flip``, ``anchor`` and ``keep_out`` default to the pipeline's config;
    ``keep_out`` boxes ``[[x0, y0, x1, y1], ...]`` mark regions no fill may copy from
    (another face, a sign). ``output`` also writes the result (the mask, in mask mode) to
    that path."""
    # 1. Check inputs before any work
    pipeline = pipeline if pipeline is not None else load_pipeline()
    from_file = isinstance(image, (str, os.PathLike))
    name = str(image) if from_file else f"<{type(image).__name__}>"
    pixels = None if from_file else as_image(image)
    bound = pipeline.defaults.max_megapixels
    if pixels is not None and bound is not None and pixels.shape[0] * pixels.shape[1] > bound * 1e6:
        raise too_large(Path(name), (pixels.shape[1], pixels.shape[0]), bound)  # as a file would be
    request = make_request(
        name,
        pixels=pixels,
        prompt=prompt,
        point=point,
        box=box,
        points=points,
        labels=labels,
        dx=dx,
        dy=dy,
        scale=scale,
        flip=flip,
        anchor=anchor,
        keep_out=keep_out,
        defaults=pipeline.defaults,
    )
    out_path = check_output(request, output)

    # 2. The edit every entry point runs
    metrics, result = edit(pipeline, request)

    # 3. Only what was asked for is written
    final = result.output if result.output is not None else result.mask
    if out_path is not None:
        _write_image(out_path, final)
    return Moved(output=result.output, mask=result.mask, metrics=metrics, result=result)
