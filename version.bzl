"""The product's version: the one source for build_info (tools/buildinfo) and the binaries.

MODULE.bazel's module() cannot load this file; its version is kept equal by
//tools/buildinfo:version_test.
"""

VERSION = "0.1.0"
