"""Checks the provisioned Grafana dashboards without Grafana (whose image cannot run here).

    check_dashboards.py DASHBOARD_DIR                      structure only
    check_dashboards.py --prometheus URL DASHBOARD_DIR     and every panel query returns data
    check_dashboards.py --list DASHBOARD_DIR               print every query

A dashboard's custom variables (the service dashboard's $job) are expanded: every panel must
return data for every value a user can pick.

Structure: unique dashboard uids, unique panel ids per dashboard, every panel on the provisioned
Prometheus datasource (uid "prometheus") with at least one query.
"""

import argparse
import json
import sys
import urllib.parse
import urllib.request
from itertools import product
from pathlib import Path

DATASOURCE_UID = "prometheus"  # provisioning/datasources/prometheus.yml
# Grafana's own variables, given the values Grafana would on a 15-minute dashboard.
GRAFANA_VARIABLES = {"$__rate_interval": "1m", "$__interval": "15s", "$__range": "15m"}


def load(directory: Path) -> dict[str, dict]:
    return {path.name: json.loads(path.read_text()) for path in sorted(directory.glob("*.json"))}


def structure_problems(dashboards: dict[str, dict]) -> list[str]:
    problems, uids = [], {}
    for name, dashboard in dashboards.items():
        uid = dashboard.get("uid")
        if not uid:
            problems.append(f"{name}: no uid")
        elif uid in uids:
            problems.append(f"{name}: uid {uid!r} also used by {uids[uid]}")
        uids[uid] = name
        panel_ids = set()
        for panel in dashboard.get("panels", []):
            where = f"{name}: panel {panel.get('title')!r}"
            if panel.get("id") in panel_ids:
                problems.append(f"{where}: duplicate id {panel.get('id')}")
            panel_ids.add(panel.get("id"))
            if panel.get("datasource", {}).get("uid") != DATASOURCE_UID:
                problems.append(f"{where}: datasource is not {DATASOURCE_UID!r}")
            targets = panel.get("targets", [])
            if not targets or not all(t.get("expr") for t in targets):
                problems.append(f"{where}: a panel needs queries, each with an expr")
        if not panel_ids:
            problems.append(f"{name}: no panels")
    return problems


def variable_values(dashboard: dict) -> list[dict[str, str]]:
    """Every assignment of the dashboard's custom variables ($job -> go-service, ...): each
    panel must return data for each value a user can pick. [{}] without variables."""
    variables = [
        (f"${v['name']}", [value.strip() for value in v["query"].split(",")])
        for v in dashboard.get("templating", {}).get("list", [])
        if v.get("type") == "custom"
    ]
    names = [name for name, _ in variables]
    return [dict(zip(names, values, strict=True)) for values in product(*(v for _, v in variables))]


def queries(dashboards: dict[str, dict]) -> list[tuple[str, str]]:
    """(where, expr) for every query and every value of the dashboard's variables, Grafana's
    own variables and the dashboard's substituted."""
    found = []
    for name, dashboard in dashboards.items():
        for assignment in variable_values(dashboard):
            chosen = "".join(f" {k}={v}" for k, v in assignment.items())
            for panel in dashboard.get("panels", []):
                for target in panel.get("targets", []):
                    expr = target["expr"]
                    # Longest first: $job must not eat the start of a longer variable's name.
                    substitutions = {**GRAFANA_VARIABLES, **assignment}
                    for variable in sorted(substitutions, key=len, reverse=True):
                        expr = expr.replace(variable, substitutions[variable])
                    found.append((f"{name}{chosen}: {panel['title']} [{target['refId']}]", expr))
    return found


def query_problem(prometheus: str, expr: str) -> str | None:
    url = f"{prometheus}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 (user-given URL)
            payload = json.load(response)
    except OSError as error:
        return f"query failed: {error}"
    if payload.get("status") != "success":
        return f"error: {payload.get('error')}"
    if not payload["data"]["result"]:
        return "no data"
    return None


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", type=Path)
    parser.add_argument("--prometheus", help="base URL of a live Prometheus")
    parser.add_argument("--list", action="store_true", help="print every query and exit")
    args = parser.parse_args(argv)
    dashboards = load(args.directory)
    if args.list:
        for where, expr in queries(dashboards):
            print(f"{where}\n    {expr}")
        return 0
    problems = structure_problems(dashboards) if dashboards else ["no dashboards found"]
    if args.prometheus and not problems:
        for where, expr in queries(dashboards):
            problem = query_problem(args.prometheus.rstrip("/"), expr)
            if problem:
                problems.append(f"{where}: {expr}: {problem}")
    for problem in problems:
        print(problem, file=sys.stderr)
    total = len(queries(dashboards))
    print(f"{len(dashboards)} dashboards, {total} queries: {len(problems)} problems")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
