"""One summary of a sharded dataset sweep: every row of the manifest, in its order, from the
shards' records (:mod:`object_displacement.shards`), written in the sweep dir when the sweep
ends (:class:`MergeShards`, a Hydra callback) and rebuilt on demand
(``python scripts/summarize.py SWEEP_DIR``) after a shard died or was rerun alone."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra.experimental.callback import Callback

from object_displacement.cli import ERROR_FILE, job_started, one_line, sweep_started
from object_displacement.errors import DisplacementError
from object_displacement.shards import RECORDS_FILE, read_records, settings_of, shard_in, shard_rows

if TYPE_CHECKING:
    from omegaconf import DictConfig

log = logging.getLogger(__name__)

SUMMARY_FILE = "summary.csv"


def sweep_jobs(sweep_dir: Path) -> Iterator[tuple[Path, list[str]]]:
    """The job dirs of the sweep last run in ``sweep_dir`` (written since its mark, as the
    tally counts them) and each one's overrides."""
    import yaml

    started = sweep_started(sweep_dir)
    for job_dir in sorted(p for p in sweep_dir.iterdir() if p.is_dir()):
        if job_started(job_dir) < started:
            continue
        try:
            listed = yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) or []
        except (OSError, yaml.YAMLError):
            continue
        yield job_dir, [str(o) for o in listed]


def merge(sweep_dir: Path) -> dict[str, int] | None:
    """Write ``summary.csv`` in ``sweep_dir``: every row of the sharded dataset its jobs ran,
    in the manifest's order, from the shards' records; rows of a shard that died or never
    ran are ``not run`` with the shard's reason. ``None`` where no job ran a shard."""
    from object_displacement.dataset import columns_of, read_manifest, write_csv

    groups: dict[str, dict[int, Path]] = {}
    for job_dir, overrides in sweep_jobs(sweep_dir):
        shard = shard_in(overrides)
        if shard is not None:
            groups.setdefault(json.dumps(settings_of(overrides)), {})[shard] = job_dir
    if not groups:
        return None
    rows: list[dict[str, Any]] = []
    counts = {"edits": 0, "failed": 0, "not run": 0, "shards": 0}
    for settings, jobs in groups.items():
        records = {k: read_records(d / RECORDS_FILE) for k, d in jobs.items()}
        headers = [h for h, _ in records.values() if h is not None]
        if not headers:
            log.warning("no shard of %s started: nothing to summarize", settings)
            continue
        header = headers[0]
        manifest = read_manifest(Path(header["manifest"]))
        done = {e["row"]: e["summary"] for _, entries in records.values() for e in entries}
        counts["shards"] += header["shards"]
        for number, row in shard_rows(manifest, None, 1):
            shard = (number - 1) % header["shards"]
            if number in done:
                summary = {**done[number], "shard": shard}
                if summary.get("status") == "ok":
                    summary["dir"] = os.path.relpath(jobs[shard] / "edits" / str(summary["id"]), sweep_dir)
            else:
                why = _why_not(jobs.get(shard), shard)
                summary = {
                    "id": row.id,
                    "image": row.image,
                    "status": "not run",
                    "error": why,
                    "shard": shard,
                }
            if len(groups) > 1:
                summary = {"settings": ",".join(json.loads(settings)), **summary}
            rows.append(summary)
    counts["edits"] = len(rows)
    counts["failed"] = sum(r["status"] == "failed" for r in rows)
    counts["not run"] = sum(r["status"] == "not run" for r in rows)
    first = ["settings"] if len(groups) > 1 else []
    columns = [*first, "id", "image", "status", "error", "shard", "dir"]
    write_csv(sweep_dir / SUMMARY_FILE, columns + [c for c in columns_of(rows) if c not in columns], rows)
    return counts


def _why_not(job_dir: Path | None, shard: int) -> str:
    """Why a row of ``shard`` has no result: the shard's own error line, if it left one."""
    if job_dir is not None:
        with contextlib.suppress(OSError):
            line = (job_dir / ERROR_FILE).read_text().strip().removeprefix("error: ")
            return f"shard {shard} stopped before this row: {line}"
        return f"shard {shard} stopped before this row"
    return f"shard {shard} did not run"


def report(sweep_dir: Path, counts: dict[str, int]) -> str:
    shards = f"{counts['shards']} shard{'s' if counts['shards'] != 1 else ''}"
    return (
        f"dataset: {counts['edits']} edits from {shards}, {counts['failed']} failed, "
        f"{counts['not run']} not run: {sweep_dir / SUMMARY_FILE}"
    )


class MergeShards(Callback):
    """Hydra callback: when a sweep that ran shards of a dataset ends, one summary of them
    all in its dir (before the tally, which ends the sweep)."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(str(config.hydra.sweep.dir))
        try:
            counts = merge(sweep_dir)
        except (DisplacementError, OSError) as err:
            log.warning("the shards' summary could not be written: %s", err)
            return
        if counts is not None:
            print(report(sweep_dir, counts), flush=True)


def main(argv: Sequence[str]) -> int:
    """``scripts/summarize.py SWEEP_DIR``: the summary of a sharded sweep, built again from
    its shards' records (after a shard died, or was rerun alone)."""
    if len(argv) != 1 or argv[0].startswith("-"):
        print("usage: python scripts/summarize.py SWEEP_DIR  (a sweep that ran dataset.shard=...)")
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    sweep_dir = Path(argv[0])
    try:
        if not sweep_dir.is_dir():
            raise DisplacementError(f"{sweep_dir} is not a sweep dir")
        counts = merge(sweep_dir)
        if counts is None:
            raise DisplacementError(f"no job in {sweep_dir} ran a shard of a dataset (dataset.shard=...)")
    except (DisplacementError, OSError) as err:
        print(one_line(err), file=sys.stderr, flush=True)
        return 2
    print(report(sweep_dir, counts), flush=True)
    return 0
