"""The cluster layer without a cluster (fast tier): what a scheduler's answer means, which
rows a shard runs, its records, the summary rebuilt from them, how the launcher waits and
what it writes in a job's dir. tests/test_slurm.py runs the same on the real scheduler."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest

from object_displacement import launcher, shard_summary, slurm
from object_displacement.dataset import read_manifest
from object_displacement.errors import DisplacementError
from object_displacement.shard_summary import merge
from object_displacement.shards import Records, check_shard, read_records, shard_rows


@pytest.mark.parametrize(
    ("state", "said"),
    [
        ("CANCELLED", "cancelled on the cluster (scancel)"),
        ("TIMEOUT", "time limit (hydra.launcher.timeout_min=60)"),
        ("PREEMPTED", "preempted by the scheduler"),
        ("OUT_OF_MEMORY", "raise hydra.launcher.mem_gb"),
        ("NODE_FAIL", "lost with its node"),
        (slurm.GONE, "no longer lists it"),
        ("SPECIAL_EXIT", "ended by the scheduler as SPECIAL_EXIT"),
    ],
)
def test_each_way_the_scheduler_ends_a_job_is_said_as_such(state, said):
    assert said in slurm.stop_reason(state, 60)
    assert slurm.has_ended(state) == (state != "PREEMPTED")  # a preempted job may be requeued


def test_squeue_answers_become_states_and_a_forgotten_job_is_gone(monkeypatch):
    answers = iter(
        [
            subprocess.CompletedProcess([], 0, "7_0|RUNNING\n7_1|CANCELLED\n7_2|PENDING\n", ""),
            subprocess.CompletedProcess([], 1, "", "slurm_load_jobs error: Invalid job id specified"),
            subprocess.CompletedProcess(
                [], 1, "", "slurm_load_jobs error: Unable to contact slurm controller"
            ),
        ]
    )
    asked = []
    monkeypatch.setattr(slurm, "ask", lambda command: asked.append(command) or next(answers))
    assert slurm.job_states(["7_0", "7_1", "7_3"]) == {
        "7_0": "RUNNING",
        "7_1": "CANCELLED",
        "7_3": slurm.GONE,
    }
    assert "--jobs=7" in asked[0] and "--array" in asked[0]  # one question per array, every task listed
    assert slurm.job_states(["7_0"]) == {"7_0": slurm.GONE}
    assert slurm.job_states(["7_0"]) is None  # no answer: ask again later, nothing ends


def test_no_sbatch_and_no_cluster_are_each_one_line_with_the_way_out(monkeypatch, tmp_path):
    monkeypatch.setattr(slurm.shutil, "which", lambda name: None)
    with pytest.raises(DisplacementError, match=r"no `sbatch` on this machine.*`make slurm` starts a local"):
        slurm.use_cluster(None)
    monkeypatch.setattr(slurm.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(slurm, "SYSTEM_CONF", tmp_path / "etc" / "slurm.conf")
    monkeypatch.delenv("SLURM_CONF", raising=False)
    refused = "scontrol: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host"
    monkeypatch.setattr(slurm, "ask", lambda c: subprocess.CompletedProcess(c, 1, "", refused + "\n"))
    with pytest.raises(
        DisplacementError, match=r"`scontrol ping` with no slurm.conf: scontrol: error: resolve.*make slurm"
    ):
        slurm.use_cluster(tmp_path / "local" / "slurm.conf")  # none here, and no DNS record of one either
    local = tmp_path / "local" / "slurm.conf"
    local.parent.mkdir()
    local.write_text("ClusterName=local\n")
    monkeypatch.setattr(
        slurm, "ask", lambda c: subprocess.CompletedProcess(c, 1, "Slurmctld(primary) at vm is DOWN\n", "")
    )
    with pytest.raises(
        DisplacementError, match=r"no SLURM controller answers \(`scontrol ping` with .*is DOWN\)"
    ):
        slurm.use_cluster(local)  # the local config is taken (no other), and its controller is down
    monkeypatch.setattr(
        slurm, "ask", lambda c: subprocess.CompletedProcess(c, 0, "Slurmctld(primary) at vm is UP\n", "")
    )
    assert slurm.use_cluster(local) == str(local)
    assert slurm.os.environ["SLURM_CONF"] == str(local)  # sbatch passes it on to the jobs
    monkeypatch.setenv("SLURM_CONF", str(tmp_path / "gone.conf"))
    with pytest.raises(DisplacementError, match=r"SLURM_CONF=.*gone.conf is not a file"):
        slurm.use_cluster(local)  # said at once, not after scontrol's 20 s of looking


@pytest.mark.parametrize(
    ("shard", "count", "message"),
    [
        (None, 3, r"splits the manifest into 3 jobs: run them as a sweep, -m 'dataset.shard=range\(3\)'"),
        (3, 3, r"dataset.shard=3 must be from 0 to dataset.shards-1 \(2\)"),
        (-1, 2, r"dataset.shard must be a whole number"),
        (0, 0, r"dataset.shards must be 1 or more"),
        ("x", 2, r"dataset.shard must be a whole number, got 'x'"),
        (1, True, r"dataset.shards must be a whole number"),
    ],
)
def test_a_shard_setting_that_cannot_run_says_what_to_change(shard, count, message):
    with pytest.raises(DisplacementError, match=message):
        check_shard(shard, count)


def test_shards_take_every_nth_row_and_together_every_row(tmp_path):
    manifest = write_manifest(tmp_path, [f"r{i}" for i in range(7)])
    rows = read_manifest(manifest)
    taken = [shard_rows(rows, k, 3) for k in range(3)]
    assert [[n for n, _ in t] for t in taken] == [[1, 4, 7], [2, 5], [3, 6]]
    assert sorted(r.id for t in taken for _, r in t) == sorted(r.id for r in rows)
    assert check_shard(None, 1) == (None, 1) and [n for n, _ in shard_rows(rows, None, 1)] == list(
        range(1, 8)
    )


def test_records_keep_what_a_killed_shard_did_and_a_rerun_keeps_only_the_same_edits(tmp_path):
    manifest = write_manifest(tmp_path, ["a", "b", "c"])
    rows = read_manifest(manifest)
    path = tmp_path / "job" / "records.jsonl"
    header = {"manifest": str(manifest), "shard": 0, "shards": 1, "overrides": ["dx=1"]}
    with Records(path, header) as records:
        records.add(1, rows[0], {"id": "a", "status": "ok", "error": ""})
        records.add(2, rows[1], {"id": "b", "status": "failed", "error": "bad"})
    path.write_text(path.read_text() + '{"row": 3, "key"')  # a kill cut the last line short
    assert read_records(path)[0] == header and [e["row"] for e in read_records(path)[1]] == [1, 2]
    edits = tmp_path / "job" / "edits"
    (edits / "a").mkdir(parents=True)
    (edits / "a" / "metrics.json").write_text("{}")
    with Records(path, header) as again:
        assert again.kept_row(1, rows[0], edits / "a") == {"id": "a", "status": "ok", "error": ""}
        assert again.kept_row(2, rows[1], edits / "b") is None  # failed: run again
        assert again.kept_row(1, rows[1], edits / "a") is None  # another edit under that number
    assert [e["row"] for e in read_records(path)[1]] == [1]  # the kept row is in the new record
    (edits / "a" / "metrics.json").unlink()
    with Records(path, header) as gone:
        assert gone.kept_row(1, rows[0], edits / "a") is None  # its files are gone: run again
    with Records(path, {**header, "overrides": ["dx=2"]}) as other:
        assert other.kept == {}  # other settings: nothing kept


def test_the_summary_is_rebuilt_from_the_shards_records_with_a_dead_shards_rows_not_run(tmp_path):
    sweep = tmp_path / "sweep"
    manifest = write_manifest(tmp_path, [f"r{i}" for i in range(5)])
    sweep.mkdir()
    (sweep / ".sweep-started").touch()
    settings = ["+dataset.manifest=m.csv", "+dataset.shards=2"]
    rows = read_manifest(manifest)
    for shard, finished in ((0, [1, 3, 5]), (1, [2])):  # shard 1 died after its first row
        job = sweep / str(shard)
        write_overrides(job, [*settings, f"+dataset.shard={shard}"])
        header = {"manifest": str(manifest), "shard": shard, "shards": 2, "overrides": []}
        with Records(job / "records.jsonl", header) as records:
            for number in finished:
                records.add(
                    number,
                    rows[number - 1],
                    {"id": f"r{number - 1}", "status": "ok", "error": "", "psnr": 30},
                )
    (sweep / "1" / "error.txt").write_text("error: cancelled on the cluster (scancel) before it finished\n")
    old = sweep / "9"  # an earlier sweep's job in the same dir: not this one's
    write_overrides(old, [*settings, "+dataset.shard=0"])
    os.utime(old / ".hydra" / "overrides.yaml", (0, 0))
    counts = merge(sweep)
    assert counts == {"edits": 5, "failed": 0, "not run": 1, "shards": 2}
    with (sweep / "summary.csv").open() as handle:
        summary = list(csv.DictReader(handle))
    assert [r["id"] for r in summary] == [f"r{i}" for i in range(5)]  # the manifest's order
    assert [r["shard"] for r in summary] == ["0", "1", "0", "1", "0"]
    assert [r["status"] for r in summary] == ["ok", "ok", "ok", "not run", "ok"]
    assert (
        summary[3]["error"]
        == "shard 1 stopped before this row: cancelled on the cluster (scancel) before it finished"
    )
    assert summary[1]["dir"] == "1/edits/r1" and summary[0]["psnr"] == "30"
    assert shard_summary.main([str(sweep)]) == 0 and shard_summary.main([str(tmp_path)]) == 2


def test_the_launcher_waits_for_results_and_the_scheduler_and_says_how_each_job_ended(monkeypatch, tmp_path):
    handles = [FakeJob(tmp_path, f"5_{k}") for k in range(4)]
    handles[0].result.write_text("done")  # finished with its result
    answers = iter(
        [
            {"5_1": "RUNNING", "5_2": "PREEMPTED", "5_3": "CANCELLED"},
            {"5_1": "TIMEOUT", "5_2": "PREEMPTED"},  # preempted twice: not requeued
        ]
    )
    monkeypatch.setattr(launcher, "job_states", lambda ids: next(answers))
    monkeypatch.setattr(launcher.time, "sleep", lambda s: None)
    clock = iter(range(0, 10_000, 3))
    monkeypatch.setattr(launcher.time, "monotonic", lambda: next(clock))
    assert launcher.wait(handles, poll_s=5) == {"5_3": "CANCELLED", "5_1": "TIMEOUT", "5_2": "PREEMPTED"}


def test_a_stopped_job_gets_the_schedulers_reason_unless_it_wrote_its_own(tmp_path):
    job = launcher.SweepJob(2, ("dx=5",), tmp_path / "sweep" / "2")
    handle = FakeJob(tmp_path, "5_2")
    launcher.record_stop(job, handle, "CANCELLED", 60, started=0.0)
    line = (job.dir / "error.txt").read_text()
    assert line.startswith("error: cancelled on the cluster (scancel) before it finished: rerun the sweep")
    assert "job 5_2" in line and (job.dir / ".hydra" / "overrides.yaml").read_text() == '- "dx=5"\n'
    (job.dir / "error.txt").write_text("error: stopped 120 s before its time limit\n")
    launcher.record_stop(job, handle, "FAILED", 60, started=0.0)  # the job said why itself: it stands
    assert (job.dir / "error.txt").read_text() == "error: stopped 120 s before its time limit\n"
    assert not launcher.has_finished(job)
    (job.dir / launcher.DONE_FILE).write_text(json.dumps(["dx=5"]))
    assert launcher.has_finished(job)
    assert not launcher.has_finished(launcher.SweepJob(2, ("dx=6",), job.dir))  # another sweep's job 2


class FakeJob:
    """What the launcher reads of a submitit job: its id and where its files go."""

    def __init__(self, folder: Path, job_id: str) -> None:
        self.job_id = job_id
        self.result = folder / f"{job_id}_result.pkl"
        self.paths = type("Paths", (), {"result_pickle": self.result, "stderr": folder / f"{job_id}.err"})()


def write_manifest(folder: Path, ids: list[str]) -> Path:
    path = folder / "m.csv"
    lines = [
        "id,image,prompt,point,box,dx,dy",
        *(f"{i},skimage:rocket,,,300 120 345 408,{n + 1},0" for n, i in enumerate(ids)),
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def write_overrides(job: Path, overrides: list[str]) -> None:
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))


def test_on_the_node_a_bug_is_recorded_as_a_failure_and_only_a_job_that_finished_is_marked_done(tmp_path):
    from hydra.core.utils import JobReturn, JobStatus
    from omegaconf import OmegaConf

    cluster = SimpleNamespace(params={"timeout_min": 60, "signal_delay_s": 120})

    def job(name: str, status: JobStatus, value: object = None) -> tuple[Path, object]:
        job_dir = tmp_path / name
        job_dir.mkdir()
        hydra = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(job_dir)}}})
        ret = JobReturn(overrides=[f"dx={name}"], hydra_cfg=hydra, status=status, _return_value=value)
        return job_dir, lambda: ret

    done, run = job("1", JobStatus.COMPLETED)
    assert launcher.run_on_node(cluster, run).status == JobStatus.COMPLETED
    assert json.loads((done / launcher.DONE_FILE).read_text()) == ["dx=1"]
    failed, run = job("2", JobStatus.COMPLETED)
    (failed / "error.txt").write_text(
        "error: dx must be a number of pixels, got 'abc'\n"
    )  # the job's own error
    launcher.run_on_node(cluster, run)
    assert not (failed / launcher.DONE_FILE).exists()  # a rerun runs it again
    bug, run = job("3", JobStatus.FAILED, TypeError("boom"))
    ret = launcher.run_on_node(cluster, run)
    assert (
        ret.status == JobStatus.COMPLETED and ret.return_value is None
    )  # the sweep goes on, the tally counts it
    assert (bug / "error.txt").read_text() == "error: internal error: TypeError: boom\n"
    assert not (bug / launcher.DONE_FILE).exists()


def test_submitits_time_limit_signal_becomes_a_clean_stop_that_says_why():
    from submitit.core.utils import UncompletedJobError

    from object_displacement.cli import Terminated, _stop_line

    def submitits(signum, frame):  # what submitit's handler does at a time limit it will not requeue
        raise UncompletedJobError("Job not requeued because: timed-out and not checkpointable.")

    before = signal.signal(signal.SIGUSR2, submitits)
    try:
        launcher.stop_near_time_limit(60, 120)
        with pytest.raises(Terminated) as stopped:
            signal.raise_signal(signal.SIGUSR2)
    finally:
        signal.signal(signal.SIGUSR2, before)
    assert _stop_line(stopped.value) == (
        "error: stopped 120 s before its time limit (hydra.launcher.timeout_min=60): raise it, or rerun the "
        "sweep to run this job again"
    )
    assert _stop_line(Terminated()) == "error: terminated"  # a plain SIGTERM, as before


def test_a_wandb_run_on_a_cluster_says_which_slurm_job_it_was(monkeypatch):
    from object_displacement.loggers.wandb import slurm_job

    for name in ("SLURM_JOB_ID", "SLURM_ARRAY_JOB_ID", "SLURM_ARRAY_TASK_ID", "SLURMD_NODENAME"):
        monkeypatch.delenv(name, raising=False)
    assert slurm_job() is None
    monkeypatch.setenv("SLURM_JOB_ID", "48")
    monkeypatch.setenv("SLURMD_NODENAME", "gpu07")
    assert slurm_job() == {"job_id": "48", "node": "gpu07"}
    monkeypatch.setenv("SLURM_ARRAY_JOB_ID", "46")
    monkeypatch.setenv("SLURM_ARRAY_TASK_ID", "2")
    assert slurm_job() == {"job_id": "46_2", "node": "gpu07"}  # the id squeue shows
