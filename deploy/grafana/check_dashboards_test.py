"""The checker finds each kind of problem, and the repo's dashboards have none."""

import copy
import json
import os
from pathlib import Path
from typing import Any

import pytest

from deploy.grafana import check_dashboards

DASHBOARDS = Path(os.path.dirname(os.path.abspath(__file__))) / "dashboards"


PANEL = {
    "id": 1,
    "title": "p",
    "datasource": {"uid": "prometheus"},
    "targets": [{"expr": "up"}],
}
# One broken dashboard set per kind of problem the checker finds.
BROKEN: dict[str, dict[str, Any]] = {
    "duplicate uid": {
        "a.json": {"uid": "x", "panels": [PANEL]},
        "b.json": {"uid": "x", "panels": [PANEL]},
    },
    "duplicate panel id": {"a.json": {"uid": "x", "panels": [PANEL, PANEL]}},
    "other datasource": {
        "a.json": {"uid": "x", "panels": [{**PANEL, "datasource": {"uid": "loki"}}]}
    },
    "no expr": {"a.json": {"uid": "x", "panels": [{**PANEL, "targets": [{"refId": "A"}]}]}},
    "no panels": {"a.json": {"uid": "x", "panels": []}},
}


@pytest.fixture
def dashboards() -> dict[str, Any]:
    """The repo's dashboards, by file name."""
    return check_dashboards.load(DASHBOARDS)


def test_repo_dashboards_are_well_formed(dashboards: dict[str, Any]) -> None:
    assert set(dashboards) == {"service.json", "overview.json"}
    assert check_dashboards.structure_problems(dashboards) == []


@pytest.mark.parametrize("broken", BROKEN.values(), ids=BROKEN.keys())
def test_each_problem_is_found(broken: dict[str, Any]) -> None:
    assert check_dashboards.structure_problems(copy.deepcopy(broken))


def test_grafana_variables_are_substituted() -> None:
    dashboards = {"a.json": {"panels": [{"title": "t", "targets": [
        {"refId": "A", "expr": "rate(x[$__rate_interval])"}]}]}}  # fmt: skip
    assert check_dashboards.queries(dashboards)[0][1] == "rate(x[1m])"


def test_custom_variables_expand_to_every_value() -> None:
    dashboards = {"a.json": {
        "templating": {"list": [{"name": "job", "type": "custom", "query": "go, py"}]},
        "panels": [{"title": "t", "targets": [
            {"refId": "A", "expr": 'up{job="$job"}'}]}]}}  # fmt: skip
    assert [expr for _, expr in check_dashboards.queries(dashboards)] == [
        'up{job="go"}',
        'up{job="py"}',
    ]


def test_every_query_is_valid_json_round_trip(dashboards: dict[str, Any]) -> None:
    for where, expr in check_dashboards.queries(dashboards):
        assert json.loads(json.dumps(expr)) == expr, where
