"""The web app: open a photo, click the object, click where it should go, run. ``make app``.

A thin Gradio view on the pipeline: every edit goes through
:func:`object_displacement.task.edit`, the function the CLI and the API call, so a move made
here gives the same pixels as the command the page shows. What each browser tab did (its
photo, clicks, result) lives in that tab's ``gr.State``; the loaded pipelines are shared.

    python -m object_displacement.app [--host H] [--port P] [HYDRA OVERRIDES ...]
"""

from __future__ import annotations

import argparse
import atexit
import functools
import logging
import os
import shlex
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from omegaconf import OmegaConf

from object_displacement.api import load_pipeline
from object_displacement.config import choices, config_dir
from object_displacement.errors import DisplacementError
from object_displacement.io import SAMPLE_PREFIX, read_image, write_image
from object_displacement.pipeline import Pipeline
from object_displacement.task import edit, make_move
from object_displacement.types import Image, Mask, Move
from object_displacement.visualize import CYAN, overlay

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a local tool phones nowhere

import gradio as gr

log = logging.getLogger(__name__)

DEFAULT_PORT = 7860
SWITCHABLE = ("segmenter", "compositor", "inpainter")
"""Config groups the page offers to switch, by the same names as on the command line."""
SAMPLES = ("rocket", "chelsea", "coffee", "astronaut", "motorcycle_left", "horse")
MODES = ("object", "not object", "box (2 clicks)", "place")
GREEN, RED_MARK = (0, 220, 0), (255, 40, 40)


@dataclass
class Session:
    """One browser tab's work: its photo, its selection and where the object goes."""

    source: str = ""
    """What the CLI reads: a file path or ``skimage:NAME``."""
    name: str = ""
    """What the shown command calls the photo."""
    image: Image | None = None
    points: list[tuple[int, int]] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    corner: tuple[int, int] | None = None
    box: tuple[int, int, int, int] | None = None
    prompt: str = ""
    mask: Mask | None = None
    dx: int = 0
    dy: int = 0
    folder: str = ""

    def target(self) -> dict[str, Any]:
        """The target settings, as the CLI's ``target.*`` keys take them."""
        return {
            "prompt": self.prompt or None,
            "box": list(self.box) if self.box else None,
            "points": [list(p) for p in self.points] or None,
            "labels": list(self.labels) or None,
        }

    def has_target(self) -> bool:
        return bool(self.prompt or self.box or 1 in self.labels)


class Pipelines:
    """One loaded pipeline per choice of components, shared by every tab; built on first
    use (models load once). One edit at a time: the machine's cores are the limit anyway."""

    def __init__(self, overrides: Sequence[str], cache_dir: str) -> None:
        self.overrides = [o for o in overrides if o.split("=")[0] not in SWITCHABLE]
        self.cache = ["cache.enabled=true", f"cache.dir={cache_dir}"]  # segmentations per photo
        self.defaults = default_choices(overrides)
        self.loaded: dict[tuple[str, ...], Pipeline] = {}
        self.lock = threading.RLock()

    def get(self, components: Sequence[str]) -> Pipeline:
        key = tuple(components)
        with self.lock:
            if key not in self.loaded:
                self.loaded[key] = load_pipeline([*self.overrides, *self.cache, *self.settings(components)])
            return self.loaded[key]

    def settings(self, components: Sequence[str]) -> list[str]:
        return [f"{group}={name}" for group, name in zip(SWITCHABLE, components, strict=True)]


def default_choices(overrides: Sequence[str]) -> list[str]:
    """Each switchable group's variant: from the overrides, else ``displace.yaml``'s defaults."""
    given = dict(o.split("=", 1) for o in overrides if "=" in o)
    defaults: dict[str, str] = {}
    for entry in OmegaConf.load(config_dir() / "displace.yaml").defaults:
        if isinstance(entry, dict) or OmegaConf.is_dict(entry):
            defaults.update({str(k): str(v) for k, v in dict(entry).items()})
    return [given.get(group, defaults.get(group, "")) for group in SWITCHABLE]


def friendly(outputs: int) -> Callable[[Callable[..., tuple[Any, ...]]], Callable[..., tuple[Any, ...]]]:
    """A handler whose mistakes become a message on the page (a toast and the status line,
    the other ``outputs - 1`` outputs unchanged), never a traceback; the server goes on."""

    def wrap(handler: Callable[..., tuple[Any, ...]]) -> Callable[..., tuple[Any, ...]]:
        @functools.wraps(handler)
        def run(*args: Any, **kwargs: Any) -> tuple[Any, ...]:
            try:
                return handler(*args, **kwargs)
            except DisplacementError as err:
                message = " ".join(str(err).split())
            except Exception as err:  # a bug: the traceback goes to the server's log only
                log.exception("the app's %s failed", handler.__name__)
                message = f"internal error ({type(err).__name__}: {err}); the server log has the details"
            gr.Warning(message)
            return (f"⚠️ {message}", *(gr.skip() for _ in range(outputs - 1)))

        return run

    return wrap


def marked(session: Session, placed: bool = True) -> Image:
    """The photo with the selected mask, the clicks and, once placed, where the object goes."""
    assert session.image is not None
    view = session.image.copy() if session.mask is None else overlay(session.image, session.mask)
    radius = max(3, round(max(view.shape[:2]) / 150))
    for (x, y), label in zip(session.points, session.labels, strict=True):
        cv2.circle(view, (x, y), radius, GREEN if label else RED_MARK, -1, cv2.LINE_AA)
        cv2.circle(view, (x, y), radius, (255, 255, 255), 1, cv2.LINE_AA)
    if session.box is not None:
        cv2.rectangle(view, session.box[:2], (session.box[2] - 1, session.box[3] - 1), GREEN, 2)
    if session.corner is not None:
        cv2.drawMarker(view, session.corner, GREEN, cv2.MARKER_CROSS, radius * 4, 2)
    if placed and session.mask is not None and (session.dx or session.dy):
        shifted = np.zeros_like(session.mask)
        h, w = shifted.shape
        dx, dy = session.dx, -session.dy  # dy > 0 is up: rows go the other way
        src = session.mask[max(0, -dy) : h - max(0, dy), max(0, -dx) : w - max(0, dx)]
        shifted[max(0, dy) : max(0, dy) + src.shape[0], max(0, dx) : max(0, dx) + src.shape[1]] = src
        contours, _ = cv2.findContours(shifted.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
        cv2.drawContours(view, contours, -1, CYAN, 2)
    return view


def anchor_of(mask: Mask, anchor: str) -> tuple[float, float]:
    """The point of the object that ``dx``/``dy`` move: its box centre or bottom centre."""
    ys = np.flatnonzero(mask.any(axis=1))
    xs = np.flatnonzero(mask.any(axis=0))
    x = (xs[0] + xs[-1] + 1) / 2
    y = float(ys[-1] + 1) if anchor == "bottom" else (ys[0] + ys[-1] + 1) / 2
    return x, y


def command(session: Session, pipelines: Pipelines, components: Sequence[str], move: Move) -> str:
    """The ``displace`` command that makes the same edit."""
    parts = ["displace", f"image={session.name}"]
    for key, value in session.target().items():
        if value is not None:
            text = value if isinstance(value, str) else str(value).replace(" ", "")
            parts.append(f"target.{key}={text}")
    parts += [f"dx={move.dx}", f"dy={move.dy}"]
    if move.scale != 1.0:
        parts.append(f"scale={move.scale:g}")
    if move.flip:
        parts.append("flip=true")
    parts += pipelines.settings(components) + pipelines.overrides
    return " ".join(shlex.quote(p) for p in parts)


def build_app(overrides: Sequence[str] = ()) -> gr.Blocks:
    """The page; ``overrides`` are the CLI's (``segmenter=sam``, ``inpainter=sdxl`` ...)."""
    root = tempfile.mkdtemp(prefix="displace-app-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    pipelines = Pipelines(overrides, cache_dir=os.path.join(root, "cache"))
    pipelines.get(pipelines.defaults)  # bad overrides or missing weights: fail at start, in one line

    def current(session: Session | None) -> Session:
        if session is None or not session.folder:
            session = Session(folder=tempfile.mkdtemp(dir=root, prefix="tab-"))
        return session

    def the_move(session: Session, scale: float, flip: bool, pipeline: Pipeline) -> Move:
        return make_move(session.dx, session.dy, scale, flip, pipeline.config.anchor)

    def summary(session: Session, components: Sequence[str], scale: float, flip: bool) -> str:
        move = Move(session.dx, session.dy, float(scale), bool(flip))
        return command(session, pipelines, components, move)

    # ---- handlers: each returns the status line first --------------------------------
    @friendly(outputs=6)
    def open_photo(upload: str | None, sample: str | None, session: Session | None) -> tuple[Any, ...]:
        session = current(session)
        if upload:
            source, name = upload, Path(upload).name
        elif sample:
            source = name = f"{SAMPLE_PREFIX}{sample}"
        else:
            return ("Open a photo: upload one or pick a sample.", None, session, "", 0, 0)
        image = read_image(source)
        fresh = Session(source=source, name=name, image=image, folder=session.folder)
        h, w = image.shape[:2]
        status = f"Opened {name} ({w}x{h}). Click the object to select it."
        return (status, marked(fresh), fresh, "", 0, 0)

    @friendly(outputs=5)
    def on_click(evt: gr.SelectData, mode: str, session: Session | None, *components: str) -> tuple[Any, ...]:
        session = current(session)
        if session.image is None:
            raise DisplacementError("open a photo first (upload one or pick a sample)")
        x, y = (int(v) for v in evt.index)
        if mode == "place":
            if session.mask is None:
                raise DisplacementError("nothing selected: click the object first, then place it")
            pipeline = pipelines.get(components)
            ax, ay = anchor_of(session.mask, pipeline.config.anchor)
            session.dx, session.dy = round(x - ax), round(ay - y)  # dy > 0 is up
            status = f"Placed: dx={session.dx}, dy={session.dy}. Press Move."
            return (status, marked(session), session, session.dx, session.dy)
        if mode == "box (2 clicks)":
            if session.corner is None:
                session.corner = (x, y)
                return ("Box: now click the opposite corner.", marked(session), session, gr.skip(), gr.skip())
            (x0, y0), session.corner = session.corner, None
            session.box = (min(x0, x), min(y0, y), max(x0, x) + 1, max(y0, y) + 1)
        else:
            session.points.append((x, y))
            session.labels.append(0 if mode == "not object" else 1)
        return select(session, components)

    def select(session: Session, components: Sequence[str]) -> tuple[Any, ...]:
        """Segment what the clicks, box or prompt name; the mask shows at once."""
        if not session.has_target():
            session.mask = None
            return ("Add a click on the object.", marked(session), session, gr.skip(), gr.skip())
        pipeline = pipelines.get(components)
        assert session.image is not None
        with pipelines.lock:
            metrics, result = edit(pipeline, session.image, session.source, session.target(), Move())
        session.mask = result.mask
        seconds = sum(metrics["timings_s"].values())
        status = (
            f"Selected {result.selected.area} px ({seconds:.2f} s). More clicks refine it; "
            "then choose 'place' and click where the object should go."
        )
        return (status, marked(session), session, gr.skip(), gr.skip())

    @friendly(outputs=5)
    def find(prompt: str, session: Session | None, *components: str) -> tuple[Any, ...]:
        session = current(session)
        if session.image is None:
            raise DisplacementError("open a photo first (upload one or pick a sample)")
        session.prompt = prompt.strip()
        return select(session, components)

    @friendly(outputs=3)
    def clear(session: Session | None) -> tuple[Any, ...]:
        session = current(session)
        kept = Session(source=session.source, name=session.name, image=session.image, folder=session.folder)
        return ("Selection cleared.", None if kept.image is None else marked(kept), kept)

    @friendly(outputs=3)
    def adjust(session: Session | None, dx: float, dy: float, scale: float, flip: bool, *components: str):
        session = current(session)
        session.dx, session.dy = round(dx), round(dy)
        if session.image is None:
            return ("", gr.skip(), session)
        return (summary(session, components, scale, flip), marked(session), session)

    @friendly(outputs=6)
    def run(
        session: Session | None,
        scale: float,
        flip: bool,
        *components: str,
        progress=gr.Progress(),  # noqa: B008 (Gradio's way to ask for a progress bar)
    ) -> tuple[Any, ...]:
        session = current(session)
        if session.image is None:
            raise DisplacementError("open a photo first (upload one or pick a sample)")
        if not session.has_target():
            raise DisplacementError("nothing selected: click the object (or draw a box, or find by text)")
        progress(0.05, desc="loading the components")
        pipeline = pipelines.get(components)
        move = the_move(session, scale, flip, pipeline)
        if move.is_identity:
            raise DisplacementError("the object is not moved: choose 'place' and click where it should go")
        progress(0.2, desc="segmenting, moving and inpainting")
        with pipelines.lock:
            metrics, result = edit(pipeline, session.image, session.source, session.target(), move)
        assert result.output is not None
        progress(0.9, desc="writing the downloads")
        folder = Path(session.folder)
        files = [str(write_image(folder / "output.png", result.output))]
        files.append(str(write_image(folder / "mask.png", result.mask)))
        quality = metrics["quality"]
        times = ", ".join(f"{stage} {s:.2f} s" for stage, s in metrics["timings_s"].items())
        report = (
            f"**Stage times:** {times}  \n"
            f"**Ghost score:** {quality.get('ghost_appearance', float('nan')):.3f} "
            "(how much the old place still looks like the object; low is good)  \n"
            f"**Background PSNR:** {quality.get('background_psnr_db', float('nan')):.1f} dB, "
            f"**kept in frame:** {metrics['kept_fraction']:.0%}"
        )
        status = f"Moved by dx={move.dx}, dy={move.dy}. Drag the slider to compare before and after."
        return (
            status,
            (session.image, result.output),
            files,
            report,
            session,
            command_text(session, components, move),
        )

    def command_text(session: Session, components: Sequence[str], move: Move) -> str:
        return command(session, pipelines, components, move)

    # ---- the page --------------------------------------------------------------------
    with gr.Blocks(title="object-displacement") as page:
        session = gr.State(None)
        gr.Markdown(
            "## Move an object in a photo\n"
            "1. Open a photo. 2. Click the object (more clicks refine; 'not object' removes; or draw a "
            "box with 2 clicks, or find it by text). 3. Choose **place** and click where it should go "
            "(or set dx/dy). 4. **Move**."
        )
        status = gr.Markdown("Open a photo: upload one or pick a sample.", elem_id="status")
        with gr.Row():
            with gr.Column(scale=3):
                photo = gr.Image(
                    label="photo: click to select / place",
                    type="numpy",
                    format="png",
                    interactive=False,
                    elem_id="photo",
                    buttons=["fullscreen"],
                )
                mode = gr.Radio(
                    list(MODES), value="object", label="a click on the photo means", elem_id="mode"
                )
                compare = gr.ImageSlider(label="before / after", type="numpy", format="png", elem_id="result")
            with gr.Column(scale=2):
                with gr.Row():
                    upload = gr.File(
                        label="upload a photo", file_types=["image"], type="filepath", elem_id="upload"
                    )
                    sample = gr.Dropdown(list(SAMPLES), value=None, label="or a sample", elem_id="sample")
                with gr.Row():
                    prompt = gr.Textbox(label="find by text (needs a text-reading selector)", scale=3)
                    find_button = gr.Button("find", scale=1)
                    clear_button = gr.Button("clear selection", scale=1)
                with gr.Row():
                    dx = gr.Number(0, label="dx (px, right)", precision=0, elem_id="dx")
                    dy = gr.Number(0, label="dy (px, up)", precision=0, elem_id="dy")
                with gr.Row():
                    scale = gr.Slider(0.25, 3.0, value=1.0, step=0.05, label="scale")
                    flip = gr.Checkbox(False, label="flip")
                with gr.Row():
                    groups = [
                        gr.Dropdown(choices(group), value=default, label=group, elem_id=group)
                        for group, default in zip(SWITCHABLE, pipelines.defaults, strict=True)
                    ]
                move_button = gr.Button("Move", variant="primary", elem_id="move")
                cli = gr.Textbox(label="the same edit on the command line", elem_id="command", lines=2)
                report = gr.Markdown(elem_id="report")
                downloads = gr.File(
                    label="downloads (full resolution)", file_count="multiple", elem_id="downloads"
                )

        upload.upload(open_photo, [upload, sample, session], [status, photo, session, cli, dx, dy])
        sample.input(open_photo, [upload, sample, session], [status, photo, session, cli, dx, dy])
        photo.select(on_click, [mode, session, *groups], [status, photo, session, dx, dy]).then(
            adjust, [session, dx, dy, scale, flip, *groups], [cli, photo, session]
        )
        find_button.click(find, [prompt, session, *groups], [status, photo, session, dx, dy])
        clear_button.click(clear, [session], [status, photo, session])
        for control in (dx, dy, scale, flip):
            control.input(adjust, [session, dx, dy, scale, flip, *groups], [cli, photo, session])
        move_button.click(
            run, [session, scale, flip, *groups], [status, compare, downloads, report, session, cli]
        )
    page.allowed_root = root  # type: ignore[attr-defined]
    return page


def main(argv: Sequence[str] | None = None) -> None:
    """``make app``: serve the page on this machine only, until Ctrl-C."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    args, overrides = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        page = build_app(overrides)
    except DisplacementError as err:
        raise SystemExit(f"error: {' '.join(str(err).split())}") from None
    page.queue(default_concurrency_limit=1).launch(
        server_name=args.host,
        server_port=args.port,
        ssr_mode=False,
        allowed_paths=[page.allowed_root],  # type: ignore[attr-defined]
        theme=gr.themes.Default(),
        footer_links=[],
    )


if __name__ == "__main__":
    main()
