"""ownership's owner ids against real processes, and SIGTERM's teardown in this process."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from tools.testing.python.ownership import (
    boot_id,
    owner_alive,
    owner_id,
    sigterm_raises_keyboard_interrupt,
)


def test_a_live_process_is_its_owner_id_and_alive() -> None:
    with subprocess.Popen(["sleep", "60"]) as process:
        try:
            owner = owner_id(process.pid)
            assert owner is not None
            assert owner.split("/")[:2] == [boot_id(), str(process.pid)]
            assert owner_id(process.pid) == owner  # the same process, the same id
            assert owner_alive(owner)
            assert owner_alive(owner_id())  # this process, by default
        finally:
            process.kill()


def test_an_exited_process_is_no_longer_alive() -> None:
    process = subprocess.Popen(["sleep", "60"])
    owner = owner_id(process.pid)
    process.kill()
    process.wait()
    assert owner is not None
    assert owner_id(process.pid) is None
    assert not owner_alive(owner)


@pytest.mark.parametrize(
    "other",
    [
        "start time",  # the pid reused by a later process
        "boot id",  # the machine rebooted since
    ],
)
def test_a_live_pid_of_another_process_is_not_the_owner(other: str) -> None:
    boot, pid, start_time = owner_id().split("/")
    if other == "start time":
        start_time = str(int(start_time) + 1)
    else:
        boot = "00000000-0000-0000-0000-000000000000"
    assert not owner_alive(f"{boot}/{pid}/{start_time}")


def test_sigterm_interrupts_once_and_the_teardown_runs() -> None:
    previous = signal.getsignal(signal.SIGTERM)
    torn_down = []

    def run_then_tear_down() -> None:
        with sigterm_raises_keyboard_interrupt():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(30)  # interrupted at once
            finally:
                # A second SIGTERM, as the teardown runs: ignored, so it runs to its end.
                os.kill(os.getpid(), signal.SIGTERM)
                torn_down.append(True)

    with pytest.raises(KeyboardInterrupt):
        run_then_tear_down()
    assert torn_down == [True]
    assert signal.getsignal(signal.SIGTERM) == previous
