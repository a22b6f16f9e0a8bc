"""The ground-truth benchmark: `python scripts/benchmark.py` (see conf/benchmark.yaml).

    python scripts/benchmark.py scenes.count=8 select=[telea,patchmatch]
    python scripts/benchmark.py '+configurations.mine=["inpainter=ns","mask_policy.seam=0.06"]'

Writes scenes.csv (one row per configuration and scene), summary.csv and summary.md (one
row per configuration: mean / worst) into its run dir, and the same tables to W&B.
"""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

from object_displacement.benchmark.runner import run_benchmark
from object_displacement.cli import exit_on_user_error, guard

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))


@hydra.main(version_base="1.3", config_path="../conf", config_name="benchmark")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    run_benchmark(cfg)


if __name__ == "__main__":
    guard(main)
