"""What the app's editor draws, at screen size: pure functions from a tab to JSON, no Gradio.

The work stays at full resolution on the server; the browser gets a display-size JPEG of
the photo (encoded once per photo), the mask and the destination as polygons in photo
pixels (the editor strokes them at screen scale whatever the zoom) and the object cut out
at display size, which the editor drags with the move's scale and flip. A 12 MP photo
costs the browser a few hundred kB per action instead of 5 MB PNGs.
"""

from __future__ import annotations

import base64
import io
import json
import threading
import uuid
import weakref
from typing import Any

import cv2
import numpy as np
from PIL import Image as PILImage

from object_displacement.app_state import Tab, anchor_point, destination
from object_displacement.geometry import shrink
from object_displacement.types import Candidate, Image, Mask

DISPLAY_SIDE = 1600
"""The longest side of what the browser gets; zoom shows it sharper up to this."""
JPEG_QUALITY = 88
POLYGON_TOLERANCE = 0.6
"""Display pixels a drawn outline may stray from the mask's edge (fewer points to send)."""


def display_factor(height: int, width: int, side: int = DISPLAY_SIDE) -> float:
    """Display pixels per photo pixel: 1 for photos that fit, less for larger ones."""
    return min(1.0, side / max(height, width))


def data_url(image: Image, kind: str = "jpeg") -> str:
    """``image`` (RGB; RGBA for ``webp``, its alpha kept exact) encoded for an ``<img src>``."""
    buffer = io.BytesIO()
    if kind == "jpeg":
        PILImage.fromarray(image).save(buffer, format="JPEG", quality=JPEG_QUALITY)
    else:
        PILImage.fromarray(image).save(buffer, format="WEBP", quality=JPEG_QUALITY, exact=True)
    return f"data:image/{kind};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


_URLS: dict[int, tuple[str, str]] = {}
"""Each open photo's name for the browser and display JPEG, dropped with the photo:
encoded once, not per click."""


_ENCODING = threading.Lock()


def _shown(pixels: Image) -> tuple[str, str]:
    key = id(pixels)
    with _ENCODING:  # two tabs' threads: one encoding, one name for the photo
        if key not in _URLS:
            _URLS[key] = (uuid.uuid4().hex, data_url(shrink(pixels, display_factor(*pixels.shape[:2]))))
            weakref.finalize(pixels, _URLS.pop, key, None)
        return _URLS[key]


def photo_url(pixels: Image) -> str:
    """The display-size JPEG of a photo, encoded on its first showing."""
    return _shown(pixels)[1]


def photo_key(pixels: Image) -> str:
    """A name of the photo unique to it (not its ``id``, which a later photo may reuse):
    the editor decodes a photo once per name."""
    return _shown(pixels)[0]


def polygons(mask: Mask, factor: float) -> list[list[list[float]]]:
    """The mask's outlines, holes included, traced at display size and given in photo
    pixels (edge coordinates): fill them even-odd to draw the mask."""
    small = mask if factor >= 1.0 else shrink(mask.astype(np.uint8) * 255, factor) >= 128
    contours, _ = cv2.findContours(small.astype(np.uint8), cv2.RETR_CCOMP, cv2.CHAIN_APPROX_SIMPLE)
    shapes = []
    for contour in contours:
        contour = cv2.approxPolyDP(contour, POLYGON_TOLERANCE, True)
        if len(contour) < 3:
            continue
        points = (contour.reshape(-1, 2).astype(np.float64) + 0.5) / factor
        shapes.append(np.round(points, 1).tolist())
    return shapes


def cutout(photo: Image, mask: Mask, factor: float) -> dict[str, Any]:
    """The object alone at display size (transparent around it) and its box in photo
    pixels: what the editor draws under the pointer while the object is dragged."""
    x0, y0, x1, y1 = Candidate(mask).bbox
    rgba = np.dstack([photo[y0:y1, x0:x1], mask[y0:y1, x0:x1].astype(np.uint8) * 255])
    return {"url": data_url(shrink(rgba, factor), "webp"), "box": [x0, y0, x1, y1]}


def view(tab: Tab, anchor: str = "center", mode: str = "", radius: int = 0) -> str:
    """The editor's picture of the tab, as the JSON its script reads (``""``: no photo).

    ``mode`` is what a click means; ``radius`` the brush's, in photo pixels."""
    if tab.pixels is None:
        return ""
    height, width = tab.pixels.shape[:2]
    factor = display_factor(height, width)
    shown: dict[str, Any] = {
        "photo": {
            "url": photo_url(tab.pixels),
            "width": width,
            "height": height,
            "key": photo_key(tab.pixels),
        },
        "points": [list(p) for p in tab.points],
        "labels": list(tab.labels),
        "box": None if tab.box is None else list(tab.box),
        "corner": None if tab.corner is None else list(tab.corner),
        "move": {"dx": tab.dx, "dy": tab.dy, "scale": tab.scale, "flip": tab.flip},
        "mode": mode,
        "radius": radius,
        "mask": [],
        "destination": [],
        "cutout": None,
        "anchor": None,
    }
    if tab.mask is not None and tab.mask.any():
        shown["mask"] = polygons(tab.mask, factor)
        shown["cutout"] = cutout(tab.pixels, tab.mask, factor)
        shown["anchor"] = list(anchor_point(tab.mask, anchor))
        where = destination(tab, anchor)
        if where is not None and where.any():
            shown["destination"] = polygons(where, factor)
    return json.dumps(shown, separators=(",", ":"))
