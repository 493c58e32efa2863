package httpapi

import (
	"regexp"
	"strconv"
	"strings"
)

// Content negotiation for the routes that answer text or JSON (RFC 9110
// section 12.5.1), by the contract's rule (api/openapi.json,
// x-common.content-negotiation). py_service/app/negotiation.py implements the
// same grammar line for line: the services must choose alike for every
// Accept value, and the two languages' well-kept parsers (goautoneg,
// werkzeug) disagree on malformed ranges, so neither is used.
//
// Grammar (RFC 9110 sections 12.5.1, 5.6.6, 8.3.1):
// Accept = #( media-range [ weight ] ), media-range = ( "*/*" / type "/*" /
// type "/" subtype ) parameters, weight = OWS ";" OWS "q=" qvalue, qvalue =
// "0" [ "." 0*3DIGIT ] / "1" [ "." 0*3("0") ]. Names and types are
// case-insensitive; an element that does not parse is ignored, not the field.

// offers are the negotiated routes' media types, in the server's order of
// preference.
var offers = [...]string{"text/plain", "application/json"}

var (
	token  = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]+$")
	quoted = regexp.MustCompile(`^"(?:[^"\\]|\\.)*"$`)
	qvalue = regexp.MustCompile(`^(?:0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?)$`)
)

const ows = " \t"

// mediaRange is one parsed Accept element: lower-case type and subtype ("*"
// for a wildcard), whether it has parameters other than q, and its weight.
type mediaRange struct {
	typ, subtype  string
	hasParameters bool
	q             float64
}

// prefersJSON reports whether Accept field values choose JSON over text.
func prefersJSON(accept []string) bool {
	return preferred(accept, offers[:]) == contentTypeJSON
}

// preferred is the offer ("type/subtype") to send for Accept field values:
// the highest weight above 0, ties to the earlier offer; offers[0] when none
// is acceptable (the field is disregarded, as section 12.5.1 allows, rather
// than a 406).
func preferred(accept []string, offers []string) string {
	ranges := parseAccept(accept)
	best, bestWeight := 0, 0.0
	for i, offer := range offers {
		if w := weight(ranges, offer); w > bestWeight {
			best, bestWeight = i, w
		}
	}
	return offers[best]
}

// weight is the q of the most specific range matching offer (type/subtype
// over type/* over */*; the higher q among equally specific ones), 0 when none
// does. A range with parameters matches none of the offers, which have none.
func weight(ranges []mediaRange, offer string) float64 {
	offerType, offerSubtype, _ := strings.Cut(strings.ToLower(offer), "/")
	bestSpecificity, q := -1, 0.0
	for _, r := range ranges {
		if r.hasParameters {
			continue
		}
		var specificity int
		switch {
		case r.typ == offerType && r.subtype == offerSubtype:
			specificity = 2
		case r.typ == offerType && r.subtype == "*":
			specificity = 1
		case r.typ == "*" && r.subtype == "*":
			specificity = 0
		default:
			continue
		}
		if specificity > bestSpecificity || (specificity == bestSpecificity && r.q > q) {
			bestSpecificity, q = specificity, r.q
		}
	}
	return q
}

// parseAccept returns the well-formed media ranges of Accept field values, in
// order.
func parseAccept(values []string) []mediaRange {
	var ranges []mediaRange
	for _, element := range split(strings.Join(values, ","), ',') {
		if r, ok := parseElement(element); ok {
			ranges = append(ranges, r)
		}
	}
	return ranges
}

func parseElement(element string) (mediaRange, bool) {
	parts := split(element, ';')
	mediaType, subtype, slash := strings.Cut(strings.Trim(parts[0], ows), "/")
	if !slash || !token.MatchString(mediaType) || !token.MatchString(subtype) {
		return mediaRange{}, false
	}
	if mediaType == "*" && subtype != "*" {
		return mediaRange{}, false
	}
	r := mediaRange{typ: strings.ToLower(mediaType), subtype: strings.ToLower(subtype), q: 1}
	weighted := false
	for _, part := range parts[1:] {
		parameter := strings.Trim(part, ows)
		if parameter == "" { // parameters = *( OWS ";" OWS [ parameter ] )
			continue
		}
		name, value, equals := strings.Cut(parameter, "=")
		if weighted || !equals || !token.MatchString(name) {
			return mediaRange{}, false // nothing may follow the weight
		}
		switch {
		case strings.EqualFold(name, "q"):
			if !qvalue.MatchString(value) {
				return mediaRange{}, false
			}
			r.q, _ = strconv.ParseFloat(value, 64)
			weighted = true
		case token.MatchString(value) || quoted.MatchString(value):
			r.hasParameters = true
		default:
			return mediaRange{}, false
		}
	}
	return r, true
}

// split cuts text at sep, except inside quoted strings (with backslash
// escapes).
func split(text string, sep byte) []string {
	var parts []string
	start, inQuotes, escaped := 0, false, false
	for i := 0; i < len(text); i++ {
		switch c := text[i]; {
		case escaped:
			escaped = false
		case inQuotes && c == '\\':
			escaped = true
		case c == '"':
			inQuotes = !inQuotes
		case c == sep && !inQuotes:
			parts = append(parts, text[start:i])
			start = i + 1
		}
	}
	return append(parts, text[start:])
}
