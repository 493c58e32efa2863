"""Numbers in the text exposition as Prometheus' Go client writes them.

A label value is a string: the bucket bound le="1.0" (prometheus_client, Python's repr) and le="1"
(the Go client, Nginx's Lua) are two series to Prometheus 2, so a fleet-wide `sum by (le)` keeps
them apart and a query on {le="1"} misses this service. Every exposer of the stack writes bounds
the Go client's way (api/metrics.json lists them as strings; deploy/README.md, "One metrics
vocabulary").
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from decimal import Decimal

from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.samples import Sample


def go_float(value: float) -> str:
    """value as Prometheus' Go client writes it (strconv.FormatFloat(value, 'g', -1, 64)): the
    shortest decimal that reads back as value, in exponent form below 1e-4 and from 1e6 on:
    "1", "0.0005", "2.5e-05", "1e+06", "+Inf".

    prometheus_client writes a bound as Python's repr ("1.0", "10.0"); a label value is a
    string, so le="1.0" here and le="1" from the Go service would be two buckets fleet-wide.
    """
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if value == 0:
        return "0"
    # repr is already the shortest round-trip form; only its layout differs from Go's.
    sign, digits, exponent = Decimal(repr(value)).normalize().as_tuple()
    mantissa = "".join(map(str, digits))
    point = len(mantissa) + int(exponent)  # digits before the decimal point
    prefix = "-" if sign else ""
    if not -4 <= point - 1 < 6:
        fraction = "." + mantissa[1:] if len(mantissa) > 1 else ""
        power = point - 1
        return f"{prefix}{mantissa[0]}{fraction}e{'-' if power < 0 else '+'}{abs(power):02d}"
    if point <= 0:
        return f"{prefix}0.{'0' * -point}{mantissa}"
    if point >= len(mantissa):
        return prefix + mantissa + "0" * (point - len(mantissa))
    return f"{prefix}{mantissa[:point]}.{mantissa[point:]}"


class GoBucketBounds(Collector):
    """A registry's metrics with each bucket bound (le) written by go_float: what render()
    exposes, in single- and multiprocess mode alike (prometheus_client fixes the string when a
    value is first recorded, so it is rewritten on the way out)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterable[Metric]:
        # Every collect() builds new Metric objects: rewriting their samples changes no state.
        for metric in self.registry.collect():
            metric.samples = [_go_bound(sample) for sample in metric.samples]
            yield metric


def _go_bound(sample: Sample) -> Sample:
    if "le" not in sample.labels:
        return sample
    return sample._replace(labels={**sample.labels, "le": go_float(float(sample.labels["le"]))})
