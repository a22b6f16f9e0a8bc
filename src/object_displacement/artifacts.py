"""Writing what a run produced into its run directory, each file whole or not at all."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from object_displacement.io import atomic_open, write_image
from object_displacement.types import Image, Mask


def save_artifacts(
    images: dict[str, Image | Mask],
    metrics: dict[str, Any],
    directory: Path,
    before_metrics: Callable[[], None] | None = None,
) -> None:
    """Write a run's pictures (``name.png``), then ``before_metrics`` (e.g. the user's
    ``output=`` file), then ``metrics.json`` into ``directory``.

    ``metrics.json`` comes last: a run dir holding it is complete. If any write fails (or
    the run is interrupted), the pictures this call wrote are removed again, so a failed
    run never leaves a dir that looks finished."""
    written: list[Path] = []
    try:
        for name, array in images.items():
            written.append(write_image(directory / f"{name}.png", array))
        if before_metrics is not None:
            before_metrics()
        write_json(directory / "metrics.json", metrics)
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise


def write_json(path: Path, data: dict[str, Any]) -> Path:
    with atomic_open(path, "w") as handle:
        json.dump(data, handle, indent=2)
        handle.write("\n")
    return path
