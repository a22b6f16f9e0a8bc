"""What every run logger does: record a job's config, metrics, ranking and pictures."""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from object_displacement.types import Image


class RunLogger(ABC):
    """Receives what a job produced; ``finish`` is called once, also when the job fails."""

    @abstractmethod
    def start(self, config: dict[str, Any]) -> None:
        """Open the run with the job's resolved config."""

    @abstractmethod
    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        """Numbers, flattened to ``group/name`` keys."""

    @abstractmethod
    def log_table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """A table, e.g. the candidate ranking or a dataset run's summary."""

    @abstractmethod
    def log_image(self, name: str, image: Image, caption: str = "", step: int | None = None) -> None:
        """An RGB picture, e.g. the input | mask | composite | output grid."""

    def save_file(self, path: Path) -> None:  # noqa: B027 (optional: a logger may keep no files)
        """Keep a file the job wrote (``output.png``, ``metrics.json``) with the run."""

    @abstractmethod
    def finish(self, failed: bool = False) -> None:
        """Close the run; ``failed`` marks a job that raised."""


@contextlib.contextmanager
def logged_run(logger: RunLogger, config: dict[str, Any]) -> Iterator[RunLogger]:
    """Start ``logger`` with ``config`` and finish it however the block ends, marking the
    run failed when it raises, so no run is ever left open."""
    logger.start(config)
    try:
        yield logger
    except BaseException:
        logger.finish(failed=True)
        raise
    logger.finish()


def flatten(metrics: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"timings_s": {"segment": 1}}`` -> ``{"timings_s/segment": 1}``; lists are left out."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat |= flatten(value, f"{name}/")
        elif isinstance(value, (int, float, str, bool)) or value is None:
            flat[name] = value
    return flat
