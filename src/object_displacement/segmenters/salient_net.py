"""The salient-object network (IS-Net, BiRefNet) as an ONNX file run by onnxruntime.

These are the models rembg runs (its sessions ``isnet-general-use``, ``birefnet-general``,
``birefnet-general-lite``), with the same files and preprocessing. We call onnxruntime
ourselves because rembg's sessions resize every input to 1024x1024, four times the pixels
of the 512 px we run at; and because machines that reach only package
registries get IS-Net from IMG.LY's npm package, which rembg cannot read.

The networks were exported for one input size; :func:`resizable` rewrites their fixed
upsampling sizes as scale factors, so any multiple of 32 runs.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import shutil
import subprocess
import tarfile
import tempfile
import threading
import urllib.request
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from object_displacement.errors import DisplacementError
from object_displacement.types import Image
from object_displacement.weights import FETCH_COMMAND, ModelWeights, WeightsMissing, load_once

log = logging.getLogger(__name__)

Alpha = npt.NDArray[np.float32]

IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
DIS_MEAN, DIS_STD = (0.5, 0.5, 0.5), (1.0, 1.0, 1.0)
REMBG_RELEASES = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/"


@dataclass(frozen=True)
class KnownNet:
    """A released network: its file, how it reads a photo and where it comes from."""

    file: str
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    logits: bool
    """Whether the output is a logit (BiRefNet) rather than a probability (IS-Net)."""
    licence: str
    url: str = ""
    md5: str = ""
    npm: str = ""
    """``package@version`` of an npm package that ships the file as chunks."""
    resource: str = ""
    """The file's entry in that package's ``dist/resources.json``."""
    size: int = 0


NETS = {
    # IMG.LY's IS-Net (fp16 weights, fp32 input and output), the only copy a machine that
    # reaches package registries alone can get. Their package is AGPL-3.0.
    "isnet-imgly": KnownNet(
        "isnet-imgly-fp16.onnx",
        DIS_MEAN,
        DIS_STD,
        logits=False,
        licence="AGPL-3.0 (IMG.LY's @imgly/background-removal-data)",
        npm="@imgly/background-removal-data@1.4.5",
        resource="/models/medium",
        size=88_188_479,
    ),
    "isnet-general-use": KnownNet(
        "isnet-general-use.onnx",
        DIS_MEAN,
        DIS_STD,
        logits=False,
        licence="Apache-2.0 (IS-Net, DIS)",
        url=REMBG_RELEASES + "isnet-general-use.onnx",
        md5="fc16ebd8b0c10d971d3513d564d01e29",
    ),
    "birefnet-general": KnownNet(
        "birefnet-general.onnx",
        IMAGENET_MEAN,
        IMAGENET_STD,
        logits=True,
        licence="MIT (BiRefNet)",
        url=REMBG_RELEASES + "BiRefNet-general-epoch_244.onnx",
        md5="7a35a0141cbbc80de11d9c9a28f52697",
    ),
    "birefnet-general-lite": KnownNet(
        "birefnet-general-lite.onnx",
        IMAGENET_MEAN,
        IMAGENET_STD,
        logits=True,
        licence="MIT (BiRefNet)",
        url=REMBG_RELEASES + "BiRefNet-general-bb_swin_v1_tiny-epoch_232.onnx",
        md5="4fab47adc4ff364be1713e97b7e66334",
    ),
}
"""The networks ``model`` may name; anything else is a path to an ONNX file."""

SEEN = 0.5
"""A map whose peak stays below this holds no object (IS-Net peaks at 0.01 to 0.07 on grass,
gravel or a flat grey, at 1.0 on a photo with an object); only a map that has one is
min-max scaled, as rembg scales every map.

"""

CHECKOUT_WEIGHTS = Path(__file__).resolve().parents[3] / "data" / "weights"
"""``data/weights`` of the checkout this package runs from (an editable install)."""

SIDE_STEP = 32
"""The networks downsample five times by two: an input side must be a multiple of this."""


class SalientNet(ModelWeights):
    """One salient-object network: resolves its file, loads it once per process and maps
    an RGB crop to a soft object map (0..1, the crop's size).

    Args:
        model: a name from :data:`NETS` or the path of an ONNX file with one
            ``1x3xHxW`` input and a ``1x1xHxW`` map as its first output.
        weights_dir: where named networks are kept (``make weights`` puts them there);
            rembg's own folder (``U2NET_HOME``, ``~/.u2net``) is looked in too.
        side: the network's input side in pixels (a multiple of 32): the crop is resized
            to ``side x side``. Cost grows with its square.
        threads: onnxruntime's threads (0: one per core).
        mean, std: the input normalisation of a custom file (``null``: IS-Net's).
        logits: whether a custom file outputs logits (BiRefNet) rather than probabilities.
        cached: how many maps (per photo and crop) are kept, so clicks that refine a
            selection reuse the network's work.
    """

    def __init__(
        self,
        model: str = "isnet-imgly",
        weights_dir: str = "data/weights",
        side: int = 512,
        threads: int = 0,
        mean: tuple[float, float, float] | None = None,
        std: tuple[float, float, float] | None = None,
        logits: bool = False,
        cached: int = 16,
    ) -> None:
        if side < SIDE_STEP or side % SIDE_STEP:
            raise ValueError(f"segmenter.side must be a positive multiple of {SIDE_STEP}, got {side}")
        if threads < 0:
            raise ValueError(f"segmenter.threads must be 0 (one per core) or more, got {threads}")
        self.model = str(model)
        self.known = NETS.get(self.model)
        self.file = None if self.known else Path(self.model).expanduser().absolute()
        self.weights_dir = Path(weights_dir).expanduser().absolute()  # a pipeline outlives a chdir
        self.side = side
        self.threads = threads
        known = self.known
        self.mean = np.asarray(mean or (known.mean if known else DIS_MEAN), np.float32)
        self.std = np.asarray(std or (known.std if known else DIS_STD), np.float32)
        self.logits = known.logits if known else logits
        self.cached = cached
        self._maps: OrderedDict[str, Alpha] = OrderedDict()
        self._lock = threading.Lock()

    # -- weights -------------------------------------------------------------------------

    @property
    def path(self) -> Path:
        """Where the file is: a custom path, else the first of ``weights_dir``, the
        checkout's ``data/weights`` (where `make` puts it, for the API run from elsewhere)
        and rembg's folder that holds it; ``weights_dir``'s when none does."""
        if self.file is not None:
            return self.file
        assert self.known is not None
        rembg_home = Path(os.environ.get("U2NET_HOME", "~/.u2net")).expanduser()
        places = [self.weights_dir / self.known.file, CHECKOUT_WEIGHTS / self.known.file]
        if self.known.url:
            places.append(rembg_home / self.known.url.rsplit("/", 1)[-1])
        return next((p for p in places if p.is_file()), places[0])

    def check_weights(self) -> None:
        """Fail at once, before any start-up, when the file is not on disk."""
        if not self.path.is_file():
            if self.file is not None:
                raise WeightsMissing(
                    f"the salient-object network {self.path} does not exist: set segmenter.model"
                )
            raise WeightsMissing(
                f"the {self.model} weights are not in {self.weights_dir}: run `{FETCH_COMMAND}` "
                "(or `python scripts/fetch_weights.py segmenter=salient`), set "
                "segmenter.model=/path/to.onnx, or use segmenter=grabcut (no weights)"
            )

    def fetch_weights(self) -> list[str]:
        """Put the named network in ``weights_dir``: from rembg's release (needs GitHub) or,
        for ``isnet-imgly``, from the npm registry with ``npm pack``."""
        known = self.known
        if known is None:
            return [f"{self.model}: a local file, nothing to fetch"]
        path = self.weights_dir / known.file
        if path.is_file():
            return [f"{self.model}: {path} (already there)"]
        data = _from_npm(known) if known.npm else _from_url(known)
        path.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path.parent, suffix=".part", delete=False) as part:
            part.write(resizable(data))
        Path(part.name).chmod(0o644)
        Path(part.name).replace(path)  # a cut download never looks like a network
        return [f"{self.model}: {path} ({known.licence})"]

    def load(self) -> Any:
        """The onnxruntime session (see :meth:`session`)."""
        return self.session()

    def session(self) -> Any:
        """The onnxruntime session, loaded once per process (and per thread count)."""
        self.check_weights()
        path = self.path.resolve()
        stat = path.stat()
        key = ("salient", str(path), stat.st_size, stat.st_mtime_ns, self.threads, self.side)
        return load_once(key, lambda: self._load(path))

    def _load(self, path: Path) -> Any:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = self.threads
        options.inter_op_num_threads = 1
        # idle threads sleep instead of spinning: on a shared machine spinning burns CPU
        # seconds for nothing (2.3 against 1.4 CPU s a 512 px map here)
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # its notices are not the user's business
        data = path.read_bytes()
        try:
            session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
            shape = session.get_inputs()[0].shape
            if shape[2:] != [self.side, self.side] and all(isinstance(s, int) for s in shape[2:]):
                session = ort.InferenceSession(resizable(data), options, providers=["CPUExecutionProvider"])
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph/... for a bad file
            raise DisplacementError(
                f"{path} is not a readable ONNX network ({type(err).__name__}): fetch it again with "
                f"`{FETCH_COMMAND}` or set segmenter.model"
            ) from err
        return session

    # -- inference -----------------------------------------------------------------------

    def predict(self, crop: Image) -> Alpha:
        """The soft object map of ``crop`` (HxW float32, 0..1, min-max scaled; zero where
        the network sees no object). Maps are cached per crop at the network's size (a
        12 MP crop's own would be 48 MB each), so refining clicks skip the network."""
        key = hashlib.blake2b(crop.tobytes(), digest_size=16).hexdigest() + str(crop.shape)
        with self._lock:
            small = self._maps.get(key)
            if small is not None:
                self._maps.move_to_end(key)
        if small is None:
            small = self._run(crop)
            with self._lock:
                self._maps[key] = small
                while len(self._maps) > self.cached:
                    self._maps.popitem(last=False)
        height, width = crop.shape[:2]
        return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR).clip(0.0, 1.0)

    def _run(self, crop: Image) -> Alpha:
        """The network's map of ``crop``, at ``side x side``."""
        session = self.session()
        small = cv2.resize(crop, (self.side, self.side), interpolation=cv2.INTER_AREA)
        x = (small.astype(np.float32) / 255.0 - self.mean) / self.std
        feed = {session.get_inputs()[0].name: np.ascontiguousarray(x.transpose(2, 0, 1)[None])}
        try:
            out = session.run([session.get_outputs()[0].name], feed)[0]
        except Exception as err:  # a network exported for one size only
            raise DisplacementError(
                f"the salient-object network does not run at {self.side} px ({type(err).__name__}): "
                "set segmenter.side to the size it was exported for (1024)"
            ) from err
        pred = np.asarray(out, np.float32).reshape(out.shape[-2:])
        if self.logits:
            pred = 1.0 / (1.0 + np.exp(-pred))
        low, high = float(pred.min()), float(pred.max())
        if high < SEEN:  # nothing here is an object to it: scaling would make noise one
            return np.zeros_like(pred)
        return (pred - low) / (high - low)


def resizable(data: bytes) -> bytes:
    """The ONNX model ``data`` with any input size: the upsampling steps of a graph traced at
    one size hold that size's output shapes as constants; they become scale factors, which
    hold for every input whose side is a multiple of :data:`SIDE_STEP`."""
    import onnx
    from onnx import numpy_helper, shape_inference

    model = onnx.load_from_string(data)
    inputs = model.graph.input[0].type.tensor_type.shape.dim
    if inputs[2].dim_param and inputs[3].dim_param:
        return data  # exported with a dynamic size already
    inferred = shape_inference.infer_shapes(model, data_prop=True).graph
    shapes = {
        info.name: [d.dim_value for d in info.type.tensor_type.shape.dim]
        for info in [*inferred.value_info, *inferred.input, *inferred.output]
    }
    for node in model.graph.node:
        if node.op_type != "Resize" or len(node.input) < 4 or not node.input[3]:
            continue
        source, result = shapes.get(node.input[0]), shapes.get(node.output[0])
        if not source or not result or 0 in source or 0 in result:
            raise DisplacementError(f"cannot make the network's {node.name} work at other sizes")
        scales = np.asarray(result, np.float64) / np.asarray(source, np.float64)
        name = f"{node.name}/scales"
        model.graph.initializer.append(numpy_helper.from_array(scales.astype(np.float32), name))
        node.input[2] = name
        del node.input[3]
    del model.graph.value_info[:]
    del model.graph.output[1:]  # the side outputs (deep supervision) are never read
    for dims in (inputs, model.graph.output[0].type.tensor_type.shape.dim):
        dims[2].dim_param, dims[3].dim_param = "height", "width"
    return model.SerializeToString()


def _from_url(known: KnownNet) -> bytes:
    with urllib.request.urlopen(known.url, timeout=60) as response:
        data = response.read()
    if hashlib.md5(data).hexdigest() != known.md5:
        raise DisplacementError(f"{known.url} came back damaged (md5 differs): run `{FETCH_COMMAND}` again")
    return data


def _from_npm(known: KnownNet) -> bytes:
    """The file as ``npm pack`` brings it: the package's chunks, joined in order."""
    npm = shutil.which("npm")
    if npm is None:
        raise DisplacementError(f"fetching {known.file} needs npm (apt-get install npm)")
    with tempfile.TemporaryDirectory() as folder:
        done = subprocess.run(
            [npm, "pack", known.npm, "--pack-destination", folder, "--silent"],
            capture_output=True,
            text=True,
            timeout=900,
        )
        tarballs = list(Path(folder).glob("*.tgz"))
        if done.returncode != 0 or not tarballs:
            reason = (done.stderr.strip().splitlines() or ["no package"])[-1]
            raise DisplacementError(f"npm pack {known.npm} failed: {reason}")
        with tarfile.open(tarballs[0]) as tar:
            resources = json.load(tar.extractfile("package/dist/resources.json"))  # type: ignore[arg-type]
            out = io.BytesIO()
            for chunk in resources[known.resource]["chunks"]:
                out.write(tar.extractfile(f"package/dist/{chunk['hash']}").read())  # type: ignore[union-attr]
    data = out.getvalue()
    if len(data) != known.size:
        raise DisplacementError(f"{known.npm} gave {len(data)} bytes for {known.resource}, not {known.size}")
    return data
