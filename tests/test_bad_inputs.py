"""Issue 10: the bad-input and fault matrix. Every mistake a user can make, and every fault
the machine can throw at a run, ends in one `error:` line on stderr and exit code 2 (130
for Ctrl-C), with no traceback and nothing half-written; or it gives its correct result.

``CLI_ERRORS`` runs each case through the command line; the tests after it cover the
faults that need more set-up (a full disk, a killed run, Ctrl-C, a sweep, a manifest). The
table in docs/bad-inputs.md lists the same command-line cases (checked by the last test).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import pickle
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from skimage import data

from object_displacement import io as image_io
from object_displacement.build import build_pipeline
from object_displacement.cache import StageCache
from object_displacement.edit import edit, write
from object_displacement.errors import DisplacementError, WriteError
from object_displacement.io import atomic_open, read_image, write_image
from object_displacement.request import make_move, make_request
from object_displacement.types import Candidate, Target
from tests.conftest import OFFLINE, ROOT, SCRIPT, displace


def assert_one_error_line(proc: subprocess.CompletedProcess, message: str, code: int = 2) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == code, proc.stderr
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    """The inputs of the matrix: a photo, huge and bomb-sized PNGs, bad checkpoints."""
    folder = tmp_path_factory.mktemp("inputs")
    cat = folder / "cat.jpg"
    Image.fromarray(data.chelsea()).save(cat)
    huge = folder / "huge.png"  # 144 MP of grey: a 140 kB file
    Image.new("L", (12000, 12000), 90).save(huge)
    bomb = folder / "bomb.png"  # 900 MP: Pillow's own guard raises DecompressionBombError
    Image.new("1", (30000, 30000)).save(bomb)
    a_dir = folder / "folder.png"
    a_dir.mkdir()
    a_file = folder / "plain.txt"
    a_file.write_text("a file, not a folder")
    junk = folder / "junk.pth"
    junk.write_bytes(os.urandom(4096))
    evil = folder / "evil.pth"
    evil.write_bytes(pickle.dumps(RunsCode()))
    truncated = folder / "truncated.jpg"  # a download that stopped half-way
    truncated.write_bytes(cat.read_bytes()[: cat.stat().st_size // 2])
    loop = folder / "loop.jpg"
    os.symlink(folder / "loop-back.jpg", loop)
    os.symlink(loop, folder / "loop-back.jpg")
    fifo = folder / "edits.csv"
    os.mkfifo(fifo)
    device_link = folder / "out-full.png"
    os.symlink("/dev/full", device_link)
    return {
        "cat": cat,
        "huge": huge,
        "bomb": bomb,
        "dir": a_dir,
        "file": a_file,
        "junk": junk,
        "evil": evil,
        "truncated": truncated,
        "loop": loop,
        "fifo": fifo,
        "device_link": device_link,
    }


class RunsCode:
    """A pickle that would run a command when loaded without ``weights_only``."""

    def __reduce__(self):
        return (os.system, ("echo this checkpoint ran code",))


SAM = [
    "segmenter=sam",
    "target.box=[140,40,330,300]",
    "dx=10",
    "segmenter.encoder={{embed_dim:32,depth:2,num_heads:2,global_attn_indexes:[1]}}",
]

CLI_ERRORS = [
    # inputs
    pytest.param(["image={huge}", "target.box=[1,1,50,50]", "dx=5"], "max_megapixels=50", id="image-144MP"),
    pytest.param(
        ["image={bomb}", "target.box=[1,1,50,50]", "dx=5"], "max_megapixels=50", id="image-900MP-bomb"
    ),
    pytest.param(["image=skimage:download_all"], "unknown sample image", id="skimage-function"),
    pytest.param(
        ["image={truncated}", "target.point=[200,150]", "dx=5"], "the file is truncated", id="image-truncated"
    ),
    pytest.param(
        ["image={loop}", "target.point=[200,150]", "dx=5"], "loop of symbolic links", id="image-link-loop"
    ),
    pytest.param(
        ["image=/dev/zero", "target.point=[200,150]", "dx=5"], "not a regular file", id="image-device"
    ),
    pytest.param(
        ["+dataset.manifest={fifo}", "+dataset.name=x"],
        "edits.csv is not a regular file",
        id="manifest-fifo",
    ),
    pytest.param(
        ["+dataset.manifest={dir}", "+dataset.name=x"], "is a folder, not a file", id="manifest-folder"
    ),
    pytest.param(
        ["image={cat}", "target.point='20'", "dx=5"],
        "target.point needs 2 numbers of pixels, got '20'",
        id="point-quoted",
    ),
    pytest.param(
        ["image={cat}", "target.points=[[200,150]]", "target.labels='1'", "dx=5"],
        "target.labels needs a list, got '1'",
        id="labels-quoted",
    ),
    pytest.param(
        ["image={cat}", "target.points=[200,150]", "dx=5"],
        "target.points needs a list of points",
        id="points-one-point",
    ),
    pytest.param(["image={cat}", "target.box=[140,40,330,300]", "dx=inf"], "dx must be", id="dx-inf"),
    pytest.param(["image={cat}", "target.box=[0,0,inf,inf]", "dx=5"], "target.box needs 4", id="box-inf"),
    pytest.param(
        ["image={cat}", "target.box=[140,40,330,300]", "dx=5", "keep_out=[[10,10,5,50]]"],
        "keep_out box [10, 10, 5, 50] is empty",
        id="keep-out-empty",
    ),
    pytest.param(
        ["image={cat}", "target.box=[140,40,330,300]", "dx=5", "keep_out=face"],
        "keep_out needs a list of boxes",
        id="keep-out-not-boxes",
    ),
    pytest.param(
        ["image={cat}", "target.box=[140,40,330,300]", "dx=0.4"], "rounds to a move of 0", id="dx-0.4"
    ),
    pytest.param(
        ["image={cat}", "target.box=[140,40,330,300]", "dx=5", "flip=maybe"], "flip must be", id="flip"
    ),
    pytest.param(
        ["image={cat}", "target.box=[140,40,330,300]", "dx=5", "scale=1e-9"], "4 px", id="scale-1e-9"
    ),
    pytest.param(["scale=-1"], "scale must be", id="scale-negative"),
    pytest.param(
        ["image={cat}", "target.box=[140,40,330,300]", "dx=5", "scale=100"],
        "at most 2 times the 451x300 photo in each side",
        id="scale-100",
    ),
    pytest.param(
        ["inpainter.patch_size=abc"], "inpainter.patch_size must be a whole number", id="patch_size-abc"
    ),
    pytest.param(["mask_policy.seam=-5"], "mask_policy: seam must be 0 or more", id="seam-negative"),
    pytest.param(
        ["seed=123456789012345678901234567890"], "seed must be between 0 and 4294967295", id="seed-huge"
    ),
    pytest.param(
        ["inpainter.patch_size=100000"], "inpainter.patch_size must be between 1 and 31", id="patch-size-huge"
    ),
    pytest.param(
        ["inpainter.workers=-1"], "inpainter.workers must be between 0 and 256", id="workers-negative"
    ),
    pytest.param(
        ["segmenter=grabcut", "segmenter.iterations=1000000"],
        "segmenter.iterations must be between 1 and 50",
        id="iterations-huge",
    ),
    pytest.param(
        ["shadow.min_attenuation=1.5"],
        "shadow: min_attenuation and min_depth must be between 0 and 1",
        id="shadow-setting",
    ),
    pytest.param(["mask_policy.units=metres"], "mask_policy.units must be one of", id="units-unknown"),
    pytest.param(["selector.box.min_iou=x"], "selector.box.min_iou must be", id="nested-setting"),
    pytest.param(["+inpainter.radius=3"], "inpainter: PatchMatchInpainter", id="unknown-setting"),
    pytest.param(["ghost_check.max_attempts=many"], "ghost_check.max_attempts", id="ghost-setting"),
    pytest.param(["max_megapixels=0.1", "image={cat}", "target.box=[140,40,330,300]"], "=0.1", id="bound"),
    # outputs
    pytest.param(["output={dir}"], "it is a directory", id="output-is-a-directory"),
    pytest.param(["output={file}/out.png"], "is not a directory", id="output-folder-is-a-file"),
    pytest.param(["output={device_link}"], "/dev/full is not a regular file", id="output-link-to-device"),
    pytest.param(["hydra.run.dir={file}/run"], "is not a directory", id="run-dir-unwritable"),
    pytest.param(
        ["-m", "dx=5", "hydra.sweep.dir={file}/sweep"], "is not a directory", id="sweep-dir-unwritable"
    ),
    # checkpoints
    pytest.param(
        [*SAM, "image={cat}", "segmenter.checkpoint={junk}"], "junk.pth is not a readable", id="ckpt-corrupt"
    ),
    pytest.param(
        [*SAM, "image={cat}", "segmenter.checkpoint={evil}"], "evil.pth is not a readable", id="ckpt-pickle"
    ),
    # launchers
    pytest.param(["-m", "hydra/launcher=slurm", "dx=5,6"], "needs a SLURM cluster", id="slurm-off-cluster"),
]


@pytest.mark.slow
@pytest.mark.parametrize(("args", "message"), CLI_ERRORS)
def test_each_mistake_is_one_line_exit_2(args, message, files, tmp_path):
    env = None
    if "hydra/launcher=slurm" in args:  # as off a cluster, here too: no sbatch on the PATH
        env = {**os.environ, "PATH": str(Path(sys.executable).parent)}
    before = files["cat"].read_bytes()
    run = tmp_path / "run"
    args = [a.format(**files) for a in args]
    if "-m" in args and not any(a.startswith("hydra.sweep.dir=") for a in args):
        args.append(f"hydra.sweep.dir={tmp_path / 'sweep'}")
    if not any(a.startswith("hydra.run.dir=") for a in args):
        args.append(f"hydra.run.dir={run}")
    proc = displace(*args, env=env)
    line = assert_one_error_line(proc, message)
    assert "weights_only" not in line and "this checkpoint ran code" not in proc.stdout
    assert files["cat"].read_bytes() == before
    assert not (run / "metrics.json").exists() and not (run / "output.png").exists()
    if (run / "displace.log").exists():  # the failed run's log holds its error line
        assert line in (run / "displace.log").read_text()
        assert (run / "error.txt").read_text().strip() == line


# --- faults that need more set-up ---------------------------------------------------------


def _tmpfs(mount, options: str):
    """A real tmpfs file system mounted with ``options``. Needs root; skipped elsewhere."""
    mount.mkdir()
    made = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(mount)], capture_output=True)
    if made.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mount
    subprocess.run(["umount", str(mount)], check=False)


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 kB file system (tmpfs): a real full disk."""
    yield from _tmpfs(tmp_path / "disk", "size=256k")


@pytest.fixture
def read_only_disk(tmp_path):
    yield from _tmpfs(tmp_path / "ro", "ro,size=64k")


@pytest.mark.slow
def test_full_disk_at_the_run_dir_after_the_work_is_one_line_and_no_complete_looking_dir(
    files, tiny_disk, tmp_path
):
    run = tiny_disk / "run"
    out = tmp_path / "out.png"
    proc = displace(
        f"image={files['cat']}",
        "target.box=[140,40,330,300]",
        "dx=20",
        "inpainter=telea",
        f"output={out}",
        f"hydra.run.dir={run}",
    )
    assert_one_error_line(proc, "No space left on device")
    assert not (run / "metrics.json").exists()
    assert not list(run.glob("*.png")) and not list(run.glob(".*.tmp"))


@pytest.mark.slow
def test_a_disk_full_before_the_run_is_one_line_and_no_empty_config(files, tiny_disk, tmp_path):
    """The pre-check writes a little, as the run's first files will: a full disk is refused
    there, not in Hydra's config save (a traceback and a 0-byte config.yaml)."""
    with contextlib.suppress(OSError), (tiny_disk / "filler").open("wb", buffering=0) as filler:
        while True:
            filler.write(b"x" * 4096)
    run = tiny_disk / "run"
    proc = displace(f"image={files['cat']}", "target.box=[140,40,330,300]", "dx=20", f"hydra.run.dir={run}")
    assert_one_error_line(proc, "No space left on device")
    assert not (run / ".hydra" / "config.yaml").exists()


@pytest.mark.slow
def test_read_only_output_is_refused_before_the_work(files, read_only_disk, tmp_path):
    proc = displace(
        f"image={files['cat']}",
        "target.box=[140,40,330,300]",
        "dx=20",
        f"output={read_only_disk / 'out.png'}",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert_one_error_line(proc, "Read-only file system")
    log = (tmp_path / "run" / "displace.log").read_text()
    assert "built object_displacement.segmenters" not in log  # refused before the components load


@pytest.mark.models
def test_a_full_disk_after_the_work_removes_what_the_run_wrote(make_cfg, files, tmp_path, monkeypatch):
    """The same fault in-process, where no tmpfs can be mounted: the rename of metrics.json
    into the run dir fails with ENOSPC."""
    cfg = make_cfg("inpainter=telea")
    pipeline = build_pipeline(cfg)
    real_replace = os.replace

    def full(src, dst):
        if str(dst).endswith("metrics.json"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_replace(src, dst)

    monkeypatch.setattr(os, "replace", full)
    out_dir = tmp_path / "run"
    with pytest.raises(WriteError, match="No space left on device") as caught:
        metrics, result = edit(pipeline, make_request(str(files["cat"]), box=[140, 40, 330, 300], dx=20))
        write(result, metrics, out_dir)
    assert "metrics.json" in str(caught.value) and "\n" not in str(caught.value)
    assert sorted(p.name for p in out_dir.iterdir()) == []  # pictures removed, no temporaries


def test_files_get_the_permissions_of_the_umask(tmp_path, square_scene):
    old = os.umask(0o022)
    try:
        write_image(tmp_path / "a.png", square_scene[0])
        with atomic_open(tmp_path / "m.json", "w") as handle:
            handle.write("{}")
        os.umask(0o077)
        write_image(tmp_path / "private.png", square_scene[0])
        (tmp_path / "shared.png").write_bytes(b"")
        (tmp_path / "shared.png").chmod(0o664)
        write_image(tmp_path / "shared.png", square_scene[0])  # replacing keeps the file's mode
    finally:
        os.umask(old)
    mode = {p.name: p.stat().st_mode & 0o777 for p in tmp_path.iterdir()}
    assert mode == {"a.png": 0o644, "m.json": 0o644, "private.png": 0o600, "shared.png": 0o664}


@pytest.mark.slow
def test_temporaries_of_a_killed_writer_are_removed_by_the_next_write(tmp_path, square_scene):
    code = (
        "import sys, time; from object_displacement.io import atomic_open\n"
        "with atomic_open(sys.argv[1], 'wb') as h:\n"
        "    h.write(b'half'); h.flush(); print('open', flush=True); time.sleep(60)"
    )
    writer = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "out.png")], stdout=subprocess.PIPE)
    assert writer.stdout.readline().strip() == b"open"
    writer.kill()  # SIGKILL: no clean-up of its own
    writer.wait()
    (left,) = tmp_path.glob(".out.png.*.tmp")
    image_io._SWEPT.clear()
    live = tmp_path / f".other.png.{image_io._OWNER}.x.tmp"  # this process, still writing
    live.write_bytes(b"")
    write_image(tmp_path / "next.png", square_scene[0])
    assert not left.exists() and live.exists()


@pytest.mark.slow
def test_ctrl_c_is_one_line_exit_130_and_leaves_no_output(tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(data.chelsea()).resize((3608, 2400)).save(big)
    run, out = tmp_path / "run", tmp_path / "out.png"
    args = [
        f"image={big}",
        "target.box=[1120,320,2640,2400]",
        "dx=400",
        "inpainter.work_pixels=null",  # full-resolution PatchMatch: seconds of work to interrupt
        f"output={out}",
        f"hydra.run.dir={run}",
    ]
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, *args, "logger=none", "cache.enabled=false"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=OFFLINE,
        # as from a terminal: a suite started in the background (`make test &`) ignores
        # SIGINT, its children inherit that, and the run would finish instead
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 120
    while "built object_displacement.ghost" not in _read(run / "displace.log"):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.1)
    time.sleep(0.5)  # inside the pipeline now
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert stderr.strip().splitlines() == ["error: interrupted"] and "Traceback" not in stdout + stderr
    assert not out.exists() and not (run / "metrics.json").exists()
    assert not list(run.glob(".*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def _read(path: Path) -> str:
    return path.read_text() if path.exists() else ""


# --- the cache never fails a run ----------------------------------------------------------


def _propose(mask, calls):
    def propose():
        calls.append(1)
        return [Candidate(mask=mask, score=0.5, source="test")]

    return propose


def test_a_corrupt_cache_entry_is_dropped_and_recomputed_with_a_warning(tmp_path, square_scene, caplog):
    image, mask = square_scene
    target, calls = Target(box=(25, 35, 65, 75)), []
    StageCache(tmp_path, segmenter={"a": 1}).candidates(image, target, _propose(mask, calls))
    (entry,) = tmp_path.glob("segment-*.npz")
    entry.write_bytes(b"PK\x03\x04 not a zip any more")
    again = StageCache(tmp_path, segmenter={"a": 1}).candidates(image, target, _propose(mask, calls))
    assert len(calls) == 2 and again[0].score == 0.5
    assert "dropping unreadable entry" in caplog.text
    hit = StageCache(tmp_path, segmenter={"a": 1})
    hit.candidates(image, target, _propose(mask, calls))
    assert len(calls) == 2 and hit.hits == ["segment"]  # the recomputed entry replaced it


def test_a_cache_that_cannot_be_written_never_fails_the_run(tmp_path, square_scene, caplog):
    image, mask = square_scene
    blocked = tmp_path / "cache"
    blocked.write_text("a file where the cache folder should be")
    found = StageCache(blocked).candidates(image, Target(box=(25, 35, 65, 75)), _propose(mask, []))
    assert found[0].score == 0.5 and "cannot write" in caplog.text


def test_the_cache_key_changes_with_the_code_that_made_the_entry(tmp_path, square_scene, monkeypatch):
    import inspect

    image, mask = square_scene
    source = tmp_path / "segmenter_source.py"
    source.write_text("version = 1\n")
    component = type("Edited", (), {"__module__": "object_displacement.segmenters.edited"})()
    real = inspect.getsourcefile
    monkeypatch.setattr(inspect, "getsourcefile", lambda c: str(source) if c is type(component) else real(c))
    calls, target = [], Target(box=(25, 35, 65, 75))
    StageCache(tmp_path / "c", code=(component, None)).candidates(image, target, _propose(mask, calls))
    StageCache(tmp_path / "c", code=(component, None)).candidates(image, target, _propose(mask, calls))
    source.write_text("version = 2\n")  # the segmenter's code was edited
    StageCache(tmp_path / "c", code=(component, None)).candidates(image, target, _propose(mask, calls))
    assert len(calls) == 2


@pytest.mark.slow
def test_make_clean_clears_the_cache():
    dry = subprocess.run(["make", "-n", "clean"], cwd=ROOT, capture_output=True, text=True)
    assert "outputs/cache" in dry.stdout


# --- inputs, in-process -------------------------------------------------------------------


def test_a_48_megapixel_photo_passes_the_bound(tmp_path):
    photo = tmp_path / "phone.png"
    Image.new("L", (8000, 6000), 120).save(photo)
    assert read_image(photo).shape == (6000, 8000, 3)


def test_pillows_decompression_bomb_error_is_one_line(tmp_path, monkeypatch):
    photo = tmp_path / "p.png"
    Image.new("L", (10, 10)).save(photo)

    def bomb(*args, **kwargs):
        raise Image.DecompressionBombError("Image size (900000000 pixels) exceeds limit")

    monkeypatch.setattr(Image, "open", bomb)
    with pytest.raises(DisplacementError, match="max_megapixels"):
        read_image(photo)


@pytest.mark.parametrize(
    ("dx", "dy", "scale", "flip", "message"),
    [
        (0.4, None, 1.0, False, "rounds to a move of 0"),
        (float("inf"), 0, 1.0, False, "dx must be"),
        (0, float("nan"), 1.0, False, "dy must be"),
        (5, 0, 1.0, "maybe", "flip must be"),
        (5, 0, float("inf"), False, "scale must be"),
    ],
)
def test_moves_are_checked(dx, dy, scale, flip, message):
    with pytest.raises(DisplacementError, match=message):
        make_move(dx, dy, scale, flip)


def test_a_move_of_zero_is_still_mask_mode_and_flip_words_are_read():
    assert make_move(0, None).is_identity and make_move(None, None).is_identity
    assert make_move(5, 0, flip="yes").flip and not make_move(5, 0, flip="false").flip


def test_only_image_names_are_samples():
    for name in ("download_all", "binary_blobs", "data_dir", "_fetch", ""):
        with pytest.raises(DisplacementError, match="unknown sample image"):
            read_image(f"skimage:{name}")
    assert read_image("skimage:motorcycle_left").shape == (500, 741, 3)


@pytest.mark.models
def test_a_corrupt_or_malicious_checkpoint_is_one_line_naming_it(files, tmp_path):
    import torch

    from object_displacement.segmenters.sam import SamSegmenter
    from tests.tiny_models import SAM_ENCODER

    torch.save({"layer": RunsCode()}, tmp_path / "nested.pth")
    for bad in (files["junk"], files["evil"], tmp_path / "nested.pth"):
        with pytest.raises(DisplacementError) as caught:
            SamSegmenter(checkpoint=str(bad), encoder=SAM_ENCODER).model()
        assert str(bad) in str(caught.value) and "weights_only" not in str(caught.value)


# --- correct results ----------------------------------------------------------------------


@pytest.mark.slow
def test_a_prompt_the_selector_cannot_read_is_a_warning_on_stderr(files, tmp_path):
    proc = displace(
        f"image={files['cat']}",
        "target.box=[140,40,330,300]",
        "target.prompt=cat",
        "dx=10",
        "inpainter=telea",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert proc.returncode == 0, proc.stderr
    assert "target.prompt='cat' is ignored" in proc.stderr and "WARNING" not in proc.stdout
    assert (tmp_path / "run" / "metrics.json").exists()


@pytest.mark.slow
def test_paths_with_equals_comma_and_non_ascii_work_when_quoted(files, tmp_path):
    folder = tmp_path / "a=b, café"
    folder.mkdir()
    photo = folder / "chat=1,2 é.jpg"
    shutil.copy(files["cat"], photo)
    out = folder / "sortie=1,2 ü.png"
    proc = displace(
        f"image='{photo}'",
        "target.box=[140,40,330,300]",
        "dx=20",
        "inpainter=telea",
        f"output='{out}'",
        f"hydra.run.dir='{folder / 'run'}'",
    )
    assert proc.returncode == 0, proc.stderr
    assert np.asarray(Image.open(out)).shape == (300, 451, 3)


@pytest.mark.slow
def test_a_mask_file_is_target_enough(files, tmp_path):
    mask = np.zeros((300, 451), dtype=bool)
    mask[60:260, 180:300] = True
    write_image(tmp_path / "mask.png", mask)
    proc = displace(
        f"image={files['cat']}",
        "segmenter=mask",
        f"segmenter.path={tmp_path / 'mask.png'}",
        "dx=30",
        "inpainter=telea",
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["object_bbox"] == [180, 60, 300, 260] and metrics["mode"] == "move"


@pytest.mark.slow
def test_the_demo_records_what_ran_and_wandb_keeps_the_outputs(tmp_path):
    from tests.wandb_offline import read_run, records

    run = tmp_path / "demo"
    proc = displace("logger=wandb", "inpainter=telea", f"hydra.run.dir={run}")
    assert proc.returncode == 0, proc.stderr
    recorded = (run / ".hydra" / "config.yaml").read_text()
    assert "image: skimage:rocket" in recorded and "dx: 100" in recorded
    (log_file,) = run.glob("wandb/offline-run-*/run-*.wandb")
    config = {}
    for record in records(log_file):
        if record.WhichOneof("record_type") == "run":
            config = {i.key: json.loads(i.value_json) for i in record.run.config.update}
    assert config["image"] == "skimage:rocket" and config["dx"] == 100
    assert config["target"]["box"] == [300, 120, 345, 408]
    logged = read_run(run)
    assert "dx" not in logged["summary"] and "timings_s/inpaint" in logged["summary"]  # config, not charts
    assert {"output.png", "metrics.json"} <= {p.name for p in logged["files"].iterdir()}


@pytest.mark.slow
def test_a_sweep_runs_every_job_records_each_failure_and_ends_with_a_tally(tmp_path):
    from tests.wandb_offline import read_run

    sweep = tmp_path / "my-sweep"
    proc = displace("-m", "dx=abc,10,20", "inpainter=telea", "logger=wandb", f"hydra.sweep.dir={sweep}")
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert lines[0] == "error: dx must be a number of pixels, got 'abc'"
    assert lines[-1].startswith("error: 1 of 3 sweep jobs failed (0)") and len(lines) == 2
    assert "Traceback" not in proc.stderr
    assert (sweep / "0" / "error.txt").read_text().strip() == lines[0]
    assert lines[0] in (sweep / "0" / "displace.log").read_text()
    assert all((sweep / job / "output.png").exists() for job in ("1", "2"))
    assert read_run(sweep / "1")["group"] == "my-sweep"  # the sweep's name, not a path on this disk


def test_wandb_group_of_a_default_sweep_dir_is_its_date_and_time():
    from object_displacement.loggers.wandb import sweep_name

    assert (
        sweep_name("/home/me/proj/outputs/multiruns/2025-01-02/10-11-12-1234") == "2025-01-02/10-11-12-1234"
    )
    assert sweep_name("/data/sweeps/seam-study") == "seam-study"


@pytest.mark.slow
def test_a_dataset_run_records_every_bad_row_and_ends_with_its_summary(tmp_path):
    import csv

    from tests.wandb_offline import read_run

    manifest = tmp_path / "edits.csv"
    manifest.write_bytes(
        b"\xef\xbb\xbfid,image,prompt,point,box,dx,dy\n"  # a byte-order mark
        b"good,skimage:rocket,,,300 120 345 408,60,0\n"
        b"short,skimage:rocket,,\n"
        b"far,skimage:rocket,,,300 120 345 408,inf,0\n"
        b"latin,caf\xe9.png,,,1 1 9 9,5,0\n"
        b"../../escaped,skimage:rocket,,,300 120 345 408,60,0\n"
        b"/abs,skimage:rocket,,,300 120 345 408,60,0\n"
        b"good,skimage:rocket,,,300 120 345 408,-60,0\n"
        b"missing,nowhere.jpg,,,1 1 9 9,5,0\n"
    )
    run = tmp_path / "deep" / "run"
    proc = displace(
        f"+dataset.manifest={manifest}",
        "+dataset.name=bad",
        "inpainter=telea",
        "logger=wandb",
        f"hydra.run.dir={run}",
    )
    line = proc.stderr.strip().splitlines()[-1]  # after each row's warning, the run's one error line
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert line.startswith("error: 7 of 8 edits failed (short, far, latin, ../../escaped, /abs, ...)")
    assert line.endswith(f"see {run / 'summary.csv'}")  # as a failing sweep: the rows are there, exit 2
    with (run / "summary.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    assert [(r["id"], r["status"]) for r in rows] == [
        ("good", "ok"),
        ("short", "failed"),
        ("far", "failed"),
        ("latin", "failed"),
        ("../../escaped", "failed"),
        ("/abs", "failed"),
        ("good", "failed"),
        ("missing", "failed"),
    ]
    errors = [r["error"] for r in rows]
    assert "cells" in errors[1] and "dx must be" in errors[2] and "not UTF-8" in errors[3]
    assert "plain name" in errors[4] and "plain name" in errors[5] and "duplicate id" in errors[6]
    assert sorted(p.name for p in (run / "edits").iterdir()) == ["good"]
    assert not (tmp_path / "escaped").exists() and not Path("/abs").exists()
    assert read_run(run)["summary"]["edits/failed"] == 7  # the W&B table took the failed rows


@pytest.mark.slow
def test_fetch_weights_help_downloads_nothing_and_failures_are_each_reported(tmp_path):
    script = str(ROOT / "scripts" / "fetch_weights.py")
    env = {**OFFLINE, "HF_HOME": str(tmp_path / "hf")}
    helped = subprocess.run([sys.executable, script, "--help"], capture_output=True, text=True, env=env)
    assert helped.returncode == 0 and "--help" in helped.stdout and not helped.stderr
    assert not (tmp_path / "hf").exists()
    proc = subprocess.run(
        [sys.executable, script, "selector=clip", "inpainter=telea", "inpainter=sd"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("error: could not fetch selector=clip")
    assert lines[1].startswith("error: could not fetch inpainter=sd")
    assert lines[2] == "error: 2 of 3 components not fetched: selector=clip, inpainter=sd"
    assert "inpainter=telea: needs no weights" in proc.stdout


@pytest.mark.slow
def test_the_benchmark_shows_progress_and_leaves_no_temporary_folders(tmp_path):
    temp = tmp_path / "tmp"
    temp.mkdir()
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "benchmark.py"),
            "logger=none",
            "scenes.count=1",
            "scenes.hard=false",  # the five hard scenes would make it 6
            "select=[telea-true-mask]",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        env={**OFFLINE, "TMPDIR": str(temp)},
    )
    assert proc.returncode == 0, proc.stderr
    # one generated scene and the hard scenes, which every configuration also runs
    assert re.search(r"benchmark: telea-true-mask: \d+ scenes, 0 failed", proc.stderr), proc.stderr
    assert not list(temp.glob("benchmark-*"))


# --- the docs state the matrix -----------------------------------------------------------


def test_the_docs_matrix_names_every_command_line_case_and_no_other():
    page = (ROOT / "docs" / "bad-inputs.md").read_text()
    rows = [line for line in page.splitlines() if line.startswith("| `")]
    listed = {case for row in rows for case in re.findall(r"`([^`]+)`", row.split("|")[1])}
    assert listed == {case.id for case in CLI_ERRORS}


# --- the third round (issue 21) -------------------------------------------------------------


def test_the_api_never_writes_over_its_photo(tmp_path):
    """``output=`` the photo (by its name, a link or a hard link) and ``Moved.save`` into the
    photo's own folder (its ``input.png``) are refused; the photo is untouched."""
    from object_displacement.api import load_pipeline, move

    photo = tmp_path / "input.png"
    Image.fromarray(data.chelsea()).save(photo)
    before = photo.read_bytes()
    (tmp_path / "link.png").symlink_to(photo)
    os.link(photo, tmp_path / "hard.png")
    pipeline = load_pipeline(["segmenter=grabcut", "inpainter=telea"])
    for output in ("input.png", "link.png", "hard.png"):
        with pytest.raises(DisplacementError, match="is the input image"):
            move(photo, box=(140, 40, 330, 300), dx=10, pipeline=pipeline, output=tmp_path / output)
    moved = move(photo, box=(140, 40, 330, 300), dx=10, pipeline=pipeline)
    with pytest.raises(DisplacementError, match="would overwrite the photo"):
        moved.save(tmp_path)
    with pytest.raises(DisplacementError, match="it is a file, not a folder"):
        moved.save(photo)
    a_file = tmp_path / "plain.txt"
    a_file.write_text("x")
    with pytest.raises(DisplacementError, match="cannot write"):
        moved.save(a_file / "run")
    assert photo.read_bytes() == before
    assert (moved.save(tmp_path / "run") / "input.png").is_file()


def test_the_api_bounds_arrays_and_pillow_images_like_files(tmp_path):
    from object_displacement.api import load_pipeline, move

    pipeline = load_pipeline(["segmenter=grabcut", "inpainter=telea", "max_megapixels=0.5"])
    for picture in (np.zeros((1000, 1000, 3), np.uint8), Image.new("RGB", (1000, 1000))):
        with pytest.raises(DisplacementError, match=r"1000x1000 \(1 MP\), above max_megapixels=0.5"):
            move(picture, box=(1, 1, 50, 50), dx=10, pipeline=pipeline)


def test_the_api_takes_numpy_clicks_and_refuses_odd_pillow_modes_in_one_line():
    from object_displacement.io import as_image

    request = make_request("x", points=np.array([[45, 55], [5, 5]]), labels=np.array([1, 0]))
    assert request.target == Target(points=((45, 55), (5, 5)), labels=(1, 0))
    assert make_request("x", point=np.array([4.0, 5.0])).target == Target(point=(4, 5))
    with pytest.raises(DisplacementError, match="mode 'La'"):
        as_image(Image.new("La", (10, 10)))


def test_quoted_numbers_are_never_read_digit_by_digit():
    with pytest.raises(DisplacementError, match="got '20'"):
        make_request("x", point="20")
    with pytest.raises(DisplacementError, match=r"target.labels needs a list, got '10'"):
        make_request("x", points=[[1, 2], [3, 4]], labels="10")
    with pytest.raises(DisplacementError, match=r"write target.points=\[\[200, 150\]\]"):
        make_request("x", points=[200, 150])
    assert make_request("x", box=["1", "2", "30", "40"]).target == Target(
        box=(1, 2, 30, 40)
    )  # a manifest's cells


def test_16_bit_and_float_images_keep_their_brightness(tmp_path):
    """By the file's type, not its content: a dark 16-bit photo stays dark, a float image is 0..1."""
    dark = np.full((20, 20), 200, np.uint16)  # 200 of 65535: nearly black
    Image.fromarray(dark).save(tmp_path / "dark16.png")
    assert read_image(tmp_path / "dark16.png").max() == 1
    bright = np.full((20, 20), 65535, np.uint16)
    Image.fromarray(bright).save(tmp_path / "bright16.png")
    assert read_image(tmp_path / "bright16.png").min() == 255
    grey = np.full((20, 20), 0.5, np.float32)
    Image.fromarray(grey).save(tmp_path / "grey.tif")
    assert read_image(tmp_path / "grey.tif").max() == 128


def test_a_long_message_is_cut_to_one_short_line():
    from object_displacement.cli import one_line

    line = one_line(DisplacementError("no object matches the prompt '" + "a" * 10_000 + "': try another"))
    assert line == f"error: no object matches the prompt '{'a' * 40}...' (10000 characters): try another"
    line = one_line(DisplacementError("x" * 10_000))  # nothing quoted: the middle goes
    assert len(line) < 1100 and "characters ...]" in line
    path = "/data/" + "deep/" * 50 + "photo.jpg"  # a long path is said whole
    assert (
        one_line(DisplacementError(f"weights '{path}' are missing")) == f"error: weights '{path}' are missing"
    )
    assert one_line(DisplacementError("short\nand  plain")) == "error: short and plain"


@pytest.mark.slow
def test_a_10000_character_prompt_gives_a_short_error_line(files, tmp_path):
    proc = displace(
        f"image={files['cat']}", f"target.prompt={'cat' * 3400}", "dx=5", f"hydra.run.dir={tmp_path}"
    )
    line = assert_one_error_line(proc, "(10200 characters)")
    assert len(line) < 400 and "selector=clip" in line  # the advice is kept


def _run_until(args: list[str], run: Path, mark: str, sig: int) -> subprocess.CompletedProcess:
    """Start the CLI, wait until its log shows ``mark``, send ``sig``; what it ended with."""
    proc = subprocess.Popen(
        [sys.executable, SCRIPT, *args, "logger=none", "cache.enabled=false", f"hydra.run.dir={run}"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=OFFLINE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 180
    while mark not in _read(run / "displace.log"):
        assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
        time.sleep(0.1)
    time.sleep(0.5)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


@pytest.mark.slow
def test_sigterm_is_one_line_exit_143_and_leaves_no_temporaries(tmp_path):
    big = tmp_path / "big.png"
    Image.fromarray(data.chelsea()).resize((3608, 2400)).save(big)
    run, out = tmp_path / "run", tmp_path / "out.png"
    args = [
        f"image={big}",
        "target.box=[1120,320,2640,2400]",
        "dx=400",
        "inpainter.work_pixels=null",
        f"output={out}",
    ]
    proc = _run_until(args, run, "built object_displacement.ghost", signal.SIGTERM)
    assert proc.returncode == 143, proc.stderr
    assert proc.stderr.strip().splitlines() == ["error: terminated"] and "Traceback" not in proc.stderr
    assert (run / "error.txt").read_text().strip() == "error: terminated"
    assert not out.exists() and not (run / "metrics.json").exists()
    assert not list(run.rglob(".*.tmp")) and not list(tmp_path.glob(".*.tmp"))


@pytest.mark.slow
def test_a_stopped_dataset_still_writes_its_summary(tmp_path):
    manifest = tmp_path / "edits.csv"
    rows = ["id,image,prompt,point,box,dx,dy"] + [
        f"r{i},skimage:rocket,,,300 120 345 408,{40 + i},0" for i in range(8)
    ]
    manifest.write_text("\n".join(rows) + "\n")
    run = tmp_path / "run"
    args = [f"+dataset.manifest={manifest}", "+dataset.name=stop", "inpainter=telea"]
    proc = _run_until(args, run, "edit r0 done", signal.SIGINT)
    assert proc.returncode == 130 and proc.stderr.strip().splitlines()[-1] == "error: interrupted", (
        proc.stderr
    )
    import csv

    with (run / "summary.csv").open() as handle:
        summary = list(csv.DictReader(handle))
    assert [r["id"] for r in summary] == [f"r{i}" for i in range(8)]
    statuses = [r["status"] for r in summary]
    assert "not run" in statuses and statuses[0] == "ok"
    assert statuses == sorted(statuses, key=lambda s: s != "ok")  # the done ones first, then the rest


@pytest.mark.slow
def test_a_second_run_or_sweep_into_the_same_dir_is_its_own(files, tmp_path):
    run = tmp_path / "run"
    for _ in range(2):
        proc = displace(
            f"image={files['cat']}",
            "target.box=[140,40,330,300]",
            "dx=5",
            "inpainter=telea",
            f"hydra.run.dir={run}",
        )
        assert proc.returncode == 0, proc.stderr
    sweep = tmp_path / "sweep"
    first = displace("-m", "inpainter=telea", "dx=5,abc", f"hydra.sweep.dir={sweep}")
    assert first.returncode == 2 and "1 of 2 sweep jobs failed" in first.stderr
    second = displace("-m", "inpainter=telea", "dx=7", f"hydra.sweep.dir={sweep}")
    assert second.returncode == 0, second.stderr  # the first sweep's failed job 1 is not this one's
    assert "sweep: 1 jobs ok" in second.stdout


def test_an_output_through_a_link_writes_the_file_it_names(tmp_path, square_scene):
    image, _ = square_scene
    real = tmp_path / "real.png"
    write_image(real, image)
    real.chmod(0o640)
    (tmp_path / "link.png").symlink_to(real)
    write_image(tmp_path / "link.png", image[::-1].copy())
    assert (tmp_path / "link.png").is_symlink() and (real.stat().st_mode & 0o777) == 0o640
    np.testing.assert_array_equal(read_image(real), image[::-1])


def test_a_run_dir_removed_during_the_run_is_not_made_anew(tmp_path):
    from object_displacement.jobs import JobContext, check_still_there

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    context = JobContext(run, run / ".hydra" / "config.yaml")
    out = tmp_path / "outs" / "out.png"
    out.parent.mkdir()
    check_still_there(context, out)  # both there: fine
    shutil.rmtree(out.parent)
    with pytest.raises(DisplacementError, match=r"folder of output=.* was removed during the run"):
        check_still_there(context, out)
    shutil.rmtree(run)
    with pytest.raises(DisplacementError, match=r"run dir .* was removed during the run: nothing written"):
        check_still_there(context, None)
    assert not run.exists()


@pytest.mark.slow
def test_no_fallbacks_is_a_setting_not_a_failure(files, tmp_path):
    args = [f"image={files['cat']}", "target.box=[140,40,330,300]", "dx=5", "inpainter=telea"]
    proc = displace(*args, "ghost_check.fallbacks=null", f"hydra.run.dir={tmp_path}")
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "metrics.json").is_file()


def test_bounds_are_declared_beside_the_settings_they_bound():
    """The check reads the constructor's own hints: a new bounded setting needs no list elsewhere."""
    import typing

    from object_displacement.inpainters.patchmatch import PatchMatchInpainter
    from object_displacement.settings import Range

    hint = typing.get_type_hints(PatchMatchInpainter.__init__, include_extras=True)["patch_size"]
    assert Range(1, 31) in hint.__metadata__


def test_a_well_formed_cache_entry_with_wrong_content_is_dropped(tmp_path, square_scene, caplog):
    """A float order, a shape of 10^9 columns (an 838 GiB unpack), another photo's masks:
    each is dropped with a warning and recomputed, never trusted nor allocated."""
    image, mask = square_scene
    target = Target(box=(25, 35, 65, 75))

    def cached(stage: str) -> Path:
        cache = StageCache(tmp_path, segmenter={"a": 1})
        found = cache.candidates(image, target, _propose(mask, []))
        cache.ranking(image, target, found, lambda: found)
        (entry,) = tmp_path.glob(f"{stage}-*.npz")
        return entry

    def rewritten(entry: Path, **changes: np.ndarray) -> None:
        with np.load(entry) as data_:
            arrays = {k: data_[k] for k in data_.files}
        np.savez(entry.with_suffix(""), **{**arrays, **changes})

    bad_entries = [
        ("select", {"order": np.array([0.0])}),
        ("segment", {"shape": np.array([1, 120, 10**9])}),
        ("segment", {"shape": np.array([1, 60, 80]), "packed": np.zeros((1, 60, 10), np.uint8)}),
    ]
    for stage, changes in bad_entries:
        for old in tmp_path.glob("*.npz"):
            old.unlink()
        entry = cached(stage)
        rewritten(entry, **changes)
        calls = []
        cache = StageCache(tmp_path, segmenter={"a": 1})
        found = cache.candidates(image, target, _propose(mask, calls))
        ranked = cache.ranking(image, target, found, lambda found=found: found)
        assert found[0].mask.shape == mask.shape and ranked[0].mask.shape == mask.shape
        assert stage not in cache.hits and "dropping unreadable entry" in caplog.text, (stage, changes)
        caplog.clear()


@pytest.mark.slow
def test_wandb_with_no_writable_home_or_no_server_never_fails_the_run(files, tmp_path):
    """A home that cannot hold W&B's folders: they go into the run's own wandb/. An API key
    with its server unreachable: the run logs offline at once (W&B would retry for 90 s)."""
    home = tmp_path / "home-is-a-file"
    home.write_text("x")
    env = {k: v for k, v in OFFLINE.items() if k != "WANDB_MODE"}
    with socket.socket() as closed:  # a port nothing listens on
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    env |= {"HOME": str(home), "WANDB_API_KEY": "x" * 40, "WANDB_BASE_URL": f"http://127.0.0.1:{port}"}
    run = tmp_path / "run"
    args = [f"image={files['cat']}", "target.box=[140,40,330,300]", "dx=5", "inpainter=telea"]
    proc = displace(*args, "logger=wandb", f"hydra.run.dir={run}", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "cannot be reached; logging offline" in proc.stderr and "Traceback" not in proc.stderr
    assert list((run / "wandb").glob("offline-run-*")) and (run / "metrics.json").is_file()


def test_ctrl_c_during_a_c_extension_import_is_still_an_interrupt():
    """onnxruntime's import turns a Ctrl-C into "ImportError: initialization failed"."""
    from object_displacement.cli import _stopped_by

    try:
        try:
            raise KeyboardInterrupt
        except KeyboardInterrupt as stop:
            raise ImportError("initialization failed") from stop
    except ImportError as err:
        assert isinstance(_stopped_by(err), KeyboardInterrupt)
    assert _stopped_by(ValueError("a bug")) is None
