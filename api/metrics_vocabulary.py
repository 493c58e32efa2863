"""Checks a Prometheus text exposition against the shared metrics vocabulary, api/metrics.json.

    problems(spec, exposition, exposer="go", routes={"/", "/time", ...}) -> list of findings

A finding is a sentence naming the family and what breaks the vocabulary: a metric another
exposer owns, a wrong type, label names or buckets, a label value outside its set or pattern, an
unknown family, or a required metric missing. An empty list means the exposition speaks the
vocabulary. Parsing is prometheus_client's (the text format's reference parser in Python).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

# Sample-name suffixes a histogram family's samples carry, and the label only buckets have.
HISTOGRAM_SUFFIXES = ("_bucket", "_sum", "_count", "_created")
COUNTER_SUFFIXES = ("_total", "_created")


def load(path: Path) -> dict:
    """api/metrics.json as a dict."""
    return json.loads(path.read_text())


def openapi_routes(path: Path) -> set[str]:
    """The route paths of api/openapi.json: the values `handler` may take besides notfound."""
    return set(json.loads(path.read_text())["paths"])


def _allowed(spec: dict, label: str, value: str, routes: set[str]) -> bool:
    rule = spec["labels"][label]
    if rule.get("routes") and value in routes:
        return True
    if value in rule.get("values", ()):
        return True
    return "pattern" in rule and re.search(rule["pattern"], value) is not None


def problems(spec: dict, exposition: str, exposer: str, routes: set[str]) -> list[str]:
    """What in `exposition` (the text format) breaks the vocabulary for `exposer` (go, python
    or nginx). Raises ValueError when the text does not parse."""
    found: list[str] = []
    seen: set[str] = set()
    metrics = spec["metrics"]
    for family in text_string_to_metric_families(exposition):
        # prometheus_client names counter families without _total; the vocabulary with it.
        name = family.name + "_total" if family.type == "counter" else family.name
        if name not in metrics:
            if not any(name.startswith(p) for p in spec["runtime_prefixes"][exposer]):
                found.append(f"{name}: not in api/metrics.json")
            continue
        seen.add(name)
        metric = metrics[name]
        if exposer not in metric["exposers"]:
            found.append(f"{name}: exposed by {exposer}, but it is {metric['exposers']}'s")
        if family.type != metric["type"]:
            found.append(f"{name}: type {family.type}, want {metric['type']}")
        # Bounds as the label strings they are: le="1.0" and le="1" are two series to
        # Prometheus, however equal their values.
        buckets: set[str] = set()
        for sample in family.samples:
            labels = dict(sample.labels)
            if family.type == "histogram" and sample.name.endswith("_bucket"):
                buckets.add(labels.pop("le"))
            if sorted(labels) != sorted(metric["labels"]):
                found.append(f"{sample.name}: labels {sorted(labels)}, want {metric['labels']}")
                continue
            for label, value in labels.items():
                if not _allowed(spec, label, value, routes):
                    found.append(f"{sample.name}: {label}={value!r} is outside its vocabulary")
        if family.type == "histogram" and family.samples:
            want = [*spec["buckets"][metric["buckets"]], "+Inf"]
            if buckets != set(want):
                found.append(f"{name}: buckets {sorted(buckets, key=float)}, want {want}")
    for name, metric in metrics.items():
        if metric.get("required") and exposer in metric["exposers"] and name not in seen:
            found.append(f"{name}: required of {exposer}, not exposed")
    return found
