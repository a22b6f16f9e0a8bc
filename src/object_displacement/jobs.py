"""The jobs a ``displace`` run does: one edit, or every row of a manifest; in a sweep
(``-m``) each job is one of these. A job reads Hydra's runtime once (:class:`JobContext`),
resolves its settings once, checks its outputs once and builds the pipeline once; each edit
then takes the road every entry point takes (:mod:`object_displacement.edit`)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict
from tqdm import tqdm

from object_displacement.build import build, build_pipeline, edit_defaults
from object_displacement.dataset import Row, columns_of, read_manifest, row_request, write_csv
from object_displacement.edit import check_outputs, edit, write
from object_displacement.errors import DisplacementError
from object_displacement.io import atomic_open, check_can_write
from object_displacement.loggers.base import RunLogger, flatten, logged_run
from object_displacement.request import make_request
from object_displacement.shards import RECORDS_FILE, Records, check_shard, shard_rows
from object_displacement.targets import has_target
from object_displacement.types import EditRequest, Result

log = logging.getLogger(__name__)

MOVE_SETTINGS = ("dx", "dy", "scale", "flip", "anchor")
"""Settings of the move: recorded in the config, not charted as metrics."""


@dataclass(frozen=True)
class JobContext:
    """What a job needs of Hydra's runtime, read once: where it writes, where Hydra saved
    its config, which job of a parallel sweep it is (that picks its GPU), and the overrides
    it was started with (a dataset shard records them)."""

    run_dir: Path
    config_file: Path | None = None
    job_number: int | None = None
    overrides: tuple[str, ...] = ()

    @classmethod
    def of(cls, cfg: DictConfig) -> JobContext:
        """The context of the job ``cfg`` configures (outside Hydra: its ``paths.run_dir``)."""
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        run_dir = Path(cfg.paths.run_dir)
        if not HydraConfig.initialized():
            return cls(run_dir)
        hydra = HydraConfig.get()
        saved = None
        if hydra.output_subdir is not None:
            saved = Path(hydra.runtime.output_dir) / str(hydra.output_subdir) / "config.yaml"
        # Hydra's basic launcher runs sweep jobs one after another in this process: they share
        # one device and the models loaded on it; other launchers run them side by side
        side_by_side = hydra.mode == RunMode.MULTIRUN and "BasicLauncher" not in str(
            hydra.launcher.get("_target_", "")
        )
        overrides = tuple(str(o) for o in hydra.overrides.task)
        return cls(run_dir, saved, int(hydra.job.num) if side_by_side else None, overrides)


def run_job(cfg: DictConfig) -> Any:
    """The entry point's task: a dataset run or one displacement."""
    context = JobContext.of(cfg)
    if not cfg.get("dataset"):
        return displace(cfg, context)
    rows = run_dataset(cfg, context)
    failed = [r for r in rows if r["status"] != "ok"]
    if failed:  # as a sweep with a failed job: the summary is written, the run exits 2
        ids = ", ".join(str(r["id"]) for r in failed[:5]) + (", ..." if len(failed) > 5 else "")
        raise DisplacementError(
            f"{len(failed)} of {len(rows)} edits failed ({ids}); {failed[0]['id']}: {failed[0]['error']}; "
            f"see {context.run_dir / 'summary.csv'}"
        )
    return rows


def displace(cfg: DictConfig, context: JobContext | None = None) -> tuple[dict[str, Any], Result]:
    """One displacement as ``cfg`` describes: its artifacts written, its metrics logged, the
    logger finished also when it fails, so no W&B run is left open."""
    context = context or JobContext.of(cfg)
    demo = apply_demo(cfg)
    record_config(cfg, context)
    request = config_request(cfg)
    output = check_outputs(request, context.run_dir, cfg.output)
    kept_folder = output if output is not None and output.parent.is_dir() else None  # else made at the end
    pipeline = build_pipeline(cfg, context.job_number)  # missing weights: one line, before W&B
    with logged_run(build(cfg.logger, RunLogger), _plain(cfg)) as logger:  # type: ignore[arg-type]
        # the demo's own prompt is there for selector=clip; with other selectors it is quiet
        metrics, result = edit(pipeline, request, warn_prompt=not demo)
        check_still_there(context, kept_folder)
        images = write(result, metrics, context.run_dir, output)
        logger.log_metrics({k: v for k, v in metrics.items() if k not in MOVE_SETTINGS})
        logger.log_table("ranking", *ranking_table(result))
        logger.log_image("grid", images["grid"], caption=request.source)
        for name in ("output.png", "metrics.json"):
            if (context.run_dir / name).is_file():
                logger.save_file(context.run_dir / name)
    log.info("wrote %s", context.run_dir)
    return metrics, result


def check_still_there(context: JobContext, output: Path | None) -> None:
    """Before writing: the run dir and the folder of ``output`` (one that was there at the
    start) were not removed during the work; writing would make them anew, the run dir
    without ``.hydra/`` and the log: a run that looks complete but is not."""
    if context.config_file is not None and not context.config_file.parent.is_dir():
        raise DisplacementError(f"the run dir {context.run_dir} was removed during the run: nothing written")
    if output is not None and not output.parent.is_dir():
        raise DisplacementError(f"the folder of output={output} was removed during the run: nothing written")


def config_request(cfg: DictConfig) -> EditRequest:
    """The edit the command line asks for: ``image``, ``target.*``, ``dx``/``dy`` and the
    run's ``scale``, ``flip``, ``anchor``, ``keep_out`` and ``max_megapixels``."""
    if cfg.image is None:
        raise DisplacementError("no image: give image=PATH (or image=skimage:NAME)")
    target = OmegaConf.to_container(cfg.target, resolve=True)
    assert isinstance(target, dict)
    return make_request(str(cfg.image), **target, dx=cfg.dx, dy=cfg.dy, defaults=edit_defaults(cfg))


def apply_demo(cfg: DictConfig) -> bool:
    """With no ``image``, put the demo's image (and its target and move, unless given) into
    ``cfg`` itself, so what ran is what the recorded config says. Whether the job is the
    demo's own edit (its photo and target)."""
    demo = cfg.demo
    if cfg.image is None:
        with open_dict(cfg):
            cfg.image = demo.image
            if not has_target(**cfg.target):
                cfg.target = OmegaConf.to_container(demo.target)
            if cfg.dx is None and cfg.dy is None:
                cfg.dx, cfg.dy = demo.dx, demo.dy
    return cfg.image == demo.image and dict(cfg.target) == dict(demo.target)


def record_config(cfg: DictConfig, context: JobContext) -> None:
    """Rewrite Hydra's ``.hydra/config.yaml`` with what runs (the demo's image, target and
    move filled in): Hydra saved it before the job could fill them."""
    if context.config_file is not None and context.config_file.is_file():
        with atomic_open(context.config_file, "w") as handle:
            handle.write(OmegaConf.to_yaml(cfg))


def ranking_table(result: Result) -> tuple[list[str], list[list[Any]]]:
    columns = ["rank", "score", "area_px", "bbox", "source"]
    rows = [[i, c.score, c.area, str(list(c.bbox)), c.source] for i, c in enumerate(result.ranking)]
    return columns, rows


def run_dataset(cfg: DictConfig, context: JobContext | None = None) -> list[dict[str, Any]]:
    """Every edit of ``cfg.dataset.manifest`` (of its shard ``dataset.shard``, if set), each
    with the run's settings where its row is silent; a row that fails is recorded with its
    reason and the others go on. Returns one summary row per edit (also ``summary.csv`` in
    the run dir); a shard also records each row as it ends (:mod:`object_displacement.shards`)."""
    context = context or JobContext.of(cfg)
    shard, shards = check_shard(cfg.dataset.get("shard"), cfg.dataset.get("shards", 1))
    manifest = Path(cfg.dataset.manifest)
    rows_in = shard_rows(read_manifest(manifest), shard, shards)
    check_can_write(context.run_dir / "summary.csv")
    pipeline = build_pipeline(cfg, context.job_number)
    edits_dir = (context.run_dir / "edits").resolve()
    if any(r.target["prompt"] for _, r in rows_in) and not pipeline.selector.reads_text:
        log.warning(
            "the manifest's prompts are ignored: the %s selector does not read text (use selector=clip)",
            type(pipeline.selector).__name__,
        )
    rows: list[dict[str, Any]] = []
    run_logger = build(cfg.logger, RunLogger)
    with (
        _records(context, manifest, shard, shards) as records,
        logged_run(run_logger, _plain(cfg)) as logger,  # type: ignore[arg-type]
        _summary_on_stop(context, rows, rows_in),
    ):
        for step, (number, row_in) in enumerate(
            tqdm(rows_in, desc=f"dataset {cfg.dataset.name}", unit="edit")
        ):
            kept = records.kept_row(number, row_in, edits_dir / row_in.id) if records else None
            if kept is not None:  # a shard run again: this row finished the last time
                log.info("edit %s finished in an earlier run of this shard: kept", row_in.id)
                rows.append(kept)
                continue
            row: dict[str, Any] = {"id": row_in.id, "image": row_in.image, "status": "ok", "error": ""}
            try:
                request = row_request(row_in, pipeline.defaults)
                out_dir = edits_dir / row_in.id
                if out_dir.resolve().parent != edits_dir:  # a plain id already rules this out
                    raise DisplacementError(f"id '{row_in.id}' would write outside {edits_dir}")
                check_outputs(request, out_dir)
                metrics, result = edit(pipeline, request, warn_prompt=False)
                images = write(result, metrics, out_dir)
            except DisplacementError as err:
                log.warning("edit %s failed: %s", row_in.id, err)
                row.update(status="failed", error=" ".join(str(err).split()))
            except Exception as err:  # a bug: recorded with its traceback in the log, the rest go on
                log.exception("edit %s failed with an internal error", row_in.id)
                row.update(status="failed", error=f"internal error: {type(err).__name__}: {err}")
            else:
                log.info("edit %s done: %s", row_in.id, out_dir)
                row.update(flatten(metrics))
                logger.log_image("edits/grid", images["grid"], caption=row_in.id, step=step)
            rows.append(row)
            if records is not None:
                records.add(number, row_in, row)
        columns = columns_of(rows)
        write_csv(context.run_dir / "summary.csv", columns, rows)
        logger.log_table("edits/summary", columns, [[r.get(c) for c in columns] for r in rows])
        failed = sum(r["status"] == "failed" for r in rows)
        logger.log_metrics({"edits": {"total": len(rows), "failed": failed}})
    log.info("%d edits, %d failed: %s", len(rows), failed, context.run_dir / "summary.csv")
    return rows


def _records(
    context: JobContext, manifest: Path, shard: int | None, shards: int
) -> contextlib.AbstractContextManager[Records | None]:
    """A shard's record of its rows (none for a whole manifest): its header says which
    manifest, shard and settings, so a run again of the same shard keeps what it finished."""
    if shard is None:
        return contextlib.nullcontext()
    header = {
        "manifest": str(manifest.resolve()),
        "shard": shard,
        "shards": shards,
        "overrides": list(context.overrides),
    }
    return Records(context.run_dir / RECORDS_FILE, header)


@contextlib.contextmanager
def _summary_on_stop(
    context: JobContext, rows: list[dict[str, Any]], rows_in: list[tuple[int, Row]]
) -> Iterator[None]:
    """Ctrl-C or SIGTERM mid-dataset: ``summary.csv`` still lists the edits done, and the
    rest as not run, before the run ends with its one line (a cluster job's says why)."""
    try:
        yield
    except KeyboardInterrupt as err:
        why = str(err) or "interrupted"
        rest = [
            {"id": r.id, "image": r.image, "status": "not run", "error": why} for _, r in rows_in[len(rows) :]
        ]
        with contextlib.suppress(OSError):
            everything = [*rows, *rest]
            write_csv(context.run_dir / "summary.csv", columns_of(everything), everything)
        log.info("interrupted after %d of %d edits", len(rows), len(rows_in))
        raise


def _plain(cfg: DictConfig) -> dict[str, Any]:
    config = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(config, dict)
    return config  # type: ignore[return-value]
