"""Move an object in a photo: `python scripts/displace.py --help` (installed: `displace --help`)."""

import os
from pathlib import Path

from object_displacement.cli import main

os.environ.setdefault("PROJECT_ROOT", str(Path(__file__).resolve().parents[1]))

if __name__ == "__main__":
    main()
