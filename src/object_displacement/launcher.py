"""What ``hydra/launcher=slurm`` adds to submitit's SLURM launcher, so a sweep on a cluster
is reported as a local one is (:mod:`object_displacement.cli`):

- before submitting, the cluster is checked (:func:`slurm.use_cluster`): no ``sbatch``, a
  controller that does not answer, or ``sbatch`` refusing the jobs is one line and exit 2;
- a job that fails writes its reason in its dir (``error.txt``) and the sweep's tally names
  it, as locally; a bug in a job is recorded the same way, its traceback in the job's log;
- a job the scheduler ends (``scancel``, time limit, preemption, a lost node) without a
  result gets the scheduler's reason in its dir instead: submitit would wait on it forever
  where there is no accounting database, or end the sweep with a traceback;
- a job stopped near its time limit stops cleanly (a dataset writes its summary);
- a job that finished marks itself done, and a rerun of the sweep (same dir, same
  overrides) runs only the jobs that did not.

Submission is submitit's (one array job, ``.submitit/`` logs); waiting is ours: result
files every second, the scheduler (``squeue``) at most every ``poll_s`` seconds.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import signal
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from object_displacement.cli import (
    ERROR_FILE,
    USER_ERROR_EXIT,
    Terminated,
    one_line,
    record_failure,
    sweep_started,
)
from object_displacement.errors import DisplacementError
from object_displacement.slurm import GONE, PREEMPTED, has_ended, job_states, stop_reason, use_cluster

log = logging.getLogger(__name__)

DONE_FILE = ".job-done"
"""Written in a job's dir when it finished without an error: its overrides, as JSON."""
RESULT_CHECK_S = 1.0
"""How often the result files are looked at (a stat each: cheap)."""
FIRST_ASK_S = 2.0
"""The first question to the scheduler; later ones wait longer, up to ``poll_s``."""
RESULT_GRACE_S = 15.0
"""A job the scheduler says COMPLETED may show its result file this much later (a slow
shared disk; submitit waits as long)."""
LOG_FILE = "displace.log"


@dataclass(frozen=True)
class SweepJob:
    """One job of the sweep, as the launcher sees it: its number, overrides and dir."""

    number: int
    overrides: tuple[str, ...]
    dir: Path


def launch(launcher: Any, job_overrides: Sequence[Sequence[str]], initial_job_idx: int) -> list[Any]:
    """Submit the jobs that have not finished, wait for them, record how each ended;
    one ``JobReturn`` per job, in order (the Hydra launcher's ``launch``)."""
    from hydra.core.utils import JobReturn, JobStatus

    own = launcher.own
    try:
        conf = use_cluster(Path(own["local_conf"]) if own.get("local_conf") else None)
    except DisplacementError as err:
        print(one_line(err), file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_EXIT)
    sweep_dir = Path(str(launcher.config.hydra.sweep.dir)).absolute()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    jobs = [sweep_job(launcher, overrides, initial_job_idx + i) for i, overrides in enumerate(job_overrides)]
    finished = [job for job in jobs if own.get("skip_finished", True) and has_finished(job)]
    for job in finished:
        # the tally counts the jobs written since the sweep started: a skipped job is one of them
        (job.dir / ".hydra" / "overrides.yaml").touch()
        log.info("job %d finished in an earlier run of this sweep: skipped (%s)", job.number, job.dir)
    todo = [job for job in jobs if job not in finished]
    for job in todo:  # run again (skip_finished=false, or a failure): done only once it says so again
        (job.dir / DONE_FILE).unlink(missing_ok=True)
    if todo:
        submitted = submit(launcher, todo)
        array = submitted[0].job_id.split("_")[0]
        log.info(
            "%d jobs submitted to SLURM (%s) as array %s; waiting (squeue --jobs=%s)",
            len(todo),
            conf,
            array,
            array,
        )
        ended = wait(submitted, float(own.get("poll_s", 30.0)))
        started = sweep_started(sweep_dir)
        for job, handle in zip(todo, submitted, strict=True):
            if handle.job_id in ended:
                record_stop(job, handle, ended[handle.job_id], launcher.params.get("timeout_min"), started)
            else:
                record_result(job, handle)
    return [JobReturn(overrides=list(job.overrides), status=JobStatus.COMPLETED) for job in jobs]


def sweep_job(launcher: Any, overrides: Sequence[str], number: int) -> SweepJob:
    """A job's dir, as Hydra will name it on the node (``hydra.sweep.dir``/``subdir``). The
    default subdir is the job's number; another is composed as the job will compose it
    (0.1 s a job)."""
    from omegaconf import OmegaConf, open_dict

    sweep = OmegaConf.to_container(launcher.config.hydra.sweep, resolve=False)
    assert isinstance(sweep, dict)
    if sweep.get("subdir") == "${hydra.job.num}":
        return SweepJob(
            number, tuple(overrides), (Path(str(launcher.config.hydra.sweep.dir)) / str(number)).absolute()
        )
    config = launcher.hydra_context.config_loader.load_sweep_config(launcher.config, list(overrides))
    with open_dict(config.hydra.job):
        config.hydra.job.num = number
        config.hydra.job.id = f"job_id_for_{number}"
    subdir = str(OmegaConf.select(config, "hydra.sweep.subdir"))
    return SweepJob(number, tuple(overrides), (Path(str(config.hydra.sweep.dir)) / subdir).absolute())


def has_finished(job: SweepJob) -> bool:
    """Whether ``job`` finished in an earlier run: its dir says so, for the same overrides
    (an earlier sweep into the same dir may have run other settings there)."""
    try:
        return json.loads((job.dir / DONE_FILE).read_text()) == list(job.overrides)
    except (OSError, ValueError):
        return False


def submit(launcher: Any, jobs: list[SweepJob]) -> list[Any]:
    """The jobs as one SLURM array, with the launcher's settings (as submitit's launcher
    submits them); sbatch refusing them is one line and exit 2."""
    import submitit
    from hydra.core.singleton import Singleton
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf
    from omegaconf import OmegaConf

    params = dict(launcher.params)
    executor = submitit.AutoExecutor(
        cluster="slurm",
        folder=params.pop("submitit_folder"),
        slurm_max_num_timeout=params.pop("max_num_timeout", 0),
    )
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    executor.update_parameters(**{k if k in shared else f"slurm_{k}": v for k, v in params.items()})
    state = Singleton.get_state()
    arguments = [
        (list(j.overrides), "hydra.sweep.dir", j.number, f"job_id_for_{j.number}", state) for j in jobs
    ]
    try:
        with contextlib.redirect_stderr(io.StringIO()):  # submitit prints sbatch's refusal; it is said below
            return executor.map_array(launcher, *zip(*arguments, strict=True))
    except (submitit.core.utils.FailedJobError, OSError) as err:
        lines = [line.strip().removeprefix("sbatch: error: ") for line in str(err).splitlines()]
        said = "; ".join(line for line in lines if line) or type(err).__name__
        refusal = DisplacementError(
            f"SLURM refused the sweep (sbatch: {said}): check hydra.launcher.partition, gpus_per_node, "
            "cpus_per_task, mem_gb and timeout_min against what `sinfo` shows"
        )
        print(one_line(refusal), file=sys.stderr, flush=True)
        sys.exit(USER_ERROR_EXIT)


def wait(handles: list[Any], poll_s: float) -> dict[str, str]:
    """Wait until every job has written its result or the scheduler says it ended; the
    scheduler's state of each job that ended without a result."""
    pending = {h.job_id: h for h in handles}
    ended: dict[str, str] = {}
    preempted: set[str] = set()
    completed_at: dict[str, float] = {}
    start = time.monotonic()
    next_ask = start + FIRST_ASK_S
    while pending:
        for job_id, handle in list(pending.items()):
            if handle.paths.result_pickle.exists():
                del pending[job_id]
        now = time.monotonic()
        if pending and now >= next_ask:
            for job_id, state in (job_states(pending) or {}).items():
                if state == PREEMPTED and job_id not in preempted:
                    preempted.add(job_id)  # requeued a moment later, or over: the next answer says
                    continue
                if not has_ended(state) and state != PREEMPTED:
                    continue
                if (
                    state in ("COMPLETED", GONE)
                    and now - completed_at.setdefault(job_id, now) < RESULT_GRACE_S
                ):
                    continue  # its result file may still be on its way
                if not pending[job_id].paths.result_pickle.exists():
                    log.warning("job %s ended without a result: %s", job_id, state)
                    ended[job_id] = state
                del pending[job_id]
            next_ask = now + min(poll_s, max(FIRST_ASK_S, (now - start) / 4))
        if pending:
            time.sleep(RESULT_CHECK_S)
    return ended


def record_result(job: SweepJob, handle: Any) -> None:
    """A job that wrote its result: a failure of its own is in its dir already; one outside
    the task (submitit's process could not run it) is put there."""
    try:
        handle.results()
    except Exception as err:  # submitit pickled the error of its own process: say where its log is
        last = next(
            (line for line in reversed(str(err).splitlines()) if line.strip(" -")), type(err).__name__
        )
        if not (job.dir / ERROR_FILE).is_file():
            record(job, f"error: the job failed outside its task ({last.strip()}); see {handle.paths.stderr}")


def record_stop(job: SweepJob, handle: Any, state: str, timeout_min: Any, started: float) -> None:
    """A job the scheduler ended without a result: the line it wrote itself as it stopped
    (a time limit) stands; otherwise the scheduler's reason goes in its dir."""
    written = job.dir / ERROR_FILE
    if written.is_file() and written.stat().st_mtime >= started:
        return
    record(
        job,
        f"error: {stop_reason(state, timeout_min)}: rerun the sweep to run it again "
        f"(job {handle.job_id}, log {handle.paths.stderr})",
    )


def record(job: SweepJob, line: str) -> None:
    """Write ``line`` as the job's error, in its dir and its log, making the dir (with the
    job's overrides, which the tally reads) if the job never started."""
    hydra_dir = job.dir / ".hydra"
    hydra_dir.mkdir(parents=True, exist_ok=True)
    overrides = hydra_dir / "overrides.yaml"
    if not overrides.is_file():
        overrides.write_text("".join(f"- {json.dumps(o)}\n" for o in job.overrides) or "[]\n")
    (job.dir / ERROR_FILE).write_text(line + "\n")
    if (job.dir / LOG_FILE).is_file():
        with (job.dir / LOG_FILE).open("a") as handle:
            handle.write(f"[{time.strftime('%Y-%m-%d %H:%M:%S')}][{__name__}][ERROR] - {line}\n")


# --- on the node -----------------------------------------------------------------------------


def run_on_node(launcher: Any, run: Callable[..., Any], *args: Any) -> Any:
    """Run one job on its node (submitit calls the launcher there): stop cleanly near the
    time limit, record a bug like a user error, and mark the job done when it finished."""
    stop_near_time_limit(launcher.params.get("timeout_min"), launcher.params.get("signal_delay_s"))
    ret = run(*args)
    from hydra.core.utils import JobStatus

    job_dir = Path(str(ret.hydra_cfg.hydra.runtime.output_dir))
    if ret.status == JobStatus.FAILED:  # a bug: Hydra kept the exception; the tally reports it as any failure
        err = ret._return_value
        logging.getLogger(__name__).error("internal error", exc_info=(type(err), err, err.__traceback__))
        record_failure(f"error: internal error: {type(err).__name__}: {err}", job_dir)
        ret.status, ret._return_value = JobStatus.COMPLETED, None
    elif not (job_dir / ERROR_FILE).is_file():
        (job_dir / DONE_FILE).write_text(json.dumps(list(ret.overrides or [])))
    return ret


def stop_near_time_limit(timeout_min: Any, delay_s: Any) -> None:
    """submitit's signal (SIGUSR2, ``signal_delay_s`` before the time limit, or on
    preemption) requeues a preempted job; a job at its time limit it would end with an
    exception any ``except Exception`` could take for a failed edit. Here that becomes
    :class:`~object_displacement.cli.Terminated`, the stop every entry point cleans up after
    (a dataset's summary written), with the reason as its line."""
    from submitit.core.job_environment import JobEnvironment
    from submitit.core.utils import UncompletedJobError

    signum = JobEnvironment._usr_sig()
    requeue = signal.getsignal(signum)
    if not callable(requeue):
        return

    def on_signal(number: int, frame: Any) -> None:
        try:
            requeue(number, frame)  # preempted: checkpointed and requeued, and this process exits
        except UncompletedJobError:
            raise Terminated(
                f"stopped {delay_s} s before its time limit (hydra.launcher.timeout_min={timeout_min}): "
                "raise it, or rerun the sweep to run this job again"
            ) from None

    signal.signal(signum, on_signal)
