"""Analysis tests of oci_image's platform: the config names the target platform, or the build stops."""

load("@bazel_skylib//lib:unittest.bzl", "analysistest", "asserts")
load(":defs.bzl", "oci_image")

def _arg_after(argv, flag):
    """The value following `flag` in argv, or None."""
    for i, arg in enumerate(argv[:-1]):
        if arg == flag:
            return argv[i + 1]
    return None

def _linux_amd64_impl(ctx):
    env = analysistest.begin(ctx)
    (action,) = [a for a in analysistest.target_actions(env) if a.mnemonic == "OciImage"]
    asserts.equals(env, "linux", _arg_after(action.argv, "--os"))
    asserts.equals(env, "amd64", _arg_after(action.argv, "--arch"))
    return analysistest.end(env)

_linux_amd64_test = analysistest.make(
    _linux_amd64_impl,
    config_settings = {"//command_line_option:platforms": str(Label("//platforms:linux_amd64"))},
)

def _refused_impl(ctx):
    env = analysistest.begin(ctx)
    asserts.expect_failure(env, ctx.attr.message)
    return analysistest.end(env)

_linux_arm64_test = analysistest.make(
    _refused_impl,
    attrs = {"message": attr.string()},
    expect_failure = True,
    config_settings = {"//command_line_option:platforms": str(Label("//platforms:linux_arm64"))},
)

def oci_image_platform_test_suite(name):
    """linux/amd64 in the config for //platforms:linux_amd64; //platforms:linux_arm64 refused.

    Args:
      name: the test_suite.
    """
    oci_image(name = name + "_image", tags = ["manual"])
    _linux_amd64_test(name = name + "_linux_amd64", target_under_test = ":" + name + "_image")
    _linux_arm64_test(
        name = name + "_linux_arm64",
        target_under_test = ":" + name + "_image",
        message = "the Debian packages are locked for linux/amd64 only",
    )
    native.test_suite(name = name, tests = [":" + name + "_linux_amd64", ":" + name + "_linux_arm64"])
