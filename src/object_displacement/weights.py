"""Where model weights come from, resolved in one place, and loaded once per process.

A weight is a local path (a file or a folder) or a hub id, which the model libraries look
up in the local Hugging Face cache and download only when the hub can be reached. When
neither works the user gets one line naming what is missing and how to fetch it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Hashable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from object_displacement.errors import DisplacementError
from object_displacement.network import reachable_once

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
    or the hub may be asked (``HF_HUB_OFFLINE`` unset) and answers. Downloads nothing."""
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(repo_id, filename), str) or not hub_offline()


def hub_offline() -> bool:
    """Whether the model hub is out of reach: ``HF_HUB_OFFLINE`` is set, or the hub does not
    accept a connection within seconds. Then the process is switched to offline mode, so
    the model libraries load what the cache holds at once instead of retrying the hub for
    a minute (45 lines of retries, then an error) before every model."""
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return True
    if reachable_once(constants.ENDPOINT):
        return False
    log.info("the model hub %s cannot be reached: using the local cache only", constants.ENDPOINT)
    go_offline()
    return True


def go_offline() -> None:
    """Offline mode for this process's hub clients: transformers, diffusers and open_clip
    read ``huggingface_hub.constants`` (and the environment, for the processes it starts)."""
    from huggingface_hub import constants

    os.environ["HF_HUB_OFFLINE"] = "1"
    constants.HF_HUB_OFFLINE = True
    hub_utils = sys.modules.get("diffusers.utils.hub_utils")  # imported the flag by value
    if hub_utils is not None and hasattr(hub_utils, "HF_HUB_OFFLINE"):
        hub_utils.HF_HUB_OFFLINE = True


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


TRANSFORMERS_MIN = "5.0"
"""The transformers that has ``Sam3Model`` and names Grounding DINO's box threshold
``threshold=`` (pyproject.toml pins it; an older environment is told before loading)."""


def require(library: str, minimum: str, what: str) -> None:
    """Refuse, in one line, to run ``what`` on an installed ``library`` older than ``minimum``
    (or none): an old environment would fail later with an ImportError or TypeError."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        installed = version(library)
    except PackageNotFoundError:
        installed = None
    if installed is None or too_old(installed, minimum):
        has = f"has {library} {installed}" if installed else f"lacks {library}"
        raise DisplacementError(
            f"{what} needs {library} {minimum} or later and this environment {has}: "
            f"run `pip install -U '{library}>={minimum}'` (or `make setup`)"
        )


def too_old(installed: str, minimum: str) -> bool:
    """Whether version ``installed`` is older than ``minimum`` (pre-releases of it count)."""
    from packaging.version import Version

    return Version(installed).release < Version(minimum).release


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


def load_pretrained(
    source: str, what: str, setting: str, model_class: Any, processor_class: Any
) -> tuple[Any, Any]:
    """(model, processor) from ``source``, quietly, the model in fp32.

    fp32 whatever dtype the folder was saved in: transformers 5 keeps a checkpoint's own
    dtype, and a folder saved in bf16 or fp16 (half the download) would meet our fp32
    inputs and fp32 decoding with a dtype mismatch; Fabric's autocast chooses the compute
    precision. A folder that lacks weights the architecture needs, or holds them in other
    shapes, is refused (:func:`check_complete`): loaded anyway, they would be random. A
    source that cannot be loaded at all is :func:`missing`, naming ``setting``."""
    import torch

    from object_displacement.runtime import quiet_libraries

    try:
        with quiet_libraries():
            model, info = model_class.from_pretrained(source, dtype=torch.float32, output_loading_info=True)
            processor = processor_class.from_pretrained(source)
    except (OSError, ValueError) as err:
        raise missing(what, source, setting) from err
    check_complete(what, source, info.get("missing_keys", ()), info.get("mismatched_keys", ()))
    return model, processor


def check_complete(
    what: str, source: str, missing_keys: Iterable[str], mismatched: Iterable[Any] = ()
) -> None:
    """Refuse a checkpoint that lacks weights its architecture needs or holds them in other
    shapes, naming the parts: the libraries would fill them with random values, and the
    model would run and give garbage with no word (their warning is a log line we hush)."""
    absent = sorted(missing_keys)
    wrong = sorted(str(m[0] if isinstance(m, tuple | list) else m) for m in mismatched)
    if not absent and not wrong:
        return
    problems = []
    if absent:
        problems.append(f"lacks {len(absent)} weights ({_parts(absent)})")
    if wrong:
        problems.append(f"holds {len(wrong)} weights in other shapes ({_parts(wrong)})")
    raise DisplacementError(
        f"{what} checkpoint '{source}' is incomplete: it {' and '.join(problems)}; download it "
        f"again with `{FETCH_COMMAND}`, or point at a complete copy"
    )


def _parts(keys: list[str], shown: int = 3) -> str:
    """The model parts ``keys`` belong to (their first two names), the first few."""
    parts = list(dict.fromkeys(".".join(k.split(".")[:2]) for k in keys))
    return ", ".join(parts[:shown]) + (f" and {len(parts) - shown} more parts" if len(parts) > shown else "")


IGNORED_FILES = ("*.pt", "*.pth", "*.ckpt", "*.bin", "*.msgpack", "*.h5", "*.onnx", "*.gguf")
"""What ``from_pretrained`` never reads from a repo that also has safetensors: SAM 3's repo
holds its original ``sam3.pt`` beside ``model.safetensors``, 3.4 GB more to download."""


def fetch_pretrained(source: str, what: str, gated: str = "") -> str:
    """Put hub repo ``source`` in the Hugging Face cache, where ``from_pretrained`` finds it
    offline. ``gated`` says what a user must do for a repo that needs an accepted licence."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import GatedRepoError

    if is_local(source):
        return f"{what} {source}: local, nothing to fetch"
    try:
        return f"{what} {source}: {snapshot_download(source, ignore_patterns=files_to_skip(source))}"
    except GatedRepoError as err:
        what_to_do = gated or "accept its licence on its hub page"
        raise DisplacementError(f"{source} is gated: {what_to_do}, then run `{FETCH_COMMAND}` again") from err


def files_to_skip(repo_id: str) -> list[str]:
    """The file patterns of ``repo_id`` that a download can leave out: the other formats of
    the weights, when the repo has safetensors (``from_pretrained`` then reads only those)."""
    from huggingface_hub import list_repo_files

    return skipped_formats(list_repo_files(repo_id))


def skipped_formats(files: Iterable[str]) -> list[str]:
    """:data:`IGNORED_FILES` when ``files`` (a repo's listing) hold safetensors, else none."""
    return list(IGNORED_FILES) if any(f.endswith(".safetensors") for f in files) else []
