"""Who made a thing a test leaves in a shared engine (a container, a network), and whether that
test still runs: what lets a test remove what another run left when it was killed outright, and
never what a live run still uses. And SIGTERM as Ctrl-C, so that a stopped test's teardowns run.

Standard library only (support.py says why).
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

# On what a test run makes in the engine: the owner_id of the process that made it.
OWNER_LABEL = "org.cache-platform.test-owner"


def owner_id(pid: int | None = None) -> str | None:
    """`<boot id>/<pid>/<start time>`: one process for as long as the machine runs, even once its
    pid is reused; None for a pid that is gone. This process's without one."""
    pid = os.getpid() if pid is None else pid
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return None
    start_time = stat.rpartition(")")[2].split()[19]  # field 22 of proc_pid_stat(5)
    return f"{boot_id()}/{pid}/{start_time}"


def boot_id() -> str:
    return Path("/proc/sys/kernel/random/boot_id").read_text().strip()


def owner_alive(owner: str) -> bool:
    """Whether the process `owner` (an owner_id) still runs: False once it exited, once its pid
    belongs to another process, and after a reboot."""
    _, pid, _ = owner.split("/")
    return pid.isdigit() and owner_id(int(pid)) == owner


@contextlib.contextmanager
def sigterm_raises_keyboard_interrupt() -> Iterator[None]:
    """SIGTERM (Bazel stopping a test that timed out; it sends SIGKILL 15 s later) as Ctrl-C: the
    teardowns run. A second SIGTERM is ignored, so that it cannot cut the teardown short."""

    def interrupt(signum: int, frame: FrameType | None) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        raise KeyboardInterrupt(f"signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
