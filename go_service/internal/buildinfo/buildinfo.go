// Package buildinfo names the build: the product version and the source revision.
//
// Both are set at link time by the go_binary's x_defs (go_service/cmd/go_service/BUILD.bazel):
// Version from //:version.bzl in every build, Revision from Bazel's stable status only in a
// stamped build (--stamp); an unstamped build, and `go build`, keep "unknown".
package buildinfo

// Version is the product version, like "0.1.0".
var Version = "unknown"

// Revision is the git commit the binary was built from, or "unknown".
var Revision = "unknown"
