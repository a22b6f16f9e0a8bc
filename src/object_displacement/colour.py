"""sRGB and linear light: light adds and shadows multiply in linear light, not in the
encoded values a photo stores."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from object_displacement.types import Image

LUMA = np.array([0.2126, 0.7152, 0.0722], np.float32)
"""Rec. 709 weights of linear R, G and B in luminance (sRGB's primaries)."""

_CODES = np.arange(256, dtype=np.float64) / 255
_DECODE = np.where(_CODES <= 0.04045, _CODES / 12.92, ((_CODES + 0.055) / 1.055) ** 2.4).astype(np.float32)


def to_linear(image: Image) -> npt.NDArray[np.float32]:
    """Linear light (0..1, float32) of an sRGB-encoded uint8 image: a table lookup."""
    return _DECODE[image]


def to_srgb(light: np.ndarray) -> Image:
    """The uint8 sRGB encoding of linear light (clipped to 0..1); inverts ``to_linear``."""
    x = np.clip(light, 0.0, 1.0).astype(np.float64)
    encoded = np.where(x <= 0.0031308, x * 12.92, 1.055 * np.power(x, 1 / 2.4) - 0.055)
    return np.rint(encoded * 255).astype(np.uint8)


def luminance(light: np.ndarray) -> npt.NDArray[np.float32]:
    """Luminance of linear RGB (HxWx3 -> HxW)."""
    return (light @ LUMA).astype(np.float32)
