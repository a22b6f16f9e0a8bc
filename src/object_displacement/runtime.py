"""Device and precision: Lightning Fabric owns them; model components ask it.

Only components that run a model (:class:`UsesDevice`) get a Fabric, and it is created
only when one is configured, so the classical pipeline never pays torch's start-up.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from object_displacement.errors import DisplacementError

if TYPE_CHECKING:
    import torch
    from lightning_fabric import Fabric

log = logging.getLogger(__name__)
M = TypeVar("M")

GPU_RESERVE = 0.1
"""The share of a card kept free of models: CUDA's context, the allocator's fragments."""


def make_fabric(
    accelerator: str = "auto", devices: Any = 1, precision: str = "auto", job_number: int | None = None
) -> Fabric:
    """A single-device Fabric; ``precision: auto`` is :func:`auto_precision`'s choice.

    One edit runs on one device: ``devices`` other than 1 (or one index, ``[2]``) is
    refused. Several GPUs serve a parallel sweep instead: on a machine with N of them,
    sweep job k runs on ``cuda:(k mod N)`` (``job_number``: k, from the job's context).
    """
    import torch
    from lightning_fabric import Fabric

    one_index = isinstance(devices, Sequence) and not isinstance(devices, str) and len(devices) == 1
    if devices not in (1, "1") and not one_index:
        raise DisplacementError(
            f"fabric.devices={devices}: one edit runs on one device. To use several GPUs, run a "
            "parallel sweep (`-m hydra/launcher=parallel ...`): sweep job k runs on GPU k mod N"
        )
    cuda = torch.cuda.is_available() and accelerator in ("auto", "cuda", "gpu")
    if precision == "auto":
        precision = auto_precision(cuda, cuda and torch.cuda.is_bf16_supported(including_emulation=False))
    index = sweep_device(job_number, torch.cuda.device_count()) if cuda else None
    if one_index:
        devices = [int(devices[0])]  # the user's choice of GPU
    elif index is not None:
        devices = [index]
    with warnings.catch_warnings():
        # on a machine with SLURM's tools, Fabric advises `srun` for multi-process runs; an
        # edit is one process (a sweep's jobs are submitted by the launcher)
        warnings.filterwarnings("ignore", message="The `srun` command is available")
        fabric = Fabric(accelerator=accelerator, devices=devices, precision=precision)
    log.info("fabric: %s, precision %s", fabric.device, precision)
    return fabric


def auto_precision(cuda: bool, bf16_supported: bool) -> str:
    """Fabric's precision for ``precision: auto``: bf16 autocast on a GPU that computes in
    bf16 (Ampere and later; SAM 3's own examples use it, and its fp32 range cannot overflow
    where fp16 does), fp16 autocast on older GPUs, fp32 on a CPU: exact, and what the
    tests and the benchmark's quality numbers use (``bf16-mixed`` on a CPU is a choice:
    SAM 3 encoded in 0.57x the CPU seconds, with 0.9 GB more memory, in ``make bench``)."""
    if not cuda:
        return "32-true"
    return "bf16-mixed" if bf16_supported else "16-mixed"


def sweep_device(job_number: int | None, device_count: int) -> int | None:
    """The CUDA index for parallel sweep job ``job_number``: jobs take the GPUs in turn.

    None (Fabric's default device) outside a parallel sweep or with fewer than two GPUs.
    """
    if job_number is None or device_count < 2:
        return None
    return job_number % device_count


class UsesDevice:
    """Mixin for components that run a model: the task hands them the Fabric.

    Without ``setup`` they run on the CPU in fp32, which is what unit tests want.
    """

    fabric: Fabric | None = None

    def setup(self, fabric: Fabric) -> None:
        self.fabric = fabric

    @property
    def device(self) -> torch.device:
        import torch

        return self.fabric.device if self.fabric is not None else torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        """The dtype weights are loaded in: half on an accelerator at 16-bit, else fp32."""
        import torch

        if self.fabric is None or self.device.type == "cpu":
            return torch.float32
        precision = str(getattr(self.fabric.strategy.precision, "precision", "32-true"))
        if precision.startswith("bf16"):
            return torch.bfloat16
        return torch.float16 if precision.startswith("16") else torch.float32

    @property
    def runtime(self) -> str:
        """Where and in what precision the model runs (``cuda:0 bf16-mixed``): the same
        inputs give other outputs elsewhere, so stage cache keys hold it."""
        precision = "32-true" if self.fabric is None else self.fabric.strategy.precision.precision
        return f"{self.device} {precision}"

    def placed(self, module: M) -> M:
        """``module`` (a model this component runs) on this component's device, where
        :func:`make_room` may have parked it; recorded, so that it can be parked."""
        modules = self.__dict__.setdefault("_modules", [])
        if not any(m is module for m in modules):
            modules.append(module)
        if self.device.type != "cpu" and _device_of(module) != self.device:
            log.info("moving %s back to %s", type(module).__name__, self.device)
            module.to(self.device)  # type: ignore[attr-defined]
        return module

    def resident_bytes(self) -> int:
        """Bytes of this component's models (weights and buffers) on its device now."""
        return sum(module_bytes(m) for m in self.__dict__.get("_modules", []) if _device_of(m) == self.device)

    def working_bytes(self) -> int:
        """Device memory this component needs while it runs; by default its weights."""
        return self.resident_bytes()

    def park(self) -> None:
        """Move this component's models to host memory until their next use."""
        for module in self.__dict__.get("_modules", []):
            module.to("cpu")

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return self.fabric.autocast() if self.fabric is not None else contextlib.nullcontext()


def models_to_park(
    card_bytes: int, resident: Mapping[str, int], running_bytes: int, reserve: float = GPU_RESERVE
) -> list[str]:
    """Which resident models leave the GPU so that a model needing ``running_bytes`` runs:
    none when everything fits in the card less ``reserve`` of it, else the largest first
    until the rest fits. SAM vit_h (2.6 GB), SAM 3 (3.4 GB), Grounding DINO and CLIP kept
    beside SDXL (7 GB of fp16 weights and its working memory) overflow a 12 GB card."""
    budget = card_bytes * (1 - reserve) - running_bytes
    kept = sum(resident.values())
    parked: list[str] = []
    for name in sorted(resident, key=lambda n: -resident[n]):
        if kept <= budget:
            break
        parked.append(name)
        kept -= resident[name]
    return parked


def make_room(running: object, components: Iterable[object]) -> list[str]:
    """Before ``running`` runs a model on a GPU, park the other components' models that
    :func:`models_to_park` says must leave; their next use brings them back. The names of
    the components parked; nothing on a CPU, where models share the host's memory."""
    if not isinstance(running, UsesDevice) or running.fabric is None or running.device.type != "cuda":
        return []  # no Fabric (the CPU) or not a GPU
    import torch

    others = {
        f"{type(c).__name__}#{n}": c
        for n, c in enumerate(components)
        if isinstance(c, UsesDevice) and c is not running and c.device == running.device
    }
    card = torch.cuda.get_device_properties(running.device).total_memory
    resident = {name: c.resident_bytes() for name, c in others.items()}
    parked = models_to_park(card, resident, running.working_bytes())
    for name in parked:
        others[name].park()
    if parked:
        torch.cuda.empty_cache()
        log.info("moved %s to host memory while %s runs", ", ".join(parked), type(running).__name__)
    return parked


def _device_of(module: Any) -> Any:
    tensor = next(iter(module.parameters()), None)
    return None if tensor is None else tensor.device


def module_bytes(module: Any) -> int:
    """Bytes of a torch module's weights and buffers."""
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


@contextlib.contextmanager
def quiet_libraries() -> Iterator[None]:
    """Silence model libraries while they load: some log a failure on the root logger or
    warn about deprecated arguments before raising, and the user should see our one line."""
    _hush_model_libraries()
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.CRITICAL)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _hush_model_libraries() -> None:
    """Turn off diffusers' and transformers' progress bars and notices for the process:
    they print per load and per call and would drown the run's own log."""
    for name in ("diffusers", "transformers"):
        module = sys.modules.get(name)
        if module is not None:
            module.utils.logging.set_verbosity_error()
            module.utils.logging.disable_progress_bar()
