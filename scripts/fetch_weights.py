"""Download what the model components need, for use offline: `make weights` (needs internet).

    python scripts/fetch_weights.py                      # SAM vit_b, CLIP, SDXL and SD inpainting
    python scripts/fetch_weights.py segmenter=sam segmenter.model_type=vit_h

Each argument is a Hydra override; every `group=option` names a component to fetch, and
the rest apply to all of them. SAM checkpoints go to `paths.weights_dir` (data/weights/),
CLIP and diffusion models to the Hugging Face cache (~/.cache/huggingface).
"""

import os
import sys
from pathlib import Path

from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from object_displacement.cli import USER_ERROR_EXIT

ROOT = Path(__file__).resolve().parents[1]
GROUPS = ("segmenter", "selector", "inpainter")
DEFAULT = ["segmenter=sam", "selector=clip", "inpainter=sdxl", "inpainter=sd"]


def main(argv: list[str]) -> int:
    os.environ.setdefault("PROJECT_ROOT", str(ROOT))
    choices = [a for a in argv if a.split("=")[0] in GROUPS] or DEFAULT
    settings = [a for a in argv if a not in choices]
    with initialize_config_dir(config_dir=str(ROOT / "conf"), version_base="1.3"):
        for choice in choices:
            group = choice.split("=")[0]
            own = [s for s in settings if s.startswith(f"{group}.")]
            component = instantiate(compose(config_name="displace", overrides=[choice, *own])[group])
            if not hasattr(component, "fetch"):
                print(f"{choice}: needs no weights")
                continue
            try:
                print(component.fetch(), flush=True)
            except Exception as err:  # network, disk, hub: the user needs the reason, not a trace
                print(f"error: could not fetch {choice}: {err}".splitlines()[0], file=sys.stderr)
                return USER_ERROR_EXIT
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
