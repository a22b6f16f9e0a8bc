"""Where model weights come from, resolved in one place, and loaded once per process.

A weight is a local path (a file or a folder) or a hub id, which the model libraries look
up in the local Hugging Face cache and download only when the hub can be reached. When
neither works the user gets one line naming what is missing and how to fetch it.
"""

from __future__ import annotations

import logging
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from object_displacement.errors import DisplacementError

log = logging.getLogger(__name__)
T = TypeVar("T")

FETCH_COMMAND = "make weights"


class WeightsMissing(DisplacementError):
    """A model's weights are neither on disk nor reachable."""


def missing(what: str, source: str, setting: str) -> WeightsMissing:
    """The error for weights that could not be found, with the command that fetches them.

    ``setting`` shows how to point at a local copy instead, e.g. ``inpainter.model=/path``.
    """
    return WeightsMissing(
        f"{what} weights '{source}' are not available offline: run `{FETCH_COMMAND}` "
        f"to download them, or set {setting}"
    )


def is_local(source: str | Path) -> bool:
    """Whether ``source`` names something on disk rather than a hub id."""
    text = str(source)
    return Path(text).expanduser().exists() or text.startswith(("/", "./", "../", "~"))


def local_file(source: str | Path, what: str, setting: str) -> Path:
    """``source`` as an existing file; a missing one is a :class:`WeightsMissing`."""
    path = Path(source).expanduser()
    if not path.is_file():
        raise missing(what, str(source), f"{setting}=/path/to/file")
    return path


def hub_available(repo_id: str, filename: str) -> bool:
    """Whether ``filename`` of hub repo ``repo_id`` can be had: it is in the local cache,
    or the hub may be asked (``HF_HUB_OFFLINE`` unset). Answers at once, downloads nothing."""
    from huggingface_hub import constants, try_to_load_from_cache

    if not constants.HF_HUB_OFFLINE:
        return True
    return isinstance(try_to_load_from_cache(repo_id, filename), str)


class ModelWeights(ABC):
    """A component that runs a model with weights: the lifecycle every one of them has.

    1. ``check_weights``: are the weights on this machine? Answers at once and imports no
       model library, so a run with missing weights fails in seconds, before any start-up.
    2. ``fetch_weights``: put them where ``load`` finds them offline (`make weights`).
    3. ``load``: load the model, once per process (:func:`load_once`).

    Components that hold another model component (Grounded SAM's SAM) pass each step on.
    """

    @abstractmethod
    def check_weights(self) -> None:
        """Raise :class:`WeightsMissing`, one line naming what is missing and how to get it,
        unless the weights are here. Loads nothing."""

    @abstractmethod
    def fetch_weights(self) -> list[str]:
        """Download the weights to where ``load`` finds them (needs internet); one line per
        model, saying where it is now."""

    @abstractmethod
    def load(self) -> Any:
        """The model this component runs, loaded on the first call and cached for the process."""


def check_weights(components: Iterable[object]) -> None:
    """Ask each component that runs a model (:class:`ModelWeights`) whether its weights are
    here, before any start-up (W&B, torch, the model libraries): a run with missing
    weights fails in seconds. Components without weights are skipped."""
    for component in components:
        if isinstance(component, ModelWeights):
            component.check_weights()


def unreadable(what: str, path: str | Path) -> DisplacementError:
    """The error for a checkpoint file that is there but cannot be loaded safely."""
    return DisplacementError(
        f"{path} is not a readable {what} checkpoint (corrupt, truncated, for another model, or "
        f"not a plain state dict of tensors): download it again with `{FETCH_COMMAND}`"
    )


def load_checkpoint(path: Path, what: str) -> Any:
    """``torch.load`` a state dict safely (``weights_only``); a corrupt, truncated or
    malicious file is one line naming it. torch's own message would advise loading it with
    ``weights_only=False``, which runs whatever code the file holds: never say that."""
    import torch

    try:
        with warnings.catch_warnings():  # torch warns about a foreign pickle before refusing it
            warnings.simplefilter("ignore")
            return torch.load(path, map_location="cpu", weights_only=True)
    except OSError as err:  # the file itself cannot be read (permissions, I/O)
        raise DisplacementError(f"cannot read {what} checkpoint {path}: {err.strerror or err}") from err
    except Exception as err:  # a data file torch cannot parse: its unpickler raises
        # UnpicklingError, RuntimeError, EOFError, ValueError, IndexError... for damaged bytes
        raise unreadable(what, path) from err


_MODELS: dict[Hashable, object] = {}
_LOCK = threading.Lock()
load_count = 0
"""How many models this process has loaded; a sweep in one process should not raise it."""


def load_once(key: Hashable, load: Callable[[], T]) -> T:
    """Return the model cached under ``key``, loading it on first use.

    The key holds everything that makes two models different (source, architecture,
    device, dtype), so a multirun that changes only the mask policy reuses them.
    """
    global load_count
    with _LOCK:
        if key not in _MODELS:
            log.info("loading %s", key)
            _MODELS[key] = load()
            load_count += 1
        return _MODELS[key]  # type: ignore[return-value]


def clear_models() -> None:
    """Forget every cached model (frees memory between unrelated jobs)."""
    with _LOCK:
        _MODELS.clear()


def pretrained_available(source: str, filename: str = "config.json") -> bool:
    """Whether a ``from_pretrained`` source is here: a local folder holding ``filename``,
    or a hub id whose ``filename`` is cached (or the hub may be asked). Answers at once."""
    if is_local(source):
        return (Path(source).expanduser() / filename).is_file()
    return hub_available(source, filename)


def load_pretrained(source: str, what: str, setting: str, *classes: Any) -> tuple[Any, ...]:
    """``cls.from_pretrained(source)`` for each of ``classes`` (a model and its processor),
    quietly; a source that cannot be loaded is :func:`missing`, naming ``setting``."""
    from object_displacement.runtime import quiet_libraries

    try:
        with quiet_libraries():
            return tuple(cls.from_pretrained(source) for cls in classes)
    except (OSError, ValueError) as err:
        raise missing(what, source, setting) from err


def fetch_pretrained(source: str, what: str, gated: str = "") -> str:
    """Put hub repo ``source`` in the Hugging Face cache, where ``from_pretrained`` finds it
    offline. ``gated`` says what a user must do for a repo that needs an accepted licence."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError

    if is_local(source):
        return f"{what} {source}: local, nothing to fetch"
    try:
        return f"{what} {source}: {snapshot_download(source)}"
    except GatedRepoError as err:
        what_to_do = gated or "accept its licence on its hub page"
        raise DisplacementError(f"{source} is gated: {what_to_do}, then run `{FETCH_COMMAND}` again") from err
