"""``logger=none``: log nothing (tests, quick looks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from object_displacement.loggers.base import RunLogger
from object_displacement.types import Image


class NoLogger(RunLogger):
    def start(self, config: dict[str, Any]) -> None:
        pass

    def log_metrics(self, metrics: dict[str, Any], step: int | None = None) -> None:
        pass

    def log_table(self, name: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        pass

    def log_image(self, name: str, image: Image, caption: str = "", step: int | None = None) -> None:
        pass

    def finish(self, failed: bool = False) -> None:
        pass
