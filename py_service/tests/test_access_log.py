from __future__ import annotations

import datetime
from types import SimpleNamespace
from typing import Any

import pytest
from gunicorn import glogging
from gunicorn.config import Config

from py_service.access_log import SLOW_REQUEST_S, SampledAccessLogger

FAST = datetime.timedelta(milliseconds=3)
SLOW = datetime.timedelta(seconds=SLOW_REQUEST_S)


def logged_statuses(
    monkeypatch: pytest.MonkeyPatch,
    logger_class: type[SampledAccessLogger],
    requests: list[tuple[Any, datetime.timedelta]],
) -> list[Any]:
    """The statuses of the requests the logger passes on to gunicorn's own access()."""
    passed: list[Any] = []

    def access(self: Any, resp: Any, req: Any, environ: Any, took: Any) -> None:
        passed.append(resp.status_code)

    monkeypatch.setattr(glogging.Logger, "access", access)
    logger = logger_class(Config())
    for status, took in requests:
        logger.access(SimpleNamespace(status_code=status), None, {}, took)
    return passed


@pytest.mark.parametrize(
    ("every", "want"),
    [
        (1, [200] * 10),
        (5, [200, 200]),  # the 5th and the 10th
        (0, []),
    ],
)
def test_successes_are_sampled_one_in_n(
    monkeypatch: pytest.MonkeyPatch, every: int, want: list[int]
) -> None:
    sampled = SampledAccessLogger.sampling(every)
    assert logged_statuses(monkeypatch, sampled, [(200, FAST)] * 10) == want


def test_failures_slow_requests_and_unknown_statuses_are_always_logged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    requests = [(404, FAST), (500, FAST), (200, SLOW), (None, FAST), (304, FAST)]
    sampled = SampledAccessLogger.sampling(0)
    assert logged_statuses(monkeypatch, sampled, requests) == [404, 500, 200, None]


def test_unsampled_it_logs_every_request(monkeypatch: pytest.MonkeyPatch) -> None:
    assert logged_statuses(monkeypatch, SampledAccessLogger, [(200, FAST)] * 3) == [200] * 3


def test_a_negative_sample_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="access log sample must be >= 0, got -1"):
        SampledAccessLogger.sampling(-1)
