"""Device and precision: Lightning Fabric owns them; model components ask it.

Only components that run a model (:class:`UsesDevice`) get a Fabric, and it is created
only when one is configured, so the classical pipeline never pays torch's start-up.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from object_displacement.errors import DisplacementError

if TYPE_CHECKING:
    import torch
    from lightning_fabric import Fabric

log = logging.getLogger(__name__)


def make_fabric(
    accelerator: str = "auto", devices: Any = 1, precision: str = "auto", job_number: int | None = None
) -> Fabric:
    """A single-device Fabric; ``precision: auto`` is fp16 on CUDA and fp32 on CPU.

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
        precision = "16-mixed" if cuda else "32-true"
    index = sweep_device(job_number, torch.cuda.device_count()) if cuda else None
    if one_index:
        devices = [int(devices[0])]  # the user's choice of GPU
    elif index is not None:
        devices = [index]
    fabric = Fabric(accelerator=accelerator, devices=devices, precision=precision)
    log.info("fabric: %s, precision %s", fabric.device, precision)
    return fabric


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

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        return self.fabric.autocast() if self.fabric is not None else contextlib.nullcontext()


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
