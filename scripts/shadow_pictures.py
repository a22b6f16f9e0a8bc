"""The README's shadow pictures: `python scripts/shadow_pictures.py` (writes data/shadows/).

Two rows of benchmark shadow scenes (a real cutout or a shape on a real texture, its shadow
rendered in linear light): the input, the output without the shadow stage, the output with
it (the default), the true output. Then the coffee photo's cup moved onto the table: without
the stage and with it.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

from object_displacement import load_pipeline, move
from object_displacement.benchmark.scenes import make_shadow_scene
from object_displacement.io import write_image
from object_displacement.visualize import grid

OUT = Path(__file__).resolve().parents[1] / "data" / "shadows"
SCENES = (7, 1)
"""The motorcycle cutout on a wall (scaled 1.5 as it moves), the cup cutout on grass."""
COFFEE = {"box": (170, 10, 420, 300), "dx": 150, "dy": -30}
"""The cup lifted off its saucer onto the table, its shadow on the saucer left behind."""


def scene_rows() -> np.ndarray:
    plain, default = load_pipeline(["shadow=none"]), load_pipeline([])
    rows = []
    for number in SCENES:
        scene = make_shadow_scene(number)
        edit = {"box": scene.box, "dx": scene.dx, "dy": scene.dy, "scale": scene.scale}
        without = move(scene.input, pipeline=plain, **edit).output
        with_stage = move(scene.input, pipeline=default, **edit).output
        panels = [("input", scene.input), ("shadow=none", without)]
        panels += [("shadow=ratio (default)", with_stage), ("truth", scene.truth)]
        rows.append(grid(panels, height=300))
    return np.concatenate(rows, axis=0)


def coffee_row() -> np.ndarray:
    panels: list[tuple[str, np.ndarray]] = []
    for title, overrides in (
        ("shadow=none", ["shadow=none"]),
        ("shadow=ratio (default)", []),
    ):
        moved = move("skimage:coffee", pipeline=load_pipeline(overrides), **COFFEE)
        panels += [] if panels else [("input", moved.result.image)]
        panels.append((title, moved.output))
    return grid(panels, height=300)


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, picture in (("scenes.jpg", scene_rows()), ("coffee.jpg", coffee_row())):
        path = write_image(OUT / name, picture)
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
