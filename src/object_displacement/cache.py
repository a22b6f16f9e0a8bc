"""On-disk cache of the segment and select stages, so sweeps over later stages skip them.

Segmentation is keyed by the image's content hash, the target and the segmenter's
config; selection additionally by the selector's config. A sweep over mask-policy or
inpainter settings therefore segments and selects once, and a sweep over selector
settings segments once. Entries are written whole (temp file + rename), so parallel
jobs never read a half-written one.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from object_displacement.io import atomic_open
from object_displacement.types import Candidate, Image, Target

log = logging.getLogger(__name__)


class StageCache:
    """Caches candidates and rankings under ``directory``; ``None`` disables it.

    Args:
        directory: where entries live; ``None`` computes everything every time.
        segmenter: the segmenter's config, as plain data (part of the key).
        selector: the selector's config, as plain data (part of the key).
    """

    def __init__(self, directory: str | Path | None, segmenter: Any = None, selector: Any = None) -> None:
        self.directory = Path(directory) if directory is not None else None
        self.segmenter_key = _digest(json.dumps(segmenter, sort_keys=True, default=str))
        self.selector_key = _digest(json.dumps(selector, sort_keys=True, default=str))
        self.hits: list[str] = []

    def candidates(
        self, image: Image, target: Target, compute: Callable[[], list[Candidate]]
    ) -> list[Candidate]:
        key = self._key("segment", image, target, self.segmenter_key)
        cached = self._load(key)
        if cached is not None:
            self.hits.append("segment")
            return [
                Candidate(mask=m, score=float(s), source=str(src))
                for m, s, src in zip(cached["masks"], cached["scores"], cached["sources"], strict=True)
            ]
        found = compute()
        if found:
            self._save(key, _pack(found))
        return found

    def ranking(
        self,
        image: Image,
        target: Target,
        candidates: list[Candidate],
        compute: Callable[[], list[Candidate]],
    ) -> list[Candidate]:
        key = self._key("select", image, target, self.segmenter_key + self.selector_key)
        cached = self._load(key)
        if cached is not None and int(cached["count"]) == len(candidates):
            self.hits.append("select")
            return [
                replace(candidates[i], score=float(s))
                for i, s in zip(cached["order"], cached["scores"], strict=True)
            ]
        ranked = compute()
        index = {id(c.mask): i for i, c in enumerate(candidates)}
        if all(id(c.mask) in index for c in ranked):
            order = np.array([index[id(c.mask)] for c in ranked], dtype=np.int64)
            scores = np.array([c.score for c in ranked], dtype=np.float64)
            self._save(key, {"order": order, "scores": scores, "count": np.array(len(candidates))})
        return ranked

    def _key(self, stage: str, image: Image, target: Target, config: str) -> str | None:
        if self.directory is None:
            return None
        content = hashlib.blake2b(image.tobytes(), digest_size=16)
        content.update(str(image.shape).encode())
        content.update(repr((target.prompt, target.point, target.box)).encode())
        if target.points:  # clicks change the mask; targets without them keep their old keys
            content.update(repr((target.points, target.labels)).encode())
        return f"{stage}-{content.hexdigest()}-{config}"

    def _load(self, key: str | None) -> dict[str, np.ndarray] | None:
        if key is None or self.directory is None:
            return None
        path = self.directory / f"{key}.npz"
        if not path.is_file():
            return None
        with np.load(path, allow_pickle=False) as data:
            entry = {name: data[name] for name in data.files}
        if "packed" in entry:
            shape = tuple(entry.pop("shape"))
            bits = np.unpackbits(entry.pop("packed"), axis=-1, count=shape[-1])
            entry["masks"] = bits.reshape(shape).astype(bool)
        log.info("stage cache hit: %s", path.name)
        return entry

    def _save(self, key: str | None, entry: dict[str, np.ndarray]) -> None:
        if key is None or self.directory is None:
            return
        with atomic_open(self.directory / f"{key}.npz", "wb") as handle:
            np.savez(handle, **entry)


def _pack(candidates: list[Candidate]) -> dict[str, np.ndarray]:
    masks = np.stack([c.mask for c in candidates])
    return {
        "packed": np.packbits(masks, axis=-1),
        "shape": np.array(masks.shape),
        "scores": np.array([c.score for c in candidates], dtype=np.float64),
        "sources": np.array([c.source for c in candidates]),
    }


def _digest(text: str) -> str:
    return hashlib.blake2b(text.encode(), digest_size=8).hexdigest()
