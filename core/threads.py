"""How many CPU threads torch may use: the cores this process may run on, minus the busy ones.

torch's default is the machine's core count, whatever the process is allowed or the machine is
doing. On a shared 2-core machine under load that oversubscribes the cores: a MiniLM training step
took 26 s with the default threads against 3 s with one. So a cycle sets the threads itself:

1. ``TUNELOOP_THREADS`` (environment) when set: the operator knows best;
2. else the trainer's ``threads`` option, when the config sets one;
3. else the usable cores (``os.sched_getaffinity``, capped by a cgroup CPU quota, as a container
   has) minus the cores other processes keep busy (the 1-minute load average), at least 1.

torch is imported only when this runs (from the trainers), never at CLI start-up.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

ENVIRONMENT = "TUNELOOP_THREADS"
CGROUP_CPU_MAX = Path("/sys/fs/cgroup/cpu.max")


def usable_cores() -> int:
    """The cores this process may run on: its CPU affinity, capped by a cgroup v2 quota."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not on Linux
        cores = os.cpu_count() or 1
    try:
        quota, period = CGROUP_CPU_MAX.read_text().split()[:2]
        if quota != "max":
            cores = min(cores, max(1, math.floor(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cores)


def busy_cores() -> int:
    """Cores other processes keep busy: the 1-minute load average, rounded down (0 if unknown)."""
    try:
        return int(os.getloadavg()[0])
    except (AttributeError, OSError):
        return 0


def chosen_threads(requested: int | None = None) -> tuple[int, str]:
    """The thread count and why: the environment, the config, or the free usable cores."""
    value = os.environ.get(ENVIRONMENT, "").strip()
    if value:
        try:
            number = int(value)
        except ValueError:
            number = 0
        if number < 1:
            from tuneloop.errors import TuneloopError

            raise TuneloopError(f"{ENVIRONMENT}={value!r}: give a whole number of threads, 1 or "
                                f"more")
        return number, ENVIRONMENT
    if requested is not None:
        return requested, "config"
    cores = usable_cores()
    return max(1, cores - busy_cores()), f"{cores} usable cores, load {busy_cores()}"


def configure(requested: int | None = None) -> int:
    """Set torch's intra-op threads (see the module docstring); returns the number set."""
    import torch

    threads, _ = chosen_threads(requested)
    if torch.get_num_threads() != threads:
        torch.set_num_threads(threads)
    return threads
