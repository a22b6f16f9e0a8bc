"""Writing what a run produced into its run directory, each file whole or not at all."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from object_displacement.io import write_image
from object_displacement.types import Result
from object_displacement.visualize import CYAN, grid, mask_to_rgb, overlay


def save_artifacts(result: Result, directory: Path, metrics: dict[str, Any]) -> dict[str, Path]:
    """Write the run's images, a side-by-side grid and ``metrics.json``; return their paths."""
    images = {
        "input": result.image,
        "mask": result.mask,
        "overlay": overlay(result.image, result.mask),
    }
    panels = [("input", result.image), ("selected mask", images["overlay"])]
    if result.plan is not None and result.output is not None:
        images["composite"] = overlay(result.plan.composite, result.plan.inpaint_mask, CYAN, alpha=0.45)
        images["output"] = result.output
        panels += [("composite + inpaint mask", images["composite"]), ("output", result.output)]
    else:
        panels.append(("mask", mask_to_rgb(result.mask)))
    images["grid"] = grid(panels)
    paths = {name: write_image(directory / f"{name}.png", array) for name, array in images.items()}
    paths["metrics"] = write_json(directory / "metrics.json", metrics)
    return paths


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    os.replace(tmp, path)
    return path
