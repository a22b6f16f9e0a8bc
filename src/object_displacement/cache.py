"""On-disk cache of the segment and select stages, so sweeps over later stages skip them.

Segmentation is keyed by the image's content hash, the target and the segmenter's
config; selection additionally by the selector's config. A sweep over mask-policy or
inpainter settings therefore segments and selects once, and a sweep over selector
settings segments once. Entries are written whole (temp file + rename), so parallel
jobs never read a half-written one.

The key also holds a digest of the source code the segmenter and selector can run: the
modules of their classes, of the components they hold, and every project module those
import. Editing a component, or a helper module it uses, never serves masks its old code
made. The cache never fails a run: an
entry that cannot be read is dropped and recomputed, and a write that fails is skipped,
each with a warning.
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import json
import logging
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from object_displacement.io import atomic_open
from object_displacement.types import Candidate, Image, Target

log = logging.getLogger(__name__)

PACKAGE = __name__.partition(".")[0]
PACKAGE_ROOT = Path(__file__).resolve().parent
"""Where the modules of this project that the key's code digest reads live."""


class StageCache:
    """Caches candidates and rankings under ``directory``; ``None`` disables it.

    Args:
        directory: where entries live; ``None`` computes everything every time.
        segmenter: the segmenter's config, as plain data (part of the key).
        selector: the selector's config, as plain data (part of the key).
        code: the components whose source code the entries depend on (the segmenter, the
            selector and those it dispatches to): part of the key.
        runtime: where and in what precision the models run (``cuda:0 bf16-mixed``): part
            of the key, since a model's masks and scores differ between fp32 and half
            precision, and a cache shared by machines must not serve one's to the other.
    """

    def __init__(
        self,
        directory: str | Path | None,
        segmenter: Any = None,
        selector: Any = None,
        code: tuple[Any, Any] = (None, None),
        runtime: str = "",
    ) -> None:
        self.directory = Path(directory) if directory is not None else None
        segmenter_code, selector_code = (source_digest(c) + runtime for c in code)
        self.segmenter_key = _digest(json.dumps(segmenter, sort_keys=True, default=str) + segmenter_code)
        self.selector_key = _digest(json.dumps(selector, sort_keys=True, default=str) + selector_code)
        self.hits: list[str] = []

    def candidates(
        self, image: Image, target: Target, compute: Callable[[], list[Candidate]]
    ) -> list[Candidate]:
        key = self._key("segment", image, target, self.segmenter_key)
        cached = self._load(key, image.shape[:2])
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

    def _load(self, key: str | None, size: tuple[int, ...] | None = None) -> dict[str, np.ndarray] | None:
        """The entry at ``key``, checked for what it holds (masks of ``size``, a ranking of
        whole indices): a well-formed entry with the wrong content is dropped like a corrupt
        one, never trusted (a float order, a shape of 10^9 columns, another photo's masks)."""
        if key is None or self.directory is None:
            return None
        path = self.directory / f"{key}.npz"
        try:
            if not path.is_file():
                return None
            with np.load(path, allow_pickle=False) as data:
                entry = {name: data[name] for name in data.files}
            if "packed" in entry:
                shape = tuple(int(n) for n in entry.pop("shape"))
                packed = entry.pop("packed")
                if len(shape) != 3 or (size is not None and shape[1:] != tuple(size)):
                    raise ValueError(f"masks of shape {shape}, the photo {tuple(size or ())}")
                if packed.dtype != np.uint8 or packed.shape != (shape[0], shape[1], -(-shape[2] // 8)):
                    raise ValueError("packed masks do not match their shape")  # checked before unpacking
                bits = np.unpackbits(packed, axis=-1, count=shape[-1])
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
        order = entry["order"]
        if order.dtype.kind not in "iu" or order.ndim != 1 or len(order) != len(entry["scores"]):
            raise ValueError("the ranking's order is not a list of whole indices")
        if (
            (order < 0).any()
            or (order >= int(entry["count"])).any()
            or len(set(order.tolist())) != len(order)
        ):
            raise ValueError("ranking arrays disagree")
    else:
        raise ValueError("unknown entry")


def _why(err: BaseException) -> str:
    text = getattr(err, "strerror", None) or str(err)
    return text.splitlines()[0] if text else type(err).__name__


def source_digest(component: Any) -> str:
    """A digest of the source files of this project that ``component`` can run: the modules
    of its classes (its own and its bases') and of every project object it holds (a
    dispatching selector's, a nested segmenter), and every project module those import."""
    if component is None:
        return ""
    files: set[Path] = set()
    for obj in held_components(component):
        files |= class_files(type(obj))
    digest = hashlib.blake2b(digest_size=8)
    for path in sorted(files):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def held_components(component: Any) -> list[Any]:
    """``component`` and the objects of this project it holds, at any depth: its attributes,
    and the items of the lists, tuples, sets and dicts among them."""
    found: list[Any] = []
    seen: set[int] = set()
    pending = [component]
    while pending:
        obj = pending.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, dict):
            pending.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            pending.extend(obj)
        elif _ours(type(obj).__module__):
            found.append(obj)
            pending.extend(getattr(obj, "__dict__", {}).values())
    return found


@functools.cache
def class_files(cls: type, root: Path | None = None) -> frozenset[Path]:
    """The source files of this project that the code of ``cls`` can reach: the modules of
    it and its bases, and every project module they import, at any depth (relative imports
    and imports inside functions too; not those only for type checkers). Cached per class:
    the set is asked for on every run. ``root``: where the project's modules are read
    (default :data:`PACKAGE_ROOT`)."""
    root = PACKAGE_ROOT if root is None else root
    pending: list[tuple[str, Path]] = []
    for base in cls.__mro__:
        if _ours(base.__module__):
            try:
                source = inspect.getsourcefile(base)
            except (OSError, TypeError):  # defined where no file holds it
                source = None
            if source:
                pending.append((base.__module__, Path(source).resolve()))
    reached: set[Path] = set()
    while pending:
        module, path = pending.pop()
        if path in reached or not path.is_file():
            continue
        reached.add(path)
        for name in _imported(module, path):
            pending.extend((package, file) for package, file in _module_files(name, root))
    return frozenset(reached)


def _ours(module: str) -> bool:
    return module == PACKAGE or module.startswith(PACKAGE + ".")


def _imported(module: str, path: Path) -> set[str]:
    """The project modules (and names that may be modules) the module ``module`` at ``path`` imports."""
    tree = ast.parse(path.read_bytes(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    names: set[str] = set()
    for node in _runtime_nodes(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{node.module}" if node.module else parent
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)  # a submodule, if it is one
    return {name for name in names if _ours(name)}


def _runtime_nodes(tree: ast.AST) -> Iterator[ast.AST]:
    """Every node of ``tree`` but those under ``if TYPE_CHECKING:``, which never run."""
    pending = [tree]
    while pending:
        node = pending.pop()
        yield node
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            pending.extend(node.orelse)
        else:
            pending.extend(ast.iter_child_nodes(node))


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _module_files(name: str, root: Path) -> Iterator[tuple[str, Path]]:
    """The files that importing module ``name`` runs: its packages' ``__init__`` and its own
    (only the packages' for a name that is no module, such as an imported class)."""
    parts = name.split(".")[1:]
    for depth in range(len(parts) + 1):
        folder = root.joinpath(*parts[:depth])
        for path in (folder / "__init__.py", folder.with_suffix(".py")):
            if path.is_file():
                yield ".".join([PACKAGE, *parts[:depth]]), path
                break


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
