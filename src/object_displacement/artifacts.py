"""Writing what a run produced into its run directory, each file whole or not at all."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from object_displacement.io import atomic_open, write_image
from object_displacement.types import Image, Mask


def save_artifacts(images: dict[str, Image | Mask], metrics: dict[str, Any], directory: Path) -> None:
    """Write a run's pictures (``name.png``) and ``metrics.json`` into ``directory``."""
    for name, array in images.items():
        write_image(directory / f"{name}.png", array)
    write_json(directory / "metrics.json", metrics)


def write_json(path: Path, data: dict[str, Any]) -> Path:
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    return path
