"""`package_metadata`: the upstream rule's interface (name, purl, attributes, visibility)."""

PackageMetadataInfo = provider(
    doc = "Identifies a third-party package by its Package URL (purl).",
    fields = {
        "purl": "The package's Package URL.",
        "attributes": "Labels of further metadata targets (licenses, for example).",
    },
)

def _package_metadata_impl(ctx):
    return [PackageMetadataInfo(purl = ctx.attr.purl, attributes = ctx.attr.attributes)]

_package_metadata = rule(
    implementation = _package_metadata_impl,
    attrs = {
        "purl": attr.string(mandatory = True, doc = "Package URL of the package."),
        "attributes": attr.label_list(doc = "Further metadata targets."),
    },
)

def package_metadata(name, purl, attributes = [], **kwargs):
    # A repository's default_package_metadata names this target; it must not apply to itself.
    _package_metadata(
        name = name,
        purl = purl,
        attributes = attributes,
        applicable_licenses = [],
        **kwargs
    )
