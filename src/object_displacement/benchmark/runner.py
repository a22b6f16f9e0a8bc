"""Run configurations over the ground-truth scenes and summarize how each one does."""

from __future__ import annotations

import multiprocessing
import sys
import tempfile
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from object_displacement.benchmark.memory import peak_rss_mb
from object_displacement.benchmark.scenes import generate
from object_displacement.benchmark.scoring import regions, score, shadow_scores
from object_displacement.build import build, build_pipeline
from object_displacement.config import compose_config
from object_displacement.dataset import columns_of, write_csv
from object_displacement.edit import edit
from object_displacement.errors import DisplacementError
from object_displacement.geometry import mask_iou
from object_displacement.ghost import ghost_score
from object_displacement.io import atomic_open, write_image
from object_displacement.loggers.base import RunLogger, logged_run
from object_displacement.types import EditRequest, Move, Target

SHADOW_SCORES = ("shadow_removed", "shadow_cast", "shadowless_brightness")
"""Scored only where they apply: the first two on scenes with a cast shadow, the last on the rest."""
SCORES = (
    "mask_iou",
    *(f"{kind}_{region}" for region in ("image", "vacated", "seam") for kind in ("psnr", "ssim", "gms")),
    "texture_vacated",
    *SHADOW_SCORES,
)
RATIOS = ("texture_vacated", "shadowless_brightness")
CENTRED = ("shadow_removed", "shadow_cast")
"""Shares whose best is 1 that can reach 0 or below: an arithmetic mean; the worst is the
farthest from 1."""
"""Scores whose best is 1, either side: their mean is geometric, their worst the farthest from 1."""


GHOST_STRENGTHS = (0.0, 0.1, 0.25, 0.5)


def ghost_calibration(scenes: list[Any]) -> float:
    """Spearman rank correlation between a known afterimage strength and the ghost score.

    Each scene's true output gets the object blended back into its old place at each of
    ``GHOST_STRENGTHS``: a score that agrees with the truth ranks them in that order.
    """
    from scipy.stats import spearmanr

    strengths, scores = [], []
    for scene in scenes:
        vacated = scene.mask & ~scene.moved_mask
        if vacated.sum() < 16:
            continue
        for strength in GHOST_STRENGTHS:
            ghosted = scene.truth.copy()
            mixed = strength * scene.input[vacated].astype(np.float64) + (1 - strength) * scene.truth[vacated]
            ghosted[vacated] = np.rint(mixed).astype(np.uint8)
            strengths.append(strength)
            scores.append(ghost_score(scene.input, ghosted, vacated))
    return round(float(spearmanr(strengths, scores).statistic), 3)


def ghost_agreement(rows: list[dict[str, Any]]) -> float:
    """Spearman rank correlation, over every scored scene, between the ghost score and the
    true error at the vacated place (1 - SSIM against the known background): how well the
    score, which needs no truth, tells a bad fill from a good one."""
    from scipy.stats import spearmanr

    done = [r for r in rows if r["status"] == "ok"]
    if len(done) < 3:
        return float("nan")
    rho = spearmanr([r["ghost"] for r in done], [1 - r["ssim_vacated"] for r in done]).statistic
    return round(float(rho), 3)


STAGES = ("segment", "select", "shadow", "matte", "plan", "inpaint")


def run_all(
    configurations: dict[str, Sequence[str]], scenes: dict[str, Any], conf_dir: str
) -> tuple[list[dict[str, Any]], dict[str, int]]:
    """Per-scene rows for every configuration, and each configuration's peak memory (MB).

    Each configuration runs in a fresh process, so its peak memory is its own.
    """
    rows: list[dict[str, Any]] = []
    peaks: dict[str, int] = {}
    spawn = multiprocessing.get_context("spawn")
    progress = tqdm(configurations.items(), desc="benchmark", unit="configuration", file=sys.stderr)
    for name, overrides in progress:
        progress.set_postfix_str(name)
        with ProcessPoolExecutor(max_workers=1, mp_context=spawn) as pool:
            found, peak = pool.submit(
                run_configuration, name, list(overrides), dict(scenes), conf_dir
            ).result()
        rows += found
        peaks[name] = peak
        failed = sum(r["status"] != "ok" for r in found)
        progress.write(f"benchmark: {name}: {len(found)} scenes, {failed} failed, peak {peak} MB", sys.stderr)
    return rows, peaks


def run_configuration(
    name: str, overrides: list[str], scene_settings: dict[str, Any], conf_dir: str
) -> tuple[list[dict[str, Any]], int]:
    """Every scene through the displace pipeline as ``overrides`` configure it."""
    with tempfile.TemporaryDirectory(prefix="benchmark-") as work:  # the oracle's masks; removed after
        return _run_scenes(name, overrides, _scenes(scene_settings), conf_dir, Path(work))


def _run_scenes(
    name: str, overrides: list[str], scenes: list[Any], conf_dir: str, work: Path
) -> tuple[list[dict[str, Any]], int]:
    """Each scene as a request on the road every entry point takes (:func:`edit`); the
    oracle (``segmenter=mask``) gets a pipeline per scene that reads the scene's true mask."""
    cfg = compose_config(
        [*overrides, "logger=none", "cache.enabled=false", f"paths.run_dir={work}"], conf_dir
    )
    oracle = str(cfg.segmenter.get("_target_", "")).endswith("MaskFileSegmenter")
    pipeline = None if oracle else build_pipeline(cfg)
    rows = []
    for scene in scenes:
        if oracle:
            truth = write_image(work / f"{scene.name}.png", scene.mask)
            pipeline = build_pipeline(OmegaConf.merge(cfg, {"segmenter": {"path": str(truth)}}))
        assert pipeline is not None
        request = EditRequest(
            source=scene.name,
            pixels=scene.input,
            target=Target(box=scene.box),
            move=Move(scene.dx, scene.dy, scene.scale),
        )
        row: dict[str, Any] = {"configuration": name, "scene": scene.name, **scene.tags}
        try:
            _, result = edit(pipeline, request, warn_prompt=False)
        except DisplacementError as err:
            rows.append(row | {"status": "failed", "error": str(err)})
            continue
        assert result.output is not None
        areas = regions(scene.mask, scene.moved_mask)
        row |= {"status": "ok", "error": "", "mask_iou": round(mask_iou(result.mask, scene.mask), 4)}
        row |= score(result.output, scene.truth, areas)
        shadows = None if scene.shadow is None else (scene.shadow, scene.moved_shadow)
        footprints = (scene.footprint, scene.moved_footprint)
        row |= shadow_scores(result.output, scene.input, scene.truth, footprints, shadows, scene.lit_truth)
        found = result.plan.shadow if result.plan is not None else None
        row["shadow_found_px"] = 0 if found is None else int(found.support.sum())
        row["ghost"] = round(ghost_score(scene.input, result.output, scene.mask & ~scene.moved_mask), 4)
        row |= {f"seconds_{stage}": round(result.timings.get(stage, 0.0), 4) for stage in STAGES}
        row["seconds_total"] = round(sum(result.timings.values()), 4)
        rows.append(row)
    return rows, peak_rss_mb()


def _scenes(settings: dict[str, Any]) -> list[Any]:
    scenes = generate(**{k: v for k, v in settings.items() if k != "only"})
    return [scenes[i] for i in settings["only"]] if settings.get("only") else scenes


FAMILIES = {
    "shadow": "Shadow scenes only (an object casting a shadow on a real surface, and the same scene without)",
    "hard": "Hard scenes only (a face, text, brick courses, tiles, a rim)",
    "real": "Real-object scenes only (a real object's cutout on another photo)",
}
"""Scene families, by the tag their scenes carry: each gets its own summary as well."""


def summarize(
    rows: list[dict[str, Any]], peaks: dict[str, int], family: str | None = None
) -> list[dict[str, Any]]:
    """One row per configuration: the mean and the worst case of every score, over every
    scene or, with ``family``, over the scenes tagged with it."""
    summary = []
    for name, peak in peaks.items():
        mine = [r for r in rows if r["configuration"] == name and (family is None or family in r)]
        done = [r for r in mine if r["status"] == "ok"]
        entry: dict[str, Any] = {"configuration": name, "scenes": len(mine), "failed": len(mine) - len(done)}
        for key in SCORES:
            values = np.array([r[key] for r in done if key in r], dtype=np.float64)
            entry[f"{key}_mean"], entry[f"{key}_worst"] = _mean_and_worst(
                values, key in RATIOS, key in CENTRED
            )
        seconds = np.array([r["seconds_total"] for r in done], dtype=np.float64)
        entry["seconds_mean"] = round(float(seconds.mean()), 3) if seconds.size else float("nan")
        entry["seconds_worst"] = round(float(seconds.max()), 3) if seconds.size else float("nan")
        for stage in STAGES:
            entry[f"seconds_{stage}_mean"] = round(
                float(np.mean([r.get(f"seconds_{stage}", 0.0) for r in done] or [0])), 4
            )
        entry["peak_mb"] = peak
        summary.append(entry)
    return summary


def _mean_and_worst(values: np.ndarray, ratio: bool, centred: bool = False) -> tuple[float, float]:
    if not values.size:
        return float("nan"), float("nan")
    if centred:
        return round(float(values.mean()), 4), round(float(values[np.argmax(np.abs(values - 1))]), 4)
    if ratio:
        logs = np.log(values)
        return round(float(np.exp(logs.mean())), 4), round(float(values[np.argmax(np.abs(logs))]), 4)
    return round(float(values.mean()), 4), round(float(values.min()), 4)


def markdown(summary: list[dict[str, Any]]) -> str:
    """The summary as a markdown table: mean / worst for each score."""
    names = {"mask": "mask", "iou": "IoU", "psnr": "PSNR", "ssim": "SSIM", "gms": "GMS"}
    titles = [" ".join(names.get(word, word) for word in key.split("_")) for key in SCORES]
    head = "| configuration | " + " | ".join(titles) + " | s per scene | peak MB | failed |"
    lines = [head, "|" + " --- |" * (len(SCORES) + 4)]
    for e in summary:
        cells = [e["configuration"]]
        for key in SCORES:
            digits = 1 if key.startswith("psnr") else 3
            cells.append(f"{e[f'{key}_mean']:.{digits}f} / {e[f'{key}_worst']:.{digits}f}")
        cells += [f"{e['seconds_mean']:.2f}", str(e["peak_mb"]), f"{e['failed']}/{e['scenes']}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def run_benchmark(cfg: DictConfig) -> list[dict[str, Any]]:
    """The whole benchmark: scenes x configurations, tables written and logged."""
    config = OmegaConf.to_container(cfg, resolve=True)
    with logged_run(build(cfg.logger, RunLogger), config) as logger:  # type: ignore[arg-type]
        scenes = OmegaConf.to_container(cfg.scenes, resolve=True)
        configurations = OmegaConf.to_container(cfg.configurations, resolve=True)
        assert isinstance(configurations, dict)
        if cfg.select:
            unknown = [name for name in cfg.select if name not in configurations]
            if unknown:
                raise DisplacementError(
                    f"no configuration {unknown[0]}: choose from {', '.join(configurations)}"
                )
            configurations = {name: configurations[name] for name in cfg.select}
        conf_dir = str(Path(cfg.paths.root_dir).resolve() / "conf")
        rows, peaks = run_all(configurations, scenes, conf_dir)  # type: ignore[arg-type]
        summary = summarize(rows, peaks)
        run_dir = Path(cfg.paths.run_dir)
        write_csv(run_dir / "scenes.csv", columns_of(rows), rows)
        write_csv(run_dir / "summary.csv", list(summary[0]), summary)
        agreement = ghost_agreement(rows)
        calibration = ghost_calibration(_scenes(scenes))  # type: ignore[arg-type]
        table = markdown(summary) + (
            f"\nGhost score vs known afterimage strength {list(GHOST_STRENGTHS)}, Spearman: {calibration}\n"
            f"Ghost score vs true vacated-region error (1 - SSIM) of the runs above, Spearman: {agreement}\n"
        )
        for family, title in FAMILIES.items():
            if not any(family in r for r in rows):
                continue
            part = summarize(rows, peaks, family)
            write_csv(run_dir / f"summary_{family}.csv", list(part[0]), part)
            table += f"\n{title}:\n\n" + markdown(part)
            logger.log_table(f"benchmark/summary_{family}", list(part[0]), [list(e.values()) for e in part])
        with atomic_open(run_dir / "summary.md", "w") as handle:
            handle.write(table)
        print(table, flush=True)
        logger.log_metrics({"benchmark": {"ghost_vs_error": agreement, "ghost_vs_strength": calibration}})
        logger.log_table("benchmark/summary", list(summary[0]), [list(e.values()) for e in summary])
        columns = columns_of(rows)
        logger.log_table("benchmark/scenes", columns, [[r.get(c, "") for c in columns] for r in rows])
    return summary
