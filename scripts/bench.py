"""Per-stage wall time and peak memory on a 1024-px photo: `make bench`.

    python scripts/bench.py                 # every case, a table at the end
    python scripts/bench.py sam-prompted    # one case

Model cases use random weights of the real architectures (SAM vit_b, CLIP ViT-B-32),
saved in the released layouts and loaded through the project's loaders: they cost the
same compute as the released ones and need no download. Each case runs in
a fresh process, so its peak memory (max RSS) is its own. Timings include no model load.
"""

import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from object_displacement.benchmark.memory import peak_rss_mb

CASES = {
    "grabcut": "GrabCut on a box (classical segmenter)",
    "patchmatch": "PatchMatch fill of a 260x660 px ellipse (classical inpainter)",
    "sam-automatic": "SAM vit_b automatic mode, 32x32 points (all objects)",
    "sam-prompted": "SAM vit_b prompted by a box (one embedding, 3 masks)",
    "clip-batched": "CLIP ViT-B-32 scoring 64 candidates in one forward pass",
    "clip-per-candidate": "CLIP ViT-B-32 scoring 64 candidates, one forward each",
}
BOX = (300, 180, 760, 1000)


def photo() -> np.ndarray:
    from skimage import data

    return cv2.resize(data.astronaut(), (1024, 1024), interpolation=cv2.INTER_CUBIC)


def candidates(count: int = 64) -> list:
    from object_displacement.types import Candidate

    rng = np.random.default_rng(0)
    out = []
    for _ in range(count):
        x0, y0 = rng.integers(0, 800, size=2)
        w, h = rng.integers(60, 224, size=2)
        mask = np.zeros((1024, 1024), dtype=bool)
        cv2.ellipse(
            mask.view(np.uint8),
            (int(x0 + w // 2), int(y0 + h // 2)),
            (int(w // 2), int(h // 2)),
            0,
            0,
            360,
            1,
            -1,
        )
        out.append(Candidate(mask=mask))
    return out


def save_clip_vit_b_32(folder: Path) -> Path:
    """A random ViT-B-32 in the layout of laion's hub repos: open_clip_config.json + safetensors."""
    import open_clip
    from safetensors.torch import save_file

    model, _, preprocess = open_clip.create_model_and_transforms("ViT-B-32", pretrained=None)
    normalize = preprocess.transforms[-1]
    config = {
        "model_cfg": open_clip.get_model_config("ViT-B-32"),
        "preprocess_cfg": {"mean": list(normalize.mean), "std": list(normalize.std)},
    }
    folder.mkdir(parents=True)
    (folder / "open_clip_config.json").write_text(json.dumps(config))
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()}, folder / "open_clip_model.safetensors"
    )
    return folder


def run_case(name: str) -> dict:
    """Set up, then time the one stage the case measures."""
    from object_displacement.types import Target

    image = photo()
    if name == "grabcut":
        from object_displacement.segmenters.grabcut import GrabCutSegmenter

        stage, seg = "segment", GrabCutSegmenter()
        call = lambda: seg.propose(image, Target(box=BOX))  # noqa: E731
    elif name == "patchmatch":
        from object_displacement.inpainters.patchmatch import PatchMatchInpainter

        mask = np.zeros((1024, 1024), dtype=bool)
        cv2.ellipse(mask.view(np.uint8), (530, 590), (130, 330), 0, 0, 360, 1, -1)
        stage, inp = "inpaint", PatchMatchInpainter()
        call = lambda: inp.inpaint(image, mask)  # noqa: E731
    elif name.startswith("sam"):
        import torch
        from segment_anything.build_sam import _build_sam

        from object_displacement.segmenters.sam import ENCODERS, SamSegmenter

        enc = ENCODERS["vit_b"]
        checkpoint = Path(tempfile.mkdtemp()) / "sam_vit_b_random.pth"
        sam = _build_sam(enc["embed_dim"], enc["depth"], enc["num_heads"], enc["global_attn_indexes"])
        torch.save(sam.state_dict(), checkpoint)
        del sam
        # random weights predict low IoUs; thresholds at 0 keep the full post-processing work
        seg = SamSegmenter(checkpoint=str(checkpoint), pred_iou_thresh=0.0, stability_score_thresh=0.0)
        seg.model()
        target = Target(prompt="person") if name == "sam-automatic" else Target(box=BOX)
        stage = "segment"
        call = lambda: seg.propose(image, target)  # noqa: E731
    else:
        from object_displacement.selectors.clip import ClipSelector

        batch = 256 if name == "clip-batched" else 1
        # saved by another process, so this one's peak memory is the selector's alone
        folder = Path(tempfile.mkdtemp()) / "clip_vit_b_32_random"
        subprocess.run([sys.executable, __file__, "--save-clip", str(folder)], check=True)
        sel = ClipSelector(model=f"local-dir:{folder}", min_score=-1.0, batch_size=batch)
        sel.model()
        cands = candidates()
        stage = "select"
        call = lambda: sel.select(image, cands, Target(prompt="person"))  # noqa: E731
    start = time.perf_counter()
    out = call()
    seconds = time.perf_counter() - start
    count = len(out) if isinstance(out, list) else 1
    return {
        "case": name,
        "stage": stage,
        "seconds": round(seconds, 2),
        "peak_mb": peak_rss_mb(),
        "items": count,
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["--one"]:
        print(json.dumps(run_case(argv[1])))
        return 0
    if argv[:1] == ["--save-clip"]:
        save_clip_vit_b_32(Path(argv[1]))
        return 0
    names = argv or list(CASES)
    unknown = [n for n in names if n not in CASES]
    if unknown:
        print(f"error: unknown case {unknown[0]}: choose from {', '.join(CASES)}", file=sys.stderr)
        return 2
    # torch is imported only in the cases' own processes, so this one stays small
    version = "import torch; print(torch.__version__, torch.get_num_threads())"
    torch_info = subprocess.run(
        [sys.executable, "-c", version], capture_output=True, text=True
    ).stdout.split()
    print(
        f"# {platform.machine()}, {os.cpu_count()} cores, torch {torch_info[0]}, {torch_info[1]} threads, "
        "CPU, 1024x1024 photo, random weights of the real architectures"
    )
    print("| case | what | stage | wall s | peak RSS MB | outputs |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in names:
        proc = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"| {name} | failed: {proc.stderr.strip().splitlines()[-1]} | | | | |", flush=True)
            continue
        r = json.loads(proc.stdout.strip().splitlines()[-1])
        print(
            f"| {name} | {CASES[name]} | {r['stage']} | {r['seconds']} | {r['peak_mb']} | {r['items']} |",
            flush=True,
        )
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
