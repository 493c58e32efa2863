package redact

import (
	"strings"
	"testing"
)

func TestURLDropsUserinfo(t *testing.T) {
	for _, tc := range []struct{ raw, want string }{
		{"redis://redis:6379/0", "redis://redis:6379/0"},
		{"redis://go-service:s3cret@redis:6379/0", "redis://redis:6379/0"},
		{"redis://:s3cret@redis:6379/0", "redis://redis:6379/0"},
		{"rediss://go-service@redis:6379", "rediss://redis:6379"},
		// Invalid URLs, as error messages print them.
		{"redis://u:s3cret@redis:x/0", "redis://redis:x/0"},
		{"redis://u:s3 cret@redis/0", "redis://redis/0"},
		{"redis://u:s3/cr@t@redis/0", "redis://redis/0"},
		{"u:s3cret@redis:6379", "redis:6379"},
		{"redis://redis/0?user=x#frag", "redis://redis/0?user=x#frag"},
		{"", ""},
	} {
		got := URL(tc.raw)
		if got != tc.want {
			t.Errorf("URL(%q) = %q, want %q", tc.raw, got, tc.want)
		}
		if strings.Contains(got, "s3") {
			t.Errorf("URL(%q) = %q keeps the password", tc.raw, got)
		}
	}
}
