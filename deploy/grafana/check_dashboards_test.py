"""The checker finds each kind of problem, and the repo's dashboards have none."""

import copy
import json
import os
import unittest
from pathlib import Path

from deploy.grafana import check_dashboards

DASHBOARDS = Path(os.path.dirname(os.path.abspath(__file__))) / "dashboards"


class CheckDashboardsTest(unittest.TestCase):
    def setUp(self) -> None:
        self.dashboards = check_dashboards.load(DASHBOARDS)

    def test_repo_dashboards_are_well_formed(self) -> None:
        self.assertEqual(set(self.dashboards), {"service.json", "overview.json"})
        self.assertEqual(check_dashboards.structure_problems(self.dashboards), [])

    def test_each_problem_is_found(self) -> None:
        panel = {
            "id": 1,
            "title": "p",
            "datasource": {"uid": "prometheus"},
            "targets": [{"expr": "up"}],
        }
        cases = {
            "duplicate uid": {
                "a.json": {"uid": "x", "panels": [panel]},
                "b.json": {"uid": "x", "panels": [panel]},
            },
            "duplicate panel id": {"a.json": {"uid": "x", "panels": [panel, panel]}},
            "other datasource": {
                "a.json": {"uid": "x", "panels": [{**panel, "datasource": {"uid": "loki"}}]}
            },
            "no expr": {"a.json": {"uid": "x", "panels": [{**panel, "targets": [{"refId": "A"}]}]}},
            "no panels": {"a.json": {"uid": "x", "panels": []}},
        }
        for name, dashboards in cases.items():
            with self.subTest(name):
                self.assertTrue(check_dashboards.structure_problems(copy.deepcopy(dashboards)))

    def test_grafana_variables_are_substituted(self) -> None:
        dashboards = {"a.json": {"panels": [{"title": "t", "targets": [
            {"refId": "A", "expr": "rate(x[$__rate_interval])"}]}]}}  # fmt: skip
        self.assertEqual(check_dashboards.queries(dashboards)[0][1], "rate(x[1m])")

    def test_custom_variables_expand_to_every_value(self) -> None:
        dashboards = {"a.json": {
            "templating": {"list": [{"name": "job", "type": "custom", "query": "go, py"}]},
            "panels": [{"title": "t", "targets": [
                {"refId": "A", "expr": 'up{job="$job"}'}]}]}}  # fmt: skip
        self.assertEqual(
            [expr for _, expr in check_dashboards.queries(dashboards)],
            ['up{job="go"}', 'up{job="py"}'],
        )

    def test_every_query_is_valid_json_round_trip(self) -> None:
        for where, expr in check_dashboards.queries(self.dashboards):
            self.assertEqual(json.loads(json.dumps(expr)), expr, where)


if __name__ == "__main__":
    unittest.main()
