"""Scenes where the right answer is known: an object pasted on a real background.

The object is synthetic (an ellipse, a polygon, a silhouette) or, in the ``REAL`` scenes, a
real object cut from one photo with a hand-checked alpha and pasted on another. Each scene
renders the input (the object at A), the true output (the object at B, the true background
at A) and the object's exact mask, so a mask policy or an inpainter can be scored instead
of judged by eye. Generation is seeded: the same seed, the same scenes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import cv2
import numpy as np

from object_displacement.colour import to_linear, to_srgb
from object_displacement.geometry import grown_box, place_object, shift
from object_displacement.types import Box, Candidate, Image, Mask, Move

SIDES = (384, 512, 768, 1024)
SIZES = (0.1, 0.2, 0.33)
"""Object size: its longer side as a share of the frame's shorter side, small to a third."""
MOTIONS = ("apart", "overlap", "border")
"""Moved clear of its old place, overlapping it, or starting against the frame's edge."""
SHAPES = ("ellipse", "polygon", "horse", "cutout")
SCALES = (1.0, 1.0, 1.0, 1.0, 1.5, 1.0, 1.0, 0.7)
"""Most moves keep the size; one in eight grows the object by half, one in eight shrinks it."""
TEXTURED = ("brick", "grass", "gravel", "coffee", "chelsea", "rocket")
SMOOTH = ("sky", "wall")


@dataclass
class Scene:
    """One case: ``input`` and ``truth`` differ only where the object was and where it goes."""

    name: str
    input: Image
    truth: Image
    mask: Mask
    """The object at A (alpha >= 0.5): what a segmenter should find."""
    footprint: Mask
    """Every pixel the object touches at A (alpha > 0), its soft fringe included."""
    moved_mask: Mask
    """The object at B (alpha >= 0.5), at its new scale."""
    moved_footprint: Mask
    """Every pixel the object touches at B."""
    scale: float
    dx: int
    dy: int
    box: Box
    """A user's box around the object: its bounding box with a small margin."""
    tags: dict[str, str | float] = field(default_factory=dict)
    shadow: np.ndarray | None = None
    """The true attenuation of the object's cast shadow at A (0 lit .. 1), if it casts one."""
    moved_shadow: np.ndarray | None = None
    """The same at B: the shadow moved with the object."""
    lit_truth: Image | None = None
    """The true output without the shadow at B: what the new shadow darkens."""


def generate(
    count: int = 24,
    seed: int = 0,
    max_side: int = 1024,
    hard: bool = True,
    real: bool = True,
    shadows: bool = True,
) -> list[Scene]:
    """``count`` scenes cycling through every size, motion, shape and background kind, then,
    with ``hard``, one scene of each of ``HARD``, then, with ``real``, one of each of ``REAL``,
    then, with ``shadows``, each of ``SHADOWED`` with its cast shadow and without."""
    scenes = [make_scene(i, seed, max_side) for i in range(count)]
    scenes += [make_hard_scene(kind, seed, max_side) for kind in HARD] if hard else []
    scenes += [make_real_scene(name, seed, max_side) for name in REAL] if real else []
    if shadows:
        scenes += [
            make_shadow_scene(n, cast, seed, max_side) for n in range(len(SHADOWED)) for cast in (True, False)
        ]
    return scenes


def make_scene(index: int, seed: int = 0, max_side: int = 1024) -> Scene:
    rng = np.random.default_rng([seed, index])
    smooth = index % 2 == 0
    size = SIZES[(index // 2) % len(SIZES)]
    motion = MOTIONS[(index // 6) % len(MOTIONS)]
    shape = SHAPES[(index // 3) % len(SHAPES)]
    side = min(max_side, SIDES[(index * 7 + index // 4) % len(SIDES)])
    width, height = side, round(side * 0.75)
    kind = SMOOTH[index // 2 % len(SMOOTH)] if smooth else TEXTURED[index // 2 % len(TEXTURED)]
    background = _background(kind, width, height, rng)

    extent = max(16, round(size * min(width, height)))
    alpha = _shape(shape, extent, rng)
    texture = _object_texture(alpha.shape, rng)
    oh, ow = alpha.shape
    x, y = _place_a(motion, width, height, ow, oh, rng)
    dx, dy = _displacement(motion, x, y, width, height, ow, oh, rng, SCALES[index % len(SCALES)])
    scale = SCALES[index % len(SCALES)]
    name = f"{index:02d}-{shape}-{kind}-{motion}-{round(size * 100)}pct-{width}px-x{scale:g}"
    tags = {"shape": shape, "background": kind, "smooth": str(smooth), "motion": motion, "size": size}
    return _render(name, background, alpha, texture, (x, y), Move(dx, dy, scale), tags)


FACE_BOX = (160, 20, 290, 190)
"""The astronaut's face and hair (x0, y0, x1, y1) in scikit-image's 512 px photo."""
HARD = ("face", "text", "courses", "tiles", "rim")
"""Scenes built on the fills' known failures: a face or text elsewhere in the frame, which a
fill must not copy into the hole, and structure (brick courses, a tile grid, a saucer's
rim) crossing the hole, which a fill should continue rather than smear."""


def make_hard_scene(kind: str, seed: int = 0, max_side: int = 1024) -> Scene:
    """One scene of ``kind`` (one of ``HARD``), seeded like the others; the object moves
    clear of its old place and never covers the face or the text."""
    number = HARD.index(kind)
    rng = np.random.default_rng([seed, 1000 + number])
    side = min(max_side, 512 if kind == "face" else 640)
    width, height = side, side if kind == "face" else round(side * 0.75)
    background, centre, keep_out = _hard_background(kind, width, height, rng)
    size = SIZES[1]
    shape = SHAPES[number % len(SHAPES)]
    alpha = _shape(shape, max(16, round(size * min(width, height))), rng)
    texture = _object_texture(alpha.shape, rng)
    oh, ow = alpha.shape
    x = int(np.clip(round(centre[0] - ow / 2), 0, width - ow))
    y = int(np.clip(round(centre[1] - oh / 2), 0, height - oh))
    for _ in range(50):
        dx, dy = _displacement("apart", x, y, width, height, ow, oh, rng)
        moved = (x + dx, y - dy, x + dx + ow, y - dy + oh)
        if keep_out is None or not _boxes_meet(moved, keep_out):
            break
    name = f"h{number}-{kind}-{shape}-apart-{round(size * 100)}pct-{width}px-x1"
    tags = {"shape": shape, "background": kind, "smooth": "False", "motion": "apart", "size": size}
    return _render(name, background, alpha, texture, (x, y), Move(dx, dy, 1.0), tags | {"hard": kind})


REAL = ("rocket", "cup", "spoon", "helmet", "shuttle", "cameraman", "motorcycle")
"""Real objects cut from scikit-image's photos (``data/cutouts/``; its README says how each
was made), so a segmenter is judged on real objects; the truth is still exact: the paste."""
REAL_SOURCES = {
    "rocket": "rocket",
    "cup": "coffee",
    "spoon": "coffee",
    "helmet": "astronaut",
    "shuttle": "astronaut",
    "cameraman": "camera",
    "motorcycle": "motorcycle",
}
"""The photo each cutout comes from: a real scene never pastes it back on that photo."""
CUTOUTS = Path(__file__).resolve().parents[3] / "data" / "cutouts"
REAL_SIZES = (0.15, 0.35)
"""A cutout's longer side as a share of the frame's shorter side: drawn in this range."""


def make_real_scene(name: str, seed: int = 0, max_side: int = 1024) -> Scene:
    """The cutout ``name`` (one of ``REAL``) at a seeded size and place on another real
    photo or a smooth background, moved by one of ``MOTIONS`` in turn."""
    number = REAL.index(name)
    rng = np.random.default_rng([seed, 2000 + number])
    side = min(max_side, (512, 640, 768)[number % 3])
    width, height = side, round(side * 0.75)
    kinds = [kind for kind in (*TEXTURED, *SMOOTH) if kind != REAL_SOURCES[name]]
    kind = kinds[int(rng.integers(len(kinds)))]
    background = _background(kind, width, height, rng)
    size = float(rng.uniform(*REAL_SIZES))
    alpha, texture = real_cutout(name, max(16, round(size * min(width, height))))
    oh, ow = alpha.shape
    motion = MOTIONS[number % len(MOTIONS)]
    scale = SCALES[number % len(SCALES)]
    x, y = _place_a(motion, width, height, ow, oh, rng)
    dx, dy = _displacement(motion, x, y, width, height, ow, oh, rng, scale)
    title = f"r{number}-{name}-{kind}-{motion}-{round(size * 100)}pct-{width}px-x{scale:g}"
    tags = {"shape": "real", "background": kind, "smooth": str(kind in SMOOTH), "motion": motion}
    tags |= {"size": round(size, 3), "real": name}
    return _render(title, background, alpha, texture, (x, y), Move(dx, dy, scale), tags)


SHADOWED = (
    ("ellipse", "brick", "apart", 1.0),
    ("cup", "grass", "apart", 1.0),
    ("polygon", "gravel", "overlap", 1.0),
    ("horse", "wall", "apart", 1.0),
    ("spoon", "brick", "apart", 0.7),
    ("cutout", "gravel", "apart", 1.0),
    ("rocket", "grass", "overlap", 1.0),
    ("motorcycle", "wall", "apart", 1.5),
)
"""Objects standing on real surfaces (or a plain wall) that cast a shadow: (the object, a
shape or a cutout of ``REAL``; the surface; the motion; the scale)."""
SHADOW_STRENGTHS = (0.4, 0.6)
"""How much light a shadow takes, in linear light: 40 to 60 %."""


def make_shadow_scene(number: int, cast: bool = True, seed: int = 0, max_side: int = 1024) -> Scene:
    """Scene ``number`` of ``SHADOWED``: the object and, with ``cast``, its shadow, a soft,
    offset, blurred silhouette darkening the surface by ``SHADOW_STRENGTHS``; the same
    scene (the same object, place and move) either way, so the two can be compared."""
    shape, kind, motion, scale = SHADOWED[number]
    rng = np.random.default_rng([seed, 3000 + number])
    side = min(max_side, (512, 640, 768)[number % 3])
    width, height = side, round(side * 0.75)
    background = _background(kind, width, height, rng)
    extent = max(16, round(float(rng.uniform(0.2, 0.3)) * min(width, height)))
    if shape in REAL:
        alpha, texture = real_cutout(shape, extent)
    else:
        alpha = _shape(shape, extent, rng)
        texture = _object_texture(alpha.shape, rng)
    oh, ow = alpha.shape
    x, y = _place_a(motion, width, height, ow, oh, rng)
    y = max(y, round(0.15 * height))  # room above for the object, below for its shadow
    dx, dy = _displacement(motion, x, y, width, height, ow, oh, rng, scale)
    at_a = _canvas_alpha(alpha, x, y, width, height)
    shadow = _cast_shadow(at_a, (x, y, x + ow, y + oh), rng) if cast else None
    title = f"s{number}-{shape}-{kind}-{motion}-{'shadow' if cast else 'none'}-{width}px-x{scale:g}"
    tags = {"shape": shape, "background": kind, "smooth": str(kind in SMOOTH), "motion": motion}
    tags |= {"size": round(extent / min(width, height), 3), "shadow": "cast" if cast else "none"}
    return _render(title, background, alpha, texture, (x, y), Move(dx, dy, scale), tags, shadow)


def _cast_shadow(at_a: np.ndarray, box: Box, rng: np.random.Generator) -> np.ndarray:
    """The attenuation of a shadow the object at ``box`` casts on the floor it stands on:
    its silhouette squashed toward its base, sheared, and offset away from the light so a
    crescent of it shows beside the object, blurred by a penumbra and scaled to a strength
    in ``SHADOW_STRENGTHS``."""
    height, width = at_a.shape
    x0, y0, x1, y1 = box
    extent = max(x1 - x0, y1 - y0)
    squash, shear = rng.uniform(0.6, 1.0), rng.uniform(-0.3, 0.3)
    angle = rng.uniform(0.1, math.pi - 0.1)  # away from a light above: down, left or right
    length = rng.uniform(0.1, 0.3) * extent
    offset_x, offset_y = length * math.cos(angle), length * math.sin(angle)
    # x' = x + shear (base - y) + offset_x;  y' = base - squash (base - y) + offset_y
    base = float(y1)
    forward = np.float32([[1, -shear, shear * base + offset_x], [0, squash, base * (1 - squash) + offset_y]])
    silhouette = cv2.warpAffine(at_a, forward, (width, height), flags=cv2.INTER_LINEAR)
    sigma = rng.uniform(0.01, 0.04) * extent
    soft = cv2.GaussianBlur(silhouette, (0, 0), max(0.5, sigma))
    return (np.clip(soft, 0, 1) * rng.uniform(*SHADOW_STRENGTHS)).astype(np.float32)


def real_cutout(name: str, extent: int) -> tuple[np.ndarray, Image]:
    """The cutout's alpha (float32, 0..1) and colour, resized so its longer side is about
    ``extent`` (area averaging when shrinking, cubic when growing, on premultiplied colour)
    and trimmed to the pixels it touches."""
    rgba = _read_cutout(name)
    h, w = rgba.shape[:2]
    k = extent / max(h, w)
    size = (max(1, round(w * k)), max(1, round(h * k)))
    alpha = rgba[..., 3].astype(np.float32) / 255
    premultiplied = rgba[..., :3].astype(np.float32) * alpha[..., None]
    if size != (w, h):
        interpolation = cv2.INTER_AREA if k < 1 else cv2.INTER_CUBIC
        alpha = np.clip(cv2.resize(alpha, size, interpolation=interpolation), 0.0, 1.0)
        premultiplied = np.clip(cv2.resize(premultiplied, size, interpolation=interpolation), 0.0, 255.0)
    alpha[alpha < 1 / 255] = 0.0
    colour = premultiplied / np.maximum(alpha, 1e-6)[..., None]
    colour = np.where(alpha[..., None] > 0, np.clip(np.rint(colour), 0, 255), 0).astype(np.uint8)
    rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
    tight = np.s_[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return np.ascontiguousarray(alpha[tight]), np.ascontiguousarray(colour[tight])


@lru_cache(maxsize=len(REAL))
def _read_cutout(name: str) -> np.ndarray:
    path = CUTOUTS / f"{name}.png"
    rgba = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if rgba is None or rgba.ndim != 3 or rgba.shape[2] != 4:
        raise FileNotFoundError(
            f"no RGBA cutout at {path}: the real scenes need the checkout's data/cutouts/"
        )
    rgba = cv2.cvtColor(rgba, cv2.COLOR_BGRA2RGBA)
    rgba.flags.writeable = False
    return rgba


def _render(
    name: str,
    background: Image,
    alpha: np.ndarray,
    texture: Image,
    at: tuple[int, int],
    move: Move,
    tags: dict[str, str | float],
    shadow: np.ndarray | None = None,
) -> Scene:
    """The scene of ``alpha``/``texture`` placed with its top-left at ``at`` over
    ``background`` and moved by ``move``: the input, the truth and their masks. A
    ``shadow`` (attenuation at A, frame size) darkens the surface in linear light and moves
    with the object, as the pipeline moves a found one."""
    height, width = background.shape[:2]
    dx, dy, scale = int(move.dx), int(move.dy), float(move.scale)
    at_a = _canvas_alpha(alpha, *at, width, height)
    colour = _canvas_colour(texture, *at, width, height)
    if scale == 1.0:
        at_b, colour_b = shift(at_a, dx, dy), shift(colour, dx, dy)
    else:  # rendered at the new scale about the centre, as the pipeline is asked to
        footprint = at_a > 0
        at_b, _, _ = place_object(at_a, footprint, dx, dy, scale)
        colour_b, _, _ = place_object(colour, footprint, dx, dy, scale)
        at_b = np.clip(at_b, 0.0, 1.0)
    surface_a = surface_b = background
    moved_shadow = None
    if shadow is not None:
        _, moved_shadow, _ = place_object(shadow, at_a > 0, dx, dy, scale, coverage=shadow)
        surface_a, surface_b = _shade(background, shadow), _shade(background, moved_shadow)
    source = _over(surface_a, colour, at_a)
    truth = _over(surface_b, colour_b, at_b)
    lit_truth = None if shadow is None else _over(background, colour_b, at_b)
    mask = at_a >= 0.5
    x0, y0, x1, y1 = Candidate(mask).bbox
    margin = max(2, round(0.04 * max(x1 - x0, y1 - y0)))
    box = grown_box((x0, y0, x1, y1), width, height, margin)
    tags = tags | {"side": float(width), "scale": scale}
    scene = Scene(name, source, truth, mask, at_a > 0, at_b >= 0.5, at_b > 0, scale, dx, dy, box, tags)
    scene.shadow, scene.moved_shadow, scene.lit_truth = shadow, moved_shadow, lit_truth
    return scene


def _shade(surface: Image, attenuation: np.ndarray) -> Image:
    """``surface`` with ``attenuation`` of its light taken away, in linear light."""
    return to_srgb(to_linear(surface) * (1 - attenuation[..., None]))


def _boxes_meet(a: Box, b: Box) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def _hard_background(
    kind: str, width: int, height: int, rng: np.random.Generator
) -> tuple[Image, tuple[float, float], Box | None]:
    """The background of a hard scene, the centre of the object's old place on it and the
    box the moved object must keep out of (the face, the text), if any."""
    from skimage import data

    if kind == "face":  # the astronaut: the object stands on the wall between face and shuttle
        k = width / 512
        photo = cv2.resize(data.astronaut(), (width, height), interpolation=cv2.INTER_AREA)
        centre = (k * rng.uniform(345, 355), k * rng.uniform(60, 90))
        x0, y0, x1, y1 = (round(v * k) for v in FACE_BOX)
        return photo, centre, (x0, y0, x1, y1)
    if kind == "text":  # a lit wall with a few lines of print above the object
        wall = _background("wall", width, height, rng)
        ink = tuple(int(v) for v in rng.uniform(0, 60, size=3))
        font_scale, lines = width / 640 * 1.1, ("OPEN DAILY 9-17", "NO PARKING", "Room 204 ->")
        top = round(height * 0.08)
        for i, line in enumerate(lines):
            origin = (round(width * rng.uniform(0.05, 0.25)), top + round((i + 1) * 40 * width / 640))
            cv2.putText(wall, line, origin, cv2.FONT_HERSHEY_SIMPLEX, font_scale, ink, 2, cv2.LINE_AA)
        centre = (width * rng.uniform(0.3, 0.7), height * rng.uniform(0.68, 0.75))
        return wall, centre, (0, 0, width, round(height * 0.5))
    if kind == "courses":  # brick courses across the whole frame
        return _background("brick", width, height, rng), (width * 0.5, height * 0.5), None
    if kind == "tiles":  # square tiles with dark grout lines every ``step`` px
        tiles = _background("sky", width, height, rng)
        step = round(rng.uniform(0.05, 0.07) * width)
        grout = tuple(int(v) for v in rng.uniform(20, 70, size=3))
        thickness = max(2, round(width / 256))
        for offset in range(round(rng.uniform(0, step)), max(width, height), step):
            cv2.line(tiles, (offset, 0), (offset, height), grout, thickness)
            cv2.line(tiles, (0, offset), (width, offset), grout, thickness)
        return tiles, (width * rng.uniform(0.4, 0.6), height * rng.uniform(0.4, 0.6)), None
    # the rim: a saucer, a pale ellipse with a darker rim, on a wall; the object sits on the rim
    saucer = _background("wall", width, height, rng)
    axes = (round(width * rng.uniform(0.28, 0.34)), round(height * rng.uniform(0.24, 0.3)))
    middle = (width // 2, height // 2)
    face, rim = rng.uniform(170, 240, size=3), rng.uniform(60, 140, size=3)
    cv2.ellipse(saucer, middle, axes, 0, 0, 360, tuple(float(v) for v in face), -1, cv2.LINE_AA)
    cv2.ellipse(
        saucer, middle, axes, 0, 0, 360, tuple(float(v) for v in rim), max(4, width // 80), cv2.LINE_AA
    )
    angle = rng.uniform(0, 2 * math.pi)
    centre = (middle[0] + axes[0] * math.cos(angle), middle[1] + axes[1] * math.sin(angle))
    return saucer, centre, None


def _background(kind: str, width: int, height: int, rng: np.random.Generator) -> Image:
    """A smooth one (a gradient sky, a plain lit wall) or a real texture or photo."""
    if kind in SMOOTH:
        ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
        top, bottom = rng.uniform(40, 220, size=3), rng.uniform(40, 220, size=3)
        t = (
            (ys / height)[..., None]
            if kind == "sky"
            else (0.5 + 0.5 * np.sin(xs / width * math.pi))[..., None]
        )
        image = top * (1 - t) + bottom * t + rng.normal(0, 2.0, size=(height, width, 1))
        return np.clip(image, 0, 255).astype(np.uint8)
    from skimage import data

    photo = np.asarray(getattr(data, kind)())
    if photo.ndim == 2:  # the textures are grey: tint them
        tint = rng.uniform(0.5, 1.0, size=3)
        photo = (photo[..., None] * tint).astype(np.uint8)
    reps = (math.ceil(height / photo.shape[0]), math.ceil(width / photo.shape[1]), 1)
    if photo.shape[0] >= height and photo.shape[1] >= width:
        return np.ascontiguousarray(photo[:height, :width, :3])
    tiled = np.tile(photo[..., :3], reps) if min(photo.shape[:2]) < 300 else None
    if tiled is not None:
        return np.ascontiguousarray(tiled[:height, :width])
    return cv2.resize(photo[..., :3], (width, height), interpolation=cv2.INTER_CUBIC)


def _shape(shape: str, extent: int, rng: np.random.Generator) -> np.ndarray:
    """Alpha (float32, 0..1) of the object in a tight box whose longer side is ``extent``."""
    aspect = rng.uniform(0.55, 1.0)
    w, h = (
        (extent, max(8, round(extent * aspect)))
        if rng.random() < 0.5
        else (max(8, round(extent * aspect)), extent)
    )
    canvas = np.zeros((h, w), np.uint8)
    if shape == "ellipse":
        cv2.ellipse(canvas, (w // 2, h // 2), (w // 2 - 1, h // 2 - 1), 0, 0, 360, 255, -1)
    elif shape == "polygon":
        angles = np.sort(rng.uniform(0, 2 * math.pi, size=7))
        radii = rng.uniform(0.55, 1.0, size=7)
        points = np.stack(
            [w / 2 + radii * (w / 2 - 1) * np.cos(angles), h / 2 + radii * (h / 2 - 1) * np.sin(angles)], 1
        )
        cv2.fillPoly(canvas, [np.round(points).astype(np.int32)], 255)
    elif shape in ("horse", "cutout"):
        from skimage import data

        horse = (~data.horse()).astype(np.uint8) * 255  # the silhouette is dark on white
        canvas = cv2.resize(horse, (w, h), interpolation=cv2.INTER_AREA)
        if shape == "cutout":  # a soft-edged cutout, as matting tools export
            canvas = cv2.GaussianBlur(canvas, (0, 0), sigmaX=max(1.0, extent / 80))
    alpha = canvas.astype(np.float32) / 255
    if shape != "cutout":
        alpha = (alpha >= 0.5).astype(np.float32)
    rows, cols = np.nonzero(alpha.any(axis=1))[0], np.nonzero(alpha.any(axis=0))[0]
    return alpha[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # tight: the object touches its box


def _object_texture(shape: tuple[int, int], rng: np.random.Generator) -> Image:
    """A colourful texture for the object, so it is clearly not background."""
    from skimage import data

    source = np.asarray(getattr(data, str(rng.choice(["astronaut", "coffee", "chelsea"])))())
    h, w = shape
    y = int(rng.integers(0, max(1, source.shape[0] - h))) if source.shape[0] > h else 0
    x = int(rng.integers(0, max(1, source.shape[1] - w))) if source.shape[1] > w else 0
    patch = source[y : y + h, x : x + w]
    if patch.shape[:2] != (h, w):
        patch = cv2.resize(source, (w, h), interpolation=cv2.INTER_AREA)
    hue = rng.uniform(0.6, 1.4, size=3)
    return np.clip(patch.astype(np.float32) * hue, 0, 255).astype(np.uint8)


def _place_a(
    motion: str, width: int, height: int, ow: int, oh: int, rng: np.random.Generator
) -> tuple[int, int]:
    if motion == "border":  # flush against the left or the bottom edge
        if rng.random() < 0.5:
            return 0, int(rng.integers(0, height - oh + 1))
        return int(rng.integers(0, width - ow + 1)), height - oh
    return int(rng.integers(0, width - ow + 1)), int(rng.integers(0, height - oh + 1))


def _displacement(
    motion: str,
    x: int,
    y: int,
    width: int,
    height: int,
    ow: int,
    oh: int,
    rng: np.random.Generator,
    scale: float = 1.0,
) -> tuple[int, int]:
    """A move that keeps the (scaled) object inside the frame: overlapping, or clear of A."""
    sw, sh = ow * scale, oh * scale
    for _ in range(400):
        length = rng.uniform(0.3, 0.7) if motion == "overlap" else rng.uniform(1.2, 2.5)
        angle = rng.uniform(0, 2 * math.pi)
        dx = round(math.cos(angle) * length * ow)
        dy = round(math.sin(angle) * length * oh)
        cx, cy = x + ow / 2 + dx, y + oh / 2 - dy  # the new centre
        inside = sw / 2 + 1 <= cx <= width - sw / 2 - 1 and sh / 2 + 1 <= cy <= height - sh / 2 - 1
        overlaps = abs(dx) < (ow + sw) / 2 and abs(dy) < (oh + sh) / 2
        if inside and overlaps == (motion == "overlap"):
            return dx, dy
    # fall back to the farthest fitting horizontal move
    dx = (width - ow - x) if x < width / 2 else -x
    return dx, 0


def _canvas_alpha(alpha: np.ndarray, x: int, y: int, width: int, height: int) -> np.ndarray:
    canvas = np.zeros((height, width), np.float32)
    canvas[y : y + alpha.shape[0], x : x + alpha.shape[1]] = alpha
    return canvas


def _canvas_colour(texture: Image, x: int, y: int, width: int, height: int) -> Image:
    canvas = np.zeros((height, width, 3), np.uint8)
    canvas[y : y + texture.shape[0], x : x + texture.shape[1]] = texture
    return canvas


def _over(background: Image, colour: Image, alpha: np.ndarray) -> Image:
    """``colour`` over ``background`` with ``alpha``; exact where alpha is 0 or 1."""
    a = alpha[..., None]
    blended = colour.astype(np.float32) * a + background.astype(np.float32) * (1 - a)
    return np.where(a > 0, np.clip(np.rint(blended), 0, 255), background).astype(np.uint8)
