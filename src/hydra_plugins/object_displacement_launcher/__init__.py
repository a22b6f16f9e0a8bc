"""``hydra/launcher=slurm``: hydra-submitit-launcher's SLURM launcher, made to report a
cluster's failures as a local sweep does (:mod:`object_displacement.launcher` does the work).

Hydra takes launchers only from the ``hydra_plugins`` package and imports every module in it
when it starts (``--help`` too), so this one holds the class and its config schema and
imports the project only when a sweep is launched. (No ``from __future__ import annotations``:
Hydra runs this module without registering it, where dataclasses cannot read string annotations.)"""

from dataclasses import dataclass
from typing import Any, Optional

from hydra.core.config_store import ConfigStore
from hydra_plugins.hydra_submitit_launcher.config import SlurmQueueConf
from hydra_plugins.hydra_submitit_launcher.submitit_launcher import SlurmLauncher as SubmititSlurmLauncher

OWN_SETTINGS = ("local_conf", "poll_s", "skip_finished")
"""Settings of ours, not submitit's: taken out before submitit sees the rest."""


@dataclass
class ClusterQueueConf(SlurmQueueConf):
    """submitit's SLURM settings, and ours:

    ``local_conf``: the local cluster's ``slurm.conf`` (``make slurm``), used where
    ``SLURM_CONF`` is not set and that cluster is up. ``poll_s``: the most seconds between two
    questions to the scheduler while jobs run. ``skip_finished``: a rerun of a sweep skips
    the jobs that finished in an earlier run of it (same dir, same overrides)."""

    _target_: str = "hydra_plugins.object_displacement_launcher.SlurmLauncher"
    local_conf: Optional[str] = None  # noqa: UP045 (OmegaConf reads the type)
    poll_s: float = 30.0
    skip_finished: bool = True


ConfigStore.instance().store(
    group="hydra/launcher",
    name="object_displacement_slurm",
    node=ClusterQueueConf,
    provider="object_displacement",
)


class SlurmLauncher(SubmititSlurmLauncher):
    """One SLURM array job per sweep; see :mod:`object_displacement.launcher`."""

    def __init__(self, **params: Any) -> None:
        self.own = {k: params.pop(k) for k in OWN_SETTINGS if k in params}
        super().__init__(**params)

    def launch(self, job_overrides: Any, initial_job_idx: int) -> Any:
        from object_displacement.launcher import launch

        return launch(self, job_overrides, initial_job_idx)

    def __call__(self, *args: Any) -> Any:
        """On the node: the job, with the scheduler's signals turned into a clean stop."""
        from object_displacement.launcher import run_on_node

        return run_on_node(self, super().__call__, *args)
