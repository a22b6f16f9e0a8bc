"""`pip install .` gives a working `displace`: the wheel carries the configs and the command."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from tests.conftest import CONF, ROOT

pytestmark = pytest.mark.slow


def run(*args: str | Path, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=300, **kwargs)


def test_wheel_installs_a_working_displace_command(tmp_path):
    built = run(sys.executable, "-m", "pip", "wheel", ROOT, "--no-deps", "-q", "-w", tmp_path / "dist")
    assert built.returncode == 0, built.stderr
    (wheel,) = (tmp_path / "dist").glob("object_displacement-*.whl")
    packaged = {n for n in zipfile.ZipFile(wheel).namelist() if n.startswith("object_displacement/conf/")}
    assert packaged == {f"object_displacement/conf/{p.relative_to(CONF)}" for p in CONF.rglob("*.yaml")}

    # a fresh venv; the dependencies come from ours (no torch download), the package from the wheel
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / "bin"
    python = bin_dir / "python"
    site = run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])").stdout.strip()
    Path(site, "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = run(python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", wheel)
    assert installed.returncode == 0, installed.stderr

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
    where = run(
        python, "-c", "import object_displacement.config as c; print(c.config_dir())", cwd=outside, env=env
    )
    assert where.stdout.strip().startswith(str(env_dir)), where.stdout + where.stderr
    helped = run(bin_dir / "displace", "--help", cwd=outside, env=env)
    assert helped.returncode == 0 and "dx > 0 moves right" in helped.stdout, helped.stderr
    # the default segmenter's network is not in the wheel: one line says how to get it
    unfetched = run(bin_dir / "displace", "logger=none", "hydra.run.dir=run0", cwd=outside, env=env)
    assert unfetched.returncode == 2 and unfetched.stderr.count("\n") == 1, unfetched.stderr
    assert "make weights" in unfetched.stderr and "segmenter=grabcut" in unfetched.stderr
    weights = f"segmenter.weights_dir={ROOT / 'data' / 'weights'}"  # where `make test` fetched it
    demo = run(
        bin_dir / "displace",
        "logger=none",
        "hydra.run.dir=run",
        "output=moved.png",
        weights,
        cwd=outside,
        env=env,
    )
    assert demo.returncode == 0, demo.stderr
    assert (outside / "moved.png").is_file() and (outside / "run" / "metrics.json").is_file()
    assert (outside / "run" / "displace.log").is_file()
    bad = run(
        bin_dir / "displace",
        "logger=none",
        "hydra.run.dir=run2",
        "image=nope.png",
        weights,
        cwd=outside,
        env=env,
    )
    assert bad.returncode == 2 and bad.stderr.strip() == "error: image not found: nope.png"
