"""Reading and writing images: every input becomes upright 8-bit RGB, every write is atomic."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import logging
import os
import re
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import numpy as np
from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError

from object_displacement.errors import DisplacementError, WriteError
from object_displacement.types import MAX_MEGAPIXELS, Image, Mask

log = logging.getLogger(__name__)

SAMPLE_PREFIX = "skimage:"
"""``skimage:rocket`` names a photo bundled with scikit-image: a demo needs no download."""

SAMPLES: dict[str, Callable[[Any], Any]] = {
    **{
        name: (lambda data, name=name: getattr(data, name)())
        for name in (
            "astronaut", "brick", "camera", "cat", "cell", "checkerboard", "chelsea", "clock",
            "coffee", "coins", "colorwheel", "grass", "gravel", "horse", "hubble_deep_field",
            "immunohistochemistry", "logo", "microaneurysms", "moon", "page", "retina", "rocket",
            "shepp_logan_phantom", "text",
        )
    },
    "motorcycle_left": lambda data: data.stereo_motorcycle()[0],
    "motorcycle_right": lambda data: data.stereo_motorcycle()[1],
}  # fmt: skip
"""The photos ``skimage:NAME`` may name: scikit-image's bundled 2-D images, nothing else of
``skimage.data`` (some of its functions download data sets or generate arrays)."""

PNG_LEVEL = 1
"""zlib level of the PNGs we write: fast; a run writes several full-size pictures."""

WRITABLE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp"}


def read_image(source: str | os.PathLike[str], max_megapixels: float | None = MAX_MEGAPIXELS) -> Image:
    """Load ``source`` (a path or ``skimage:NAME``) as an upright HxWx3 uint8 RGB array.

    Grayscale, alpha, palette, 16-bit and EXIF-rotated files are normalised rather than
    rejected, because users take photos from everywhere. The size is read from the file's
    header first: a photo above ``max_megapixels`` is refused before it is decoded, since
    a small compressed file can hold an image that fills the machine's memory.
    """
    text = str(source)
    if text.startswith(SAMPLE_PREFIX):
        return _read_sample(text[len(SAMPLE_PREFIX) :])
    path = Path(text)
    check_regular_file(path, "image")
    bound = None if max_megapixels is None else float(max_megapixels)
    try:
        with _pillow_bound(bound), PILImage.open(path) as pil:
            _check_size(path, pil.size, bound)  # header only: nothing decoded yet
            pil.load()
            pil = ImageOps.exif_transpose(pil)
    except PILImage.DecompressionBombError as err:
        raise too_large(path, None, bound) from err
    except UnidentifiedImageError as err:
        raise DisplacementError(
            f"cannot read {path} as an image: not a format (or variant) Pillow reads"
        ) from err
    except (OSError, SyntaxError, ValueError) as err:
        reason = " ".join(str(getattr(err, "strerror", None) or err).replace(str(path), "").split())
        if "truncated" in reason.lower():
            reason = "the file is truncated (a download or copy that did not finish?)"
        raise DisplacementError(f"cannot read {path} as an image: {reason or type(err).__name__}") from err
    return to_rgb(pil)


def check_regular_file(path: Path, what: str) -> None:
    """``path`` is a file that can be read whole: not missing, nor a folder, a pipe, a
    device or a link loop, each said as such."""
    try:
        mode = path.stat().st_mode
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise DisplacementError(f"{what} {path} is a loop of symbolic links") from err
        if err.errno == errno.EACCES:
            raise DisplacementError(f"{what} {path} cannot be read: permission denied") from err
        raise DisplacementError(f"{what} not found: {path}") from err
    if stat.S_ISDIR(mode):
        raise DisplacementError(f"{what} {path} is a folder, not a file")
    if not stat.S_ISREG(mode):
        raise DisplacementError(f"{what} {path} is not a regular file (a pipe or a device?)")


def _check_size(path: Path, size: tuple[int, int], bound: float | None) -> None:
    if bound is not None and size[0] * size[1] > bound * 1e6:
        raise too_large(path, size, bound)


def too_large(path: Path, size: tuple[int, int] | None, bound: float | None) -> DisplacementError:
    """The error for a photo above the ``max_megapixels`` bound, naming the setting."""
    what = f"{size[0]}x{size[1]} ({size[0] * size[1] / 1e6:.3g} MP)" if size else "too large to decode safely"
    return DisplacementError(
        f"image {path} is {what}, above max_megapixels={bound:g}: scale it down, or raise "
        "the bound (e.g. max_megapixels=200) if the machine has the memory"
    )


@contextlib.contextmanager
def _pillow_bound(bound: float | None) -> Iterator[None]:
    """Hand Pillow's decompression-bomb guard over to our header check, which names the
    setting (Pillow's fixed 89 MP warning and 179 MP error would ignore it)."""
    previous = PILImage.MAX_IMAGE_PIXELS
    PILImage.MAX_IMAGE_PIXELS = None
    try:
        yield
    finally:
        PILImage.MAX_IMAGE_PIXELS = previous


def to_rgb(pil: PILImage.Image) -> Image:
    """Convert any Pillow mode to 8-bit RGB; transparency is flattened onto white."""
    if pil.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
        # by the file's type, never by its content (a dark 16-bit photo stays dark):
        # integers are 16-bit (0..65535), floats 0..1
        values = np.asarray(pil, dtype=np.float64)
        scale = 255.0 if pil.mode == "F" else 255.0 / 65535.0
        gray = np.clip(np.rint(np.nan_to_num(values) * scale), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    if pil.mode == "P" or pil.mode in ("LA", "PA") or "transparency" in pil.info:
        pil = pil.convert("RGBA")
    if pil.mode == "RGBA":
        white = PILImage.new("RGBA", pil.size, (255, 255, 255, 255))
        pil = PILImage.alpha_composite(white, pil)
    return np.ascontiguousarray(np.asarray(pil.convert("RGB"), dtype=np.uint8))


def as_image(picture: Any) -> Image:
    """A Pillow image or an array (HxWx3 RGB, HxWx4 RGBA, HxW gray; uint8) as our RGB image.

    What a notebook hands over: the same normalisation a file gets, no guess at the range of
    other dtypes (a float image may be 0..1 or 0..255)."""
    if isinstance(picture, PILImage.Image):
        try:
            return to_rgb(ImageOps.exif_transpose(picture))
        except (ValueError, OSError) as err:  # a mode Pillow cannot convert ("La", "CMYK;16"...)
            raise DisplacementError(
                f"cannot use a Pillow image of mode {picture.mode!r}: convert it first (image.convert('RGB'))"
            ) from err
    array = np.asarray(picture)
    if array.dtype != np.uint8:
        raise DisplacementError(f"an image array must be uint8 (0..255), got {array.dtype}")
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.ndim != 3 or array.shape[2] not in (3, 4) or min(array.shape[:2]) < 1:
        raise DisplacementError(f"an image array must be HxWx3 RGB (or HxWx4, HxW), got shape {array.shape}")
    if array.shape[2] == 4:
        return to_rgb(PILImage.fromarray(array, mode="RGBA"))
    return np.ascontiguousarray(array)


def _read_sample(name: str) -> Image:
    from skimage import data

    loader = SAMPLES.get(name)
    if loader is None:
        raise DisplacementError(
            f"unknown sample image '{name}': skimage: names one of {', '.join(sorted(SAMPLES))}"
        )
    array = np.asarray(loader(data))
    if array.ndim == 2:
        array = np.repeat(array[..., None], 3, axis=2)
    if array.dtype != np.uint8:
        array = (array.astype(np.float64) * 255).clip(0, 255).astype(np.uint8)
    return np.ascontiguousarray(array[..., :3])


def check_writable(path: str | os.PathLike[str]) -> Path:
    """``path`` as a Path, if its suffix names an image format we can write."""
    path = Path(path)
    if path.suffix.lower() not in WRITABLE_SUFFIXES:
        raise DisplacementError(f"cannot write '{path}': use one of {', '.join(sorted(WRITABLE_SUFFIXES))}")
    return path


PROBE_BYTES = 64 * 1024
"""What the pre-check writes (and removes) to see that the disk has room for a run's files."""


def write_target(path: Path) -> Path:
    """Where a write to ``path`` lands: through a symbolic link to the file it names (the
    link stays a link, the file keeps its mode), never onto a device or a pipe."""
    if not path.is_symlink():
        target = path
    else:
        try:
            target = path.resolve(strict=False)
        except (OSError, RuntimeError) as err:  # a loop of links
            raise DisplacementError(f"cannot write {path}: it is a loop of symbolic links") from err
    if target.exists() and not target.is_dir() and not target.is_file():
        raise DisplacementError(f"cannot write {path}: {target} is not a regular file (a device or a pipe)")
    return target


def check_can_write(path: str | os.PathLike[str]) -> Path:
    """Fail now, before any work, if a file could not be written at ``path``.

    Tries what the write will do: create a file in the folder of ``path`` (or, when that
    does not exist yet, in its nearest existing ancestor; nothing is created), so a
    read-only or full file system, or a folder standing at ``path``, costs nothing.
    """
    path = write_target(Path(path))
    if path.is_dir():
        raise DisplacementError(f"cannot write {path}: it is a directory")
    folder = path.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        if not folder.is_dir():
            raise NotADirectoryError(errno.ENOTDIR, f"{folder} is not a directory")
        with tempfile.TemporaryFile(dir=folder, prefix=".probe-") as probe:
            probe.write(bytes(PROBE_BYTES))  # a full disk still makes an empty file
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        raise WriteError(err.errno, f"cannot write {path}: {_reason(err)}") from err
    return path


def write_image(path: str | os.PathLike[str], array: Image | Mask) -> Path:
    """Write an RGB image or a mask to ``path`` whole or not at all (temp file + rename)."""
    path = check_writable(path)
    suffix = path.suffix.lower()
    if array.dtype == np.bool_:
        array = array.astype(np.uint8) * 255
    pil = PILImage.fromarray(np.ascontiguousarray(array))
    # PNG level 1 writes a run's pictures 1.5 s faster than the default 6, about 10 % larger
    options = {"compress_level": PNG_LEVEL} if suffix == ".png" else {}
    with atomic_open(path, "wb") as handle:
        pil.save(handle, format=PILImage.registered_extensions()[suffix], **options)
    return path


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike[str], mode: str = "wb", **kwargs: Any) -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path`` that replaces ``path`` only once it is complete.

    Readers (and a user after a crash) see the old file or the new one, never half of one.
    The file gets the permissions any other tool would give it: those of the file it
    replaces, or 0666 less the umask. Temporaries left by a killed process are removed. A
    write that fails (full disk, read-only file system) raises :class:`WriteError`: one line
    naming the file.
    """
    path = write_target(Path(path))
    tmp: Path | None = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(path.parent)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.{_OWNER}.", suffix=TEMP_SUFFIX, dir=path.parent)
        tmp = Path(name)
        os.fchmod(fd, _mode_for(path))
        with os.fdopen(fd, mode, **kwargs) as handle:
            yield handle
        os.replace(tmp, path)
    except BaseException as err:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        if isinstance(err, OSError) and not isinstance(err, WriteError) and _is_write_failure(err):
            raise WriteError(err.errno, f"cannot write {path}: {_reason(err)}") from err
        raise


TEMP_SUFFIX = ".tmp"
_OWNER = f"{hashlib.blake2b(socket.gethostname().encode(), digest_size=3).hexdigest()}-{os.getpid()}"
"""Temporaries are named ``.NAME.<host>-<pid>.<random>.tmp``, so a later run can tell those
of a process that is gone from those of one still writing (a parallel job, another node)."""
_TEMP = re.compile(r"^\..+\.(?P<host>[0-9a-f]{6})-(?P<pid>\d+)\.[^.]+" + re.escape(TEMP_SUFFIX) + "$")
_SWEPT: set[Path] = set()


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Delete hidden temporaries in ``directory`` that a killed process on this machine left
    behind (once per directory and process); return what was removed."""
    directory = Path(directory)
    key = directory.resolve()
    if key in _SWEPT:
        return []
    _SWEPT.add(key)
    host = _OWNER.split("-")[0]
    removed = []
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            match = _TEMP.match(entry.name)
            if match and match["host"] == host and not _alive(int(match["pid"])):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
    if removed:
        log.info("removed %d temporary file(s) a killed run left in %s", len(removed), directory)
    return removed


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _mode_for(path: Path) -> int:
    try:
        return path.stat().st_mode & 0o7777
    except OSError:
        return 0o666 & ~current_umask()


def current_umask() -> int:
    """The process's umask (read without changing it where Linux allows)."""
    with contextlib.suppress(OSError, ValueError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_WRITE_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}
_WRITE_ERRNOS |= {errno.EISDIR, errno.ENOTDIR}


def _is_write_failure(err: OSError) -> bool:
    return err.errno in _WRITE_ERRNOS or err.errno is None


def _reason(err: OSError) -> str:
    return err.strerror or str(err) or type(err).__name__


def same_file(a: str | os.PathLike[str], b: str | os.PathLike[str]) -> bool:
    """Whether two paths name one file, so an output never overwrites its input."""
    pa, pb = Path(a), Path(b)
    if pa.exists() and pb.exists():
        return os.path.samefile(pa, pb)
    return pa.resolve() == pb.resolve()
