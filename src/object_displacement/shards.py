"""A dataset split into shards, each a job of a sweep (on a cluster, a task of one array job):
which rows a shard runs and the record it keeps of each row as it ends, from which
:mod:`object_displacement.shard_summary` builds one summary of every row.

``dataset.shards=N`` with ``-m 'dataset.shard=range(N)'`` gives shard ``k`` every N-th row
of the manifest from row ``k`` (heavy and light rows spread evenly). Each shard writes its
edits and ``summary.csv`` in its own job dir, as a dataset run does, and ``records.jsonl``:
a header, then one line per row as it ends, so a shard killed mid-way leaves the rows it
did. A shard run again (the same settings, row and edit) keeps the rows it finished.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from object_displacement.errors import DisplacementError

if TYPE_CHECKING:
    from object_displacement.dataset import Row

RECORDS_FILE = "records.jsonl"
SHARD_KEY = "dataset.shard"


def check_shard(shard: Any, shards: Any) -> tuple[int | None, int]:
    """``dataset.shard`` and ``dataset.shards`` as numbers, or the one line that says what to
    change: a shard needs a count above it, and a count above 1 a shard to run."""
    count = _whole(shards, "dataset.shards")
    if count < 1:
        raise DisplacementError(f"dataset.shards must be 1 or more, got {shards!r}")
    if shard is None:
        if count > 1:
            raise DisplacementError(
                f"dataset.shards={count} splits the manifest into {count} jobs: run them as a sweep, "
                f"-m 'dataset.shard=range({count})'"
            )
        return None, 1
    number = _whole(shard, "dataset.shard")
    if not 0 <= number < count:
        raise DisplacementError(f"dataset.shard={shard} must be from 0 to dataset.shards-1 ({count - 1})")
    return number, count


def _whole(value: Any, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)) or not str(value).strip().isdigit():
        raise DisplacementError(f"{key} must be a whole number, got {value!r}")
    return int(value)


def shard_rows(rows: Sequence[Row], shard: int | None, shards: int) -> list[tuple[int, Row]]:
    """The rows shard ``shard`` runs, each with its number in the manifest (from 1)."""
    return [(i + 1, row) for i, row in enumerate(rows) if shard is None or i % shards == shard]


def row_key(row: Row) -> dict[str, Any]:
    """A row as the manifest says it: a kept result must be for the same edit."""
    key = asdict(row)
    key.pop("problem", None)
    return key


def settings_of(overrides: Sequence[str]) -> list[str]:
    """A job's overrides less the shard it runs: what its shards have in common."""
    return [o for o in overrides if o.lstrip("+").partition("=")[0] != SHARD_KEY]


def shard_in(overrides: Sequence[str]) -> int | None:
    for override in overrides:
        key, _, value = override.lstrip("+").partition("=")
        if key == SHARD_KEY and value.strip().isdigit():
            return int(value)
    return None


class Records:
    """A shard's ``records.jsonl``: a header (manifest, shard, settings), then a line per row
    as it ends, flushed to the disk at once: what a shard killed mid-way leaves behind."""

    def __init__(self, path: Path, header: dict[str, Any]) -> None:
        self.path = path
        self.header = header
        self.kept = self._earlier()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.handle = path.open("w", encoding="utf-8")
        self._write({"header": header})
        for entry in self.kept.values():
            self._write(entry)

    def _earlier(self) -> dict[int, dict[str, Any]]:
        """The rows an earlier run of this shard finished, where it ran the same settings."""
        header, entries = read_records(self.path)
        if header != self.header:
            return {}
        return {e["row"]: e for e in entries if e["summary"].get("status") == "ok"}

    def kept_row(self, number: int, row: Row, edit_dir: Path) -> dict[str, Any] | None:
        """The summary of row ``number`` from an earlier run, if it was this edit and its
        files are still there."""
        entry = self.kept.get(number)
        if entry is None or entry["key"] != row_key(row) or not (edit_dir / "metrics.json").is_file():
            return None
        return dict(entry["summary"])

    def add(self, number: int, row: Row, summary: dict[str, Any]) -> None:
        if number not in self.kept:
            self._write({"row": number, "key": row_key(row), "summary": summary})

    def _write(self, entry: dict[str, Any]) -> None:
        self.handle.write(json.dumps(entry, default=str) + "\n")
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def __enter__(self) -> Records:
        return self

    def __exit__(self, *exc: object) -> None:
        self.handle.close()


def read_records(path: Path) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """A records file's header and rows; a line cut short by a kill is left out."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError):
        return None, []
    entries = []
    for line in lines:
        with contextlib.suppress(ValueError):
            entries.append(json.loads(line))
    if not entries or "header" not in entries[0]:
        return None, []
    return entries[0]["header"], [e for e in entries[1:] if "row" in e and "summary" in e]
