"""`image_smoke_test`: an app image run in a real Docker engine (smoke_test.py)."""

load("//tools/rules/python:pytest.bzl", "pytest_test")

def image_smoke_test(name, loader, repo_tag, port, **kwargs):
    """Loads the image with `loader` (an oci_load), runs it, and checks /healthz and /time on `port`.

    Each run's container is its own (a random name), so copies of the test run side by side."""
    pytest_test(
        name = name,
        size = "medium",
        srcs = [Label(":smoke_test.py")],
        env = {
            "LOADER": "$(rootpath %s)" % loader,
            "PORT": str(port),
            "TAG": repo_tag,
        },
        data = [loader, Label("//tools/rules/docker:engine.sh")],
        deps = [
            Label("//tools/testing/python:ownership"),
            Label("//tools/testing/python:services"),
            Label("//tools/testing/python:support"),
        ],
        # Unsandboxed: an engine this test may start must outlive it, outside the sandbox.
        tags = [
            "no-sandbox",
            "requires-docker",
        ],
        **kwargs
    )
