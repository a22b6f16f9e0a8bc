"""Device and precision: Lightning Fabric owns them; model components ask it.

Only components that run a model (:class:`UsesDevice`) get a Fabric, and it is created
only when one is configured, so the classical pipeline never pays torch's start-up.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import torch
    from lightning_fabric import Fabric

log = logging.getLogger(__name__)


def make_fabric(accelerator: str = "auto", devices: int = 1, precision: str = "auto") -> Fabric:
    """A single-device Fabric; ``precision: auto`` is fp16 on CUDA and fp32 on CPU."""
    import torch
    from lightning_fabric import Fabric

    cuda = torch.cuda.is_available() and accelerator in ("auto", "cuda", "gpu")
    if precision == "auto":
        precision = "16-mixed" if cuda else "32-true"
    fabric = Fabric(accelerator=accelerator, devices=devices, precision=precision)
    log.info("fabric: %s, precision %s", fabric.device, precision)
    return fabric


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
