// Package redact makes configuration values safe to print: a Redis URL may
// carry a password (redis://user:password@host/db), and a URL printed in an
// error message or a log line ends up in terminals, log stores and issue
// reports.
package redact

import "strings"

// URL returns raw without its userinfo (user:password@), for logs and error
// messages. raw need not parse: an invalid URL is what error messages print,
// and net/url's own errors quote the whole input, password included. All
// that precedes the authority's last "@" goes, so a password holding an
// unescaped "@" or "/" is dropped too.
func URL(raw string) string {
	scheme, rest, hasScheme := strings.Cut(raw, "://")
	if !hasScheme {
		scheme, rest = "", raw
	}
	// The authority ends at the path, query or fragment; a userinfo may
	// itself hold "/" (unescaped), so look for its "@" up to the query.
	end := strings.IndexAny(rest, "?#")
	if end < 0 {
		end = len(rest)
	}
	if at := strings.LastIndex(rest[:end], "@"); at >= 0 {
		rest = rest[at+1:]
	}
	if hasScheme {
		return scheme + "://" + rest
	}
	return rest
}
