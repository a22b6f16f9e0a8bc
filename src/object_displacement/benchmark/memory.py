"""Peak memory of the current process, as benchmarks report it."""

from __future__ import annotations

import resource
from pathlib import Path


def peak_rss_mb() -> int:
    """Peak resident memory in MB. VmHWM, not ru_maxrss: Linux carries ru_maxrss over fork
    and exec, so a child process would report its parent's peak if that was higher."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024)
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
