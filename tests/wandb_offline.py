"""Read an offline W&B run back: the records of its ``run-*.wandb`` file.

wandb writes offline runs as a LevelDB-style log of protobuf records (what ``wandb sync``
uploads). Recent wandb versions have no Python reader, so the tests carry this small one.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

BLOCK = 32 * 1024
HEADER = struct.Struct("<4sHB")  # ":W&B", magic, version
RECORD = struct.Struct("<IHB")  # crc32, length, kind (1 full, 2 first, 3 middle, 4 last)


def records(path: Path) -> list[Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    data = path.read_bytes()
    if HEADER.unpack(data[: HEADER.size])[0] != b":W&B":
        raise ValueError(f"{path} is not a W&B run log")
    out, pos, pending = [], HEADER.size, b""
    while pos + RECORD.size <= len(data):
        left = BLOCK - pos % BLOCK
        if left < RECORD.size:  # a block's tail too short for a header is padding
            pos += left
            continue
        _, length, kind = RECORD.unpack(data[pos : pos + RECORD.size])
        if length == 0 and kind == 0:
            pos += left
            continue
        pending += data[pos + RECORD.size : pos + RECORD.size + length]
        pos += RECORD.size + length
        if kind in (1, 4):
            record = pb.Record()
            record.ParseFromString(pending)
            out.append(record)
            pending = b""
    return out


def read_run(run_dir: Path) -> dict[str, Any]:
    """The run's name, group, tags, config keys, logged history and summary."""
    (log_file,) = run_dir.glob("wandb/offline-run-*/run-*.wandb")
    run: dict[str, Any] = {"history": {}, "summary": {}, "files": log_file.parent / "files"}
    for record in records(log_file):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run |= {
                "name": record.run.display_name,
                "group": record.run.run_group,
                "tags": list(record.run.tags),
            }
            run["config"] = {item.key for item in record.run.config.update}
        elif kind in ("history", "summary"):
            items = record.history.item if kind == "history" else record.summary.update
            for item in items:
                key = item.key or "/".join(item.nested_key)
                run[kind][key] = json.loads(item.value_json)
    return run
