"""py_service.multiproc_dir's server hooks on a real directory, the environment left out."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest

from py_service.multiproc_dir import MultiprocDir

SERVER = SimpleNamespace()  # gunicorn's Arbiter: the hooks take it and need nothing from it


@pytest.fixture(autouse=True)
def no_multiproc_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The hooks must use the path they are given: prometheus_client falls back to this variable.
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)


def names(directory: Path) -> set[str]:
    return {path.name for path in directory.iterdir()}


def test_on_starting_creates_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "run" / "metrics"
    MultiprocDir(directory).on_starting(SERVER)
    assert directory.is_dir()


def test_on_starting_removes_an_earlier_runs_value_files_only(tmp_path: Path) -> None:
    for name in ("counter_41.db", "histogram_41.db", "gauge_livesum_41.db", "notes.txt"):
        (tmp_path / name).touch()

    MultiprocDir(tmp_path).on_starting(SERVER)

    assert names(tmp_path) == {"notes.txt"}


def test_on_starting_names_the_variable_when_the_directory_cannot_be_made(
    tmp_path: Path,
) -> None:
    occupied = tmp_path / "metrics"
    occupied.write_text("a file where the directory should be")

    with pytest.raises(RuntimeError, match=r"PROMETHEUS_MULTIPROC_DIR '.*metrics' cannot be"):
        MultiprocDir(occupied).on_starting(SERVER)


def test_child_exit_drops_the_dead_workers_live_gauges_and_keeps_its_counts(
    tmp_path: Path,
) -> None:
    for name in (
        "counter_41.db",
        "histogram_41.db",
        "gauge_all_41.db",
        "gauge_livesum_41.db",
        "gauge_liveall_41.db",
        "gauge_livesum_42.db",
    ):
        (tmp_path / name).touch()

    MultiprocDir(tmp_path).child_exit(SERVER, SimpleNamespace(pid=41))

    assert names(tmp_path) == {
        "counter_41.db",
        "histogram_41.db",
        "gauge_all_41.db",
        "gauge_livesum_42.db",  # a live worker's
    }


def test_on_exit_removes_the_value_files_and_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "metrics"
    hooks = MultiprocDir(directory)
    hooks.on_starting(SERVER)
    (directory / "counter_41.db").touch()

    hooks.on_exit(SERVER)

    assert not directory.exists()


def test_on_exit_keeps_a_directory_holding_anything_else(tmp_path: Path) -> None:
    (tmp_path / "counter_41.db").touch()
    (tmp_path / "notes.txt").touch()

    MultiprocDir(tmp_path).on_exit(SERVER)

    assert names(tmp_path) == {"notes.txt"}
