"""Move an object in a photo: `python scripts/displace.py --help`."""

import os
from pathlib import Path

import hydra
from omegaconf import DictConfig

from object_displacement.cli import exit_on_user_error, guard
from object_displacement.task import run_job

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))


@hydra.main(version_base="1.3", config_path="../conf", config_name="displace")
@exit_on_user_error
def main(cfg: DictConfig) -> None:
    run_job(cfg)


if __name__ == "__main__":
    guard(main)
