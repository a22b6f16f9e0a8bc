"""Where the Hydra configs live, and composing them outside a Hydra run (API, app, tests).

``conf/`` at the top of the repository is the source. A source checkout or an editable
install reads it there; a built wheel carries a copy inside the package (``setup.py`` copies
it at build time), so ``pip install .`` gives a ``displace`` command that finds its configs.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from omegaconf import DictConfig

from object_displacement.errors import DisplacementError

CONFIG_NAME = "displace"
PACKAGE_DIR = Path(__file__).resolve().parent


def config_dir() -> Path:
    """The repository's ``conf/`` when running from a checkout, else the packaged copy."""
    for candidate in (PACKAGE_DIR.parents[1] / "conf", PACKAGE_DIR / "conf"):
        if (candidate / f"{CONFIG_NAME}.yaml").is_file():
            return candidate
    raise RuntimeError(f"no {CONFIG_NAME}.yaml beside {PACKAGE_DIR}: the package was built without conf/")


def compose_config(overrides: Sequence[str] = ()) -> DictConfig:
    """``conf/displace.yaml`` with command-line style ``overrides``, as the CLI composes it.

    An override Hydra cannot apply (an unknown group or key, a typo in the syntax) is the
    user's to fix: one :class:`DisplacementError`, not Hydra's traceback."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import HydraException

    try:
        with initialize_config_dir(config_dir=str(config_dir()), version_base="1.3"):
            return compose(config_name=CONFIG_NAME, overrides=list(overrides))
    except HydraException as err:
        text = " ".join(str(err).split()) or type(err).__name__
        raise DisplacementError(f"cannot apply the overrides {list(overrides)}: {text}") from err


def choices(group: str) -> list[str]:
    """The variants of a config group (``segmenter`` -> grabcut, mask, sam): its file names."""
    return sorted(p.stem for p in (config_dir() / group).glob("*.yaml"))
