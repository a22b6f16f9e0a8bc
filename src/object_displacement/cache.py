"""On-disk cache of the segment and select stages, so sweeps over later stages skip them.

Segmentation is keyed by the image's content hash, the target and the segmenter's
config; selection additionally by the selector's config. A sweep over mask-policy or
inpainter settings therefore segments and selects once, and a sweep over selector
settings segments once. Entries are written whole (temp file + rename), so parallel
jobs never read a half-written one.

The key also holds a digest of the source code of the segmenter and selector classes, so
editing a component never serves masks its old code made. The cache never fails a run: an
entry that cannot be read is dropped and recomputed, and a write that fails is skipped,
each with a warning.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import zipfile
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
        code: the components whose source code the entries depend on (the segmenter, the
            selector and those it dispatches to): part of the key.
    """

    def __init__(
        self,
        directory: str | Path | None,
        segmenter: Any = None,
        selector: Any = None,
        code: tuple[Any, Any] = (None, None),
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        segmenter_code, selector_code = (source_digest(c) for c in code)
        self.segmenter_key = _digest(json.dumps(segmenter, sort_keys=True, default=str) + segmenter_code)
        self.selector_key = _digest(json.dumps(selector, sort_keys=True, default=str) + selector_code)
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
        try:
            if not path.is_file():
                return None
            with np.load(path, allow_pickle=False) as data:
                entry = {name: data[name] for name in data.files}
            if "packed" in entry:
                shape = tuple(entry.pop("shape"))
                bits = np.unpackbits(entry.pop("packed"), axis=-1, count=shape[-1])
                entry["masks"] = bits.reshape(shape).astype(bool)
            _check_entry(entry)
        except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile) as err:
            log.warning("stage cache: dropping unreadable entry %s (%s); recomputing", path, _why(err))
            try:
                path.unlink(missing_ok=True)
            except OSError as unlink_err:
                log.warning("stage cache: cannot remove %s (%s)", path, _why(unlink_err))
            return None
        log.info("stage cache hit: %s", path.name)
        return entry

    def _save(self, key: str | None, entry: dict[str, np.ndarray]) -> None:
        if key is None or self.directory is None:
            return
        path = self.directory / f"{key}.npz"
        try:
            with atomic_open(path, "wb") as handle:
                np.savez(handle, **entry)
        except OSError as err:  # a cache is an optimisation: it never fails the run
            log.warning("stage cache: cannot write %s (%s); going on without it", path, _why(err))


def _check_entry(entry: dict[str, np.ndarray]) -> None:
    """Raise ``ValueError`` for an entry whose arrays do not fit together."""
    if "masks" in entry:
        count = len(entry["masks"])
        if entry["masks"].ndim != 3 or len(entry["scores"]) != count or len(entry["sources"]) != count:
            raise ValueError("candidate arrays disagree")
    elif {"order", "scores", "count"} <= entry.keys():
        if len(entry["order"]) != len(entry["scores"]) or (entry["order"] >= int(entry["count"])).any():
            raise ValueError("ranking arrays disagree")
    else:
        raise ValueError("unknown entry")


def _why(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err)
    return text.splitlines()[0] if text else type(err).__name__


def source_digest(component: Any) -> str:
    """A digest of the source files of ``component``'s classes (its own and its bases'),
    and of any component it holds (a dispatching selector's), from this project."""
    if component is None:
        return ""
    files: set[str] = set()
    for obj in [component, *getattr(component, "by_kind", {}).values()]:
        for cls in type(obj).__mro__ if obj is not None else ():
            if cls.__module__.startswith("object_displacement."):
                source = inspect.getsourcefile(cls)
                if source:
                    files.add(source)
    digest = hashlib.blake2b(digest_size=8)
    for name in sorted(files):
        digest.update(Path(name).read_bytes())
    return digest.hexdigest()


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
