"""Dataset runs: every edit of a manifest, failures recorded, one summary table.

A manifest is a CSV with a header and one edit per row::

    id,image,prompt,point,box,dx,dy
    rocket-right,skimage:rocket,rocket,,300 120 345 408,100,0

``point`` is ``x y`` and ``box`` is ``x0 y0 x1 y1`` (pixels); leave unused cells empty.
Optional columns ``scale``, ``flip`` and ``anchor`` scale or mirror the object as it moves;
where a row leaves them out (or the column is absent) the run's settings apply, as do its
``keep_out`` boxes and ``max_megapixels``.
Relative image paths are relative to the manifest. The file is UTF-8 (a byte-order mark is
fine). A row that cannot run (too few cells, text that is not UTF-8, an ``id`` that is a
path or repeats an earlier one, a bad value) is recorded as failed with its reason and the
others go on; the run always ends with its summary.
"""

from __future__ import annotations

import csv
import io
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from object_displacement.errors import DisplacementError
from object_displacement.io import SAMPLE_PREFIX, atomic_open, check_regular_file
from object_displacement.request import make_request
from object_displacement.types import EditDefaults, EditRequest

log = logging.getLogger(__name__)

COLUMNS = ("id", "image", "prompt", "point", "box", "dx", "dy")
PLAIN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
"""An ``id`` names a folder under ``edits/``: a plain name, never a path."""


@dataclass
class Row:
    """One row of a manifest, as written (checked when it runs, so a bad row fails alone).

    ``problem`` says why a row cannot run at all (it is recorded as failed)."""

    id: str
    image: str
    target: dict[str, Any]
    dx: Any
    dy: Any
    scale: Any = None
    flip: Any = None
    anchor: Any = None
    problem: str | None = None


def read_manifest(path: Path) -> list[Row]:
    """The edits of ``path``; a missing or unreadable file or a wrong header stops the run,
    a bad row becomes a :class:`Row` with a ``problem``."""
    check_regular_file(path, "manifest")
    try:
        text = path.read_bytes().decode("utf-8-sig", errors="surrogateescape")
    except OSError as err:
        raise DisplacementError(f"cannot read manifest {path}: {err.strerror or err}") from err
    reader = csv.DictReader(io.StringIO(text, newline=""))
    fields = [(f or "").strip() for f in reader.fieldnames or []]
    if any(_undecodable(f) for f in fields):
        raise DisplacementError(f"manifest {path} is not UTF-8 text: save it as UTF-8")
    reader.fieldnames = fields
    missing = [c for c in COLUMNS if c not in fields]
    if missing:
        raise DisplacementError(f"manifest {path} lacks column(s) {', '.join(missing)}")
    edits: list[Row] = []
    seen: dict[str, int] = {}
    for number, row in enumerate(reader, start=1):
        edit = _edit(number, row, path.parent)
        if edit.problem is None:
            first = seen.setdefault(edit.id.casefold(), number)
            if first != number:
                edit.problem = f"duplicate id '{edit.id}' (row {first} has it): ids name folders"
        edits.append(edit)
    return edits


def _edit(number: int, row: dict[str | None, Any], folder: Path) -> Row:
    cells = {k: (v or "").strip() if isinstance(v, str) or v is None else v for k, v in row.items()}
    edit_id = str(cells.get("id") or f"row{number}")
    problem = None
    if None in row:
        problem = f"row {number} has more cells than the header (quote a cell that holds a comma)"
    elif any(v is None for v in row.values()):
        problem = f"row {number} has {sum(v is not None for v in row.values())} cells, the header {len(row)}"
    elif any(_undecodable(v) for v in cells.values() if isinstance(v, str)):
        problem = f"row {number} is not UTF-8 text: save the manifest as UTF-8"
    elif not PLAIN_ID.match(edit_id):
        problem = f"id '{edit_id}' must be a plain name (letters, digits, '.', '-', '_'), not a path"
    elif not cells["image"]:
        problem = f"row {number} names no image"
    cells = {k: _readable(v) for k, v in cells.items()}
    edit_id = _readable(edit_id)
    image = cells.get("image") or ""
    if image and not image.startswith(SAMPLE_PREFIX) and not Path(image).is_absolute():
        image = str(folder / image)
    return Row(
        id=edit_id,
        image=image,
        target={
            "prompt": cells.get("prompt") or None,
            "point": _numbers(cells.get("point")),
            "box": _numbers(cells.get("box")),
        },
        dx=cells.get("dx"),
        dy=cells.get("dy"),
        scale=cells.get("scale") or None,
        flip=cells.get("flip") or None,
        anchor=cells.get("anchor") or None,
        problem=problem,
    )


def _undecodable(text: str) -> bool:
    """Whether ``text`` holds bytes that were not UTF-8 (kept as lone surrogates)."""
    return any("\udc80" <= ch <= "\udcff" for ch in text)


def _readable(value: Any) -> Any:
    """``value`` with undecodable bytes shown as U+FFFD, so it can be logged and written."""
    if not isinstance(value, str):
        return value
    return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _numbers(cell: str | None) -> list[str] | None:
    parts = (cell or "").replace(",", " ").replace("[", " ").replace("]", " ").split()
    return parts or None


def row_request(row: Row, defaults: EditDefaults) -> EditRequest:
    """The edit a row asks for; its empty cells take the run's ``defaults``. A row that
    cannot run raises its reason."""
    if row.problem:
        raise DisplacementError(row.problem)
    return make_request(
        row.image,
        **row.target,
        dx=row.dx,
        dy=row.dy,
        scale=row.scale,
        flip=row.flip,
        anchor=row.anchor,
        defaults=defaults,
    )


def columns_of(rows: list[dict[str, Any]]) -> list[str]:
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    return columns


def write_csv(path: Path, columns: list[str], rows: list[dict[str, Any]]) -> None:
    with atomic_open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(rows)
