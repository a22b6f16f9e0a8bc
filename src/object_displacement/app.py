"""The web app: a photo editor on the pipeline. ``make app``.

Open a photo, click the object (or paint it with the brush), drag it where it should go,
Move; "edit the result" moves the next object in the output. A thin Gradio view: what a
browser tab did is a :class:`~object_displacement.app_state.Tab` kept on the server for
its session (:class:`Sessions`: bounded, released when the tab closes or idles); each
handler applies a transition of :mod:`object_displacement.app_state` to it and, to find or
move the object, builds the tab's request and runs :func:`object_displacement.edit.edit`,
the edit the CLI and the API run, so a move made here gives the same pixels as the
commands the page shows. The editor in the page (``app_editor.js``) draws a display-size
view (:mod:`object_displacement.app_view`); the work stays at full resolution.

    python -m object_displacement.app [--host H] [--port P] [--max-sessions N]
        [--idle-minutes M] [--max-upload-mb S] [HYDRA OVERRIDES ...]
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import copy
import functools
import logging
import os
import re
import shutil
import signal
import tempfile
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from object_displacement import app_state, app_view
from object_displacement.api import load_pipeline
from object_displacement.app_state import (
    BRUSH_OFF,
    BRUSH_ON,
    MODES,
    NO_PHOTO,
    NOT_MOVED,
    OBJECT,
    PLACE,
    Settings,
    Tab,
)
from object_displacement.cache import StageCache
from object_displacement.config import choices, group_choices
from object_displacement.edit import edit
from object_displacement.errors import DisplacementError, message
from object_displacement.geometry import shrink
from object_displacement.io import SAMPLE_PREFIX, write_image
from object_displacement.pipeline import Pipeline
from object_displacement.runtime import UsesDevice
from object_displacement.segmenters.mask_file import MaskFileSegmenter
from object_displacement.types import EditRequest, Result

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # a local tool phones nowhere

import gradio as gr

log = logging.getLogger(__name__)

DEFAULT_PORT = 7860
SWITCHABLE = ("segmenter", "compositor", "inpainter")
"""Config groups the page offers to switch, by the same names as on the command line."""
SAMPLES = ("rocket", "chelsea", "coffee", "astronaut", "motorcycle_left", "horse")
MAX_SESSIONS = 24
"""Tabs kept at once; the one idle longest goes first. Each holds at most its photo, its
last result and a packed undo history (about 110 MB for a 12 MP photo)."""
IDLE_MINUTES = 30.0
"""A tab idle this long is released (its photo, result and downloads)."""
CLOSE_GRACE_S = 120.0
"""A closed tab is released this long after (Gradio also says "closed" when a connection
drops; one that comes back in time keeps its work)."""
MAX_UPLOAD_MB = 100
MAX_CACHE_MB = 512
"""The app's stage cache (segmentations per photo and clicks) keeps its newest entries
within this much disk."""
CONCURRENT_EDITS = 4
"""Edits that run at once across tabs; a tab runs its own actions one at a time."""
EXPIRED = "this tab's session expired (idle, or the server was restarted): open the photo again"
HERE = Path(__file__).parent


@dataclass
class Session:
    """One browser tab on the server: its tab state, when it last acted, and a lock so its
    own actions run one after another (another tab's never wait on it)."""

    tab: Tab
    used: float
    lock: threading.Lock = field(default_factory=threading.Lock)
    busy: int = 0
    """Actions holding or waiting for the lock: a busy session is never released."""


class Sessions:
    """The tabs' state, keyed by Gradio's session hash: at most ``capacity`` kept (beyond,
    the one idle longest goes), each released when idle for ``idle_s`` seconds or
    ``grace_s`` after its browser tab closed (a dropped connection that comes back within it
    keeps its work); its downloads folder goes with it. A session with an action running is
    never released under it."""

    def __init__(
        self,
        root: str,
        capacity: int = MAX_SESSIONS,
        idle_s: float = IDLE_MINUTES * 60,
        grace_s: float = CLOSE_GRACE_S,
    ) -> None:
        self.root = root
        self.capacity = capacity
        self.idle_s = idle_s
        self.grace_s = grace_s
        self.kept: OrderedDict[str, Session] = OrderedDict()
        self.expired: deque[str] = deque(maxlen=1000)
        """The last sessions released: their tabs are told so."""
        self.guard = threading.Lock()

    def __len__(self) -> int:
        return len(self.kept)

    @contextmanager
    def use(self, key: str, fresh: bool = False) -> Iterator[Session]:
        """The session of ``key``, its lock held: set ``.tab`` to keep a change. An action
        that raises keeps the tab as it was. ``fresh``: a new session may start here (opening
        a photo); elsewhere a missing one is :data:`EXPIRED`."""
        with self.guard:
            session = self.kept.get(key)
            if session is None:
                if not fresh:
                    raise DisplacementError(EXPIRED if key in self.expired else NO_PHOTO)
                folder = tempfile.mkdtemp(dir=self.root, prefix="tab-")
                session = self.kept[key] = Session(Tab(folder=folder), time.monotonic())
            session.busy += 1
            session.used = time.monotonic()  # a tab that acts is not idle, nor closed
            self.kept.move_to_end(key)
            self.sweep()
        try:
            with session.lock:
                yield session
        finally:
            with self.guard:
                session.busy -= 1
                session.used = time.monotonic()

    def peek(self, key: str) -> Tab | None:
        session = self.kept.get(key)
        return None if session is None else session.tab

    def close(self, key: str) -> None:
        """The browser tab is gone (or its connection dropped): release it after ``grace_s``."""
        with self.guard:
            session = self.kept.get(key)
            if session is not None:
                session.used = min(session.used, time.monotonic() - self.idle_s + self.grace_s)
            self.sweep()

    def sweep(self) -> None:
        """Release the idle tabs and those beyond capacity, never a busy one (caller holds
        ``guard``; every action calls it)."""
        now = time.monotonic()
        for key in [k for k, s in self.kept.items() if now - s.used > self.idle_s and not s.busy]:
            self._drop(key)
        idle_first = sorted((s.used, k) for k, s in self.kept.items() if not s.busy)
        for _, key in idle_first[: max(0, len(self.kept) - self.capacity)]:
            self._drop(key)

    def _drop(self, key: str) -> None:
        session = self.kept.pop(key, None)
        if session is not None:
            self.expired.append(key)
            if session.tab.folder:
                shutil.rmtree(session.tab.folder, ignore_errors=True)


class Pipelines:
    """One loaded pipeline per choice of components, shared by every tab. The page's first
    choice loads when the app starts; another loads once, on the event that picks it,
    without holding other tabs. Pipelines with a model (a GPU's memory, a predictor that
    keeps the last photo's embedding) run one edit at a time; classical ones run
    :data:`CONCURRENT_EDITS` tabs' edits at once."""

    def __init__(self, overrides: Sequence[str], cache_dir: str, max_cache_mb: float = MAX_CACHE_MB) -> None:
        self.overrides = tuple(o for o in overrides if o.split("=")[0] not in SWITCHABLE)
        self.cache_dir = Path(cache_dir)
        self.max_cache_bytes = int(max_cache_mb * 2**20)
        self.cache = ("cache.enabled=true", f"cache.dir={cache_dir}")  # segmentations per photo
        chosen = group_choices(overrides)  # as the CLI resolves them: experiment=paper included
        self.choices = tuple(chosen[group] for group in SWITCHABLE)
        """Each switchable group's variant with the app's overrides: the page's first choice."""
        self.loaded: dict[tuple[str, ...], Pipeline] = {}
        self.locks: dict[tuple[str, ...], threading.Lock] = {}
        """Per pipeline: held while it loads, and while it edits if it has a model."""
        self.guard = threading.Lock()

    def lock(self, key: tuple[str, ...]) -> threading.Lock:
        with self.guard:
            return self.locks.setdefault(key, threading.Lock())

    def get(self, components: Sequence[str]) -> Pipeline:
        key = tuple(components)
        if key not in self.loaded:
            with self.lock(key):
                if key not in self.loaded:
                    self.loaded[key] = load_pipeline(
                        [*self.overrides, *self.cache, *self.settings(components)]
                    )
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

    def edit(
        self, components: Sequence[str], request: EditRequest, mask_file: str | None = None
    ) -> tuple[dict[str, Any], Result]:
        """The edit on these components; ``mask_file``: with ``segmenter=mask`` reading it
        instead of the page's segmenter (a brushed mask), as the shown command runs."""
        pipeline = self.get(components)
        if mask_file is not None:
            pipeline = copy.copy(pipeline)
            pipeline.segmenter = MaskFileSegmenter(mask_file)
            pipeline.cache = StageCache(None)
        try:
            if any(isinstance(c, UsesDevice) for c in pipeline.components()):
                with self.lock(tuple(components)):
                    return edit(pipeline, request)
            return edit(pipeline, request)
        finally:
            self.prune()

    def prune(self) -> None:
        """Remove the stage cache's oldest entries beyond its bound on disk."""
        entries = []
        for path in self.cache_dir.glob("*.npz"):
            with contextlib.suppress(OSError):  # another tab's edit may have removed it
                stat = path.stat()
                entries.append((stat.st_mtime, stat.st_size, path))
        total = sum(size for _, size, _ in entries)
        for _, size, path in sorted(entries):
            if total <= self.max_cache_bytes:
                break
            path.unlink(missing_ok=True)
            total -= size


def friendly(
    outputs: int, on_error: dict[int, Any] | None = None
) -> Callable[[Callable[..., tuple[Any, ...]]], Callable[..., tuple[Any, ...]]]:
    """A handler whose mistakes become a message on the page (a toast and the status line)
    and leave the tab as it was, never a traceback; the server goes on. The other
    ``outputs - 1`` outputs are unchanged, but those ``on_error`` names by position (a failed
    move clears the previous result). No server path shows in a message."""

    def wrap(handler: Callable[..., tuple[Any, ...]]) -> Callable[..., tuple[Any, ...]]:
        @functools.wraps(handler)
        def run(self: Handlers, *args: Any, **kwargs: Any) -> tuple[Any, ...]:
            try:
                return handler(self, *args, **kwargs)
            except DisplacementError as err:
                said = self.scrub(message(err))
            except Exception as err:  # a bug: the traceback goes to the server's log only
                log.exception("the app's %s failed", handler.__name__)
                said = f"internal error ({type(err).__name__}); the server log has the details"
            gr.Warning(said)
            values = [gr.skip() for _ in range(outputs - 1)]
            for index, value in (on_error or {}).items():
                values[index - 1] = value
            return (f"⚠️ {said}", *values)

        return run

    return wrap


def emptied(tab: Tab) -> Tab:
    """``tab`` with its downloads folder emptied: a new photo's downloads are its own."""
    for path in Path(tab.folder).iterdir() if tab.folder else ():
        path.unlink(missing_ok=True)
    return tab


def session_key(request: Any) -> str:
    """Gradio's id of the browser tab (the same for every event the tab sends)."""
    key = getattr(request, "session_hash", None)
    if not key:
        raise DisplacementError("no session: reload the page")
    return str(key)


def number(value: Any, default: float = 0) -> float:
    """A number box's value: an emptied box is ``default``, not a TypeError."""
    return default if value is None or value == "" else float(value)


class Handlers:
    """The page's events on the shared pipelines and the tabs' sessions. Each applies a
    transition (:mod:`object_displacement.app_state`) to the tab of its session and returns
    the status line first, then the page's new values (the editor's view among them)."""

    def __init__(self, pipelines: Pipelines, sessions: Sessions, scrubbed: Sequence[str] = ()) -> None:
        self.pipelines = pipelines
        self.sessions = sessions
        self.scrubbed = tuple(str(Path(p)) for p in (sessions.root, *scrubbed) if p)

    def scrub(self, message: str) -> str:
        """``message`` without the server's folders: a file is named by its name only."""
        for root in self.scrubbed:
            message = re.sub(re.escape(root) + r"[^\s'\"]*/", "", message)
        return message

    def shown(
        self, tab: Tab, components: Sequence[str], mode: str = "", radius: float = 0
    ) -> tuple[str, str]:
        """The editor's view of the tab and the tab's commands."""
        settings = self.pipelines.page_settings(components)
        anchor = settings.defaults.anchor
        return app_view.view(tab, anchor, mode, round(radius)), app_state.command(tab, settings)

    def open_tab(self, tab: Tab, components: Sequence[str], mode: str) -> tuple[Any, ...]:
        """-> status, editor, command, dx, dy, scale, flip, compare, downloads, report, mode, radius"""
        assert tab.pixels is not None
        h, w = tab.pixels.shape[:2]
        radius = max(2, round(max(h, w) / 100))
        status = f"Opened {tab.name} ({w}x{h}). Click the object to select it."
        view, cli = self.shown(tab, components, OBJECT, radius)
        return (status, view, cli, 0, 0, tab.scale, tab.flip, None, None, "", OBJECT, radius)

    @friendly(outputs=13)
    def open_upload(self, request: gr.Request, upload: str | None, *components: str):
        """-> the outputs of :meth:`open_tab`, then the sample (cleared)."""
        if not upload:
            return ("Open a photo: upload one or pick a sample.", *(gr.skip() for _ in range(12)))
        try:
            with self.sessions.use(session_key(request), fresh=True) as session:
                defaults = self.pipelines.get(components).defaults
                tab = app_state.opened(upload, Path(upload).name, defaults, folder=session.tab.folder)
                session.tab = emptied(tab)
                return (*self.open_tab(session.tab, components, OBJECT), None)
        finally:
            Path(upload).unlink(missing_ok=True)  # read into memory: the upload is not kept

    @friendly(outputs=13)
    def open_sample(self, request: gr.Request, sample: str | None, *components: str):
        """-> the outputs of :meth:`open_tab`, then the upload (cleared)."""
        if not sample:
            return ("Open a photo: upload one or pick a sample.", *(gr.skip() for _ in range(12)))
        with self.sessions.use(session_key(request), fresh=True) as session:
            defaults = self.pipelines.get(components).defaults
            source = f"{SAMPLE_PREFIX}{sample}"
            session.tab = emptied(app_state.opened(source, source, defaults, folder=session.tab.folder))
            return (*self.open_tab(session.tab, components, OBJECT), None)

    @friendly(outputs=5)
    def act(
        self,
        request: gr.Request,
        evt: gr.EventData,
        mode: str,
        radius: float,
        scale: float,
        flip: bool,
        *components: str,
    ):
        """What the pointer did in the editor (``evt``'s data: a click, a drag or a brush
        stroke, in photo pixels). -> status, editor, dx, dy, command."""
        data = dict(getattr(evt, "_data", None) or {})
        with self.sessions.use(session_key(request)) as session:
            tab = app_state.adjusted(session.tab, scale=number(scale, 1), flip=bool(flip))
            anchor = self.pipelines.get(components).defaults.anchor
            kind = data.get("kind")
            if kind == "drag":
                tab = app_state.dragged(tab, number(data.get("dx")), number(data.get("dy")))
                status = f"Dragged: dx={tab.dx}, dy={tab.dy}. Press Move (or drag again)."
            elif kind == "stroke":
                if mode not in (BRUSH_ON, BRUSH_OFF):
                    raise DisplacementError("choose 'brush +' or 'brush -' to paint the mask")
                points = [(int(x), int(y)) for x, y in data.get("points") or ()]
                tab = app_state.stroked(tab, points, number(data.get("radius"), radius), add=mode == BRUSH_ON)
                status = self.selected_status(tab, "Painted")
            elif kind == "click":
                x, y = int(number(data.get("x"))), int(number(data.get("y")))
                if mode == PLACE:
                    tab = app_state.placed(tab, x, y, anchor)
                    status = f"Placed: dx={tab.dx}, dy={tab.dy}. Press Move."
                elif mode in (BRUSH_ON, BRUSH_OFF):
                    tab = app_state.stroked(tab, [(x, y)], radius, add=mode == BRUSH_ON)
                    status = self.selected_status(tab, "Painted")
                else:
                    tab = app_state.clicked(tab, x, y, mode)
                    if tab.corner is not None:
                        status = "Box: now click the opposite corner."
                    else:
                        status, tab = self.select(tab, components)
            else:
                raise DisplacementError(f"unknown editor action {kind!r}")
            session.tab = tab
            view, cli = self.shown(tab, components, mode, radius)
            return (status, view, tab.dx, tab.dy, cli)

    def select(self, tab: Tab, components: Sequence[str]) -> tuple[str, Tab]:
        """Find what the clicks, box or prompt name (the strokes are painted over it)."""
        if not app_state.finds_object(tab):
            return "Add a click on the object (or paint it with 'brush +').", app_state.with_mask(tab, None)
        request = app_state.request(tab, self.pipelines.page_settings(components).defaults, moving=False)
        metrics, result = self.pipelines.edit(components, request)
        tab = app_state.with_mask(tab, result.mask)
        seconds = sum(metrics["timings_s"].values())
        return self.selected_status(tab, f"Selected ({seconds:.2f} s)"), tab

    @staticmethod
    def selected_status(tab: Tab, what: str) -> str:
        area = 0 if tab.mask is None else int(tab.mask.sum())
        if app_state.too_small(tab):
            return (
                f"⚠️ {what}: only {area} px, too small to be an object. Click on the object itself, "
                "draw a box around it, or paint it with 'brush +'."
            )
        return (
            f"{what}: {area} px. More clicks or the brush fix it; undo takes a step back. "
            "Then drag the object where it should go (or choose 'place' and click)."
        )

    @friendly(outputs=5)
    def view_changed(self, request: gr.Request, mode: str, radius: float, *components: str):
        """The click mode, brush size or a component changed. -> status, editor, dx, dy, command."""
        tab = self.sessions.peek(session_key(request))
        if tab is None:
            return (gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip())
        view, cli = self.shown(tab, components, mode, radius)
        return (gr.skip(), view, tab.dx, tab.dy, cli)

    @friendly(outputs=4)
    def find(self, request: gr.Request, prompt: str, mode: str, radius: float, *components: str):
        """-> status, editor, command, (unused)."""
        with self.sessions.use(session_key(request)) as session:
            status, tab = self.select(app_state.prompted(session.tab, prompt), components)
            session.tab = tab
            view, cli = self.shown(tab, components, mode, radius)
            return (status, view, cli, gr.skip())

    def _history(self, change: Callable[[Tab], Tab], said: str):
        def handler(request: Any, mode: str, radius: float, *components: str):
            with self.sessions.use(session_key(request)) as session:
                session.tab = tab = change(session.tab)
                view, cli = self.shown(tab, components, mode, radius)
                steps = f"{len(tab.history)} to undo, {len(tab.future)} to redo"
                return (f"{said} ({steps}).", view, tab.dx, tab.dy, cli)

        return handler

    @friendly(outputs=5)
    def undo(self, request: gr.Request, mode: str, radius: float, *components: str):
        """-> status, editor, dx, dy, command."""
        return self._history(app_state.undone, "Undone")(request, mode, radius, *components)

    @friendly(outputs=5)
    def redo(self, request: gr.Request, mode: str, radius: float, *components: str):
        """-> status, editor, dx, dy, command."""
        return self._history(app_state.redone, "Redone")(request, mode, radius, *components)

    @friendly(outputs=5)
    def clear(self, request: gr.Request, mode: str, radius: float, *components: str):
        """-> status, editor, dx, dy, command."""
        return self._history(app_state.cleared, "Selection cleared, undo brings it back")(
            request, mode, radius, *components
        )

    @friendly(outputs=3)
    def adjust(
        self, request: gr.Request, dx: Any, dy: Any, scale: Any, flip: bool, mode: str, radius: float,
        *components: str,
    ):  # fmt: skip
        """The dx/dy boxes, scale or flip. -> status, editor, command."""
        with self.sessions.use(session_key(request)) as session:
            tab = app_state.adjusted(
                session.tab, dx=number(dx), dy=number(dy), scale=number(scale, 1), flip=bool(flip)
            )
            session.tab = tab
            if tab.pixels is None:
                return (gr.skip(), gr.skip(), "")
            view, cli = self.shown(tab, components, mode, radius)
            return (gr.skip(), view, cli)

    @friendly(outputs=5, on_error={1: None, 2: None, 3: ""})
    def move(
        self,
        request: gr.Request,
        progress: Any = gr.Progress(),  # noqa: B008 (Gradio's way to ask for a progress bar)
        dx: Any = None,
        dy: Any = None,
        scale: float = 1.0,
        flip: bool = False,
        keep_format: bool = False,
        *components: str,
    ):
        """The move the page shows (its dx/dy boxes, scale and flip). -> status, before/after,
        downloads, report, command."""
        with self.sessions.use(session_key(request)) as session:
            tab = app_state.adjusted(
                session.tab, dx=number(dx), dy=number(dy), scale=number(scale, 1), flip=bool(flip)
            )
            session.tab = app_state.moved(tab, None, "")  # a failed move leaves no old result behind
            if tab.pixels is None:
                raise DisplacementError(NO_PHOTO)
            progress(0.05, desc="loading the components")
            settings = self.pipelines.page_settings(components)
            request_ = app_state.request(tab, settings.defaults)
            if not request_.moves:
                raise DisplacementError(NOT_MOVED)
            folder = Path(tab.folder)
            mask_file = None
            if tab.brushed:
                assert tab.mask is not None
                mask_file = str(write_image(folder / app_state.mask_file(tab), tab.mask))
            progress(0.2, desc="segmenting, moving and inpainting")
            metrics, result = self.pipelines.edit(components, request_, mask_file)
            assert result.output is not None
            progress(0.9, desc="writing the downloads")
            written = write_image(folder / app_state.output_file(tab), result.output)
            files = [str(written)]
            suffix = Path(tab.name).suffix.lower()
            if keep_format and suffix and suffix != ".png" and not tab.name.startswith(SAMPLE_PREFIX):
                files.insert(0, str(write_image(written.with_suffix(suffix), result.output)))
            files += sorted(str(f) for f in folder.glob("*.png") if str(f) not in files)  # the chain's
            cli = app_state.command(tab, settings, output=written.name)
            session.tab = app_state.moved(tab, result.output, cli.splitlines()[-1])
            move = request_.move
            status = (
                f"Moved by dx={move.dx}, dy={move.dy}. Drag the slider to compare; "
                "'edit the result' moves another object in it."
            )
            factor = app_view.display_factor(*tab.pixels.shape[:2])
            compare = (shrink(tab.pixels, factor), shrink(result.output, factor))
            return (status, compare, files, report(metrics), cli)

    @friendly(outputs=12)
    def edit_result(self, request: gr.Request, *components: str):
        """The last move's output becomes the photo. -> the outputs of :meth:`open_tab`."""
        with self.sessions.use(session_key(request)) as session:
            tab = session.tab
            source = Path(tab.folder) / app_state.output_file(tab)
            session.tab = app_state.edited(tab, str(source))
            opened = self.open_tab(session.tab, components, OBJECT)
            status = f"Editing the result ({source.name}): click the next object to move."
            return (status, *opened[1:])

    def closed(self, request: gr.Request) -> None:
        """The browser tab closed: release its session."""
        key = getattr(request, "session_hash", None)
        if key:
            self.sessions.close(str(key))


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


EDITOR_HTML = """
<div class="od-editor">
  <canvas class="od-canvas"></canvas>
  <div class="od-tools">
    <button class="od-zoom-in" title="zoom in">+</button>
    <button class="od-zoom-out" title="zoom out">&minus;</button>
    <button class="od-fit" title="fit the photo">fit</button>
  </div>
</div>
"""
EDITOR_CSS = """
.od-editor { position: relative; }
.od-canvas { width: 100%; height: 62vh; min-height: 360px; display: block; touch-action: none;
  border-radius: 6px; cursor: crosshair; }
.od-tools { position: absolute; top: 8px; right: 8px; display: flex; gap: 4px; }
.od-tools button { background: rgba(0,0,0,.55); color: #fff; border: 1px solid #888; border-radius: 4px;
  padding: 2px 9px; font-size: 15px; cursor: pointer; }
"""


def build_app(
    overrides: Sequence[str] = (),
    max_sessions: int = MAX_SESSIONS,
    idle_minutes: float = IDLE_MINUTES,
) -> gr.Blocks:
    """The page; ``overrides`` are the CLI's (``segmenter=sam``, ``inpainter=sdxl`` ...)."""
    root = tempfile.mkdtemp(prefix="displace-app-")
    atexit.register(shutil.rmtree, root, ignore_errors=True)
    uploads = os.path.join(root, "uploads")
    os.environ["GRADIO_TEMP_DIR"] = uploads  # uploads and Gradio's files go with the app's
    pipelines = Pipelines(overrides, cache_dir=os.path.join(root, "cache"))
    defaults = pipelines.get(pipelines.choices).defaults  # models load now; bad overrides fail now
    sessions = Sessions(root, capacity=max_sessions, idle_s=idle_minutes * 60)
    on = Handlers(pipelines, sessions, scrubbed=(uploads, tempfile.gettempdir()))
    script = (HERE / "app_editor.js").read_text()

    with gr.Blocks(title="object-displacement", delete_cache=(600, 3600)) as page:
        gr.Markdown(
            "## Move an object in a photo\n"
            "1. Open a photo. 2. Click the object (more clicks refine; *not object* removes; *brush +/-* "
            "paints the mask; a box by 2 clicks; or find it by text). 3. **Drag the object** where it "
            "should go (or choose *place* and click). 4. **Move**; *edit the result* moves the next one. "
            "Wheel: zoom, right button or shift + drag: pan."
        )
        status = gr.Markdown("Open a photo: upload one or pick a sample.", elem_id="status")
        with gr.Row():
            with gr.Column(scale=3):
                editor = gr.HTML(
                    "",
                    html_template=EDITOR_HTML,
                    css_template=EDITOR_CSS,
                    js_on_load=script,
                    elem_id="editor",
                )
                with gr.Row():
                    mode = gr.Radio(
                        list(MODES), value=OBJECT, label="a click on the photo means", elem_id="mode"
                    )
                    radius = gr.Slider(
                        1, 200, value=8, step=1, label="brush radius (photo px)", elem_id="radius"
                    )
                compare = gr.ImageSlider(
                    label="before / after", type="numpy", format="jpeg", elem_id="result"
                )
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
                    redo_button = gr.Button("redo", elem_id="redo")
                    clear_button = gr.Button("clear selection", elem_id="clear")
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
                with gr.Row():
                    move_button = gr.Button("Move", variant="primary", elem_id="move")
                    again = gr.Button("edit the result", elem_id="edit-result")
                keep_format = gr.Checkbox(
                    False, label="download also in the photo's format", elem_id="keep-format"
                )
                cli = gr.Textbox(label="the same edits on the command line", elem_id="command", lines=2)
                report_box = gr.Markdown(elem_id="report")
                downloads = gr.File(
                    label="downloads (full resolution)", file_count="multiple", elem_id="downloads"
                )

        limit = {"concurrency_limit": CONCURRENT_EDITS}
        opened = [status, editor, cli, dx, dy, scale, flip, compare, downloads, report_box, mode, radius]
        upload.upload(on.open_upload, [upload, *groups], [*opened, sample], **limit)
        sample.input(on.open_sample, [sample, *groups], [*opened, upload], **limit)
        acted = [status, editor, dx, dy, cli]
        # every click and stroke counts (the tab's lock runs them in turn); a typed box counts
        # once it settles
        editor.submit(on.act, [mode, radius, scale, flip, *groups], acted, trigger_mode="multiple", **limit)
        for control in (mode, radius, *groups):
            control.change(on.view_changed, [mode, radius, *groups], acted, **limit)
        find_button.click(
            on.find, [prompt, mode, radius, *groups], [status, editor, cli, report_box], **limit
        )
        undo_button.click(on.undo, [mode, radius, *groups], acted, **limit)
        redo_button.click(on.redo, [mode, radius, *groups], acted, **limit)
        clear_button.click(on.clear, [mode, radius, *groups], acted, **limit)
        for control in (dx, dy, scale, flip):
            control.input(
                on.adjust,
                [dx, dy, scale, flip, mode, radius, *groups],
                [status, editor, cli],
                trigger_mode="always_last",
                **limit,
            )
        move_button.click(
            on.move,
            [dx, dy, scale, flip, keep_format, *groups],
            [status, compare, downloads, report_box, cli],
            **limit,
        )
        again.click(on.edit_result, groups, opened, **limit)
        page.unload(on.closed)
    page.allowed_root = root  # type: ignore[attr-defined]
    page.handlers = on  # type: ignore[attr-defined]
    return page


def stop_on_sigterm() -> None:
    """SIGTERM (a service manager, ``kill``) ends the app as Ctrl-C does: the temporary
    folder with the users' photos and downloads is removed."""

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)


def main(argv: Sequence[str] | None = None) -> None:
    """``make app``: serve the page on this machine only, until Ctrl-C or SIGTERM."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--max-sessions", type=int, default=MAX_SESSIONS, help="tabs kept at once")
    parser.add_argument(
        "--idle-minutes", type=float, default=IDLE_MINUTES, help="a tab idle this long is released"
    )
    parser.add_argument(
        "--max-upload-mb", type=float, default=MAX_UPLOAD_MB, help="the largest upload accepted"
    )
    args, overrides = parser.parse_known_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    stop_on_sigterm()
    try:
        page = build_app(overrides, max_sessions=args.max_sessions, idle_minutes=args.idle_minutes)
    except DisplacementError as err:
        raise SystemExit(f"error: {message(err)}") from None
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C or SIGTERM: atexit removes the app's folder
        page.queue(default_concurrency_limit=CONCURRENT_EDITS).launch(
            server_name=args.host,
            server_port=args.port,
            ssr_mode=False,
            allowed_paths=[page.allowed_root],  # type: ignore[attr-defined]
            max_file_size=f"{args.max_upload_mb:g}mb",
            theme=gr.themes.Default(),
            footer_links=[],
        )


if __name__ == "__main__":
    main()
