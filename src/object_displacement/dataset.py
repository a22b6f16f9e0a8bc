"""Dataset runs: every edit of a manifest, failures recorded, one summary table.

A manifest is a CSV with a header and one edit per row::

    id,image,prompt,point,box,dx,dy
    rocket-right,skimage:rocket,rocket,,300 120 345 408,100,0

``point`` is ``x y`` and ``box`` is ``x0 y0 x1 y1`` (pixels); leave unused cells empty.
Optional columns ``scale``, ``flip`` and ``anchor`` scale or mirror the object as it moves.
Relative image paths are relative to the manifest.
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from tqdm import tqdm

from object_displacement.errors import DisplacementError
from object_displacement.io import SAMPLE_PREFIX, atomic_open
from object_displacement.loggers.base import RunLogger, flatten
from object_displacement.task import build_pipeline, make_move, run_edit

log = logging.getLogger(__name__)

COLUMNS = ("id", "image", "prompt", "point", "box", "dx", "dy")


@dataclass
class Edit:
    """One row of a manifest, as written (checked when it runs, so a bad row fails alone)."""

    id: str
    image: str
    target: dict[str, Any]
    dx: Any
    dy: Any
    scale: Any = None
    flip: Any = None
    anchor: Any = None


def read_manifest(path: Path) -> list[Edit]:
    """The edits of ``path``; a missing file or a wrong header stops the run."""
    if not path.is_file():
        raise DisplacementError(f"manifest not found: {path}")
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DisplacementError(f"manifest {path} lacks column(s) {', '.join(missing)}")
        rows = list(reader)
    edits = []
    for number, row in enumerate(rows, start=1):
        image = row["image"].strip()
        if image and not image.startswith(SAMPLE_PREFIX) and not Path(image).is_absolute():
            image = str(path.parent / image)
        edits.append(
            Edit(
                id=row["id"].strip() or f"row{number}",
                image=image,
                target={
                    "prompt": row["prompt"].strip() or None,
                    "point": _numbers(row["point"]),
                    "box": _numbers(row["box"]),
                },
                dx=row["dx"],
                dy=row["dy"],
                scale=(row.get("scale") or "").strip() or None,
                flip=(row.get("flip") or "").strip() or None,
                anchor=(row.get("anchor") or "").strip() or None,
            )
        )
    return edits


def _numbers(cell: str | None) -> list[str] | None:
    parts = (cell or "").replace(",", " ").replace("[", " ").replace("]", " ").split()
    return parts or None


def run_dataset(cfg: DictConfig, logger: RunLogger) -> list[dict[str, Any]]:
    """Run every edit of ``cfg.dataset.manifest``; return one summary row per edit."""
    edits = read_manifest(Path(cfg.dataset.manifest))
    pipeline = build_pipeline(cfg)
    run_dir = Path(cfg.paths.run_dir)
    rows: list[dict[str, Any]] = []
    for step, edit in enumerate(tqdm(edits, desc=f"dataset {cfg.dataset.name}", unit="edit")):
        row: dict[str, Any] = {"id": edit.id, "image": edit.image, "status": "ok", "error": ""}
        try:
            move = make_move(edit.dx, edit.dy, edit.scale or 1.0, edit.flip or False, edit.anchor or "center")
            metrics, _, images = run_edit(
                pipeline, edit.image, edit.target, move, run_dir / "edits" / edit.id
            )
        except DisplacementError as err:
            log.warning("edit %s failed: %s", edit.id, err)
            row.update(status="failed", error=str(err))
        else:
            row.update(flatten(metrics))
            logger.log_image("edits/grid", images["grid"], caption=edit.id, step=step)
        rows.append(row)
    columns = columns_of(rows)
    write_csv(run_dir / "summary.csv", columns, rows)
    logger.log_table("edits/summary", columns, [[r.get(c, "") for c in columns] for r in rows])
    failed = sum(r["status"] == "failed" for r in rows)
    logger.log_metrics({"edits": {"total": len(rows), "failed": failed}})
    log.info("%d edits, %d failed: %s", len(rows), failed, run_dir / "summary.csv")
    return rows


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    return columns


def write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with atomic_open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
