"""Sweeps and sharded datasets on a real SLURM scheduler: the local one-node cluster of
``make slurm`` (``make test`` and CI start it first). Without a cluster that answers, the
tests marked ``slurm`` are skipped with the reason; where ``REQUIRE_SLURM=1`` (``.ci/run``)
they fail instead, so CI cannot pass them by skipping. Each runs the classical components
on scikit-image's rocket, so the jobs take seconds: what they test is the scheduler's part.
"""

from __future__ import annotations

import csv
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.conftest import ROOT

pytestmark = pytest.mark.slow  # every test starts the CLI
SCRIPT = str(ROOT / "scripts" / "displace.py")
LOCAL_CONF = ROOT / "outputs" / "slurm" / "slurm.conf"
FAST = ["segmenter=grabcut", "inpainter=telea", "shadow=none", "cache.enabled=false"]
ROCKET = "skimage:rocket,,,300 120 345 408"


@pytest.fixture(scope="module")
def cluster() -> dict[str, str]:
    """The environment a sweep needs to reach the cluster (its ``SLURM_CONF``)."""
    from object_displacement.errors import DisplacementError
    from object_displacement.slurm import use_cluster

    saved = os.environ.get("SLURM_CONF")
    try:
        conf = use_cluster(LOCAL_CONF)
    except DisplacementError as err:
        reason = f"no SLURM cluster here ({err})"
        if os.environ.get("REQUIRE_SLURM") == "1":
            pytest.fail(f"REQUIRE_SLURM=1 but {reason}", pytrace=False)
        pytest.skip(reason)
    finally:
        os.environ.pop("SLURM_CONF", None)
        if saved is not None:
            os.environ["SLURM_CONF"] = saved
    return {**os.environ, "SLURM_CONF": conf, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}


def sweep(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """``displace -m hydra/launcher=slurm ARGS``, as a user types it."""
    command = [sys.executable, SCRIPT, "-m", "hydra/launcher=slurm", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def squeue(array: str, env: dict[str, str], settle_s: float = 60) -> dict[str, str]:
    """Each job's state once the scheduler has seen them all end. A sweep returns when every
    job has written its result, and a job's process may still be exiting then (``RUNNING``,
    ``COMPLETING``): asking once at that moment is a race (it failed a CI run)."""
    from object_displacement.slurm import has_ended

    deadline = time.monotonic() + settle_s
    while True:
        answer = subprocess.run(
            ["squeue", "--noheader", "--array", "--states=all", f"--jobs={array}", "--format=%i|%T"],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        states = dict(line.split("|") for line in answer.stdout.split())
        if all(has_ended(state) for state in states.values()) or time.monotonic() > deadline:
            return states
        time.sleep(0.5)


def arrays(sweep_dir: Path) -> list[str]:
    """The SLURM arrays a sweep dir's jobs ran in, in order (submitit's log folders)."""
    names = {p.name.split("_")[0] for p in (sweep_dir / ".submitit").iterdir() if p.name[0].isdigit()}
    return sorted(names, key=int)


def summary(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def manifest(folder: Path, rows: list[str]) -> Path:
    path = folder / "edits.csv"
    path.write_text("id,image,prompt,point,box,dx,dy\n" + "".join(f"{r}\n" for r in rows))
    return path


@pytest.mark.slurm
def test_a_sweep_runs_as_one_array_job_reports_its_failed_job_and_a_rerun_runs_only_that(cluster, tmp_path):
    from tests.wandb_offline import read_run

    sweep_dir = tmp_path / "seam-study"
    args = ["dx=10,20,abc", *FAST, "logger=wandb", f"hydra.sweep.dir={sweep_dir}"]
    proc = sweep(*args, env=cluster)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line == (
        "error: 1 of 3 sweep jobs failed (2); job 2: dx must be a number of pixels, got 'abc'; "
        f"see {sweep_dir / '2' / 'error.txt'}"
    )
    (array,) = arrays(sweep_dir)
    asked = (sweep_dir / ".submitit" / array / f"{array}_submission.sh").read_text()  # the array's script
    assert "--cpus-per-task=1\n" in asked and "--mem=8GB\n" in asked and "--gpus" not in asked  # the defaults
    ran = {f"{array}_{k}": "COMPLETED" for k in range(3)}
    assert squeue(array, cluster) == ran  # the scheduler ran all three
    failed = (sweep_dir / "2" / "error.txt").read_text().strip()
    assert failed == "error: dx must be a number of pixels, got 'abc'"
    for job, dx in (("0", 10), ("1", 20)):
        metrics = (sweep_dir / job / "metrics.json").read_text()
        assert (sweep_dir / job / "output.png").is_file() and f'"dx": {dx}' in metrics
    runs = [read_run(sweep_dir / job) for job in ("0", "1")]
    assert {r["group"] for r in runs} == {"seam-study"}  # one W&B group per sweep
    assert [r["name"] for r in runs] == [  # each run named after its job
        "dx=10,inpainter=telea,segmenter=grabcut,shadow=none",
        "dx=20,inpainter=telea,segmenter=grabcut,shadow=none",
    ]
    assert all("slurm" in r["config"] for r in runs)  # which SLURM job each was: slurm.job_id
    written = {job: (sweep_dir / job / "output.png").stat().st_mtime_ns for job in ("0", "1")}

    again = sweep(*args, env=cluster)
    assert again.returncode == 2 and again.stderr.strip().splitlines()[-1] == line
    assert "job 0 finished in an earlier run of this sweep: skipped" in again.stdout
    assert "job 1 finished in an earlier run of this sweep: skipped" in again.stdout
    _, second = arrays(sweep_dir)
    assert list(squeue(second, cluster)) == [second]  # one job submitted (not an array): the failed one
    assert {job: (sweep_dir / job / "output.png").stat().st_mtime_ns for job in ("0", "1")} == written


@pytest.mark.slurm
def test_a_sharded_dataset_runs_as_array_jobs_and_ends_with_one_summary_of_every_row(cluster, tmp_path):
    edits = manifest(
        tmp_path,
        [
            f"rocket-right,{ROCKET},60,0",
            "missing,nowhere.jpg,,,10 10 50 50,5,0",
            f"rocket-left,{ROCKET},-60,0",
            f"rocket-lift,{ROCKET},0,40",
            "cup-right,skimage:coffee,,,170 10 420 300,120,20",
        ],
    )
    sweep_dir = tmp_path / "sharded"
    shards = [
        "+dataset.name=test",
        f"+dataset.manifest={edits}",
        "+dataset.shards=2",
        "+dataset.shard=range(2)",
    ]
    # job dirs named by the shard, not the job's number: the launcher names them as the jobs do
    named = ["hydra.sweep.subdir=shard-${dataset.shard}", f"hydra.sweep.dir={sweep_dir}"]
    proc = sweep(*shards, *FAST, "logger=none", *named, env=cluster)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    merged = sweep_dir / "summary.csv"
    assert f"dataset: 5 edits from 2 shards, 1 failed, 0 not run: {merged}" in proc.stdout
    line = proc.stderr.strip().splitlines()[-1]  # the shard with the bad row is the failed job
    failed = "error: 1 of 2 sweep jobs failed (shard-1); job shard-1: 1 of 2 edits failed (missing)"
    assert line.startswith(f"{failed}; missing: image")
    assert line.endswith(f"see {sweep_dir / 'shard-1' / 'error.txt'}")
    (array,) = arrays(sweep_dir)
    assert set(squeue(array, cluster).values()) == {"COMPLETED"}
    rows = summary(merged)
    assert [(r["id"], r["status"], r["shard"]) for r in rows] == [
        ("rocket-right", "ok", "0"),
        ("missing", "failed", "1"),
        ("rocket-left", "ok", "0"),
        ("rocket-lift", "ok", "1"),
        ("cup-right", "ok", "0"),
    ]
    assert "image not found" in rows[1]["error"] and rows[1]["dir"] == ""
    assert all((sweep_dir / r["dir"] / "output.png").is_file() for r in rows if r["status"] == "ok")
    assert rows[3]["dir"] == "shard-1/edits/rocket-lift" and float(rows[3]["timings_s/inpaint"]) > 0
    assert [r["id"] for r in summary(sweep_dir / "shard-0" / "summary.csv")] == [
        "rocket-right",
        "rocket-left",
        "cup-right",
    ]
    assert [r["id"] for r in summary(sweep_dir / "shard-1" / "summary.csv")] == ["missing", "rocket-lift"]

    written = merged.read_bytes()
    merged.unlink()  # as if the submitting process had died: the shards' records rebuild it
    rebuilt = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "summarize.py"), str(sweep_dir)],
        capture_output=True,
        text=True,
    )
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert rebuilt.stdout.strip() == f"dataset: 5 edits from 2 shards, 1 failed, 0 not run: {merged}"
    assert merged.read_bytes() == written


@pytest.mark.slurm
@pytest.mark.parametrize(
    ("setting", "said"),
    [
        ("hydra.launcher.mem_gb=100000", "Requested node configuration is not available"),
        ("hydra.launcher.partition=nosuch", "invalid partition specified"),
        ("hydra.launcher.gpus_per_node=1", "Invalid generic resource (gres) specification"),  # no GPU here
    ],
)
def test_a_sweep_the_cluster_cannot_run_is_one_line_and_no_job(cluster, tmp_path, setting, said):
    proc = sweep(
        "dx=10,20", *FAST, "logger=none", setting, f"hydra.sweep.dir={tmp_path / 'sweep'}", env=cluster
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith("error: SLURM refused the sweep (sbatch: ") and said.lower() in line.lower()
    assert line.endswith("mem_gb and timeout_min against what `sinfo` shows")
    assert not any(p.name.isdigit() for p in (tmp_path / "sweep").iterdir())
    if "gpus_per_node" in setting:  # what a GPU cluster gets: one GPU per job
        (script,) = (tmp_path / "sweep" / ".submitit").glob(".submission_file_*.sh")
        assert "#SBATCH --gpus-per-node=1\n" in script.read_text()


@pytest.mark.slurm
def test_a_cancelled_shard_and_one_stopped_at_its_time_limit_are_reported_and_a_rerun_finishes_them(
    cluster, tmp_path
):
    # shard 0 runs the even rows (the rocket, 0.3 s each), shard 1 the odd ones (a 1600x1200
    # photo, 1.4 s each): a cancelled job dies about 5 s after `scancel` (srun waits 3 s, then
    # KillWait), so shard 1 must have more than that left when it is cancelled
    photo = np.random.default_rng(0).integers(60, 120, (1200, 1600, 3)).astype(np.uint8)
    photo[400:800, 500:900] = (200, 40, 40)
    Image.fromarray(photo).save(tmp_path / "big.png")
    rows = [f"r{i:02d},{ROCKET if i % 2 == 0 else 'big.png,,,480 380 920 820'},{10 + i},0" for i in range(24)]
    edits = manifest(tmp_path, rows)
    sweep_dir = tmp_path / "stopped"
    args = [
        "+dataset.name=long",
        f"+dataset.manifest={edits}",
        "+dataset.shards=2",
        "+dataset.shard=range(2)",
        *FAST,
        "logger=none",
        f"hydra.sweep.dir={sweep_dir}",
        # below 50 minutes submitit takes its signal for the time limit's, not a preemption's
        "hydra.launcher.timeout_min=5",
        "hydra.launcher.signal_delay_s=60",
        "hydra.launcher.poll_s=2",
    ]
    command = [sys.executable, SCRIPT, "-m", "hydra/launcher=slurm", *args]
    running = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=cluster
    )
    stops = {
        "0": ["scancel", "--signal=USR2"],  # what submitit gets signal_delay_s before a time limit, sent now
        "1": ["scancel"],
    }
    deadline = time.monotonic() + 120
    while stops:
        for shard in list(stops):
            record = sweep_dir / shard / "records.jsonl"
            if record.is_file() and len(record.read_text().splitlines()) >= 3:  # a header and two rows
                (array,) = arrays(sweep_dir)
                subprocess.run([*stops.pop(shard), f"{array}_{shard}"], env=cluster, check=True)
        assert running.poll() is None and time.monotonic() < deadline, running.communicate()
        time.sleep(0.1)
    _, err = running.communicate(timeout=120)
    assert running.returncode == 2 and "Traceback" not in err, err
    time_limit = (
        "stopped 60 s before its time limit (hydra.launcher.timeout_min=5): raise it, or rerun the sweep"
    )
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"error: 2 of 2 sweep jobs failed (0, 1); job 0: {time_limit}"), last
    cancelled = (sweep_dir / "1" / "error.txt").read_text().strip()
    assert cancelled.startswith(
        "error: cancelled on the cluster (scancel) before it finished: rerun the sweep"
    )
    assert f"job {array}_1" in cancelled and cancelled in (sweep_dir / "1" / "displace.log").read_text()
    assert (sweep_dir / "0" / "error.txt").read_text().strip().startswith(f"error: {time_limit}")
    states = squeue(array, cluster)
    assert (
        states[f"{array}_1"] == "CANCELLED" and states[f"{array}_0"] == "FAILED"
    )  # it stopped itself: exit 143
    stopped = summary(sweep_dir / "0" / "summary.csv")  # it stopped cleanly: its summary says where
    assert (
        stopped[0]["status"] == "ok"
        and stopped[-1]["status"] == "not run"
        and time_limit in stopped[-1]["error"]
    )
    done = [len((sweep_dir / k / "records.jsonl").read_text().splitlines()) - 1 for k in ("0", "1")]
    assert all(2 <= n < 12 for n in done), done
    merged = summary(sweep_dir / "summary.csv")
    assert len(merged) == 24 and sum(r["status"] == "ok" for r in merged) == sum(done)
    not_run = [r for r in merged if r["status"] == "not run" and r["shard"] == "1"]
    assert not_run and not_run[0]["error"].startswith(
        "shard 1 stopped before this row: cancelled on the cluster"
    )

    again = sweep(*args, env=cluster)
    assert again.returncode == 0, again.stderr
    assert f"sweep: 2 jobs ok in {sweep_dir}" in again.stdout
    assert [r["status"] for r in summary(sweep_dir / "summary.csv")] == ["ok"] * 24
    for shard, kept in zip(("0", "1"), done, strict=True):  # each shard ran only the rows it had not finished
        log = (sweep_dir / shard / "displace.log").read_text()
        assert log.count("finished in an earlier run of this shard: kept") == kept
    third = sweep(*args, env=cluster)
    assert third.returncode == 0 and "submitted" not in third.stdout, third.stdout
    assert third.stdout.count("finished in an earlier run of this sweep: skipped") == 2


def test_without_sbatch_a_slurm_sweep_is_one_line_that_says_how_to_get_a_cluster(tmp_path):
    env = {**os.environ, "PATH": str(Path(sys.executable).parent)}  # no sbatch there
    proc = subprocess.run(
        [sys.executable, SCRIPT, "-m", "hydra/launcher=slurm", "dx=5,6", f"hydra.sweep.dir={tmp_path}"],
        capture_output=True,
        text=True,
        env=env,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert (
        "needs a SLURM cluster (no `sbatch` on this machine)" in line
        and "`make slurm` starts a local" in line
    )


@pytest.mark.skipif(shutil.which("sbatch") is None, reason="no SLURM client (sbatch) on this machine")
def test_a_cluster_whose_controller_is_down_is_one_line_that_says_how_to_start_one(tmp_path):
    conf = tmp_path / "slurm.conf"  # a cluster on a port nothing listens on
    conf.write_text(
        "ClusterName=down\nSlurmctldHost=localhost\nSlurmctldPort=9\nAuthType=auth/none\nCredType=cred/none\n"
        "NodeName=localhost CPUs=1\nPartitionName=p Nodes=ALL Default=YES\n"
    )
    proc = subprocess.run(
        [
            sys.executable,
            SCRIPT,
            "-m",
            "hydra/launcher=slurm",
            "dx=5,6",
            f"hydra.sweep.dir={tmp_path / 'sweep'}",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "SLURM_CONF": str(conf)},
        timeout=120,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    assert line.startswith(f"error: no SLURM controller answers (`scontrol ping` with {conf}:")
    assert "`make slurm` starts a local one-node cluster" in line


@pytest.mark.slurm
def test_the_local_cluster_stops_leaving_no_daemon_and_starts_again_quickly(cluster):
    if cluster["SLURM_CONF"] != str(LOCAL_CONF):
        pytest.skip(
            f"the cluster here is not the local one of `make slurm` (SLURM_CONF={cluster['SLURM_CONF']})"
        )
    folder = LOCAL_CONF.parent
    pids = [
        int(p.read_text())
        for p in (folder / "slurmctld.pid", folder / "slurmd.pid", folder / "munge" / "munged.pid")
    ]
    script = [str(ROOT / "scripts" / "slurm.sh")]
    stopped = subprocess.run([*script, "stop"], capture_output=True, text=True, timeout=120)
    try:
        assert stopped.returncode == 0 and stopped.stdout.strip() == "slurm: stopped", stopped.stderr
        assert [pid for pid in pids if Path(f"/proc/{pid}").exists()] == []
        assert started_with(folder) == []  # nor any other process that uses the cluster's files
        assert subprocess.run([*script, "status"], capture_output=True, timeout=60).returncode == 1
    finally:
        started = subprocess.run([*script, "start"], capture_output=True, text=True, timeout=300)
    assert started.returncode == 0 and "slurm: up in" in started.stdout, started.stderr
    begun = time.monotonic()
    again = subprocess.run([*script, "start"], capture_output=True, text=True, timeout=60)
    assert again.stdout.startswith("slurm: up (idle)") and time.monotonic() - begun < 5  # up already: quick


def started_with(folder: Path) -> list[str]:
    """The processes whose command line names ``folder``."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if any(str(folder).encode() in word for word in words):
            found.append(b" ".join(words).decode(errors="replace"))
    return found
