from __future__ import annotations

import pytest

from py_service.app.duration import parse_duration

MS = 1_000_000
S = 1_000 * MS


@pytest.mark.parametrize(
    ("text", "nanoseconds"),
    [
        # The cases of Go's own time.ParseDuration tests that a TTL or timeout would use.
        ("0", 0),
        ("5s", 5 * S),
        ("30s", 30 * S),
        ("1478s", 1478 * S),
        ("-5s", -5 * S),
        ("+5s", 5 * S),
        ("-0", 0),
        ("5.0s", 5 * S),
        ("5.6s", 5 * S + 600 * MS),
        ("5.s", 5 * S),
        (".5s", 500 * MS),
        ("1.004s", 1 * S + 4 * MS),
        ("100.00100s", 100 * S + 1 * MS),
        ("10ns", 10),
        ("11us", 11_000),
        ("12µs", 12_000),  # U+00B5
        ("12μs", 12_000),  # U+03BC
        ("13ms", 13 * MS),
        ("14s", 14 * S),
        ("15m", 15 * 60 * S),
        ("16h", 16 * 3600 * S),
        ("3h30m", (3 * 3600 + 30 * 60) * S),
        ("10.5s4m", (4 * 60 + 10) * S + 500 * MS),
        ("-2m3.4s", -(2 * 60 * S + 3 * S + 400 * MS)),
        ("1h2m3s4ms5us6ns", 3723 * S + 4 * MS + 5_000 + 6),
        ("39h9m14.425s", (39 * 3600 + 9 * 60 + 14) * S + 425 * MS),
        ("52763797000ns", 52763797000),
        ("0.3333333333333333333h", 20 * 60 * S),
        ("9223372036854775807ns", 2**63 - 1),
    ],
)
def test_reads_what_go_reads(text: str, nanoseconds: int) -> None:
    assert parse_duration(text) == nanoseconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "3",
        "-",
        "s",
        ".",
        "-.",
        ".s",
        "+.s",
        "1d",
        "1S",
        "1 s",
        " 1s",
        "1s ",
        "1.2.3s",
        "9223372036854775808ns",
        "-9223372036854775809ns",
    ],
)
def test_refuses_what_go_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="Go duration"):
        parse_duration(text)
