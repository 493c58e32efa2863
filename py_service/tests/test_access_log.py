from __future__ import annotations

import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from py_service.access_log import SLOW_REQUEST_S, SampledAccessLogger, sample_from_env

FAST = datetime.timedelta(milliseconds=3)
SLOW = datetime.timedelta(seconds=SLOW_REQUEST_S)


def logged_statuses(
    monkeypatch: pytest.MonkeyPatch, sample: str, requests: list[tuple[Any, datetime.timedelta]]
) -> list[Any]:
    """The statuses of the requests the logger passes on to gunicorn's own access()."""
    passed: list[Any] = []

    def access(self: Any, resp: Any, req: Any, environ: Any, took: Any) -> None:
        passed.append(resp.status_code)

    monkeypatch.setattr(glogging.Logger, "access", access)
    monkeypatch.setenv("GUNICORN_ACCESS_LOG_SAMPLE", sample)
    logger = SampledAccessLogger(Config())
    for status, took in requests:
        logger.access(SimpleNamespace(status_code=status), None, {}, took)
    return passed


@pytest.mark.parametrize(
    ("sample", "want"),
    [
        ("1", [200] * 10),  # the default: every request
        ("5", [200, 200]),  # the 5th and the 10th
        ("0", []),
    ],
)
def test_successes_are_sampled_one_in_n(
    monkeypatch: pytest.MonkeyPatch, sample: str, want: list[int]
) -> None:
    assert logged_statuses(monkeypatch, sample, [(200, FAST)] * 10) == want


def test_failures_slow_requests_and_unknown_statuses_are_always_logged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    requests = [(404, FAST), (500, FAST), (200, SLOW), (None, FAST), (304, FAST)]
    assert logged_statuses(monkeypatch, "0", requests) == [404, 500, 200, None]


@pytest.mark.parametrize("raw", ["-1", "x", "1.5"])
def test_a_bad_sample_is_a_clear_error(raw: str) -> None:
    with pytest.raises(ValueError, match="GUNICORN_ACCESS_LOG_SAMPLE must be an integer >= 0"):
        sample_from_env({"GUNICORN_ACCESS_LOG_SAMPLE": raw})


def test_unset_or_blank_means_every_request() -> None:
    assert sample_from_env({}) == 1
    assert sample_from_env({"GUNICORN_ACCESS_LOG_SAMPLE": " "}) == 1
