"""End-to-end test of the stack: real Docker engine, real images, through Nginx on loopback.

Brings a stack up (a Compose project of its own, on ports of its own) with the same script as
`bazel run //deploy:up`, checks both cache layers,
Prometheus targets and counters, and every Grafana dashboard query against the live Prometheus;
tears the stack down at the end. Failures (apps and Redis stopped, load, SIGTERM, random paths)
are deploy/fault_test.py's.
"""

import json
import subprocess
import sys
import time
from ipaddress import ip_address, ip_network

from deploy.stack_harness import (
    RUNFILES,
    WORKSPACE,
    Stack,
    StackTestCase,
    free_port,
    get,
    main,
    wait_for,
)

LOADERS = sys.argv[1:]
# A project, free ports and a subnet of its own: runs beside fault_test and the user's own stack.
STACK = Stack(
    project="cache-platform-e2e",
    nginx_port=free_port(),
    prometheus_port=free_port(),
    redis_variant_port=free_port(),
    grafana_port=free_port(),
    net=48,
)
NGINX = STACK.nginx
PROMETHEUS = STACK.prometheus


class StackTest(StackTestCase):
    stack = STACK
    loaders = LOADERS

    def test_1_go_time_is_cached_in_process_for_ttl(self) -> None:
        first = get(f"{NGINX}/go/time")
        self.assertEqual(first.status, 200)
        again = get(f"{NGINX}/go/time")
        self.assertEqual(again.headers.get("X-Cache"), "HIT")
        self.assertEqual(again.body, first.body)
        # Wait exactly until the entry is older than the 10 s TTL, not longer.
        time.sleep(max(0.0, 10 - int(again.headers["Age"])) + 1)
        self.assertNotEqual(get(f"{NGINX}/go/time").body, first.body)

    def test_2_python_time_is_cached_by_nginx_for_ttl(self) -> None:
        first = get(f"{NGINX}/python/time")
        self.assertEqual(first.status, 200)
        self.assertIn(first.headers.get("X-Cache-Status"), ("MISS", "EXPIRED"))
        # Nginx keeps it for as long as the app says (CACHE_TTL, 60 s in the stack).
        self.assertEqual(first.headers.get("Cache-Control"), "public, max-age=60")
        hit = get(f"{NGINX}/python/time")
        self.assertEqual(hit.headers.get("X-Cache-Status"), "HIT")
        self.assertEqual(hit.body, first.body)

    def test_3_prometheus_targets_up_and_counters_moved(self) -> None:
        wait_for(
            "every Prometheus target up",
            lambda: all(t["health"] == "up" for t in self.targets()) and len(self.targets()) >= 4,
            timeout=60,
        )
        for query in (
            'sum(http_requests_total{job="go-service"})',
            'sum(http_requests_total{job="py-service"})',
            'sum(cache_requests_total{job="go-service"})',
        ):
            wait_for(f"{query} > 0", lambda q=query: self.value(q) > 0, timeout=30)

    def test_4_every_dashboard_query_returns_data(self) -> None:
        # Rates need two scrapes of traffic: send some, then give Prometheus a few intervals.
        for _ in range(50):
            for path in ("/go/time", "/go/static-text", "/python/time", "/python/static-text"):
                get(NGINX + path)
        checker = RUNFILES / "deploy/grafana/check_dashboards.py"
        dashboards = WORKSPACE / "deploy/grafana/dashboards"

        def all_queries_answer() -> bool:
            result = subprocess.run(
                [sys.executable, str(checker), "--prometheus", PROMETHEUS, str(dashboards)],
                capture_output=True,
                text=True,
            )
            self.last_check = result.stdout + result.stderr
            return result.returncode == 0

        try:
            wait_for("every dashboard query to return data", all_queries_answer, timeout=90)
        except AssertionError:
            self.fail(self.last_check)

    def test_5_reserved_addresses_lie_outside_the_dynamic_pool(self) -> None:
        # The apps' and mtail's fixed addresses are below ip_range, the pool Docker hands out to
        # every other container: none can take a reserved one, after a daemon restart or not.
        network = json.loads(
            subprocess.run(
                ["docker", "network", "inspect", f"{STACK.project}_default"],
                check=True,
                capture_output=True,
                text=True,
            ).stdout
        )[0]
        (config,) = network["IPAM"]["Config"]
        subnet, pool = ip_network(config["Subnet"]), ip_network(config.get("IPRange", "0.0.0.0/0"))
        self.assertTrue(pool.subnet_of(subnet), config)
        for service in ("go-service", "py-service", "mtail", "nginx", "prometheus"):
            with self.subTest(service=service):
                (settings,) = STACK.container(service)["NetworkSettings"]["Networks"].values()
                address = ip_address(settings["IPAddress"])
                self.assertIn(address, subnet)
                reserved = service in ("go-service", "py-service", "mtail")
                self.assertEqual(address in pool, not reserved, f"{address} and {pool}")

    @staticmethod
    def targets() -> list[dict]:
        return json.loads(get(f"{PROMETHEUS}/api/v1/targets").body)["data"]["activeTargets"]

    @staticmethod
    def value(expr: str) -> float:
        result = STACK.prometheus_query(expr)
        return float(result[0]["value"][1]) if result else 0.0


if __name__ == "__main__":
    main()
