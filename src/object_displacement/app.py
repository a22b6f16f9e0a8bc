"""The web app: open a photo, click the object, click where it should go, run. ``make app``.

A thin Gradio view on the pipeline. What a browser tab did lives in its ``gr.State``, a
:class:`~object_displacement.app_state.Tab`; each handler applies a transition of
:mod:`object_displacement.app_state` to it and, to find or move the object, builds the
tab's request and runs :func:`object_displacement.edit.edit`, the edit the CLI and the API
run, so a move made here gives the same pixels as the command the page shows. The loaded
pipelines are shared by every tab.

    python -m object_displacement.app [--host H] [--port P] [HYDRA OVERRIDES ...]
"""

from __future__ import annotations

import argparse
import atexit
import functools
import logging
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from object_displacement import app_state
from object_displacement.api import load_pipeline
from object_displacement.app_state import MODES, NO_PHOTO, NOT_MOVED, PLACE, Settings, Tab
from object_displacement.config import choices, group_choices
from object_displacement.edit import edit
from object_displacement.errors import DisplacementError
from object_displacement.io import SAMPLE_PREFIX, write_image
from object_displacement.pipeline import Pipeline
from object_displacement.types import EditRequest, Result

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a local tool phones nowhere

import gradio as gr

log = logging.getLogger(__name__)

DEFAULT_PORT = 7860
SWITCHABLE = ("segmenter", "compositor", "inpainter")
"""Config groups the page offers to switch, by the same names as on the command line."""
SAMPLES = ("rocket", "chelsea", "coffee", "astronaut", "motorcycle_left", "horse")


class Pipelines:
    """One loaded pipeline per choice of components, shared by every tab; built on first
    use (models load once). One edit at a time: the machine's cores are the limit anyway."""

    def __init__(self, overrides: Sequence[str], cache_dir: str) -> None:
        self.overrides = tuple(o for o in overrides if o.split("=")[0] not in SWITCHABLE)
        self.cache = ("cache.enabled=true", f"cache.dir={cache_dir}")  # segmentations per photo
        chosen = group_choices(overrides)  # as the CLI resolves them: experiment=paper included
        self.choices = tuple(chosen[group] for group in SWITCHABLE)
        """Each switchable group's variant with the app's overrides: the page's first choice."""
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

    def page_settings(self, components: Sequence[str]) -> Settings:
        """What the tab's command and requests take besides the tab, for these components."""
        return Settings(
            components=tuple(zip(SWITCHABLE, components, strict=True)),
            overrides=self.overrides,
            defaults=self.get(components).defaults,
        )

    def edit(self, components: Sequence[str], request: EditRequest) -> tuple[dict[str, Any], Result]:
        pipeline = self.get(components)
        with self.lock:
            return edit(pipeline, request)


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


class Handlers:
    """The page's events on the shared pipelines. Each takes the tab and the page's values,
    applies a transition (:mod:`object_displacement.app_state`) and returns the status line
    first, then the page's new values. ``root``: where the tabs' downloads are written."""

    def __init__(self, pipelines: Pipelines, root: str) -> None:
        self.pipelines = pipelines
        self.root = root

    def current(self, tab: Tab | None) -> Tab:
        """The tab, or a new one with its own downloads folder."""
        if tab is None or not tab.folder:
            tab = Tab(folder=tempfile.mkdtemp(dir=self.root, prefix="tab-"))
        return tab

    def shown(self, tab: Tab, components: Sequence[str]) -> tuple[Any, str]:
        """The photo as the page shows it (the preview) and the tab's command."""
        settings = self.pipelines.page_settings(components)
        if tab.pixels is None:
            return None, ""
        return app_state.preview(tab, settings.defaults.anchor), app_state.command(tab, settings)

    @friendly(outputs=8)
    def open_photo(self, upload: str | None, sample: str | None, tab: Tab | None, *components: str):
        """-> status, photo, tab, command, dx, dy, scale, flip."""
        tab = self.current(tab)
        if upload:
            source, name = upload, Path(upload).name
        elif sample:
            source = name = f"{SAMPLE_PREFIX}{sample}"
        else:
            return ("Open a photo: upload one or pick a sample.", None, tab, "", 0, 0, gr.skip(), gr.skip())
        defaults = self.pipelines.get(components).defaults
        tab = app_state.opened(source, name, defaults, folder=tab.folder)
        assert tab.pixels is not None
        h, w = tab.pixels.shape[:2]
        status = f"Opened {name} ({w}x{h}). Click the object to select it."
        photo, _ = self.shown(tab, components)
        return (status, photo, tab, "", 0, 0, tab.scale, tab.flip)

    @friendly(outputs=6)
    def click(
        self, evt: gr.SelectData, mode: str, tab: Tab | None, scale: float, flip: bool, *components: str
    ):
        """-> status, photo, tab, dx, dy, command."""
        tab = app_state.adjusted(self.current(tab), scale=scale, flip=flip)
        x, y = (int(v) for v in evt.index)
        if mode == PLACE:
            tab = app_state.placed(tab, x, y, self.pipelines.get(components).defaults.anchor)
            status = f"Placed: dx={tab.dx}, dy={tab.dy}. Press Move."
        else:
            tab = app_state.clicked(tab, x, y, mode)
            if tab.corner is not None:
                status = "Box: now click the opposite corner."
            else:
                status, tab = self.select(tab, components)
        photo, cli = self.shown(tab, components)
        return (status, photo, tab, tab.dx, tab.dy, cli)

    def select(self, tab: Tab, components: Sequence[str]) -> tuple[str, Tab]:
        """Find what the clicks, box or prompt name: the mask shows at once."""
        if not app_state.names_object(tab):
            return "Add a click on the object.", app_state.with_mask(tab, None)
        request = app_state.request(tab, self.pipelines.page_settings(components).defaults, moving=False)
        metrics, result = self.pipelines.edit(components, request)
        seconds = sum(metrics["timings_s"].values())
        status = (
            f"Selected {result.selected.area} px ({seconds:.2f} s). More clicks refine it; "
            "then choose 'place' and click where the object should go."
        )
        return status, app_state.with_mask(tab, result.mask)

    @friendly(outputs=4)
    def find(self, prompt: str, tab: Tab | None, *components: str):
        """-> status, photo, tab, command."""
        status, tab = self.select(app_state.prompted(self.current(tab), prompt), components)
        photo, cli = self.shown(tab, components)
        return (status, photo, tab, cli)

    @friendly(outputs=6)
    def undo(self, tab: Tab | None, *components: str):
        """-> status, photo, tab, dx, dy, command."""
        tab = app_state.undone(self.current(tab))
        photo, cli = self.shown(tab, components)
        return (f"Undone: {len(tab.history)} more step(s) to undo.", photo, tab, tab.dx, tab.dy, cli)

    @friendly(outputs=6)
    def clear(self, tab: Tab | None, *components: str):
        """-> status, photo, tab, dx, dy, command."""
        tab = app_state.cleared(self.current(tab))
        photo, cli = self.shown(tab, components)
        return ("Selection cleared (undo brings it back).", photo, tab, 0, 0, cli)

    @friendly(outputs=4)
    def adjust(self, tab: Tab | None, dx: float, dy: float, scale: float, flip: bool, *components: str):
        """-> status, photo, tab, command."""
        tab = app_state.adjusted(self.current(tab), dx=dx or 0, dy=dy or 0, scale=scale, flip=flip)
        if tab.pixels is None:
            return (gr.skip(), gr.skip(), tab, "")
        photo, cli = self.shown(tab, components)
        return (gr.skip(), photo, tab, cli)

    @friendly(outputs=6)
    def move(
        self,
        tab: Tab | None,
        scale: float,
        flip: bool,
        *components: str,
        progress=gr.Progress(),  # noqa: B008 (Gradio's way to ask for a progress bar)
    ):
        """-> status, before/after, downloads, report, tab, command."""
        tab = app_state.adjusted(self.current(tab), scale=scale, flip=flip)
        if tab.pixels is None:
            raise DisplacementError(NO_PHOTO)
        progress(0.05, desc="loading the components")
        settings = self.pipelines.page_settings(components)
        request = app_state.request(tab, settings.defaults)
        if not request.moves:
            raise DisplacementError(NOT_MOVED)
        progress(0.2, desc="segmenting, moving and inpainting")
        metrics, result = self.pipelines.edit(components, request)
        assert result.output is not None
        progress(0.9, desc="writing the downloads")
        folder = Path(tab.folder)
        files = [str(write_image(folder / "output.png", result.output))]
        files.append(str(write_image(folder / "mask.png", result.mask)))
        move = request.move
        status = f"Moved by dx={move.dx}, dy={move.dy}. Drag the slider to compare before and after."
        command = app_state.command(tab, settings)
        return (status, (tab.pixels, result.output), files, report(metrics), tab, command)


def report(metrics: dict[str, Any]) -> str:
    """The edit's stage times and quality, for people."""
    quality = metrics["quality"]
    times = ", ".join(f"{stage} {s:.2f} s" for stage, s in metrics["timings_s"].items())
    return (
        f"**Stage times:** {times}  \n"
        f"**Ghost score:** {quality.get('ghost_appearance', float('nan')):.3f} "
        "(how much the old place still looks like the object; low is good)  \n"
        f"**Background PSNR:** {quality.get('background_psnr_db', float('nan')):.1f} dB, "
        f"**kept in frame:** {metrics['kept_fraction']:.0%}"
    )


def build_app(overrides: Sequence[str] = ()) -> gr.Blocks:
    """The page; ``overrides`` are the CLI's (``segmenter=sam``, ``inpainter=sdxl`` ...)."""
    root = tempfile.mkdtemp(prefix="displace-app-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    pipelines = Pipelines(overrides, cache_dir=os.path.join(root, "cache"))
    defaults = pipelines.get(pipelines.choices).defaults  # bad overrides or missing weights: fail now
    on = Handlers(pipelines, root)

    with gr.Blocks(title="object-displacement") as page:
        tab = gr.State(None)
        gr.Markdown(
            "## Move an object in a photo\n"
            "1. Open a photo. 2. Click the object (more clicks refine; 'not object' removes; or draw a "
            "box with 2 clicks, or find it by text). 3. Choose **place** and click where it should go "
            "(or set dx/dy). 4. **Move**. **undo** takes back the last click, box or place."
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
                    list(MODES), value=MODES[0], label="a click on the photo means", elem_id="mode"
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
                with gr.Row():
                    undo_button = gr.Button("undo", elem_id="undo")
                    clear_button = gr.Button("clear selection")
                with gr.Row():
                    dx = gr.Number(0, label="dx (px, right)", precision=0, elem_id="dx")
                    dy = gr.Number(0, label="dy (px, up)", precision=0, elem_id="dy")
                with gr.Row():
                    scale = gr.Slider(
                        0.25, 3.0, value=defaults.scale, step=0.05, label="scale", elem_id="scale"
                    )
                    flip = gr.Checkbox(defaults.flip, label="flip", elem_id="flip")
                with gr.Row():
                    groups = [
                        gr.Dropdown(choices(group), value=default, label=group, elem_id=group)
                        for group, default in zip(SWITCHABLE, pipelines.choices, strict=True)
                    ]
                move_button = gr.Button("Move", variant="primary", elem_id="move")
                cli = gr.Textbox(label="the same edit on the command line", elem_id="command", lines=2)
                report_box = gr.Markdown(elem_id="report")
                downloads = gr.File(
                    label="downloads (full resolution)", file_count="multiple", elem_id="downloads"
                )

        opening = [upload, sample, tab, *groups]
        opened = [status, photo, tab, cli, dx, dy, scale, flip]
        upload.upload(on.open_photo, opening, opened)
        sample.input(on.open_photo, opening, opened)
        photo.select(on.click, [mode, tab, scale, flip, *groups], [status, photo, tab, dx, dy, cli])
        find_button.click(on.find, [prompt, tab, *groups], [status, photo, tab, cli])
        undo_button.click(on.undo, [tab, *groups], [status, photo, tab, dx, dy, cli])
        clear_button.click(on.clear, [tab, *groups], [status, photo, tab, dx, dy, cli])
        for control in (dx, dy, scale, flip):
            control.input(on.adjust, [tab, dx, dy, scale, flip, *groups], [status, photo, tab, cli])
        move_button.click(
            on.move, [tab, scale, flip, *groups], [status, compare, downloads, report_box, tab, cli]
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
