"""Where the Hydra configs live, and composing them outside a Hydra run (API, app, tests).

``conf/`` at the top of the repository is the source. The package's ``conf`` is a link to
it, so a checkout or an editable install reads it there, and a built wheel carries the files
themselves (package data): ``pip install .`` gives a ``displace`` command that finds them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from object_displacement.errors import DisplacementError

if TYPE_CHECKING:
    from omegaconf import DictConfig

CONFIG_NAME = "displace"
PACKAGE_DIR = Path(__file__).resolve().parent


def config_dir() -> Path:
    """The package's ``conf`` (in a checkout, the link to the repository's ``conf/``)."""
    candidate = PACKAGE_DIR / "conf"
    if not (candidate / f"{CONFIG_NAME}.yaml").is_file():
        raise RuntimeError(f"no {CONFIG_NAME}.yaml in {candidate}: the package was built without conf/")
    return candidate


def compose_config(overrides: Sequence[str] = (), directory: str | Path | None = None) -> DictConfig:
    """``conf/displace.yaml`` with command-line style ``overrides``, as the CLI composes it
    (``directory``: another ``conf``, e.g. a checkout's; by default the package's).

    An override Hydra cannot apply (an unknown group or key, a typo in the syntax) is the
    user's to fix: one :class:`DisplacementError`, not Hydra's traceback."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(directory or config_dir()), version_base="1.3"):
            return compose(config_name=CONFIG_NAME, overrides=list(overrides))
    except HydraException as err:
        text = " ".join(str(err).split()) or type(err).__name__
        raise DisplacementError(f"cannot apply the overrides {list(overrides)}: {text}") from err


def choices(group: str) -> list[str]:
    """The variants of a config group (``segmenter`` -> grabcut, mask, sam): its file names."""
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))


def group_choices(overrides: Sequence[str] = ()) -> dict[str, str]:
    """The variant each config group takes with ``overrides``, as Hydra resolves the
    defaults lists (``experiment=paper`` makes ``segmenter`` ``sam``); a group set to null
    is left out. Mistakes in ``overrides`` are one :class:`DisplacementError`."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            cfg = compose(config_name=CONFIG_NAME, overrides=list(overrides), return_hydra_config=True)
    except HydraException as err:
        text = " ".join(str(err).split()) or type(err).__name__
        raise DisplacementError(f"cannot apply the overrides {list(overrides)}: {text}") from err
    return {str(group): str(name) for group, name in cfg.hydra.runtime.choices.items() if name is not None}
