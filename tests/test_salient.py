"""The learned segmenter: a tiny ONNX network for the plumbing, the real IS-Net (fetched by
`make test` into data/weights) on real photos for what users see."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from skimage import data

from object_displacement.build import build
from object_displacement.errors import DisplacementError
from object_displacement.segmenters.grabcut import GrabCutSegmenter
from object_displacement.segmenters.salient import SalientSegmenter
from object_displacement.segmenters.salient_net import NETS, KnownNet, SalientNet
from object_displacement.selectors.auto import AutoSelector
from object_displacement.selectors.box import BoxSelector
from object_displacement.selectors.point import PointSelector
from object_displacement.types import Candidate, Target
from object_displacement.weights import WeightsMissing
from tests.conftest import ROOT, compose_config
from tests.tiny_models import save_salient

REAL = ROOT / "data" / "weights" / NETS["isnet-imgly"].file
needs_real = pytest.mark.skipif(not REAL.is_file(), reason="`make test` fetches IS-Net first (make salient)")
SELECT = AutoSelector(BoxSelector(), PointSelector())


def iou(a: np.ndarray, b: np.ndarray) -> float:
    return float((a & b).sum() / (a | b).sum())


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    return save_salient(tmp_path_factory.mktemp("salient") / "tiny.onnx")


def tiny_segmenter(path: Path, **settings) -> SalientSegmenter:
    return SalientSegmenter(model=str(path), min_crop=64, grabcut=GrabCutSegmenter(), **settings)


def selected(segmenter: SalientSegmenter, image: np.ndarray, target: Target) -> np.ndarray:
    return SELECT.select(image, segmenter.propose(image, target), target)[0].mask


# --- plumbing, with a tiny network ---------------------------------------------------------


@pytest.mark.parametrize("side", [128, 192])  # traced at 64: runs through the rewritten graph
@pytest.mark.models
def test_the_network_finds_the_boxed_or_clicked_object(tiny, square_scene, side):
    image, truth = square_scene
    segmenter = tiny_segmenter(tiny, side=side)
    assert iou(selected(segmenter, image, Target(box=(25, 35, 65, 75))), truth) > 0.9
    assert iou(selected(segmenter, image, Target(point=(45, 55))), truth) > 0.9


@pytest.mark.models
def test_a_texture_no_network_calls_an_object_gets_grabcuts_mask(tiny):
    # a blue patch is nothing to a network that knows red things: its map is noise,
    # min-max scaled, and GrabCut's colour answer must win the selection
    rng = np.random.default_rng(0)
    image = rng.integers(120, 136, size=(120, 160, 3), dtype=np.uint8)
    image[40:70, 30:60] = np.array([40, 60, 190], np.uint8) + rng.integers(0, 30, (30, 30, 1), dtype=np.uint8)
    truth = np.zeros((120, 160), bool)
    truth[40:70, 30:60] = True
    mask = selected(tiny_segmenter(tiny), image, Target(box=(25, 35, 65, 75)))
    assert iou(mask, truth) > 0.9


@pytest.mark.models
def test_refining_clicks_reuse_the_networks_map(tiny, square_scene, monkeypatch):
    image, _ = square_scene
    runs = []
    segmenter = tiny_segmenter(tiny)
    session = segmenter.net.session()  # loaded once per process: every call below runs this one
    original = session.run
    monkeypatch.setattr(session, "run", lambda *args: runs.append(args) or original(*args))
    segmenter.propose(image, Target(points=((45, 55),), labels=(1,)))
    first = len(runs)
    segmenter.propose(image, Target(points=((45, 55), (100, 100)), labels=(1, 0)))
    segmenter.propose(image, Target(points=((45, 55), (100, 100), (50, 45)), labels=(1, 0, 1)))
    assert first >= 1 and len(runs) == first


def test_missing_weights_say_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))  # nor in rembg's folder
    with pytest.raises(WeightsMissing) as caught:
        SalientSegmenter(model="isnet-general-use", weights_dir=str(tmp_path)).check_weights()
    assert "make weights" in str(caught.value) and "segmenter=grabcut" in str(caught.value)


@pytest.mark.models
def test_a_damaged_network_file_is_one_line_naming_it(tmp_path, square_scene):
    bad = tmp_path / "net.onnx"
    bad.write_bytes(b"not a network" * 100)
    with pytest.raises(DisplacementError) as caught:
        SalientSegmenter(model=str(bad)).propose(square_scene[0], Target(box=(25, 35, 65, 75)))
    assert str(bad) in str(caught.value)


@pytest.mark.skipif(shutil.which("npm") is None, reason="needs npm")
@pytest.mark.models
@pytest.mark.slow
def test_a_network_shipped_as_npm_chunks_is_joined_checked_and_loads(
    tiny, tmp_path, monkeypatch, square_scene
):
    # the package layout of @imgly/background-removal-data: hash-named chunks listed in
    # dist/resources.json, packed by the real npm (from a folder: no registry needed)
    package = tmp_path / "package"
    (package / "dist").mkdir(parents=True)
    blob = tiny.read_bytes()
    cut = len(blob) // 3
    chunks = []
    for i, (start, end) in enumerate([(0, cut), (cut, 2 * cut), (2 * cut, len(blob))]):
        (package / "dist" / f"chunk{i}").write_bytes(blob[start:end])
        chunks.append({"hash": f"chunk{i}", "offsets": [start, end]})
    resources = {"/models/tiny": {"chunks": chunks, "size": len(blob), "mime": "application/octet-stream"}}
    (package / "dist" / "resources.json").write_text(json.dumps(resources))
    (package / "package.json").write_text(json.dumps({"name": "tiny-net", "version": "1.0.0"}))
    known = KnownNet(
        "tiny.onnx",
        (0.5,) * 3,
        (1.0,) * 3,
        False,
        "test",
        npm=str(package),
        resource="/models/tiny",
        size=len(blob),
    )
    monkeypatch.setitem(NETS, "tiny", known)
    wrong = tmp_path / "wrong"
    monkeypatch.setitem(NETS, "wrong", KnownNet(**{**known.__dict__, "size": len(blob) + 1}))
    with pytest.raises(DisplacementError, match="bytes"):
        SalientNet("wrong", str(wrong)).fetch_weights()
    assert not list(wrong.glob("*"))  # nothing half-written is left to look like a network
    net = SalientNet("tiny", str(tmp_path / "weights"), side=64)
    assert "tiny.onnx" in net.fetch_weights()[0]
    assert "already there" in net.fetch_weights()[0]
    crop = square_scene[0][35:75, 25:65]
    assert net.predict(crop).shape == crop.shape[:2]


# --- the real network on real photos -------------------------------------------------------


@pytest.fixture(scope="module")
def default_segmentation():
    """The default config's segmenter and selector, as the CLI builds them."""
    cfg = compose_config(["logger=none"])
    return build(cfg.segmenter, object), build(cfg.selector, object)


def default_mask(default_segmentation, image: np.ndarray, target: Target) -> np.ndarray:
    segmenter, selector = default_segmentation
    return selector.select(image, segmenter.propose(image, target), target)[0].mask


@needs_real
@pytest.mark.models
def test_the_default_keeps_the_cups_red_body_that_grabcut_left_on_the_saucer(default_segmentation):
    image = data.coffee()
    mask = default_mask(default_segmentation, image, Target(box=(170, 10, 420, 300)))
    assert mask[240, 300] and mask[270, 240]  # the red body below the rim, the handle's root
    assert mask[100, 250]  # the crema inside
    assert not mask[20, 400]  # the table behind


@needs_real
@pytest.mark.models
def test_the_default_takes_the_whole_motorcycle_and_not_the_floor(default_segmentation):
    image = data.stereo_motorcycle()[0]
    mask = default_mask(default_segmentation, image, Target(box=(95, 60, 720, 440)))
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    assert cols[0] < 110 and 678 <= cols[-1] <= 692 and rows[-1] > 420  # tail light to front tyre (683)
    assert not mask[460, 300] and not mask[130, 600]  # the floor, the shelf behind


@needs_real
@pytest.mark.models
def test_a_point_on_the_cameramans_coat_selects_the_man(default_segmentation):
    image = np.stack([data.camera()] * 3, axis=-1)
    mask = default_mask(default_segmentation, image, Target(point=(200, 250)))
    assert mask[100, 180] and mask[300, 250]  # his head, his coat
    assert not mask[200, 450] and not mask[50, 300]  # the horizon, the sky


@needs_real
@pytest.mark.models
def test_a_click_off_the_object_takes_the_saucer_away(default_segmentation):
    image = data.coffee()
    both = default_mask(default_segmentation, image, Target(point=(250, 100)))
    assert both[250, 450]  # one click: the cup on its saucer, as the network sees them
    cup = default_mask(default_segmentation, image, Target(points=((250, 100), (120, 250)), labels=(1, 0)))
    assert cup[100, 250] and not cup[250, 120] and not cup[250, 450]
    assert cup.sum() < 0.5 * both.sum()


@needs_real
@pytest.mark.models
def test_a_small_object_gets_context_around_it():
    # a 22x17 px red box on the brick texture: the crop's smallest side keeps surroundings
    image = np.ascontiguousarray(np.stack([data.brick()] * 3, axis=-1)[:256, :256])
    image[100:117, 100:122] = (200, 40, 40)
    truth = np.zeros(image.shape[:2], bool)
    truth[100:117, 100:122] = True
    segmenter = SalientSegmenter(weights_dir=str(REAL.parent), grabcut=GrabCutSegmenter())
    assert iou(selected(segmenter, image, Target(box=(96, 96, 126, 121))), truth) > 0.85


@pytest.mark.slow
def test_missing_weights_are_one_line_from_the_cli(tmp_path):
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "displace.py"),
            "segmenter.model=isnet-general-use",  # the checkout holds isnet-imgly's file
            f"segmenter.weights_dir={tmp_path}",
            "logger=none",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={**os.environ, "U2NET_HOME": str(tmp_path), "HF_HUB_OFFLINE": "1"},
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert lines[0].startswith("error:") and "make weights" in lines[0] and "segmenter=grabcut" in lines[0]


def test_the_box_selector_trusts_the_segmenters_score_between_near_equal_fits():
    # the learned mask of a cup fits the box a little less than GrabCut's cup-and-saucer
    # blob: IoU alone picked the blob; within `tolerance` the segmenter's score decides
    mask = np.zeros((100, 100), bool)
    cup, blob = mask.copy(), mask.copy()
    cup[21:80, 22:78] = True
    blob[20:80, 20:80] = True
    candidates = [Candidate(blob, score=0.2, source="grabcut"), Candidate(cup, score=0.9, source="salient")]
    ranked = BoxSelector(tolerance=0.1).select(
        np.zeros((100, 100, 3), np.uint8), candidates, Target(box=(20, 20, 80, 80))
    )
    assert ranked[0].source == "salient" and ranked[0].score == pytest.approx(56 * 59 / 3600)
    far = [Candidate(blob, score=0.2), Candidate(cup[:, :] & (np.arange(100) < 40)[None, :], score=0.9)]
    assert (
        BoxSelector().select(np.zeros((100, 100, 3), np.uint8), far, Target(box=(20, 20, 80, 80)))[0].score
        == 1.0
    )


@pytest.mark.models
def test_the_networks_soft_map_is_the_objects_edge(tiny, square_scene):
    from object_displacement.matting.salient import SalientMatting

    image, truth = square_scene
    matte = SalientMatting(model=str(tiny), side=128)(image, truth)
    assert (matte.alpha[42:68, 32:58] == 1).all() and (matte.alpha[:30] == 0).all()
    band = (matte.alpha > 0) & (matte.alpha < 1)
    assert band.any() and not band[45:65, 35:55].any()  # soft only near the edge
    np.testing.assert_array_equal(matte.foreground, image)


@pytest.mark.parametrize(
    "setting, message",
    [
        ({"side": 100}, "multiple of 32"),
        ({"threshold": 2.0}, "between 0 and 1"),
        ({"point_scales": (0.0, 2.0)}, "fractions in (0, 1]"),
        ({"threads": -1}, "one per core"),
    ],
)
def test_settings_out_of_range_say_which_and_why(setting, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        SalientSegmenter(**setting)
