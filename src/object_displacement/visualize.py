"""Pictures of a run for people: mask overlays, the inpaint mask, a labelled grid."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from object_displacement.types import Image, Mask, Result, Shadow

RED = (255, 0, 0)
CYAN = (0, 200, 255)


def overlay(image: Image, mask: Mask, color: tuple[int, int, int] = RED, alpha: float = 0.5) -> Image:
    """Tint ``mask`` with ``color`` on ``image`` and outline it, so its edge is visible."""
    out = image.copy()
    tint = np.asarray(color, dtype=np.float32)
    out[mask] = (alpha * tint + (1 - alpha) * image[mask]).astype(np.uint8)
    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(out, contours, -1, color, thickness=1)
    return out


def mask_to_rgb(mask: Mask) -> Image:
    return np.repeat((mask.astype(np.uint8) * 255)[..., None], 3, axis=2)


def grid(panels: Sequence[tuple[str, Image]], height: int = 360) -> Image:
    """Panels side by side at a common ``height``, each with its label on a dark bar."""
    bar = 24
    tiles = []
    for label, image in panels:
        h, w = image.shape[:2]
        width = max(1, round(w * height / h))
        tile = np.zeros((height + bar, width, 3), dtype=np.uint8)
        tile[bar:] = cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)
        cv2.putText(tile, label, (6, bar - 7), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(tile)
    gap = np.full((height + bar, 4, 3), 255, dtype=np.uint8)
    row = [tiles[0]]
    for tile in tiles[1:]:
        row += [gap, tile]
    return np.concatenate(row, axis=1)


def shadow_picture(shadow: Shadow) -> Image:
    """The shadow's matte at the old place in red and at the new place in blue, on black:
    the brighter, the more light it takes."""
    found = np.clip(shadow.matte * 255, 0, 255).astype(np.uint8)
    moved = (
        np.zeros_like(found) if shadow.moved is None else np.clip(shadow.moved * 255, 0, 255).astype(np.uint8)
    )
    return np.stack([found, np.zeros_like(found), moved], axis=2)


def run_images(result: Result) -> dict[str, Image | Mask]:
    """The pictures of a run: input, mask, overlay and, when moved, the composite with its
    inpaint mask and the output; ``grid`` puts the telling ones side by side."""
    images: dict[str, Image | Mask] = {
        "input": result.image,
        "mask": result.mask,
        "overlay": overlay(result.image, result.mask),
    }
    panels = [("input", result.image), ("selected mask", images["overlay"])]
    if result.plan is not None and result.output is not None:
        images["composite"] = overlay(result.plan.composite, result.plan.inpaint_mask, CYAN, alpha=0.45)
        images["output"] = result.output
        panels.append(("composite + inpaint mask", images["composite"]))
        shadow = result.plan.shadow
        if shadow is not None:
            images["shadow"] = shadow_picture(shadow)
            panels.append(("shadow: found (red), cast (blue)", images["shadow"]))
        panels.append(("output", result.output))
    else:
        panels.append(("mask", mask_to_rgb(result.mask)))
    images["grid"] = grid(panels)
    return images
