"""Content negotiation for the routes that answer text or JSON (RFC 9110 section 12.5.1).

The rule is the contract's (api/openapi.json, x-common.content-negotiation), and go_service's
internal/httpapi/negotiation.go implements the same grammar line for line: the two services must
choose alike for every Accept value, and the well-kept parsers of the two languages (werkzeug,
goautoneg) disagree on malformed ranges (an unparsable q is 0 in one and ignored in the other;
"Q=", ".5", "NaN", parameters on wildcards), so neither is used.

Grammar (RFC 9110 sections 12.5.1, 5.6.6, 8.3.1): Accept = #( media-range [ weight ] ),
media-range = ( "*/*" / type "/*" / type "/" subtype ) parameters, weight = OWS ";" OWS "q="
qvalue, qvalue = "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ]. Names and types are
case-insensitive; an element that does not parse is ignored, not the whole field.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_QUOTED = re.compile(r'"(?:[^"\\]|\\.)*"')
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")
_OWS = " \t"


@dataclass(frozen=True)
class MediaRange:
    """One parsed Accept element: lower-case type and subtype ("*" for a wildcard), whether it
    has parameters other than q, and its weight q in [0, 1]."""

    type: str
    subtype: str
    has_parameters: bool
    q: float


def parse_accept(values: Iterable[str]) -> list[MediaRange]:
    """The well-formed media ranges of one or more Accept field values, in order."""
    ranges = []
    for element in _split(",".join(values), ","):
        parsed = _parse_element(element)
        if parsed is not None:
            ranges.append(parsed)
    return ranges


def preferred(values: Iterable[str], offers: Sequence[str]) -> str:
    """The offer ("type/subtype", in the server's order of preference) to send for Accept
    field values: the highest weight above 0, ties to the earlier offer; offers[0] when none is
    acceptable (the field is disregarded, as section 12.5.1 allows, rather than a 406)."""
    ranges = parse_accept(values)
    weights = [weight(ranges, offer) for offer in offers]
    best = max(range(len(offers)), key=lambda i: weights[i])  # max keeps the first of equals
    return offers[best] if weights[best] > 0 else offers[0]


def weight(ranges: Sequence[MediaRange], offer: str) -> float:
    """The q of the most specific range matching offer (type/subtype over type/* over */*; the
    higher q among equally specific ones); 0 when none does. A range with parameters matches
    none of the offers, which have none."""
    offer_type, _, offer_subtype = offer.lower().partition("/")
    best_specificity, q = -1, 0.0
    for r in ranges:
        if r.has_parameters:
            continue
        if r.type == offer_type and r.subtype == offer_subtype:
            specificity = 2
        elif r.type == offer_type and r.subtype == "*":
            specificity = 1
        elif r.type == "*" and r.subtype == "*":
            specificity = 0
        else:
            continue
        if specificity > best_specificity or (specificity == best_specificity and r.q > q):
            best_specificity, q = specificity, r.q
    return q


def _parse_element(element: str) -> MediaRange | None:
    parts = _split(element, ";")
    media_type, slash, subtype = parts[0].strip(_OWS).partition("/")
    if not (slash and _TOKEN.fullmatch(media_type) and _TOKEN.fullmatch(subtype)):
        return None
    if media_type == "*" and subtype != "*":
        return None
    q, has_parameters, weighted = 1.0, False, False
    for part in parts[1:]:
        parameter = part.strip(_OWS)
        if not parameter:  # "parameters = *( OWS ";" OWS [ parameter ] )"
            continue
        name, equals, value = parameter.partition("=")
        if weighted or not equals or not _TOKEN.fullmatch(name):
            return None  # nothing may follow the weight
        if name.lower() == "q":
            if not _QVALUE.fullmatch(value):
                return None
            q, weighted = float(value), True
        elif _TOKEN.fullmatch(value) or _QUOTED.fullmatch(value):
            has_parameters = True
        else:
            return None
    return MediaRange(media_type.lower(), subtype.lower(), has_parameters, q)


def _split(text: str, separator: str) -> list[str]:
    """text split at separator, except inside quoted strings (with backslash escapes)."""
    parts, current, quoted, escaped = [], [], False, False
    for char in text:
        if escaped:
            escaped = False
        elif quoted and char == "\\":
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == separator and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return parts
