"""Bringing a mask found at a low working resolution back to full resolution, its edge
following the photo's edges (He et al.'s guided filter, colour guide)."""

from __future__ import annotations

import cv2
import numpy as np

from object_displacement.geometry import dilate, grown_box
from object_displacement.types import Candidate, Image, Mask


def upsample_mask(small: Mask, image: Image, eps: float = 1e-4) -> Mask:
    """``small`` (a mask of a shrunken ``image``) at ``image``'s size, with edges snapped to
    the image's own edges within a few working pixels.

    Plain resizing would give a staircase edge that cuts through the object's rim or keeps
    a strip of background; the guided filter makes the upsampled mask a local linear
    function of the full-resolution colours, so it switches where the colours do.
    """
    height, width = image.shape[:2]
    factor = max(height / small.shape[0], width / small.shape[1])
    coarse = cv2.resize(small.astype(np.float32), (width, height), interpolation=cv2.INTER_LINEAR)
    if factor <= 1.0:
        return coarse >= 0.5
    radius = max(2, round(2 * factor))
    out = coarse >= 0.5
    # only pixels near the coarse edge may change: filter the crop around that band
    band = dilate((coarse > 0.01) & (coarse < 0.99), radius)
    if not band.any():
        return out
    x0, y0, x1, y1 = grown_box(Candidate(band).bbox, width, height, radius)
    crop = (slice(y0, y1), slice(x0, x1))
    refined = guided_filter(np.ascontiguousarray(image[crop]), coarse[crop], radius, eps) >= 0.5
    out[crop] = np.where(band[crop], refined, out[crop])
    return out


def guided_filter(guide: Image, source: np.ndarray, radius: int, eps: float) -> np.ndarray:
    """Edge-preserving smoothing of ``source`` (HxW float) steered by the colour ``guide``.

    Every output pixel is ``a . I + b`` with ``(a, b)`` fitted by least squares over the
    ``(2 radius + 1)^2`` window (regularised by ``eps``, guide in 0..1), then averaged.
    Box filters make it cost the same for any radius. Only a band around the mask's
    edge can change, so only the crop around it is filtered.
    """
    size = (2 * radius + 1, 2 * radius + 1)

    def mean(x: np.ndarray) -> np.ndarray:
        return cv2.boxFilter(x, cv2.CV_32F, size, borderType=cv2.BORDER_REFLECT)

    guide_f = guide.astype(np.float32) / 255.0
    channels = [np.ascontiguousarray(guide_f[..., c]) for c in range(3)]
    mean_i = [mean(c) for c in channels]
    mean_p = mean(source)
    cov_ip = [mean(c * source) - m * mean_p for c, m in zip(channels, mean_i, strict=True)]
    var = {}
    for i in range(3):
        for j in range(i, 3):
            var[i, j] = mean(channels[i] * channels[j]) - mean_i[i] * mean_i[j]
            if i == j:
                var[i, j] += eps
    # the inverse of each pixel's symmetric 3x3 covariance, by cofactors (vectorised)
    a, b, c, d, e, f = var[0, 0], var[0, 1], var[0, 2], var[1, 1], var[1, 2], var[2, 2]
    inv = [d * f - e * e, c * e - b * f, b * e - c * d, a * f - c * c, b * c - a * e, a * d - b * b]
    det = a * inv[0] + b * inv[1] + c * inv[2]
    i00, i01, i02, i11, i12, i22 = (x / det for x in inv)
    a0 = i00 * cov_ip[0] + i01 * cov_ip[1] + i02 * cov_ip[2]
    a1 = i01 * cov_ip[0] + i11 * cov_ip[1] + i12 * cov_ip[2]
    a2 = i02 * cov_ip[0] + i12 * cov_ip[1] + i22 * cov_ip[2]
    offset = mean_p - a0 * mean_i[0] - a1 * mean_i[1] - a2 * mean_i[2]
    return mean(a0) * channels[0] + mean(a1) * channels[1] + mean(a2) * channels[2] + mean(offset)
