"""Talking to a SLURM scheduler: which cluster a sweep submits to (the machine's own, or the
local one ``make slurm`` starts), whether its controller answers, what state its jobs are in,
and what that state tells a user. No Hydra here: the launcher asks, this module answers.

Job states come from ``squeue``, which every cluster has: ``sacct`` needs an accounting
database, which the local cluster (and some small ones) do not run. A job stays listed a
while after it ends (``MinJobAge``, 300 s by default), longer than the launcher waits
between two questions.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterable
from pathlib import Path

from object_displacement.errors import DisplacementError

SYSTEM_CONF = Path("/etc/slurm/slurm.conf")
ASK_TIMEOUT_S = 20.0
"""A controller that takes longer than this to answer is taken as down."""
RUNNING = frozenset({"PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED", "REQUEUED", "RESIZING"})
RUNNING |= {"REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "SIGNALING", "STAGE_OUT", "STOPPED"}
"""States of a job that is not over yet (a requeued job runs again)."""
PREEMPTED = "PREEMPTED"
"""Over for good, or requeued a moment later (PreemptMode=REQUEUE): the launcher asks twice."""
GONE = "GONE"
"""Not listed any more: the job ended long enough ago for the controller to forget it."""
MAKE_SLURM = "`make slurm` starts a local one-node cluster (needs root)"


def use_cluster(local_conf: Path | None) -> str:
    """Check that a SLURM cluster takes jobs from here and say which config reached it.
    ``SLURM_CONF`` is pointed at ``local_conf`` (the local cluster's) where it is not set
    and that cluster is up, or this machine has no config of its own; sbatch passes it on to
    the jobs. A cluster without a config file here (configless, found through DNS) is asked
    all the same: its controller's answer is what counts."""
    if shutil.which("sbatch") is None:
        raise DisplacementError(
            "hydra/launcher=slurm needs a SLURM cluster (no `sbatch` on this machine): run the sweep on "
            f"the cluster's login node; here {MAKE_SLURM}, or use hydra/launcher=parallel"
        )
    local = local_conf is not None and local_conf.is_file()
    if local and not os.environ.get("SLURM_CONF") and (local_is_up(local_conf) or not SYSTEM_CONF.is_file()):
        os.environ["SLURM_CONF"] = str(local_conf)
    given = os.environ.get("SLURM_CONF")
    if given and not Path(given).is_file():  # scontrol would look for a cluster through DNS, for 20 s
        raise DisplacementError(f"SLURM_CONF={given} is not a file: point it at the cluster's slurm.conf")
    conf = given or (str(SYSTEM_CONF) if SYSTEM_CONF.is_file() else "no slurm.conf")
    answer = ask(["scontrol", "ping"])
    if " is UP" not in answer.stdout:  # a backup controller that is down does not matter
        said = first_line(answer.stdout + answer.stderr) or f"exit code {answer.returncode}"
        raise DisplacementError(
            f"no SLURM controller answers (`scontrol ping` with {conf}: {said}): {MAKE_SLURM}, "
            "or start the cluster's own"
        )
    return conf


def local_is_up(local_conf: Path) -> bool:
    """Whether the local cluster's controller runs (its pid file names a live process)."""
    try:
        pid = int((local_conf.parent / "slurmctld.pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def job_states(job_ids: Iterable[str]) -> dict[str, str] | None:
    """The state of each job, by id (an array's task as ``<array>_<task>``): ``RUNNING``,
    ``COMPLETED``, ``CANCELLED``, ``TIMEOUT``, ...; :data:`GONE` for a job the controller no
    longer lists. ``None`` when the controller does not answer (ask again later)."""
    wanted = list(dict.fromkeys(job_ids))
    arrays = sorted({j.split("_")[0] for j in wanted})
    if not arrays:
        return {}
    answer = ask(
        ["squeue", "--noheader", "--array", "--states=all", f"--jobs={','.join(arrays)}", "--format=%i|%T"]
    )
    if answer.returncode != 0 and "Invalid job id" not in answer.stderr:  # that: every one forgotten
        return None
    listed: dict[str, str] = {}
    for line in answer.stdout.splitlines():
        job_id, _, state = line.strip().partition("|")
        listed[job_id] = state.split()[0] if state.strip() else "UNKNOWN"
    return {j: listed.get(j, GONE) for j in wanted}


def has_ended(state: str) -> bool:
    return state not in RUNNING and state != PREEMPTED


def stop_reason(state: str, timeout_min: int | None = None) -> str:
    """What a user is told of a job that ended in ``state`` without finishing its work."""
    reasons = {
        "CANCELLED": "cancelled on the cluster (scancel) before it finished",
        "TIMEOUT": f"killed by the scheduler at its time limit (hydra.launcher.timeout_min={timeout_min})",
        PREEMPTED: "preempted by the scheduler and not requeued",
        "NODE_FAIL": "lost with its node (NODE_FAIL)",
        "OUT_OF_MEMORY": "killed for using more memory than it asked for (raise hydra.launcher.mem_gb)",
        "BOOT_FAIL": "never started: its node failed to boot (BOOT_FAIL)",
        "DEADLINE": "killed by the scheduler at its deadline",
        GONE: "ended without a result, and the scheduler no longer lists it",
    }
    return reasons.get(state, f"ended by the scheduler as {state} without a result")


def ask(command: list[str]) -> subprocess.CompletedProcess:
    """Run a SLURM client command; one that hangs or is missing reads as a failed answer."""
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=ASK_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as err:
        return subprocess.CompletedProcess(command, 1, "", f"{command[0]}: {err}")


def first_line(text: str) -> str:
    return next((line.strip() for line in text.splitlines() if line.strip()), "")
