"""``logger=wandb``: Weights & Biases, offline unless the user is set up to upload."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from object_displacement.loggers.base import RunLogger, flatten
from object_displacement.network import reachable
from object_displacement.types import Image

log = logging.getLogger(__name__)


class WandbLogger(RunLogger):
    """One W&B run per job; the jobs of one multirun share a group. On a cluster the run's
    config also says which SLURM job it was (``slurm.job_id``, ``slurm.node``).

    A run never blocks or fails for want of a network: it is offline unless ``mode``,
    ``WANDB_MODE`` or an API key (``WANDB_API_KEY`` or ``wandb login``) says otherwise.
    ``wandb sync <dir>/wandb/offline-run-*`` uploads offline runs later.

    Args:
        project, entity: where the runs go in W&B.
        name: run name; ``None``: the job's overrides (``inpainter=telea,mask_policy.seam=0.05``).
        group: ``None``: the multirun's name (its sweep directory's ``<date>/<time>``, or the
            folder name of a ``hydra.sweep.dir`` you chose), so its jobs group together.
        tags: free labels, e.g. the task name.
        mode: ``online``, ``offline`` or ``disabled``; ``None`` decides as above.
        dir: where the run's files go (the job's run dir by default).
    """

    def __init__(
        self,
        project: str = "object-displacement",
        entity: str | None = None,
        name: str | None = None,
        group: str | None = None,
        tags: Sequence[str] = (),
        mode: str | None = None,
        dir: str | None = None,
    ) -> None:
        self.project = project
        self.entity = entity
        self.name = name
        self.group = group
        self.tags = list(tags)
        self.mode = mode
        self.dir = dir
        self.run: Any = None

    def start(self, config: dict[str, Any]) -> None:
        import wandb

        name, group = self.name, self.group
        overrides, sweep = _hydra_job()
        if name is None:
            name = overrides or None
        if group is None:
            group = sweep
        if self.dir:
            Path(self.dir).mkdir(parents=True, exist_ok=True)
        home_dirs_or_local(Path(self.dir or os.getcwd()) / "wandb")
        mode = self.mode or default_mode()
        if mode == "online" and not server_reachable():
            log.warning(
                "W&B: %s cannot be reached; logging offline (`wandb sync` uploads the run later)",
                server_url(),
            )
            mode = "offline"
        job = slurm_job()
        self.run = wandb.init(
            project=self.project,
            entity=self.entity,
            name=name,
            group=group,
            tags=self.tags,
            config={**config, "slurm": job} if job else config,
            dir=self.dir,
            mode=mode,
            settings=wandb.Settings(silent=True, console="off"),
            reinit="create_new",
        )
        log.info("W&B run %s (%s) in %s", self.run.name, self.run.settings.mode, self.run.dir)

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        flat = {k: v for k, v in flatten(metrics).items() if isinstance(v, (int, float)) and v is not None}
        self.run.log(flat, step=step)
        if step is None:
            self.run.summary.update(flat)

    def log_table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        import wandb

        # an empty cell is None, never "": a column of numbers with "" in it is refused
        data = [[None if v == "" else v for v in r] for r in rows]
        self.run.log({name: wandb.Table(columns=list(columns), data=data)})

    def save_file(self, path: Path) -> None:
        # files in the run's own folder are uploaded with it (``wandb.save`` would symlink
        # them and print a notice on every run)
        shutil.copy2(path, Path(self.run.dir) / Path(path).name)

    def log_image(self, name: str, image: Image, caption: str = "", step: int | None = None) -> None:
        import wandb

        self.run.log({name: wandb.Image(image, caption=caption)}, step=step)

    def finish(self, failed: bool = False) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None


def default_mode() -> str:
    """``WANDB_MODE`` if set; online with an API key or a ``wandb login``; else offline."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    netrc = Path(os.environ.get("NETRC", Path.home() / ".netrc"))
    logged_in = netrc.is_file() and "api.wandb.ai" in netrc.read_text(errors="ignore")
    return "online" if os.environ.get("WANDB_API_KEY") or logged_in else "offline"


HOME_DIRS = {
    "WANDB_DATA_DIR": ((".local", "share", "wandb"), ".data"),
    "WANDB_CACHE_DIR": ((".cache", "wandb"), ".cache"),
    "WANDB_CONFIG_DIR": ((".config", "wandb"), ".config"),
}
"""W&B's folders under the home directory, the variables that move them, and their names
in the run's ``wandb/`` when the home directory cannot hold them."""


def home_dirs_or_local(local: Path) -> None:
    """Where the home directory cannot hold W&B's folders (unwritable, or not a folder), put
    them under ``local`` (the run's own ``wandb/``): W&B would fail after the outputs were
    written. A variable the user set is left alone."""
    for variable, (parts, name) in HOME_DIRS.items():
        if os.environ.get(variable):
            continue
        folder = Path.home().joinpath(*parts)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError:
            os.environ[variable] = str(local / name)
            log.info("W&B: %s cannot be written; %s=%s", folder, variable, os.environ[variable])


def server_url() -> str:
    return os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai")


def server_reachable() -> bool:
    """Whether W&B's server answers within seconds: a run never waits on a network (W&B
    itself retries for 90 s, then fails)."""
    return reachable(server_url())


def _hydra_job() -> tuple[str, str | None]:
    """The job's overrides and, in a multirun, its sweep directory (empty outside Hydra)."""
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    if not HydraConfig.initialized():
        return "", None
    hc = HydraConfig.get()
    sweep = sweep_name(hc.sweep.dir) if hc.mode == RunMode.MULTIRUN else None
    return hc.job.override_dirname, sweep


def slurm_job() -> dict[str, str] | None:
    """The SLURM job a cluster sweep's run ran as (``squeue``/``sacct`` know it by this
    id: ``<array>_<task>``), and its node; ``None`` off a cluster."""
    env = os.environ
    if "SLURM_JOB_ID" not in env:
        return None
    job = env["SLURM_JOB_ID"]
    if env.get("SLURM_ARRAY_JOB_ID") and env.get("SLURM_ARRAY_TASK_ID"):
        job = f"{env['SLURM_ARRAY_JOB_ID']}_{env['SLURM_ARRAY_TASK_ID']}"
    return {"job_id": job, "node": env.get("SLURMD_NODENAME", "")}


def sweep_name(directory: str) -> str:
    """A sweep's own name, not where it lies on this disk: ``<date>/<time>`` for Hydra's
    default ``multiruns/<date>/<time>``, else the folder's name."""
    path = Path(directory)
    if path.parent.parent.name == "multiruns":
        return f"{path.parent.name}/{path.name}"
    return path.name
