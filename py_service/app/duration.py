"""Go's duration syntax (time.ParseDuration), so that both services spell a time alike: "60s",
"1m30s", "1.5h", "300ms"; a unit on every number, "0" alone excepted.

A port of Go's parser, step for step (the fraction too, in float64 as Go computes it), so that a
value the Go service reads means the same here, and one it refuses is refused here.
"""

from __future__ import annotations

_NANOSECONDS = {
    "ns": 1,
    "us": 1_000,
    "µs": 1_000,  # U+00B5 micro sign
    "μs": 1_000,  # U+03BC Greek small letter mu
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60 * 1_000_000_000,
    "h": 3600 * 1_000_000_000,
}
_LIMIT = 1 << 63  # Go's int64 nanoseconds: -_LIMIT .. _LIMIT - 1


def parse_duration(text: str) -> int:
    """text in Go's duration syntax, as nanoseconds. ValueError when Go's parser would refuse it."""

    def refuse(reason: str) -> ValueError:
        return ValueError(f"not a Go duration ({reason}): {text!r}")

    rest = text
    negative = rest[:1] == "-"
    if rest[:1] in ("-", "+"):
        rest = rest[1:]
    if rest == "0":
        return 0
    if not rest:
        raise refuse("empty")
    total = 0
    while rest:
        if rest[0] not in ".0123456789":
            raise refuse("a number must come first")
        whole, whole_digits, rest = _leading_digits(rest)
        if whole > _LIMIT:
            raise refuse("out of range")
        fraction, scale, fraction_digits = 0, 1.0, 0
        if rest[:1] == ".":
            fraction, scale, fraction_digits, rest = _leading_fraction(rest[1:])
        if not whole_digits and not fraction_digits:
            raise refuse("a number must come first")
        end = 0
        while end < len(rest) and rest[end] not in ".0123456789":
            end += 1
        if end == 0:
            raise refuse("missing unit")
        unit_name, rest = rest[:end], rest[end:]
        unit = _NANOSECONDS.get(unit_name)
        if unit is None:
            raise refuse(f"unknown unit {unit_name!r}")
        if whole > _LIMIT // unit:
            raise refuse("out of range")
        value = whole * unit
        if fraction:
            value += int(float(fraction) * (float(unit) / scale))
        total += value
        if value > _LIMIT or total > _LIMIT:
            raise refuse("out of range")
    if negative:
        return -total
    if total > _LIMIT - 1:
        raise refuse("out of range")
    return total


def _leading_digits(text: str) -> tuple[int, int, str]:
    """The ASCII digits text starts with, as a number (capped past Go's range), their count and
    the rest of text."""
    end = 0
    while end < len(text) and text[end] in "0123456789":
        end += 1
    digits = text[:end]
    value = int(digits) if digits else 0
    return min(value, _LIMIT + 1), end, text[end:]


def _leading_fraction(text: str) -> tuple[int, float, int, str]:
    """The digits after a decimal point as Go's leadingFraction reads them: the value and scale
    of as many leading digits as fit in an int64 (later ones are consumed and ignored), the
    count of digits consumed, and the rest of text."""
    value, scale, end, overflow = 0, 1.0, 0, False
    while end < len(text) and text[end] in "0123456789":
        if not overflow:
            if value > (_LIMIT - 1) // 10:
                overflow = True
            else:
                next_value = value * 10 + int(text[end])
                if next_value > _LIMIT:
                    overflow = True
                else:
                    value = next_value
                    scale *= 10
        end += 1
    return value, scale, end, text[end:]
