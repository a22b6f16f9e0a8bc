"""Issue 4: W&B logging, the stage cache, dataset runs and the no-reference metrics."""

import csv
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from object_displacement.cache import StageCache
from object_displacement.geometry import shift
from object_displacement.quality import evaluate, psnr
from object_displacement.types import Candidate, Move, Plan, Result, Target
from tests.conftest import ROOT
from tests.wandb_offline import read_run

SCRIPT = str(ROOT / "scripts" / "displace.py")


def displace(*args: str) -> subprocess.CompletedProcess:
    """The CLI with W&B forced offline (the default logger), no hub."""
    env = {**os.environ, "WANDB_MODE": "offline", "HF_HUB_OFFLINE": "1"}
    return subprocess.run(
        [sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=300, env=env
    )


@pytest.mark.slow
def test_a_2x2_sweep_segments_once_and_logs_four_grouped_wandb_runs(tmp_path):
    sweep = tmp_path / "sweep"
    proc = displace(
        "-m",
        "inpainter=telea,patchmatch",
        "mask_policy.seam=0.02,0.05",
        f"hydra.sweep.dir={sweep}",
        f"cache.dir={tmp_path / 'cache'}",
    )
    assert proc.returncode == 0, proc.stderr
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1", "2", "3"]
    metrics = [json.loads((job / "metrics.json").read_text()) for job in jobs]
    # the segmenter ran in exactly one job; the others read its result from the cache
    assert sum("segment" not in m["cache_hits"] for m in metrics) == 1
    runs = [read_run(job) for job in jobs]
    assert len({r["group"] for r in runs}) == 1 and runs[0]["group"]
    assert {r["name"] for r in runs} == {
        "inpainter=telea,mask_policy.seam=0.02",
        "inpainter=telea,mask_policy.seam=0.05",
        "inpainter=patchmatch,mask_policy.seam=0.02",
        "inpainter=patchmatch,mask_policy.seam=0.05",
    }
    run, m = runs[0], metrics[0]
    assert {"segmenter", "selector", "mask_policy", "inpainter"} <= run["config"]
    assert run["summary"]["timings_s/segment"] == m["timings_s"]["segment"]
    assert run["summary"]["quality/background_psnr_db"] == m["quality"]["background_psnr_db"]
    assert run["tags"] == ["displace"]
    # the grid image and the ranking table are in the run's files, readable
    grid = np.asarray(Image.open(run["files"] / run["history"]["grid/path"]))
    assert grid.shape == np.asarray(Image.open(jobs[0] / "grid.png")).shape
    table = json.loads((run["files"] / run["history"]["ranking/path"]).read_text())
    assert table["columns"][:2] == ["rank", "score"] and len(table["data"]) == len(m["ranking"])


@pytest.mark.slow
def test_a_manifest_with_a_bad_row_finishes_the_others_and_records_the_failure(tmp_path):
    manifest = tmp_path / "edits.csv"
    Image.fromarray(np.full((80, 120, 3), 90, np.uint8)).save(tmp_path / "flat.png")
    manifest.write_text(
        "id,image,prompt,point,box,dx,dy\n"
        "rocket,skimage:rocket,,,300 120 345 408,60,0\n"
        "missing,no_such_photo.jpg,,,10 10 50 50,5,0\n"
        "outside,flat.png,,500 500,,5,0\n"
        "lifted,skimage:rocket,,,300 120 345 408,0,40\n"
    )
    run = tmp_path / "run"
    proc = displace(
        f"+dataset.manifest={manifest}",
        "+dataset.name=test",
        "logger=none",
        f"hydra.run.dir={run}",
        f"cache.dir={tmp_path / 'cache'}",
    )
    assert proc.returncode == 2, proc.stderr  # two rows failed: the run says so, as a sweep does
    assert proc.stderr.strip().splitlines()[-1].startswith("error: 2 of 4 edits failed (missing, outside)")
    with (run / "summary.csv").open() as handle:
        rows = {r["id"]: r for r in csv.DictReader(handle)}
    assert [rows[i]["status"] for i in ("rocket", "missing", "outside", "lifted")] == [
        "ok",
        "failed",
        "failed",
        "ok",
    ]
    assert "image not found" in rows["missing"]["error"] and "outside" in rows["outside"]["error"]
    assert rows["lifted"]["dy"] == "40" and float(rows["rocket"]["timings_s/inpaint"]) > 0
    assert (run / "edits" / "lifted" / "output.png").exists() and not (run / "edits" / "missing").exists()


@pytest.mark.models
def test_the_shipped_manifest_runs_every_edit(make_cfg):
    from object_displacement.jobs import run_dataset

    cfg = make_cfg("dataset=skimage", "inpainter=telea")
    rows = run_dataset(cfg)
    assert len(rows) >= 5 and all(r["status"] == "ok" for r in rows)


def test_cache_returns_what_was_computed_and_keys_on_config(tmp_path, square_scene):
    image, mask = square_scene
    target = Target(box=(25, 35, 65, 75))
    calls = []

    def propose():
        calls.append(1)
        return [
            Candidate(mask=mask, score=0.7, source="test"),
            Candidate(mask=~mask, score=0.2, source="test"),
        ]

    first = StageCache(tmp_path, segmenter={"a": 1}).candidates(image, target, propose)
    again = StageCache(tmp_path, segmenter={"a": 1}).candidates(image, target, propose)
    assert len(calls) == 1
    assert [c.score for c in again] == [0.7, 0.2] and all(c.source == "test" for c in again)
    np.testing.assert_array_equal(again[0].mask, first[0].mask)
    StageCache(tmp_path, segmenter={"a": 2}).candidates(image, target, propose)  # other settings
    StageCache(tmp_path, segmenter={"a": 1}).candidates(image[::-1].copy(), target, propose)  # other photo
    assert len(calls) == 3
    ranked = [first[1], first[0]]
    cache = StageCache(tmp_path, segmenter={"a": 1}, selector={"s": 1})
    cache.ranking(image, target, first, lambda: ranked)
    back = StageCache(tmp_path, segmenter={"a": 1}, selector={"s": 1}).ranking(
        image, target, first, lambda: []
    )
    assert [c.score for c in back] == [0.2, 0.7]
    np.testing.assert_array_equal(back[0].mask, ~mask)


def test_psnr_known_values():
    a = np.zeros((10, 10, 3), dtype=np.uint8)
    assert psnr(a, a) == 100.0
    b = a.copy()
    b[0, 0, 0] = 10  # one channel of one pixel off by 10: mse = 100 / 300
    assert psnr(a, b) == pytest.approx(10 * np.log10(255**2 / (100 / 300)))


def test_background_and_object_metrics_see_a_change_outside_the_edit(square_scene):
    image, mask = square_scene
    moved = shift(mask, 50, 0)
    inpaint = mask & ~moved
    output = image.copy()
    output[moved] = shift(image, 50, 0)[moved]
    output[inpaint] = 128
    alpha = moved.astype(np.float32)
    layer = shift(image, 50, 0)
    plan = Plan(image, mask, image, layer, alpha, inpaint, np.zeros_like(mask), Move(50, 0))
    plan.composite, plan.inpaint_mask = output, inpaint
    result = Result(
        image, Target(box=(0, 0, 5, 5)), [Candidate(mask)], [Candidate(mask)], plan=plan, output=output
    )
    clean = evaluate(result)
    assert clean["background_psnr_db"] == 100.0 and clean["background_max_abs_diff"] == 0
    assert clean["object_psnr_db"] == 100.0 and clean["object_mean_abs_diff"] == 0.0
    output[0, 0] = (0, 0, 0)  # a pixel outside the edit region changed by 128
    spoiled = evaluate(result)
    assert spoiled["background_max_abs_diff"] == 128 and spoiled["background_psnr_db"] < 60


@pytest.mark.slow
def test_parallel_launcher_runs_jobs_in_worker_processes(tmp_path):
    proc = displace(
        "-m",
        "hydra/launcher=parallel",
        "inpainter=telea,ns",
        "logger=none",
        f"hydra.sweep.dir={tmp_path}",
        f"cache.dir={tmp_path / 'cache'}",
    )
    assert proc.returncode == 0, proc.stderr
    assert all((tmp_path / job / "output.png").exists() for job in ("0", "1"))


@pytest.mark.slow
def test_slurm_launcher_preset_composes_for_submitit():
    proc = subprocess.run(
        [sys.executable, SCRIPT, "--cfg", "hydra", "hydra/launcher=slurm"], capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    # submitit's SLURM launcher, as src/hydra_plugins/object_displacement_launcher extends it
    assert "_target_: hydra_plugins.object_displacement_launcher.SlurmLauncher" in proc.stdout


def test_logged_run_finishes_once_and_marks_a_failure():
    from object_displacement.loggers.base import logged_run
    from object_displacement.loggers.none import NoLogger

    class Recorder(NoLogger):
        def __init__(self):
            self.calls = []

        def start(self, config):
            self.calls.append(("start", config))

        def finish(self, failed=False):
            self.calls.append(("finish", failed))

    ok = Recorder()
    with logged_run(ok, {"a": 1}):
        pass
    assert ok.calls == [("start", {"a": 1}), ("finish", False)]
    broken = Recorder()
    with pytest.raises(RuntimeError), logged_run(broken, {}):
        raise RuntimeError("job failed")
    assert broken.calls == [("start", {}), ("finish", True)]
