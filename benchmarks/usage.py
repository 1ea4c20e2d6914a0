"""What the benchmarks measure of this process: resident memory and CPU time."""

from __future__ import annotations

import resource


def rss_kib() -> int:
    """Resident set size, in KiB (Linux: ``VmRSS`` of ``/proc/self/status``)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def cpu_seconds(who: int = resource.RUSAGE_SELF) -> float:
    """User plus system CPU time, in seconds."""
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime
