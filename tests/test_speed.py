"""The fast path's promises that are not timings: what each shortcut must keep."""

import struct

import numpy as np

from object_displacement.io import write_image


def idat_zlib_level(path) -> int:
    """The FLEVEL field of the first IDAT chunk's zlib header: 0 fastest .. 3 smallest."""
    data = path.read_bytes()
    at = 8
    while at < len(data):
        (length,) = struct.unpack(">I", data[at : at + 4])
        kind = data[at + 4 : at + 8]
        if kind == b"IDAT":
            return data[at + 9] >> 6
        at += 12 + length
    raise AssertionError("no IDAT chunk")


def test_pngs_are_written_with_the_fastest_zlib_level(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (64, 80, 3), dtype=np.uint8)
    path = write_image(tmp_path / "out.png", image)
    assert idat_zlib_level(path) == 0


def ellipse_scene(width: int = 1000, height: int = 800):
    import cv2

    rng = np.random.default_rng(2)
    image = (rng.normal(0, 6, (height, width, 3)) + np.array((90, 140, 90))).clip(0, 255).astype(np.uint8)
    truth = np.zeros((height, width), np.uint8)
    cv2.ellipse(truth, (500, 400), (230, 160), 20, 0, 360, 1, -1)
    truth = truth.astype(bool)
    image[truth] = (
        (rng.normal(0, 6, (height, width, 3)) + np.array((200, 60, 50))).clip(0, 255).astype(np.uint8)
    )[truth]
    return image, truth


def iou(a, b) -> float:
    return float((a & b).sum() / (a | b).sum())


def test_grabcut_at_a_working_resolution_keeps_a_full_resolution_edge():
    from object_displacement.segmenters.grabcut import GrabCutSegmenter
    from object_displacement.types import Target

    image, truth = ellipse_scene()
    box = (250, 220, 750, 580)
    small = GrabCutSegmenter(work_side=256).propose(image, Target(box=box))[0].mask
    assert iou(small, truth) > 0.99
    # the edge is where the colours change, not on the working grid's 4-px staircase
    wrong = small ^ truth
    assert wrong.sum() < 0.2 * (truth ^ cv2_eroded(truth)).sum()


def cv2_eroded(mask):
    import cv2

    return cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)


def test_upsampled_masks_snap_to_the_photos_edges():
    import cv2

    from object_displacement.segmenters.edges import upsample_mask

    image, truth = ellipse_scene()
    small = cv2.resize(truth.astype(np.uint8), (250, 200), interpolation=cv2.INTER_AREA) > 0
    plain = cv2.resize(small.astype(np.uint8), (1000, 800), interpolation=cv2.INTER_NEAREST).astype(bool)
    refined = upsample_mask(small, image)
    assert (refined ^ truth).sum() < 0.25 * (plain ^ truth).sum()
