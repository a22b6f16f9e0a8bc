"""Rebuild a sharded dataset sweep's summary.csv from its shards' records:
`python scripts/summarize.py SWEEP_DIR` (after a shard died, or was rerun alone)."""

import sys

from object_displacement.shard_summary import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
