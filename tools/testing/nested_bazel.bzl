"""What a test running a nested Bazel (tools/testing/nested_bazel.sh) inherits from the outer client."""

# The nested Bazel is a client like the user's own: it needs the same Go SDK, proxies and indexes.
NESTED_BAZEL_ENV = [
    "PATH",
    "GOROOT",
    "GOMODCACHE",
    "GOPROXY",
    "GOSUMDB",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "SSL_CERT_FILE",
    "PIP_INDEX_URL",
    "PIP_FIND_LINKS",
]
